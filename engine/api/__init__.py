"""The HTTP API (SPEC §4): an ASGI app on FastAPI, documented by its OpenAPI schema.

Routers by what they serve: `events` (ingestion), `subscribers` (export, erase, tokens, push
subscriptions), `tracking` (clicks, opens, receipts, unsubscribe), `pages` (the browser
scripts, the demo page, the public key, health and metrics).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from engine.api import errors, events, pages, subscribers, tracking, workflows
from engine.api.limits import MAX_BODY, MAX_EVENTS_BODY, BodyLimit
from engine.runtime import Runtime


def create_app(runtime: Runtime, scheduler: Any = None, **fastapi: Any) -> FastAPI:
    """The API over `runtime`; with a `scheduler` (engine.service.Service) it runs with the
    app: started when the server starts, stopped (batches in hand finished) when it stops."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if scheduler is not None:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                await run_in_threadpool(scheduler.stop)

    app = FastAPI(title="nurture", version="1", summary="Lead-nurturing workflows as code: "
                  "events in, scored, staged and dripped over web push, e-mail and webhooks.",
                  lifespan=lifespan, **fastapi)
    app.state.runtime = runtime
    app.state.scheduler = scheduler
    # Browser-facing calls (push registration with a token, click reports) come from the
    # sites' pages: any origin, no cookies (tokens and keys are the only credentials).
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=False,
                       allow_methods=["GET", "POST", "DELETE"],
                       allow_headers=["Content-Type", "Authorization", "X-Nurture-Token"])
    app.add_middleware(BodyLimit, limits={"/v1/events": MAX_EVENTS_BODY}, default=MAX_BODY)
    errors.install(app)
    for router in (events.router, subscribers.router, tracking.router, pages.router,
                   workflows.router):
        app.include_router(router)
    return app
