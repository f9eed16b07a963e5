"""What browsers and operators fetch: the scripts, the demo page, the key, health, metrics."""

from __future__ import annotations

import secrets
from functools import lru_cache
from html import escape
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from engine.api.auth import runtime_of, subscriber_token
from engine.runtime import Runtime

router = APIRouter()
Current = Annotated[Runtime, Depends(runtime_of)]


@lru_cache(maxsize=8)
def static(name: str) -> str:
    return (resources.files("engine.api") / "static" / name).read_text(encoding="utf-8")


@router.get("/nurture.js", include_in_schema=False)
def nurture_js() -> Response:
    return Response(static("nurture.js"), media_type="text/javascript",
                    headers={"Cache-Control": "public, max-age=300"})


@router.get("/sw.js", include_in_schema=False)
def service_worker() -> Response:
    return Response(static("sw.js"), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})


@router.get("/", include_in_schema=False, response_class=HTMLResponse)
def demo(request: Request, runtime: Current) -> HTMLResponse:
    """The demo page: it plays the site, so it makes its own visitor id and token."""
    subscriber = request.query_params.get("subscriber") or f"demo-{secrets.token_hex(4)}"
    page = (static("demo.html").replace("__SUBSCRIBER__", escape(subscriber[:200]))
            .replace("__TOKEN__", subscriber_token(runtime, subscriber[:200])[0])
            .replace("__API__", str(request.base_url).rstrip("/")))
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


class PublicKey(BaseModel):
    public_key: str
    """The VAPID application server key, base64url (uncompressed P-256 point)."""


@router.get("/v1/push/public-key", response_model=PublicKey,
            summary="The key browsers subscribe with (applicationServerKey)")
def public_key(runtime: Current, response: Response) -> PublicKey:
    # nurture.js reads it on every page load of a subscribed browser (to notice a new key):
    # the browser's HTTP cache answers most of those
    response.headers["Cache-Control"] = "public, max-age=3600"
    return PublicKey(public_key=runtime.vapid.public_key)


@router.get("/healthz", summary="Is the service up: database reachable, workflows loaded")
async def health(request: Request, runtime: Current) -> JSONResponse:
    checks = {"workflows": len(runtime.catalog.workflows)}
    try:
        await run_in_threadpool(runtime.database.ping)
        checks["database"] = "ok"  # type: ignore[assignment]
    except Exception as problem:  # the database is down: say so, do not crash
        return JSONResponse({"status": "failing", "database": str(problem)[:200]},
                            status_code=503)
    scheduler = getattr(request.app.state, "scheduler", None)
    body = {"status": "ok", **checks}
    if scheduler is not None:
        body["scheduler"] = "running" if scheduler.running else "stopped"
    return JSONResponse(body)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(runtime: Current) -> Response:
    body = await run_in_threadpool(runtime.metrics.exposition)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
