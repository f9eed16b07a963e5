"""Forgetting old personal data: recorded events, the detail of old score changes, and decided
messages with their outbox rows.

A service that runs for years keeps every event (its properties: pages, amounts, whatever a
site sends), every score change (which rule an event matched, and when: a trail of what the
person did) and every rendered message (names, addresses) unless something removes them; the
law on personal data asks for a retention period, and the database grows without one. What
goes, once older than the retention period:

- events received before it (their properties and idempotency keys); the score ledger,
  consents and tags that point at one lose the pointer (`event_seq` becomes null), and the
  consent history stays whole;
- the score ledger's entries from before it, merged into one entry per score (kind
  `carried`, rule `CARRIED_RULE`): its delta is the sum of theirs, its total and time those
  of the last of them, so the ledger still adds up to every score and explains what came
  after line by line, but no longer says which rule matched what, and when, long ago;
- messages decided before it (`deliveries`: the rendered content) with their outbox rows
  (`dispatches`: addresses, peers' answers), unless one of those is still queued or sending;
- browsers' push subscriptions removed before it (the push service said they were gone, or
  the site removed them): their endpoints and keys.

Everything else stays: subscribers, their scores, consents, tags, enrolments and stage visits
(the funnel's entries and exits). The engine reads none of what goes except the sends and
the capped rules' additions within the longest window (a week at most), which is why the
period has a floor (`engine.config.SHORTEST_RETENTION`, checked by the callers).

Rows are taken oldest first, in windows of ids, each in a transaction of its own, so that a
running service's writes wait for one window at most. The walk ends at the first window with
nothing old enough: ids grow with time, so the rest is newer (a straggler out of order is
taken by a later run). The cost follows what is removed, not what is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, case, delete, func, select
from sqlalchemy.orm import aliased

from engine.records import exact
from engine.store.bulk import BatchWriter
from engine.store.database import Database
from engine.store.states import (
    CONSENTS,
    DELIVERIES,
    DISPATCHES,
    EVENTS,
    LEDGER,
    PUSH_SUBSCRIPTIONS,
    SUBSCRIBERS,
    TAGS,
    among,
)
from engine.store.tables import UNFINISHED

WINDOW = 1000
"""Rows looked at per transaction."""
CARRIED = "carried"
"""The ledger kind of an entry that sums the entries before the retention period."""
CARRIED_RULE = "earlier changes, pruned"
"""Its `rule`, shown where a rule's `FILE:LINE` would be."""


@dataclass(slots=True)
class Pruned:
    events: int = 0
    messages: int = 0
    """Decided sends and skips (`deliveries`), each with its outbox rows."""
    held: int = 0
    """Old messages kept because the outbox has not finished with them."""
    browsers: int = 0
    """Push subscriptions removed before the period."""
    ledger: int = 0
    """Score ledger entries merged into their score's `carried` entry (the rows removed)."""


def prune(database: Database, before: datetime, window: int = WINDOW,
          stop: Callable[[], bool] | None = None) -> Pruned:
    """Remove events received, and messages decided, before `before`, and merge the score
    ledger's entries from before it (see the module).

    `stop` is asked between windows: a service shutting down does not wait for a first run
    over years of data (what is left is taken the next time)."""
    pruned = Pruned()
    writer = BatchWriter(database.engine.dialect)
    stopping = stop or (lambda: False)
    for removed, _ in _windows(database, stopping, lambda connection, after: _prune_events(
            connection, writer, before, after, window)):
        pruned.events += removed
    for removed, held in _windows(database, stopping, lambda connection, after:
                                  _prune_messages(connection, writer, before, after, window)):
        pruned.messages += removed
        pruned.held += held
    for removed, _ in _windows(database, stopping, lambda connection, after: _merge_ledger(
            connection, writer, before, after, window)):
        pruned.ledger += removed
    if stopping():
        return pruned
    with database.transaction() as connection:  # (one row per browser: a small table)
        pruned.browsers = connection.execute(
            delete(PUSH_SUBSCRIPTIONS).where(PUSH_SUBSCRIPTIONS.c.removed_at < before)).rowcount
    return pruned


Window = Callable[[Connection, int], tuple[int, int, int]]


