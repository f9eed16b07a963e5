"""A subscriber as a whole: the export SPEC §4 promises, and erasure (GDPR).

Erasure deletes the subscriber's row, and with it (foreign keys, ON DELETE CASCADE) every row
that belongs to them: events, consents, tags, enrolments, scores and ledger, deliveries and
dispatches, push subscriptions. What stays is one anonymous `erasures` row of counts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, func, insert, select

from engine.store import queries
from engine.store.states import (
    DELIVERIES,
    EVENTS,
    PUSH_SUBSCRIPTIONS,
    SUBSCRIBERS,
)
from engine.store.tables import Erasure

ERASURES = cast(Table, Erasure.__table__)


def export(connection: Connection, external_id: str,
           limit: int | None = None) -> dict[str, Any] | None:
    """Everything about the subscriber; with `limit`, only the latest `limit` of each list
    that grows with their activity (events, messages, each score's ledger), each list with
    its full length beside it (`events_total`, …), so that a client sees what it was not
    given. A bot's subscriber id can hold millions of events."""
    key = queries.subscriber_key(connection, external_id)
    if key is None:
        return None
    row = connection.execute(select(SUBSCRIBERS).where(SUBSCRIBERS.c.id == key)).one()
    consents = queries.consents(connection, key)
    current = queries.consent_now(consents)
    totals = queries.scores(connection, key)
    lengths = queries.ledger_lengths(connection, key)
    scores: dict[str, dict[str, Any]] = {}
    for (workflow, name), total in sorted(totals.items()):
        scores.setdefault(workflow, {})[name] = {
            "total": total,
            "ledger": [{"at": line.at, "delta": line.delta, "total": line.total,
                        "kind": line.kind, "rule": line.rule, "event": line.event_type,
                        "event_id": line.event_id}
                       for line in queries.ledger(connection, key, (workflow, name), limit)],
            "ledger_total": lengths.get((workflow, name), 0)}
    deliveries = _latest(connection, DELIVERIES, key, limit)
    first = deliveries[0].seq if deliveries else 0
    dispatches = queries.dispatches_by_delivery(connection, key, first)
    messages = [{"workflow": d.workflow, "stage": d.stage, "message": d.message,
                 "channel": d.channel, "lang": d.lang, "status": d.status, "reason": d.reason,
                 "decided_at": d.decided_at, "content": d.content,
                 "dispatches": [{"status": item.status, "attempts": item.attempts,
                                 "last_status": item.last_status,
                                 "last_error": item.last_error,
                                 "finished_at": item.finished_at}
                                for item in dispatches.get(d.seq, [])]}
                for d in deliveries]
    return {
        "id": external_id,
        "attributes": row.attributes,
        "created_at": row.created_at,
        "last_event_at": row.last_event_at,
        "consent": current,
        "consents": consents,
        "tags": sorted(queries.tags(connection, key)),
        "enrolments": queries.enrolments(connection, key),
        "scores": scores,
        "messages": messages,
        "messages_total": row.delivery_count,
        "push_subscriptions": [
            {"endpoint": s.endpoint, "created_at": s.created_at, "removed_at": s.removed_at,
             "removed_reason": s.removed_reason}
            for s in connection.execute(select(PUSH_SUBSCRIPTIONS).where(
                PUSH_SUBSCRIPTIONS.c.subscriber_id == key).order_by(PUSH_SUBSCRIPTIONS.c.id))],
        "events": [{"id": e.key, "type": e.type, "at": e.at, "properties": e.properties}
                   for e in _latest(connection, EVENTS, key, limit)],
        "events_total": row.event_count,
    }


def _latest(connection: Connection, table: Table, key: int, limit: int | None) -> list[Any]:
    """The subscriber's rows of a table numbered by `seq`, oldest first; the latest `limit`."""
    query = select(table).where(table.c.subscriber_id == key)
    if limit is None:
        return list(connection.execute(query.order_by(table.c.seq)))
    return list(reversed(connection.execute(query.order_by(table.c.seq.desc()).limit(limit))
                         .all()))


def erase(connection: Connection, external_id: str, now: datetime,
          fingerprint: str | None = None) -> bool:
    """Delete everything about the subscriber; False if there was nobody to erase.

    `fingerprint` (a keyed hash of the id) is kept, so that their events dated before now
    are refused if they come again (`states.erased_at`)."""
    key = queries.subscriber_key(connection, external_id)
    if key is None:
        return False
    counts = {table.name: connection.execute(
        select(func.count()).select_from(table).where(table.c.subscriber_id == key)
    ).scalar_one() for table in (EVENTS, DELIVERIES, PUSH_SUBSCRIPTIONS)}
    connection.execute(insert(ERASURES).values(
        erased_at=now, subscriber=fingerprint, events=counts["events"],
        deliveries=counts["deliveries"], push_subscriptions=counts["push_subscriptions"]))
    connection.execute(delete(SUBSCRIBERS).where(SUBSCRIBERS.c.id == key))
    return True
