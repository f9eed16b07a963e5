"""The outbox's queries: claim due dispatches with a lease, read what to send, record outcomes.

A claim moves rows to `sending` and sets `due_at` to the end of the lease in one statement, so
a dispatcher that dies holding rows loses nothing: when the lease ends they are due again and
another claim takes them. Outcomes are written as soon as a group of sends has answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from engine.store.bulk import BatchWriter
from engine.store.states import (
    DELIVERIES,
    DISPATCHES,
    PUSH_SUBSCRIPTIONS,
    SUBSCRIBERS,
    among,
    end_queued,
)

OPEN = ("queued", "sending")


@dataclass(frozen=True, slots=True)
class Claimed:
    """A dispatch taken by this dispatcher, with everything needed to send it."""

    id: int
    subscriber_id: int
    subscriber: str
    delivery_seq: int
    channel: str
    attempts: int
    address: str | None
    expires_at: datetime | None
    workflow: str
    message: str
    content: dict[str, Any]
    push_subscription_id: int | None
    endpoint: str | None
    p256dh: str | None
    auth: str | None
    subscription_removed: bool
    subscription_handed_over: bool
    """The browser was registered since to another subscriber: not this one's to use."""
    quiet: str | None
    decided_at: datetime
    """The decision's instant: a push's TTL runs from it."""

    @property
    def delivery_key(self) -> str:
        return f"{self.subscriber_id}.{self.delivery_seq}"


@dataclass(frozen=True, slots=True)
class Recorded:
    """What became of a dispatch; `due_at` is set only when it is to be tried again."""

    id: int
    status: str
    due_at: datetime | None
    last_status: int | None
    last_error: str | None
    finished_at: datetime | None


def claim(connection: Connection, now: datetime, lease_until: datetime, limit: int,
          channels: Sequence[str], token: str) -> list[Claimed]:
    """Lease up to `limit` due dispatches of these channels, earliest first, for `token`."""
    due = (select(DISPATCHES.c.id)
           .where(DISPATCHES.c.status.in_(OPEN), DISPATCHES.c.due_at <= now,
                  DISPATCHES.c.channel.in_(channels))
           .order_by(DISPATCHES.c.due_at).limit(limit)
           .with_for_update(skip_locked=True))  # (several workers: PostgreSQL only)
    ids = [row.id for row in connection.execute(
        update(DISPATCHES).where(DISPATCHES.c.id.in_(due.scalar_subquery()))
        .values(status="sending", due_at=lease_until, attempts=DISPATCHES.c.attempts + 1,
                claimed_by=token)
        .returning(DISPATCHES.c.id))]
    if not ids:
        return []
    rows: Any = connection.execute(  # rows in the order of Claimed's fields
        select(DISPATCHES.c.id, DISPATCHES.c.subscriber_id, SUBSCRIBERS.c.external_id,
               DISPATCHES.c.delivery_seq, DISPATCHES.c.channel, DISPATCHES.c.attempts,
               DISPATCHES.c.address, DISPATCHES.c.expires_at, DELIVERIES.c.workflow,
               DELIVERIES.c.message, DELIVERIES.c.content, DISPATCHES.c.push_subscription_id,
               PUSH_SUBSCRIPTIONS.c.endpoint, PUSH_SUBSCRIPTIONS.c.p256dh,
               PUSH_SUBSCRIPTIONS.c.auth, PUSH_SUBSCRIPTIONS.c.removed_at.is_not(None),
               PUSH_SUBSCRIPTIONS.c.subscriber_id != DISPATCHES.c.subscriber_id,
               DISPATCHES.c.quiet, DELIVERIES.c.decided_at)
        .join(SUBSCRIBERS, SUBSCRIBERS.c.id == DISPATCHES.c.subscriber_id)
        .join(DELIVERIES, (DELIVERIES.c.subscriber_id == DISPATCHES.c.subscriber_id)
              & (DELIVERIES.c.seq == DISPATCHES.c.delivery_seq))
        .outerjoin(PUSH_SUBSCRIPTIONS,
                   PUSH_SUBSCRIPTIONS.c.id == DISPATCHES.c.push_subscription_id)
        .where(among(connection, DISPATCHES.c.id, ids))
        .order_by(DISPATCHES.c.due_at, DISPATCHES.c.id))
    return [Claimed(*row) for row in rows]


