"""Subscribers: export (`GET`), their timeline and status, erase (`DELETE`), tokens, and
browsers' push subscriptions."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from channels.endpoints import EndpointError
from engine.api.auth import Authorised, ForSubscriber, subscriber_token
from engine.api.errors import field_error
from engine.api.params import since_parameter
from engine.encoding import plain
from engine.runtime import Runtime
from engine.status import status_json, subscriber_status
from engine.store import push_subscriptions, queries, states
from engine.store import subscribers as store
from engine.store import timeline as history
from engine.timeline import timeline

router = APIRouter()
SubscriberId = Annotated[str, Path(min_length=1, max_length=200,
                                   description="The site's id for the subscriber.")]


@router.get("/v1/subscribers/{subscriber_id:path}/timeline",
            summary="What happened to a subscriber, in time order, as `nurture simulate` words "
                    "it: stage entries, score changes with their rules, tags, sends (each "
                    "with what the outbox did with it) and skips with their reasons, exits",
            responses={404: {"description": "No such subscriber"}})
def subscriber_timeline(
        request: Request, subscriber_id: SubscriberId, runtime: Authorised,
        since: Annotated[str | None, Query(
            max_length=64,
            description="Only what happened since then: a time (`2026-03-02`, "
                        "`2026-03-02T09:00:00Z`) or a span back from now (`7 days`, "
                        "`12 hours`). Default: all of it.")] = None,
        latest: Annotated[int, Query(
            ge=0, le=1_000_000,
            description="Only the last this many records (`truncated` says whether there "
                        "were more); 0 for all of them")] = 1000) -> JSONResponse:
    if not _names_the_route(request, b"/timeline"):  # `GET /v1/subscribers/shop%2Ftimeline`
        return _export_of_id_ending_in(request, f"{subscriber_id}/timeline", runtime)
    start = since_parameter(since, runtime.clock.now())
    wanted = latest or None
    with runtime.database.reading() as connection:
        key = queries.subscriber_key(connection, subscriber_id)
        if key is None:
            raise field_error(404, "subscriber_id", f"no subscriber {subscriber_id!r}")
        found = history.happenings(connection, key, start,
                                   None if wanted is None else wanted + 1)
    order = [workflow.name for workflow in runtime.catalog.workflows]
    lines = timeline([(subscriber_id, found)], order)
    shown = lines if wanted is None else lines[-wanted:]
    return JSONResponse(plain({"subscriber": subscriber_id,
                               "records": [line.to_dict() for line in shown],
                               "truncated": len(shown) < len(lines)}))


@router.get("/v1/subscribers/{subscriber_id:path}/status",
            summary="Where a subscriber stands and what comes next, as `nurture status` shows "
                    "it: for each workflow they are in, the stage and scores, each transition "
                    "of the stage in the order it is tried with whether it holds (and the "
                    "value each comparison read), and the work planned, with when",
            responses={404: {"description": "No such subscriber"}})
def subscriber_status_now(request: Request, subscriber_id: SubscriberId,
                          runtime: Authorised) -> JSONResponse:
    if not _names_the_route(request, b"/status"):  # `GET /v1/subscribers/shop%2Fstatus`
        return _export_of_id_ending_in(request, f"{subscriber_id}/status", runtime)
    plan = runtime.engine.plan
    with runtime.database.reading() as connection:
        found = states.peek(connection, [subscriber_id], plan)
    if subscriber_id not in found:
        raise field_error(404, "subscriber_id", f"no subscriber {subscriber_id!r}")
    return JSONResponse(plain(status_json(subscriber_status(plan, found[subscriber_id]))))


def _names_the_route(request: Request, ending: bytes) -> bool:
    """Whether the path ends in `ending` (`/timeline`) as written, not in an encoded
    `%2Ftimeline`: the server decodes the path before routing, so an id ending in
    `/timeline` (`shop/timeline`, encoded as the README says) arrives at that route too."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    return bytes(raw).split(b"?", 1)[0].endswith(ending)


def _export_of_id_ending_in(request: Request, subscriber_id: str,
                            runtime: Runtime) -> JSONResponse:
    text = request.query_params.get("limit", "1000")
    if not text.isdigit() or int(text) > 1_000_000:
        raise field_error(422, "limit", "a whole number from 0 to 1,000,000")
    return export(subscriber_id, runtime, int(text))


@router.get("/v1/subscribers", summary="The subscribers with an e-mail address (letter case "
                                       "aside): for a person's request about their data, who "
                                       "knows their address, not the site's id for them")
def with_email(runtime: Authorised,
               email: Annotated[str, Query(min_length=3, max_length=254,
                                           description="The address, as the person gives it")]
               ) -> JSONResponse:
    with runtime.database.reading() as connection:
        found = queries.ids_with_email(connection, email)
    return JSONResponse({"email": email, "subscribers": found})


