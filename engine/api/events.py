"""`POST /v1/events`: one event, or `{"events": [...]}` (SPEC §2, §4).

Every event of a request is validated before anything is stored; if one is wrong the request
is refused with each wrong field of each wrong event, and nothing is stored. Repeated ids
(idempotency keys) are answered as duplicates, not stored twice. `at` defaults to now; an event
more than five minutes in the future is refused (a client clock that is wrong would otherwise
reorder a subscriber's journey). An event's properties take at most 64 KiB as JSON, a request
at most 8 MiB (`engine.api.limits`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from dsl.text import first_not_utf8
from engine.api.auth import Authorised
from engine.api.errors import ApiError
from engine.events import Event, EventError, parse_event
from engine.processor import PartlyIngested

router = APIRouter()
MAX_BATCH = 1000
MAX_PROPERTIES = 64 * 1024
"""An event's properties as JSON, at most: they are stored with every event."""
FUTURE = timedelta(minutes=5)


class EventIn(BaseModel):
    """An event (SPEC §2). Reserved types: subscribed, unsubscribed, attributes; and
    email_bounced (an address that bounced hard: properties `address` or `email`, or none for
    the current one) stops e-mail to that address until it changes."""

    model_config = ConfigDict(extra="forbid")
    subscriber: str | int = Field(description="The site's id for the subscriber.")
    type: str = Field(pattern=r"^[a-z_][a-z0-9_]*$", max_length=100)
    at: str | None = Field(default=None, description="ISO-8601 with a time zone; default now.")
    properties: dict[str, Any] = Field(default_factory=dict)
    id: str | int | None = Field(default=None, description="Idempotency key.")


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(max_length=MAX_BATCH)


class EventWarning(BaseModel):
    event: int = Field(description="The event's index in the request (0 for a single event)")
    field: str
    message: str


class Accepted(BaseModel):
    accepted: int
    duplicates: list[str]
    erased: int = Field(0, description="Events of subscribers erased after the event's `at`: "
                                       "refused, so that a replay does not bring them back")
    warnings: list[EventWarning] = Field(
        default_factory=list,
        description="Taken, but probably not what was meant: an event `type` that no workflow "
                    "names and that nearly spells one that is (a typo would make nothing "
                    "happen)")


def _body_schema() -> dict[str, Any]:
    single = EventIn.model_json_schema(ref_template="#/components/schemas/{model}")
    batch = EventBatch.model_json_schema(ref_template="#/components/schemas/{model}")
    batch.pop("$defs", None)
    return {"required": True, "content": {"application/json": {"schema": {
        "oneOf": [single, batch]}}}}


@router.post("/v1/events", response_model=Accepted, openapi_extra={"requestBody": _body_schema()},
             summary="Ingest one event or a batch",
             responses={401: {"description": "No or wrong API key"},
                        413: {"description": "More than 1,000 events, or a body over 8 MiB"},
                        422: {"description": "A field of an event is wrong: nothing stored"}})
async def post_events(request: Request, runtime: Authorised) -> Accepted:
    raw = await _json(request)
    if isinstance(raw, dict) and "events" in raw and set(raw) == {"events"}:
        items = raw["events"]
        if not isinstance(items, list):
            raise ApiError(422, "events: expected a list of events",
                           [{"field": "events", "message": "expected a list of events"}])
        if len(items) > MAX_BATCH:
            raise ApiError(413, f"events: at most {MAX_BATCH} events per request",
                           [{"field": "events", "message": f"{len(items)} events; the most "
                                                           f"is {MAX_BATCH}"}])
    else:
        items = [raw]
    now = runtime.clock.now()
    events: list[Event] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            event = parse_event(item, seq=index, default_at=now)
        except EventError as problem:
            errors.append({"event": index, "field": problem.field, "message": problem.message})
            continue
        if len(orjson.dumps(event.properties)) > MAX_PROPERTIES:
            errors.append({"event": index, "field": "properties",
                           "message": f"larger than {MAX_PROPERTIES:,} bytes as JSON"})
            continue
        if event.at > now + FUTURE:
            errors.append({"event": index, "field": "at",
                           "message": "more than 5 minutes in the future"})
            continue
        events.append(event)
    if errors:
        first = errors[0]
        raise ApiError(422, f"event {first['event']}: {first['field']}: {first['message']} "
                            "(nothing was stored)", errors)
    warnings = [EventWarning(event=index, field="type", message=(
                    f"no workflow names event '{event.type}'; did you mean '{meant}'? (taken "
                    "as it is: it changes nothing until a workflow names it)"))
                for index, event in enumerate(events)
                if (meant := runtime.misspelt_type(event.type)) is not None]
    try:
        result = await run_in_threadpool(runtime.ingest, events)
    except PartlyIngested as problem:
        raise ApiError(500, f"some of the events were stored before an error ({problem}); "
                            "sending them again stores again those without an `id`",
                       [{"field": "events", "message": "partly stored"}]) from problem
    return Accepted(accepted=result.accepted, duplicates=result.duplicates,
                    erased=len(result.erased), warnings=warnings)


async def _json(request: Request) -> Any:
    # JSON may be sent with a byte order mark (files saved by some Windows tools)
    body = (await request.body()).removeprefix(b"\xef\xbb\xbf")
    try:
        return orjson.loads(body)
    except (ValueError, UnicodeDecodeError) as problem:
        undecodable = first_not_utf8(body)
        if undecodable is not None:  # orjson says where only as "line 1 column 1"
            raise ApiError(422, f"body: {undecodable}{undecodable.where}: send JSON in UTF-8",
                           [{"field": "body", "message": "not UTF-8"}]) from None
        raise ApiError(422, f"body: not JSON ({problem})",
                       [{"field": "body", "message": "not JSON"}]) from None
