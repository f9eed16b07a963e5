"""The events the service recorded, read back as they came in: the input of `nurture simulate`
("recorded or invented events", SPEC §3.1), so that an edited workflow can be tried on real
traffic before it goes live (`nurture events`).

The rows are streamed in the order they were stored (arrival order), never all held at once:
an export holds one fetch of rows at a time, whatever the number of events (210,000 events took
98 MiB in all, one subscriber's 74 MiB, most of it Python and the database's page cache).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import Connection, select

from engine.events import Event
from engine.store.states import EVENTS, SUBSCRIBERS, among

CHUNK = 2000
"""Rows fetched from the driver at a time."""


def recorded_events(connection: Connection, subscribers: Sequence[str] = (),
                    since: datetime | None = None,
                    until: datetime | None = None) -> Iterator[Event]:
    """Every stored event (of these subscribers, when given) dated in [since, until],
    numbered (`seq`) in the order they arrived."""
    query = (select(SUBSCRIBERS.c.external_id, EVENTS.c.type, EVENTS.c.at, EVENTS.c.properties,
                    EVENTS.c.key)
             .join(SUBSCRIBERS, SUBSCRIBERS.c.id == EVENTS.c.subscriber_id)
             .order_by(EVENTS.c.id))
    if subscribers:
        query = query.where(among(connection, SUBSCRIBERS.c.external_id, list(subscribers)))
    if since is not None:
        query = query.where(EVENTS.c.at >= since)
    if until is not None:
        query = query.where(EVENTS.c.at <= until)
    result = connection.execution_options(stream_results=True, yield_per=CHUNK).execute(query)
    for number, row in enumerate(result, start=1):
        yield Event(row.external_id, row.type, row.at, row.properties, row.key, number)
