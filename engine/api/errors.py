"""Errors as the API answers them: a status, a sentence, and the fields at fault.

Every refusal has the shape `{"detail": "...", "errors": [{"field": ..., "message": ...}]}`
(with `"event": INDEX` when one event of a batch is wrong), so a client can tell which field of
which event to fix. FastAPI's own validation errors are translated to the same shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from engine.store.database import Conflict, DatabaseUnavailable

FASTAPI_UNDECODABLE_BODY = "There was an error parsing the body"


class ApiError(Exception):
    def __init__(self, status: int, detail: str, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.headers = headers


def field_error(status: int, field: str, message: str, **more: Any) -> ApiError:
    return ApiError(status, f"{field}: {message}", [{"field": field, "message": message,
                                                     **more}])


def response(problem: ApiError) -> JSONResponse:
    """The answer to an ApiError, in the one shape every refusal has."""
    return JSONResponse({"detail": problem.detail, "errors": problem.errors},
                        status_code=problem.status, headers=problem.headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, problem: ApiError) -> JSONResponse:
        return response(problem)

    @app.exception_handler(DatabaseUnavailable)
    async def database_failed(request: Request, problem: DatabaseUnavailable) -> JSONResponse:
        # a transient failure, not the client's: nothing of the request was kept (a batch
        # stored in part says so with a 500), so it can be sent again as it is; the
        # operator is told in the log (once a minute while it lasts) and by a metric
        request.app.state.runtime.outage.failed("api", problem)
        return response(ApiError(503, f"{problem}; nothing of this request was stored, send it "
                                      "again", [{"field": "database", "message": "unavailable"}],
                                 {"Retry-After": "5"}))

    @app.exception_handler(Conflict)
    async def too_busy(_request: Request, problem: Conflict) -> JSONResponse:
        return response(ApiError(503, "the database stayed busy with other writers; nothing of "
                                      "this request was stored, send it again",
                                 [{"field": "database", "message": "busy"}],
                                 {"Retry-After": "1"}))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, problem: RequestValidationError) -> JSONResponse:
        errors = []
        for item in problem.errors():
            if item.get("type") == "json_invalid":  # its place is a character, not a field
                reason = (item.get("ctx") or {}).get("error", "")
                at = item.get("loc", ("body", 0))[-1]
                return JSONResponse({"detail": f"body: not JSON ({reason}: character {at})",
                                     "errors": [{"field": "body", "message": "not JSON"}]},
                                    status_code=422)
            location = [str(part) for part in item.get("loc", ()) if part != "body"]
            errors.append({"field": ".".join(location) or "body",
                           "message": str(item.get("msg", "invalid"))})
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        return JSONResponse({"detail": f"{first['field']}: {first['message']}",
                             "errors": errors}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, problem: HTTPException) -> JSONResponse:
        if problem.status_code == 400 and problem.detail == FASTAPI_UNDECODABLE_BODY:
            # FastAPI's answer to a JSON body that is not UTF-8 (not even JSON's decode error)
            return response(ApiError(422, "body: not UTF-8 text: send JSON in UTF-8",
                                     [{"field": "body", "message": "not UTF-8"}]))
        return JSONResponse({"detail": problem.detail, "errors": []},
                            status_code=problem.status_code,
                            headers=getattr(problem, "headers", None))
