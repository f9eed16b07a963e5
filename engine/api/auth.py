"""Who may call: the API key for the site's server, a subscriber token for a browser.

Write calls need `Authorization: Bearer API_KEY`, compared in constant time. A browser
registering its push subscription sends `X-Nurture-Token`: an HMAC of the subscriber id that
the site's server obtained with its API key, so nobody can attach a browser to someone else.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from channels.tokens import BadToken
from engine.api.errors import ApiError
from engine.runtime import Runtime

BEARER = "bearer "


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def has_api_key(runtime: Runtime, authorization: str | None) -> bool:
    if not authorization or not authorization.lower().startswith(BEARER):
        return False
    offered = authorization[len(BEARER):].strip().encode()
    matches = [hmac.compare_digest(offered, key.encode()) for key in runtime.api_keys]
    return any(matches)  # (every key compared, whichever matches)


def require_api_key(request: Request,
                    authorization: str | None = Header(default=None)) -> Runtime:
    runtime = runtime_of(request)
    if not has_api_key(runtime, authorization):
        raise ApiError(401, "this call needs `Authorization: Bearer API_KEY`",
                       [{"field": "Authorization", "message": "missing or wrong API key"}],
                       headers={"WWW-Authenticate": "Bearer"})
    return runtime


def subscriber_token(runtime: Runtime, subscriber: str) -> str:
    return runtime.signer.sign("subscriber", subscriber)


def require_subscriber(request: Request, subscriber_id: str,
                       authorization: str | None = Header(default=None),
                       x_nurture_token: str | None = Header(default=None)) -> Runtime:
    """The API key, or a token made for exactly this subscriber."""
    runtime = runtime_of(request)
    if has_api_key(runtime, authorization):
        return runtime
    if x_nurture_token:
        try:
            if runtime.signer.verify("subscriber", x_nurture_token) == subscriber_id:
                return runtime
        except BadToken:
            pass
    raise ApiError(401, "this call needs the API key or this subscriber's X-Nurture-Token",
                   [{"field": "X-Nurture-Token", "message": "missing, forged, or made for "
                                                            "another subscriber"}])


Authorised = Annotated[Runtime, Depends(require_api_key)]
"""A route parameter: the runtime, once the API key was checked."""

ForSubscriber = Annotated[Runtime, Depends(require_subscriber)]
"""A route parameter: the runtime, once the API key or the subscriber's token was checked."""
