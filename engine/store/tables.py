"""The schema: typed ORM models (SQLAlchemy 2.x), the single description of every table.

Hot paths use Core statements over these tables (`Model.__table__`); the ORM classes exist so
that the schema is typed, readable and the source Alembic compares migrations against.
Instants are `UTCDateTime`, scores `ExactDecimal` (see `types`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    MetaData,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from engine.store.types import Document, ExactDecimal, Key, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        int: Key, datetime: UTCDateTime(), Decimal: ExactDecimal(),
        dict[str, Any]: Document, list[Any]: Document}


class Subscriber(Base):
    """Someone a site knows by its own id (`external_id`); our key stays internal."""

    __tablename__ = "subscribers"
    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    attributes: Mapped[dict[str, Any]]
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    created_at: Mapped[datetime]
    last_event_at: Mapped[datetime | None]
    processed_until: Mapped[datetime | None]
    """The instant up to which this subscriber's events and due work have been processed."""
    event_count: Mapped[int]
    """How many events are stored: the next event is number `event_count + 1`."""
    version: Mapped[int]
    """Incremented by every write of the subscriber's state: a state kept in memory between
    batches is used again only while its version is the stored one."""
    delivery_count: Mapped[int] = mapped_column(server_default="0")
    """How many deliveries were decided: the next is number `delivery_count + 1`."""


class Event(Base):
    """Every event, numbered per subscriber: `(subscriber_id, seq)` is how the ledger, consents
    and tags point at the event that caused them (known before the row is written)."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("subscriber_id", "seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    seq: Mapped[int]
    key: Mapped[str | None] = mapped_column(String(200), unique=True)
    """The event's idempotency key (its `id`): the database refuses a second one."""
    type: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime]
    properties: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]


class Consent(Base):
    """Consent history, never updated: the latest row per channel is the current state."""

    __tablename__ = "consents"
    __table_args__ = (ForeignKeyConstraint(["subscriber_id", "event_seq"],
                                           ["events.subscriber_id", "events.seq"]),)
    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool]
    at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(300))
    """How it was given or withdrawn: the event type and its id, e.g. `subscribed#evt-17`."""
    event_seq: Mapped[int | None]
    """The event that caused it: `events.seq` of the same subscriber."""


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (ForeignKeyConstraint(["subscriber_id", "event_seq"],
                                           ["events.subscriber_id", "events.seq"]),)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(200), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(100))
    added_at: Mapped[datetime]
    event_seq: Mapped[int | None]
    """The event that caused it: `events.seq` of the same subscriber."""