def record(connection: Connection, writer: BatchWriter, results: Sequence[Recorded],
           token: str) -> None:
    """Write outcomes of rows this claim still holds (a row taken over is left alone)."""
    writer.update(connection, DISPATCHES,
                  ("status", "claimed_by", "due_at", "last_status", "last_error", "finished_at"),
                  ("id", "claimed_by"),  # (in the table's order: SQLAlchemy writes SET so)
                  [(r.status, None, r.due_at, r.last_status, r.last_error, r.finished_at, r.id,
                    token) for r in results])


def renew(connection: Connection, ids: Sequence[int], token: str,
          lease_until: datetime) -> set[int]:
    """Extend the lease of rows this claim still holds; the ids it still holds."""
    if not ids:
        return set()
    return {row.id for row in connection.execute(
        update(DISPATCHES).where(DISPATCHES.c.id.in_(ids), DISPATCHES.c.claimed_by == token,
                                 DISPATCHES.c.status == "sending")
        .values(due_at=lease_until).returning(DISPATCHES.c.id))}


def defer(connection: Connection, until: Sequence[tuple[int, datetime]], token: str) -> None:
    """Put rows this claim holds back in the queue until a later instant, the attempt not
    counted (quiet hours, not a failure)."""
    for dispatch_id, when in until:
        connection.execute(update(DISPATCHES).where(
            DISPATCHES.c.id == dispatch_id, DISPATCHES.c.claimed_by == token,
            DISPATCHES.c.status == "sending")
            .values(status="queued", due_at=when, claimed_by=None,
                    attempts=DISPATCHES.c.attempts - 1))


def release(connection: Connection, ids: Sequence[int], token: str, now: datetime) -> None:
    """Give back rows this claim did not get to (another claim may take them at once)."""
    if ids:
        connection.execute(update(DISPATCHES).where(
            DISPATCHES.c.id.in_(ids), DISPATCHES.c.claimed_by == token,
            DISPATCHES.c.status == "sending")
            .values(status="queued", due_at=now, claimed_by=None,
                    attempts=DISPATCHES.c.attempts - 1))


def remove_subscriptions(connection: Connection, subscription_ids: Sequence[int],
                         now: datetime, reason: str) -> None:
    """The push service says these subscriptions are gone: remove them, send nothing more to
    them (their other open dispatches end as `gone` too), and move their subscribers' version
    on so that no engine keeps using an old copy of their state."""
    if not subscription_ids:
        return
    owners = [row.subscriber_id for row in connection.execute(
        update(PUSH_SUBSCRIPTIONS)
        .where(PUSH_SUBSCRIPTIONS.c.id.in_(subscription_ids),
               PUSH_SUBSCRIPTIONS.c.removed_at.is_(None))
        .values(removed_at=now, removed_reason=reason[:300])
        .returning(PUSH_SUBSCRIPTIONS.c.subscriber_id))]
    end_queued(connection, [DISPATCHES.c.push_subscription_id.in_(subscription_ids)], "gone",
               "the subscription is gone", now)
    if owners:
        connection.execute(update(SUBSCRIBERS).where(SUBSCRIBERS.c.id.in_(set(owners)))
                           .values(version=SUBSCRIBERS.c.version + 1))


def by_status(connection: Connection) -> dict[str, int]:
    rows = connection.execute(select(DISPATCHES.c.status, func.count().label("count"))
                              .group_by(DISPATCHES.c.status))
    return {str(status): int(str(count)) for status, count in rows}