@router.get("/v1/subscribers/{subscriber_id:path}", summary="Everything about a subscriber",
            responses={404: {"description": "No such subscriber"}})
def export(subscriber_id: SubscriberId, runtime: Authorised,
           limit: Annotated[int, Query(
               ge=0, le=1_000_000,
               description="At most this many of the latest events, messages and ledger "
                           "lines of each score (each list has its full length beside it: "
                           "`events_total`, `messages_total`, `ledger_total`); 0 for all "
                           "of them (a complete export)")] = 1000) -> JSONResponse:
    with runtime.database.reading() as connection:
        found = store.export(connection, subscriber_id, limit or None)
    if found is None:
        raise field_error(404, "subscriber_id", f"no subscriber {subscriber_id!r}")
    return JSONResponse(plain(found))


@router.delete("/v1/subscribers/{subscriber_id:path}", status_code=204,
               summary="Erase a subscriber (GDPR): personal data and push subscriptions go, "
                       "anonymous counts stay", responses={404: {"description": "Unknown"}})
def erase(subscriber_id: SubscriberId,
          runtime: Authorised) -> Response:
    with runtime.database.transaction() as connection:
        erased = store.erase(connection, subscriber_id, runtime.clock.now(),
                             runtime.erased_id(subscriber_id))
    if not erased:
        raise field_error(404, "subscriber_id", f"no subscriber {subscriber_id!r}")
    return Response(status_code=204)


class Token(BaseModel):
    subscriber: str
    token: str
    expires_at: datetime = Field(description="After this, the token registers nothing: a "
                                             "site gets a new one for each page it serves")


@router.post("/v1/subscribers/{subscriber_id:path}/token", response_model=Token,
             summary="A token that lets a browser register push subscriptions for this id")
def token(subscriber_id: SubscriberId,
          runtime: Authorised) -> Token:
    made, expires = subscriber_token(runtime, subscriber_id)
    return Token(subscriber=subscriber_id, token=made, expires_at=expires)


class Keys(BaseModel):
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=64)


class BrowserSubscription(BaseModel):
    """A browser's `PushSubscription.toJSON()`."""

    model_config = ConfigDict(extra="ignore")
    endpoint: str = Field(max_length=2048)
    keys: Keys
    expirationTime: int | None = None  # the browser's own name for it


class Registered(BaseModel):
    subscriber: str
    id: int


@router.post("/v1/subscribers/{subscriber_id:path}/push-subscriptions", status_code=201,
             response_model=Registered, summary="Register a browser's push subscription",
             responses={401: {"description": "Neither the API key nor this subscriber's token"},
                        422: {"description": "Endpoint or keys refused"}})
def register(subscription: BrowserSubscription, subscriber_id: SubscriberId,
             runtime: ForSubscriber) -> Registered:
    validate_keys(subscription.keys)
    try:
        runtime.policy.check_resolved(subscription.endpoint)
    except EndpointError as problem:
        raise field_error(422, "endpoint", str(problem)) from None
    with runtime.database.transaction() as connection:
        key = push_subscriptions.add(connection, subscriber_id, subscription.endpoint,
                                     subscription.keys.p256dh, subscription.keys.auth,
                                     runtime.clock.now())
    return Registered(subscriber=subscriber_id, id=key)


class Endpoint(BaseModel):
    endpoint: str = Field(max_length=2048)


@router.post("/v1/subscribers/{subscriber_id:path}/push-subscriptions/remove", status_code=204,
             summary="The browser dropped its subscription")
def unregister(body: Endpoint, subscriber_id: SubscriberId,
               runtime: ForSubscriber) -> Response:
    with runtime.database.transaction() as connection:
        push_subscriptions.remove(connection, body.endpoint, runtime.clock.now(),
                                  "the browser unsubscribed", owner=subscriber_id)
    return Response(status_code=204)


def validate_keys(keys: Keys) -> None:
    """p256dh must be a point on P-256, auth exactly 16 bytes (else nothing can decrypt)."""
    try:
        point = _unb64(keys.p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, binascii.Error):
        raise field_error(422, "keys.p256dh", "not a P-256 public key (65 bytes, base64url)") \
            from None
    try:
        secret = _unb64(keys.auth)
    except (ValueError, binascii.Error):
        raise field_error(422, "keys.auth", "not base64url") from None
    if len(secret) != 16:
        raise field_error(422, "keys.auth", f"must be 16 bytes, got {len(secret)}")


def _unb64(text: str) -> bytes:
    text = text.strip()
    if not text or not all(c.isalnum() or c in "-_=" for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