class Enrolment(Base):
    """A subscriber's journey through one workflow; `ended_at` is set when they exit."""

    __tablename__ = "enrolments"
    __table_args__ = (
        Index("uq_enrolments_active", "subscriber_id", "workflow", unique=True,
              sqlite_where=text("ended_at IS NULL"),
              postgresql_where=text("ended_at IS NULL")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    workflow: Mapped[str] = mapped_column(String(100))
    stage: Mapped[str] = mapped_column(String(100))
    stage_seq: Mapped[int]
    """Counts stage entries within the enrolment: ties due work and deliveries to one visit."""
    stage_entered_at: Mapped[datetime]
    enrolled_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    exit_reason: Mapped[str | None] = mapped_column(String(200))
    seen: Mapped[list[Any]]
    """Event types that arrived since entering the current stage, among those an `after …
    unless EVENT` step of the stage watches for."""


class StageVisit(Base):
    """Every stage entry, for the history of a journey."""

    __tablename__ = "stage_visits"
    id: Mapped[int] = mapped_column(primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(
        ForeignKey("enrolments.id", ondelete="CASCADE"), index=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    workflow: Mapped[str] = mapped_column(String(100))
    stage: Mapped[str] = mapped_column(String(100))
    seq: Mapped[int]
    entered_at: Mapped[datetime]
    cause: Mapped[str] = mapped_column(String(300))
    """`entry` or the transition that moved the subscriber, as `FILE:LINE`."""


class ScoreTotal(Base):
    __tablename__ = "scores"
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(100), primary_key=True)
    score: Mapped[str] = mapped_column(String(100), primary_key=True)
    total: Mapped[Decimal]
    fit: Mapped[dict[str, Any]]
    """The fit rules that hold now: rule signature -> points."""
    contributions: Mapped[list[Any]]
    """Event points still decaying, as `[points, value, steps, earned_at]` with numbers as
    decimal strings and `earned_at` in microseconds since the epoch (UTC). They live with
    their score: they are read and written with it. A worthless one (value 0) is skipped, and
    dropped once such ones are half of the list. (Rows written before 2026-12 begin each with
    the rule as `FILE:LINE`, which nothing reads: the ledger explains a score; they are read
    as they are.)"""


class LedgerEntry(Base):
    """Every change of every score, with the rule (and event) that caused it."""

    __tablename__ = "ledger"
    __table_args__ = (Index(None, "subscriber_id", "at"),
                      ForeignKeyConstraint(["subscriber_id", "event_seq"],
                                           ["events.subscriber_id", "events.seq"]))
    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    workflow: Mapped[str] = mapped_column(String(100))
    score: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(8))
    """`event` (an event rule), `fit` (a fit rule began or stopped holding) or `decay`."""
    delta: Mapped[Decimal]
    total: Mapped[Decimal]
    rule: Mapped[str] = mapped_column(String(300))
    """The rule as `FILE:LINE`."""
    event_seq: Mapped[int | None]
    """The event that caused it: `events.seq` of the same subscriber."""
    at: Mapped[datetime]
    rule_key: Mapped[str | None] = mapped_column(String(16))
    """An event rule's stable key (`engine.plan.EventRulePlan.key`): a `max N per PERIOD`
    counts the rule's additions by it, wherever an edit has moved the rule's line. Null for
    other kinds and in rows written before keys."""


class DueWork(Base):
    """One pending step, postponed send, timed transition, idle check or decay boundary.

    Keyed by the subscriber and a number the engine gives it (`seq`, ascending in the order the
    work was planned), so the engine can write, change and delete rows it created in the same
    batch without reading ids back. The `due_at` index is what `tick` reads.
    """

    __tablename__ = "schedule"
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    due_at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(8))
    """`step`, `send` (postponed), `move` (`go to … after`), `idle`, `decay`."""
    workflow: Mapped[str] = mapped_column(String(100))
    enrolment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrolments.id", ondelete="CASCADE"))
    stage_seq: Mapped[int]
    step: Mapped[int]
    """Number of the stage step (step, send) or transition (move, idle) in the stage as the
    subscriber entered it."""
    occurrence: Mapped[int]
    nominal_at: Mapped[datetime]
    """When it was first due: postponed sends go out in this order."""
    step_key: Mapped[str | None] = mapped_column(String(32))
    """The step's (or transition's) stable key (`engine.plan.Keys`): how the work finds its
    step after an edit of the workflow moved or changed it; work whose step the edit removed
    matches nothing and is dropped. Null in rows written before keys."""


class Delivery(Base):
    """One decided send (or skip) of a stage step; the key refuses a second one."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "workflow", "enrolment_id", "stage_seq", "step",
                         "occurrence", name="uq_deliveries_step"),
        UniqueConstraint("subscriber_id", "seq"),
        Index(None, "subscriber_id", "decided_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    seq: Mapped[int]
    """Numbers the subscriber's deliveries: how dispatches point at their delivery."""
    workflow: Mapped[str] = mapped_column(String(100))
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("enrolments.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(100))
    stage_seq: Mapped[int]
    step: Mapped[int]
    occurrence: Mapped[int]
    step_rule: Mapped[str] = mapped_column(String(300))
    """The stage step that decided it, as `FILE:LINE`."""
    channel: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(String(100))
    lang: Mapped[str | None] = mapped_column(String(35))
    status: Mapped[str] = mapped_column(String(16))
    """`sent` or `skipped`."""
    reason: Mapped[str | None] = mapped_column(String(300))
    content: Mapped[dict[str, Any]]
    """The rendered fields, exactly as decided."""
    nominal_at: Mapped[datetime]
    decided_at: Mapped[datetime]


UNFINISHED = ("queued", "sending")
"""Dispatch statuses the outbox has not finished with (the others are final)."""


class Dispatch(Base):
    """The outbox: one row per recipient of a decided send (each live browser subscription
    of a push, the address of an e-mail, the URL of a webhook), written in the transaction
    that decides the send.

    `due_at` is when the dispatcher should look at the row next: the next attempt while
    `queued`, the end of its lease while `sending` (so the rows a dead dispatcher held fall
    due again). Finished rows (`delivered`, `gone`, `failed`, `expired`) have none.
    """

    __tablename__ = "dispatches"
    __table_args__ = (
        ForeignKeyConstraint(["subscriber_id", "delivery_seq"],
                             ["deliveries.subscriber_id", "deliveries.seq"],
                             ondelete="CASCADE"),
        Index("ix_dispatches_due", "due_at",
              sqlite_where=text("status IN ('queued', 'sending')"),
              postgresql_where=text("status IN ('queued', 'sending')")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    delivery_seq: Mapped[int]
    channel: Mapped[str] = mapped_column(String(16))
    push_subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("push_subscriptions.id", ondelete="CASCADE"), index=True)
    address: Mapped[str | None] = mapped_column(String(2048))
    """The e-mail address or webhook URL it goes to."""
    status: Mapped[str] = mapped_column(String(16))
    """`queued`, `sending`, `delivered`, `gone`, `failed`, `expired`."""
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    """The claim that holds a `sending` row: renewals and outcomes of any other claim (one
    whose lease ran out and was taken over) leave the row alone."""
    attempts: Mapped[int]
    due_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    """A push is worth nothing after its TTL: it is not sent after this instant."""
    last_status: Mapped[int | None]
    """The peer's last answer (HTTP or SMTP code)."""
    last_error: Mapped[str | None] = mapped_column(String(500))
    finished_at: Mapped[datetime | None]
    quiet: Mapped[str | None] = mapped_column(String(80))
    """The quiet hours of the decision, in the subscriber's zone (`21:00-08:00
    Europe/Warsaw`): a send that comes late into them (retries, a dispatcher that was down)
    waits for their end."""


class PushSubscription(Base):
    """A browser's push subscription; `removed_at` is set when the push service drops it."""

    __tablename__ = "push_subscriptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(2048), unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]
    removed_reason: Mapped[str | None] = mapped_column(String(300))


class Erasure(Base):
    """What is kept of an erased subscriber (GDPR): counts, and nothing that identifies them."""

    __tablename__ = "erasures"
    id: Mapped[int] = mapped_column(primary_key=True)
    erased_at: Mapped[datetime]
    subscriber: Mapped[str | None] = mapped_column(String(64), index=True)
    """A keyed hash of the erased subscriber's id (HMAC with the signing secret): events of
    that id dated before `erased_at` are refused when they come again, so that a replay (a
    client's retry queue, a re-run import) does not bring the person back."""
    events: Mapped[int]
    deliveries: Mapped[int]
    push_subscriptions: Mapped[int]


metadata = Base.metadata
OWN_TABLES = frozenset(metadata.tables) | {"alembic_version"}
"""nurture's tables in a database (another application's tables may share it)."""
