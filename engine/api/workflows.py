"""Workflows as the marketer watches them: the funnel report (`nurture funnel` over HTTP)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from dsl.diagnostics import did_you_mean
from engine.api.auth import Authorised
from engine.api.errors import field_error
from engine.api.params import since_parameter
from engine.encoding import plain
from engine.funnel import as_json
from engine.store import funnel as store

router = APIRouter()


@router.get("/v1/workflows/{workflow}/funnel",
            summary="How a workflow is doing: who is in each stage now, who entered each "
                    "stage, enrolled and exited, and what became of each message (sent, "
                    "delivered, pending, not delivered, skipped and why)",
            responses={404: {"description": "No such workflow loaded, and nobody was ever "
                                            "enrolled in one of that name"}})
def funnel(workflow: Annotated[str, Path(min_length=1, max_length=100)], runtime: Authorised,
           since: Annotated[str | None, Query(
               max_length=64,
               description="Count what happened since then: a time (`2026-03-02`, "
                           "`2026-03-02T09:00:00Z`) or a span back from now (`7 days`, "
                           "`12 hours`). Default: all time. Who is in a stage now is always "
                           "counted.")] = None) -> JSONResponse:
    start = since_parameter(since, runtime.clock.now())
    with runtime.database.reading() as connection:
        counts = store.funnel(connection, workflow, start)
        stored = store.workflows(connection) if counts.empty else []
    declared = next((w for w in runtime.catalog.workflows if w.name == workflow), None)
    if declared is None and counts.empty:
        known = {w.name for w in runtime.catalog.workflows} | set(stored)
        raise field_error(404, "workflow", f"no workflow {workflow!r}"
                                           f"{did_you_mean(workflow, known)}")
    return JSONResponse(plain(as_json(counts, declared)))