def _windows(database: Database, stopping: Callable[[], bool],
             step: Window) -> Iterator[tuple[int, int]]:
    """Run `step` over windows of ids, each in a transaction of its own, until it finds
    nothing old enough (or `stopping`): the counts of each window. A step answers the last
    id it looked at (-1: stop) and its two counts."""
    after = 0
    while not stopping():
        with database.transaction() as connection:
            after, first, second = step(connection, after)
        if after < 0:
            return
        yield first, second


def count(database: Database, before: datetime, window: int = WINDOW) -> Pruned:
    """What `prune` would remove now (a read: it scans the tables)."""
    with database.reading() as connection:
        events = connection.execute(select(func.count()).select_from(EVENTS)
                                    .where(EVENTS.c.received_at < before)).scalar_one()
        pending = (select(DISPATCHES.c.id)
                   .where(DISPATCHES.c.subscriber_id == DELIVERIES.c.subscriber_id,
                          DISPATCHES.c.delivery_seq == DELIVERIES.c.seq,
                          DISPATCHES.c.status.in_(UNFINISHED)).exists())
        old = select(func.count()).select_from(DELIVERIES).where(
            DELIVERIES.c.decided_at < before)
        messages = connection.execute(old.where(~pending)).scalar_one()
        held = connection.execute(old.where(pending)).scalar_one()
        browsers = connection.execute(select(func.count()).select_from(PUSH_SUBSCRIPTIONS)
                                      .where(PUSH_SUBSCRIPTIONS.c.removed_at < before)
                                      ).scalar_one()
        ledger = _ledger_count(connection, before, window)
    return Pruned(events, messages, held, browsers, ledger)


def _ledger_count(connection: Connection, before: datetime, window: int) -> int:
    """The ledger entries that `prune` would merge away: it walks the same windows (to the
    first with nothing old enough), then counts by score what it would merge there."""
    end = after = 0
    while True:
        rows = _ledger_window(connection, after, window)
        if not any(row.at < before for row in rows):
            break
        end = after = rows[-1].id
    score = (LEDGER.c.subscriber_id, LEDGER.c.workflow, LEDGER.c.score)
    old = (select(*score, func.count().label("entries"))
           .where(LEDGER.c.id <= end, LEDGER.c.at < before, LEDGER.c.kind != CARRIED)
           .group_by(*score).subquery())
    carried = aliased(LEDGER)
    has_carried = (select(carried.c.id)
                   .where(carried.c.subscriber_id == old.c.subscriber_id,
                          carried.c.workflow == old.c.workflow,
                          carried.c.score == old.c.score, carried.c.kind == CARRIED).exists())
    merged = func.sum(old.c.entries - 1 + case((has_carried, 1), else_=0))
    return int(connection.execute(select(func.coalesce(merged, 0))).scalar_one())


def _prune_events(connection: Connection, writer: BatchWriter, before: datetime, after: int,
                  window: int) -> tuple[int, int, int]:
    """One window of events after id `after`: (the last id looked at, or -1 to stop; how many
    were removed; 0)."""
    rows = connection.execute(
        select(EVENTS.c.id, EVENTS.c.subscriber_id, EVENTS.c.seq, EVENTS.c.received_at)
        .where(EVENTS.c.id > after).order_by(EVENTS.c.id).limit(window)).all()
    old = [row for row in rows if row.received_at < before]
    if not old:
        return -1, 0, 0
    pointers = [(None, row.subscriber_id, row.seq) for row in old]
    for table in (LEDGER, CONSENTS, TAGS):  # what pointed at them keeps its row
        writer.update(connection, table, ("event_seq",), ("subscriber_id", "event_seq"),
                      pointers)
    writer.delete(connection, EVENTS, ("id",), [(row.id,) for row in old])
    return rows[-1].id, len(old), 0


def _ledger_window(connection: Connection, after: int, window: int) -> list[Any]:
    """The next `window` ledger entries after id `after` that are not `carried`: the walk
    that `prune` merges along and `count` counts along (the same, so that they agree)."""
    return list(connection.execute(
        select(LEDGER.c.id, LEDGER.c.subscriber_id, LEDGER.c.at)
        .where(LEDGER.c.id > after, LEDGER.c.kind != CARRIED)
        .order_by(LEDGER.c.id).limit(window)).all())


