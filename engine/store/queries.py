"""Reading what the engine decided: a subscriber's stages, scores, ledger, tags, deliveries.

For people and tools (the test fixture, the API's subscriber view), not for the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, String, func, literal, select

from engine.store.states import (
    CONSENTS,
    DELIVERIES,
    DISPATCHES,
    ENROLMENTS,
    EVENTS,
    LEDGER,
    PUSH_SUBSCRIPTIONS,
    SCHEDULE,
    SCORES,
    SUBSCRIBERS,
    TAGS,
    VISITS,
)
from engine.store.tables import UNFINISHED


@dataclass(frozen=True, slots=True)
class LedgerLine:
    at: datetime
    workflow: str
    score: str
    kind: str
    delta: Decimal
    total: Decimal
    rule: str
    event_type: str | None
    event_id: str | None


@dataclass(frozen=True, slots=True)
class DeliveryLine:
    decided_at: datetime
    nominal_at: datetime
    workflow: str
    stage: str
    step_rule: str
    occurrence: int
    channel: str
    message: str
    lang: str | None
    status: str
    reason: str | None
    content: dict[str, Any]


def subscriber_key(connection: Connection, external_id: str) -> int | None:
    key: int | None = connection.execute(
        select(SUBSCRIBERS.c.id).where(SUBSCRIBERS.c.external_id == external_id)).scalar()
    return key


def ids_like(connection: Connection, external_id: str, limit: int = 200) -> list[str]:
    """Subscriber ids that start as `external_id` does (its first two characters, as written,
    in lower case and capitalised): candidates for "did you mean", found by ranges of the
    ids' unique index, never by reading every subscriber."""
    head = external_id[:2]
    found: list[str] = []
    for prefix in dict.fromkeys((head, head.lower(), head.capitalize())):
        if prefix:
            found += connection.execute(
                select(SUBSCRIBERS.c.external_id)
                .where(SUBSCRIBERS.c.external_id >= prefix,
                       SUBSCRIBERS.c.external_id < prefix + "\U0010ffff")
                .order_by(SUBSCRIBERS.c.external_id).limit(limit)).scalars().all()
    return found


def ids_with_email(connection: Connection, address: str, limit: int = 100) -> list[str]:
    """The subscribers whose `email` attribute is this address, letter case aside (as each
    database lowers letters: SQLite only ASCII ones): for a person's request about their
    data, who knows their address and not the site's id for them. A scan of the subscribers
    (no attribute has an index): for someone asking, not for a hot path."""
    email = SUBSCRIBERS.c.attributes["email"].as_string()
    return list(connection.execute(
        select(SUBSCRIBERS.c.external_id)
        .where(func.lower(email) == func.lower(literal(address, String)))
        .order_by(SUBSCRIBERS.c.external_id).limit(limit)).scalars())


def attributes(connection: Connection, key: int) -> dict[str, Any]:
    value: dict[str, Any] = connection.execute(
        select(SUBSCRIBERS.c.attributes).where(SUBSCRIBERS.c.id == key)).scalar_one()
    return value


def stages(connection: Connection, key: int) -> dict[str, str]:
    """Workflow → current stage, for active enrolments."""
    rows = connection.execute(select(ENROLMENTS.c.workflow, ENROLMENTS.c.stage).where(
        ENROLMENTS.c.subscriber_id == key, ENROLMENTS.c.ended_at.is_(None)))
    return {row.workflow: row.stage for row in rows}


def enrolments(connection: Connection, key: int) -> list[dict[str, Any]]:
    rows = connection.execute(select(ENROLMENTS).where(ENROLMENTS.c.subscriber_id == key)
                              .order_by(ENROLMENTS.c.id))
    result = []
    for row in rows:
        visits = connection.execute(select(VISITS.c.stage, VISITS.c.entered_at, VISITS.c.cause)
                                    .where(VISITS.c.enrolment_id == row.id)
                                    .order_by(VISITS.c.id))
        result.append({"workflow": row.workflow, "stage": row.stage,
                       "enrolled_at": row.enrolled_at, "ended_at": row.ended_at,
                       "exit_reason": row.exit_reason,
                       "stages": [{"stage": v.stage, "entered_at": v.entered_at,
                                   "cause": v.cause} for v in visits]})
    return result


