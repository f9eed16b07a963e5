"""Browsers' push subscriptions: a push send needs at least one live subscription (SPEC §2)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from engine.store.states import DISPATCHES, PUSH_SUBSCRIPTIONS, SUBSCRIBERS, end_queued


def add(connection: Connection, external_id: str, endpoint: str, p256dh: str, auth: str,
        at: datetime) -> int:
    """Attach a subscription to a subscriber (created if the site has not sent events yet)."""
    key = connection.execute(select(SUBSCRIBERS.c.id).where(
        SUBSCRIBERS.c.external_id == external_id)).scalar()
    if key is None:
        key = connection.execute(insert(SUBSCRIBERS).returning(SUBSCRIBERS.c.id), {
            "external_id": external_id, "attributes": {}, "created_at": at,
            "event_count": 0, "version": 0, "delivery_count": 0}).scalar_one()
    _changed(connection, key)
    existing = connection.execute(
        select(PUSH_SUBSCRIPTIONS.c.id, PUSH_SUBSCRIPTIONS.c.subscriber_id)
        .where(PUSH_SUBSCRIPTIONS.c.endpoint == endpoint)).first()
    values = {"subscriber_id": key, "p256dh": p256dh, "auth": auth, "created_at": at,
              "removed_at": None, "removed_reason": None}
    if existing is not None:
        if existing.subscriber_id != key:
            _handed_over(connection, existing.id, existing.subscriber_id, at)
        connection.execute(update(PUSH_SUBSCRIPTIONS)
                           .where(PUSH_SUBSCRIPTIONS.c.id == existing.id), values)
        return int(existing.id)
    return int(connection.execute(insert(PUSH_SUBSCRIPTIONS).returning(PUSH_SUBSCRIPTIONS.c.id),
                                  {"endpoint": endpoint, **values}).scalar_one())


def live(connection: Connection, key: int) -> list[tuple[str, str, str]]:
    """A subscriber's live browsers: (endpoint, p256dh, auth), the oldest first."""
    return [(row.endpoint, row.p256dh, row.auth) for row in connection.execute(
        select(PUSH_SUBSCRIPTIONS.c.endpoint, PUSH_SUBSCRIPTIONS.c.p256dh,
               PUSH_SUBSCRIPTIONS.c.auth)
        .where(PUSH_SUBSCRIPTIONS.c.subscriber_id == key,
               PUSH_SUBSCRIPTIONS.c.removed_at.is_(None))
        .order_by(PUSH_SUBSCRIPTIONS.c.id))]


def remove(connection: Connection, endpoint: str, at: datetime, reason: str,
           owner: str | None = None) -> None:
    """Mark a subscription removed (only if it is `owner`'s, when one is named)."""
    condition = [PUSH_SUBSCRIPTIONS.c.endpoint == endpoint,
                 PUSH_SUBSCRIPTIONS.c.removed_at.is_(None)]
    if owner is not None:
        condition.append(PUSH_SUBSCRIPTIONS.c.subscriber_id == select(SUBSCRIBERS.c.id).where(
            SUBSCRIBERS.c.external_id == owner).scalar_subquery())
    subscriber = connection.execute(
        update(PUSH_SUBSCRIPTIONS).where(*condition)
        .values(removed_at=at, removed_reason=reason)
        .returning(PUSH_SUBSCRIPTIONS.c.subscriber_id)).scalar()
    if subscriber is not None:
        _changed(connection, subscriber)


HANDED_OVER = "the browser was registered to another subscriber before it was sent"


def _handed_over(connection: Connection, subscription: int, previous: int,
                 at: datetime) -> None:
    """A browser registered before for `previous` now belongs to someone else (a shared
    computer, another login): nothing of the previous owner's may reach it. What is queued for
    it ends as `gone`, and the previous owner's state, which listed the subscription, is out of
    date."""
    end_queued(connection, [DISPATCHES.c.push_subscription_id == subscription,
                            DISPATCHES.c.subscriber_id == previous], "gone", HANDED_OVER, at)
    _changed(connection, previous)


def _changed(connection: Connection, subscriber: int) -> None:
    """The engine's state of this subscriber includes its live subscriptions: a new version
    tells any copy kept in memory that it is out of date."""
    connection.execute(update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == subscriber)
                       .values(version=SUBSCRIBERS.c.version + 1))