def _merge_ledger(connection: Connection, writer: BatchWriter, before: datetime, after: int,
                  window: int) -> tuple[int, int, int]:
    """One window of ledger entries after id `after`, other than `carried` ones: (the last
    id looked at, or -1 to stop; how many entries were merged away; 0).

    Each score's old entries in the window, with its `carried` entry if it has one, become
    one: the entry of the highest id (the last change, whose total is the score's after all
    of them) takes the sum of their deltas and the latest time, and the others go. Its
    subscribers are locked first (PostgreSQL), as the engine locks them, and the entries are
    read again under the lock, so that two workers pruning at once never merge one entry
    twice."""
    rows = _ledger_window(connection, after, window)
    old = [row for row in rows if row.at < before]
    if not old:
        return -1, 0, 0
    subscribers = sorted({row.subscriber_id for row in old})
    connection.execute(select(SUBSCRIBERS.c.id)
                       .where(among(connection, SUBSCRIBERS.c.id, subscribers))
                       .order_by(SUBSCRIBERS.c.id).with_for_update()).all()
    entry = (LEDGER.c.id, LEDGER.c.subscriber_id, LEDGER.c.workflow, LEDGER.c.score,
             LEDGER.c.delta, LEDGER.c.at)
    scores: dict[tuple[int, str, str], list[Any]] = {}
    for row in connection.execute(select(*entry).where(
            among(connection, LEDGER.c.id, [row.id for row in old]),
            LEDGER.c.kind != CARRIED)):
        scores.setdefault((row.subscriber_id, row.workflow, row.score), []).append(row)
    for row in connection.execute(select(*entry).where(
            among(connection, LEDGER.c.subscriber_id, subscribers), LEDGER.c.kind == CARRIED)):
        found = scores.get((row.subscriber_id, row.workflow, row.score))
        if found is not None:
            found.append(row)
    merged: list[tuple[Any, ...]] = []
    gone: list[tuple[int]] = []
    for entries in scores.values():
        last = max(entries, key=lambda row: row.id)
        merged.append((CARRIED, exact(sum((row.delta for row in entries), Decimal(0))),
                       CARRIED_RULE, None, max(row.at for row in entries), None, last.id))
        gone += [(row.id,) for row in entries if row is not last]
    writer.update(connection, LEDGER, ("kind", "delta", "rule", "event_seq", "at", "rule_key"),
                  ("id",), merged)
    writer.delete(connection, LEDGER, ("id",), gone)
    return rows[-1].id, len(gone), 0


def _prune_messages(connection: Connection, writer: BatchWriter, before: datetime, after: int,
                    window: int) -> tuple[int, int, int]:
    """One window of deliveries after id `after`: (the last id looked at, or -1 to stop; how
    many were removed with their dispatches; how many old ones the outbox still holds)."""
    rows = connection.execute(
        select(DELIVERIES.c.id, DELIVERIES.c.subscriber_id, DELIVERIES.c.seq,
               DELIVERIES.c.decided_at)
        .where(DELIVERIES.c.id > after).order_by(DELIVERIES.c.id).limit(window)).all()
    old = [row for row in rows if row.decided_at < before]
    if not old:
        return -1, 0, 0
    busy = _pending(connection, old)
    gone = [row for row in old if (row.subscriber_id, row.seq) not in busy]
    # Their outbox rows first (the foreign key would cascade; this does not rely on it).
    writer.delete(connection, DISPATCHES, ("subscriber_id", "delivery_seq"),
                  [(row.subscriber_id, row.seq) for row in gone])
    writer.delete(connection, DELIVERIES, ("id",), [(row.id,) for row in gone])
    return rows[-1].id, len(gone), len(old) - len(gone)


def _pending(connection: Connection, deliveries: list[Any]) -> set[tuple[int, int]]:
    """(subscriber, delivery seq) of these deliveries that have a dispatch not finished."""
    subscribers = sorted({row.subscriber_id for row in deliveries})
    rows = connection.execute(
        select(DISPATCHES.c.subscriber_id, DISPATCHES.c.delivery_seq)
        .where(among(connection, DISPATCHES.c.subscriber_id, subscribers),
               DISPATCHES.c.status.in_(UNFINISHED)))
    return {(row.subscriber_id, row.delivery_seq) for row in rows}