def scores(connection: Connection, key: int) -> dict[tuple[str, str], Decimal]:
    rows = connection.execute(select(SCORES.c.workflow, SCORES.c.score, SCORES.c.total)
                              .where(SCORES.c.subscriber_id == key))
    return {(row.workflow, row.score): row.total for row in rows}


def ledger(connection: Connection, key: int, score: tuple[str, str] | None = None,
           limit: int | None = None) -> list[LedgerLine]:
    """The subscriber's ledger, oldest first: of one (workflow, score) if given, and only
    the latest `limit` lines if given."""
    query = (select(LEDGER, EVENTS.c.type.label("event_type"), EVENTS.c.key.label("event_key"))
             .outerjoin(EVENTS, (EVENTS.c.subscriber_id == LEDGER.c.subscriber_id)
                        & (EVENTS.c.seq == LEDGER.c.event_seq))
             .where(LEDGER.c.subscriber_id == key))
    if score is not None:
        query = query.where(LEDGER.c.workflow == score[0], LEDGER.c.score == score[1])
    if limit is None:
        rows = list(connection.execute(query.order_by(LEDGER.c.id)))
    else:
        rows = list(reversed(connection.execute(
            query.order_by(LEDGER.c.id.desc()).limit(limit)).all()))
    return [LedgerLine(r.at, r.workflow, r.score, r.kind, r.delta, r.total, r.rule,
                       r.event_type, r.event_key) for r in rows]


def ledger_lengths(connection: Connection, key: int) -> dict[tuple[str, str], int]:
    rows = connection.execute(
        select(LEDGER.c.workflow, LEDGER.c.score, func.count().label("lines"))
        .where(LEDGER.c.subscriber_id == key).group_by(LEDGER.c.workflow, LEDGER.c.score))
    return {(row.workflow, row.score): int(row.lines) for row in rows}


def tags(connection: Connection, key: int) -> set[str]:
    return set(connection.execute(select(TAGS.c.tag).where(TAGS.c.subscriber_id == key))
               .scalars())


def consents(connection: Connection, key: int) -> list[dict[str, Any]]:
    rows = connection.execute(select(CONSENTS).where(CONSENTS.c.subscriber_id == key)
                              .order_by(CONSENTS.c.id))
    return [{"channel": r.channel, "granted": r.granted, "at": r.at, "source": r.source}
            for r in rows]


def consent_now(consents: list[dict[str, Any]]) -> dict[str, bool]:
    """By channel, whether consent holds now: the latest of `consents` (oldest first)."""
    return {consent["channel"]: consent["granted"] for consent in consents}


def deliveries(connection: Connection, key: int) -> list[DeliveryLine]:
    rows = connection.execute(select(DELIVERIES).where(DELIVERIES.c.subscriber_id == key)
                              .order_by(DELIVERIES.c.id))
    return [DeliveryLine(r.decided_at, r.nominal_at, r.workflow, r.stage, r.step_rule,
                         r.occurrence, r.channel, r.message, r.lang, r.status, r.reason,
                         r.content) for r in rows]


def dispatches_by_delivery(connection: Connection, key: int,
                           first: int = 0) -> dict[int, list[Any]]:
    """The outbox rows of the subscriber's deliveries numbered `first` and up, by delivery
    number, each delivery's in the order they were written."""
    found: dict[int, list[Any]] = {}
    for row in connection.execute(select(DISPATCHES).where(
            DISPATCHES.c.subscriber_id == key, DISPATCHES.c.delivery_seq >= first)
            .order_by(DISPATCHES.c.id)):
        found.setdefault(row.delivery_seq, []).append(row)
    return found


def pending(connection: Connection, key: int) -> list[dict[str, Any]]:
    """The subscriber's due work, earliest first."""
    rows = connection.execute(select(SCHEDULE).where(SCHEDULE.c.subscriber_id == key)
                              .order_by(SCHEDULE.c.due_at, SCHEDULE.c.seq))
    return [{"kind": r.kind, "workflow": r.workflow, "due_at": r.due_at,
             "nominal_at": r.nominal_at, "step": r.step, "occurrence": r.occurrence}
            for r in rows]


