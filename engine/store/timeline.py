"""What happened to one subscriber, read back from the rows the engine wrote: stage entries,
score changes, tags, sends and skips (with what the outbox did with each), exits.

For people asking about one subscriber (`nurture timeline`, `GET /v1/subscribers/{id}/timeline`);
`engine.timeline` orders these rows and words them as the simulator's records. Each table is
read once through its index on the subscriber; with `latest`, each read stops after that many
rows, newest first, so that a bot's id with millions of rows costs what is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, Table, select

from engine.store import queries
from engine.store.states import DELIVERIES, ENROLMENTS, LEDGER, TAGS, VISITS


@dataclass(frozen=True, slots=True)
class Outcome:
    """One dispatch of a sent message: a browser of a push, the address of an e-mail."""

    status: str
    """`queued`, `sending`, `delivered`, `gone`, `failed`, `expired`, `cancelled`."""
    finished_at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Happening:
    """A row that is one record of the timeline (SPEC §3.1 kinds), with what places it among
    others of the same instant: `enrolment` and `visit` (the stage entry's number) for what
    belongs to a journey, `order` for its place in its own table."""

    at: datetime
    workflow: str
    kind: str
    """`enter`, `score`, `tag`, `send`, `skip`, `exit`."""
    values: dict[str, Any]
    """The row's values that the record shows, unformatted (numbers as stored)."""
    enrolment: int = 0
    enrolled_at: datetime | None = None
    """When `enrolment` began."""
    visit: int = 0
    order: int = 0
    outcomes: list[Outcome] = field(default_factory=list)


def happenings(connection: Connection, key: int, since: datetime | None = None,
               latest: int | None = None) -> list[Happening]:
    """Everything of subscriber `key` at or after `since`; with `latest`, at most that many
    rows of each kind, the newest (the caller keeps the newest of them all)."""
    found: list[Happening] = []
    began = {row.id: row.enrolled_at for row in connection.execute(
        select(ENROLMENTS.c.id, ENROLMENTS.c.enrolled_at).where(
            ENROLMENTS.c.subscriber_id == key))}
    for row in _rows(connection, LEDGER, LEDGER.c.at, key, since, latest,
                     LEDGER.c.id, LEDGER.c.workflow, LEDGER.c.score, LEDGER.c.delta,
                     LEDGER.c.total, LEDGER.c.rule):
        found.append(Happening(row.at, row.workflow, "score",
                               {"score": row.score, "delta": row.delta, "total": row.total,
                                "rule": row.rule}, order=row.id))
    for row in _rows(connection, TAGS, TAGS.c.added_at, key, since, latest,
                     TAGS.c.event_seq, TAGS.c.tag, TAGS.c.workflow):
        found.append(Happening(row.added_at, row.workflow, "tag", {"tag": row.tag},
                               order=row.event_seq or 0))
    for row in _rows(connection, VISITS, VISITS.c.entered_at, key, since, latest,
                     VISITS.c.id, VISITS.c.workflow, VISITS.c.stage, VISITS.c.enrolment_id,
                     VISITS.c.seq):
        found.append(Happening(row.entered_at, row.workflow, "enter", {"stage": row.stage},
                               row.enrolment_id, began[row.enrolment_id], row.seq))
    for row in _rows(connection, ENROLMENTS, ENROLMENTS.c.ended_at, key, since, latest,
                     ENROLMENTS.c.id, ENROLMENTS.c.workflow, ENROLMENTS.c.exit_reason,
                     ENROLMENTS.c.stage_seq):
        found.append(Happening(row.ended_at, row.workflow, "exit",
                               {"reason": row.exit_reason}, row.id, began[row.id],
                               row.stage_seq))
    deliveries = list(_rows(connection, DELIVERIES, DELIVERIES.c.decided_at, key, since, latest,
                            DELIVERIES.c.seq, DELIVERIES.c.workflow, DELIVERIES.c.enrolment_id,
                            DELIVERIES.c.stage_seq, DELIVERIES.c.channel,
                            DELIVERIES.c.message, DELIVERIES.c.lang, DELIVERIES.c.status,
                            DELIVERIES.c.reason, DELIVERIES.c.content))
    outcomes = queries.dispatches_by_delivery(connection, key,
                                              min((row.seq for row in deliveries), default=0))
    for row in deliveries:
        kind = "send" if row.status == "sent" else "skip"
        found.append(Happening(row.decided_at, row.workflow, kind,
                               {"channel": row.channel, "message": row.message,
                                "lang": row.lang, "reason": row.reason,
                                "content": row.content},
                               row.enrolment_id, began[row.enrolment_id], row.stage_seq,
                               row.seq,
                               [Outcome(item.status, item.finished_at, item.last_error)
                                for item in outcomes.get(row.seq, [])]))
    return found


def _rows(connection: Connection, table: Table, at: ColumnElement[Any], key: int,
          since: datetime | None, latest: int | None, *columns: ColumnElement[Any]) -> Any:
    """`columns[0]` orders rows of one instant (newest last), for `latest`."""
    query: Select[Any] = select(at.label(at.name), *columns).where(
        table.c.subscriber_id == key, at.is_not(None))
    if since is not None:
        query = query.where(at >= since)
    if latest is not None:
        query = query.order_by(at.desc(), columns[0].desc()).limit(latest)
    return connection.execute(query)
