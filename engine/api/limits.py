"""Request bodies have a size limit, and nothing beyond it is read into memory.

Uvicorn and Starlette read a body whole, whatever its size: without a limit one request (an
unauthenticated one too: the unsubscribe form, a push registration with a token) could take the
process's memory. A declared `Content-Length` over the limit is refused before anything is read;
a body sent in chunks is counted as it arrives and refused as soon as it passes the limit.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api.errors import ApiError, response

MAX_BODY = 64 * 1024
"""Every call but ingestion: a push subscription, a form, a token are a few hundred bytes."""
MAX_EVENTS_BODY = 8 * 1024 * 1024
"""`POST /v1/events`: 1,000 events (the most per request) of up to ~8 KiB each."""


class BodyLimit:
    """ASGI middleware: 413 for a body larger than its path's limit."""

    def __init__(self, app: ASGIApp, limits: Mapping[str, int] | None = None,
                 default: int = MAX_BODY) -> None:
        self.app = app
        self.limits = dict(limits or {})
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await response(too_large(limit))(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)  # answered by the app's ApiError handler
            return message

        await self.app(scope, counted, send)


def too_large(limit: int) -> ApiError:
    message = f"larger than {limit:,} bytes"
    return ApiError(413, f"body: {message}", [{"field": "body", "message": message}])


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None