def trace_delivery(connection: Connection, key: int, seq: int) -> dict[str, Any] | None:
    """Why a message went out: its workflow and stage step, the transition that entered the
    stage, and each score of the workflow at that moment with the ledger line that last
    changed it (the rule and event that tipped it)."""
    delivery = connection.execute(select(DELIVERIES).where(
        DELIVERIES.c.subscriber_id == key, DELIVERIES.c.seq == seq)).one_or_none()
    if delivery is None:
        return None
    visit = connection.execute(select(VISITS).where(
        VISITS.c.enrolment_id == delivery.enrolment_id,
        VISITS.c.seq == delivery.stage_seq)).one()
    scores: dict[str, Any] = {}
    for line in ledger(connection, key):
        if line.workflow == delivery.workflow and line.at <= visit.entered_at:
            scores[line.score] = {"total": line.total, "changed_by": line.rule,
                                  "event": line.event_type, "event_id": line.event_id,
                                  "at": line.at}
    return {"workflow": delivery.workflow, "stage": delivery.stage,
            "step": delivery.step_rule, "message": delivery.message,
            "channel": delivery.channel, "status": delivery.status,
            "decided_at": delivery.decided_at, "stage_entered_at": visit.entered_at,
            "entered_by": visit.cause, "scores_at_entry": scores}


def delivery_by_reference(connection: Connection, key: int, seq: int) -> dict[str, Any] | None:
    """The delivery a token points at (`SUBSCRIBER.SEQ`), with its subscriber's id."""
    row = connection.execute(
        select(SUBSCRIBERS.c.external_id, DELIVERIES.c.workflow, DELIVERIES.c.message,
               DELIVERIES.c.channel)
        .join(SUBSCRIBERS, SUBSCRIBERS.c.id == DELIVERIES.c.subscriber_id)
        .where(DELIVERIES.c.subscriber_id == key, DELIVERIES.c.seq == seq)).one_or_none()
    if row is None:
        return None
    return {"subscriber": row.external_id, "workflow": row.workflow, "message": row.message,
            "channel": row.channel}


@dataclass(frozen=True)
class Backlog:
    """Work due by now and not yet done: how much, and since when the oldest has waited."""

    due_work: int
    oldest_due_work: datetime | None
    dispatches: int
    oldest_dispatch: datetime | None


def backlog(connection: Connection, now: datetime) -> Backlog:
    """Due work and dispatches due by now and not yet done, each one range of its `due_at`
    index (the dispatches' is partial, on the unfinished ones)."""
    work = connection.execute(
        select(func.count().label("rows"), func.min(SCHEDULE.c.due_at).label("oldest"))
        .where(SCHEDULE.c.due_at <= now)).one()
    dispatches = connection.execute(
        select(func.count().label("rows"), func.min(DISPATCHES.c.due_at).label("oldest"))
        .where(DISPATCHES.c.status.in_(UNFINISHED), DISPATCHES.c.due_at <= now)).one()
    return Backlog(work.rows, work.oldest, dispatches.rows, dispatches.oldest)


def stranded(connection: Connection, stages: dict[str, set[str]]) -> list[tuple[str, str, int]]:
    """(workflow, stage, subscribers) of active enrolments in a stage that `stages` (workflow
    -> its stages) does not have, or in a workflow it does not have: what an edit that removed
    or renamed them left behind. One scan of the enrolments: for reloads, not the hot path."""
    rows = connection.execute(
        select(ENROLMENTS.c.workflow, ENROLMENTS.c.stage,
               func.count().label("subscribers"))
        .where(ENROLMENTS.c.ended_at.is_(None))
        .group_by(ENROLMENTS.c.workflow, ENROLMENTS.c.stage)
        .order_by(ENROLMENTS.c.workflow, ENROLMENTS.c.stage))
    return [(row.workflow, row.stage, int(row.subscribers)) for row in rows
            if row.stage not in stages.get(row.workflow, ())]


def anything_sent(connection: Connection) -> bool:
    """Whether any message was sent (links signed with the secret are out there)."""
    return connection.execute(
        select(DELIVERIES.c.id).where(DELIVERIES.c.status == "sent").limit(1)).first() is not None


def any_live_push_subscription(connection: Connection) -> bool:
    return connection.execute(
        select(PUSH_SUBSCRIPTIONS.c.id).where(PUSH_SUBSCRIPTIONS.c.removed_at.is_(None))
        .limit(1)).first() is not None
