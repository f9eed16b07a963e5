"""Who may call: the API key for the site's server, a subscriber token for a browser.

Write calls need `Authorization: Bearer API_KEY`, compared in constant time. A browser
registering its push subscription sends `X-Nurture-Token`: a signed subscriber id that the
site's server obtained with its API key, so nobody can attach a browser to someone else. The
token expires (`SUBSCRIBER_TOKEN_LIFE`): it sits in pages that proxies, CDNs and browsers may
keep, and one found there later must not let a stranger's browser receive the subscriber's
messages (discount codes among them).
"""

from __future__ import annotations

import hmac
import json
from datetime import datetime, timedelta
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


SUBSCRIBER_TOKEN_LIFE = timedelta(days=30)
"""How long a subscriber token lets a browser register: a site hands out a new one with every
page (`nurture.refresh` registers again with it, should a stored one have run out)."""


def subscriber_token(runtime: Runtime, subscriber: str) -> tuple[str, datetime]:
    """A token for this subscriber, and when it runs out (whole seconds)."""
    expires = (runtime.clock.now() + SUBSCRIBER_TOKEN_LIFE).replace(microsecond=0)
    claims = {"s": subscriber, "x": int(expires.timestamp())}
    return runtime.signer.sign("subscriber", json.dumps(claims, separators=(",", ":"))), expires


def _token_problem(runtime: Runtime, token: str, subscriber_id: str) -> str | None:
    """Why a token does not let its bearer act for `subscriber_id`, or None."""
    try:
        claims = json.loads(runtime.signer.verify("subscriber", token))
    except (BadToken, ValueError):
        return "missing, forged, or made for another subscriber"
    if not isinstance(claims, dict) or claims.get("s") != subscriber_id:
        return "missing, forged, or made for another subscriber"
    expires = claims.get("x")
    if not isinstance(expires, int) or expires <= runtime.clock.now().timestamp():
        return "expired: the site gets a new one with POST /v1/subscribers/{id}/token"
    return None


def require_subscriber(request: Request, subscriber_id: str,
                       authorization: str | None = Header(default=None),
                       x_nurture_token: str | None = Header(default=None)) -> Runtime:
    """The API key, or a token made for exactly this subscriber."""
    runtime = runtime_of(request)
    if has_api_key(runtime, authorization):
        return runtime
    problem = "missing, forged, or made for another subscriber"
    if x_nurture_token:
        problem = _token_problem(runtime, x_nurture_token, subscriber_id) or ""
        if not problem:
            return runtime
    raise ApiError(401, "this call needs the API key or this subscriber's X-Nurture-Token",
                   [{"field": "X-Nurture-Token", "message": problem}])


Authorised = Annotated[Runtime, Depends(require_api_key)]
"""A route parameter: the runtime, once the API key was checked."""

ForSubscriber = Annotated[Runtime, Depends(require_subscriber)]
"""A route parameter: the runtime, once the API key or the subscriber's token was checked."""
