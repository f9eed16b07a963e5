"""Loading subscribers' states for a batch, and writing back what the journey changed.

A batch costs a fixed number of statements whatever its size: each table is read once with
`IN (…)` over the batch's subscribers (through an index), and each kind of change is written
with one executemany. Nothing here scans a table: the cost of a batch follows the batch, not
the number of subscribers stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update

from engine.plan import Plan
from engine.state import Contribution, Due, Enrolment, ScoreState, SubscriberState
from engine.store.types import from_micros, to_micros
from engine.store import tables as t

SUBSCRIBERS = cast(Table, t.Subscriber.__table__)
EVENTS = cast(Table, t.Event.__table__)
CONSENTS = cast(Table, t.Consent.__table__)
TAGS = cast(Table, t.Tag.__table__)
ENROLMENTS = cast(Table, t.Enrolment.__table__)
VISITS = cast(Table, t.StageVisit.__table__)
SCORES = cast(Table, t.ScoreTotal.__table__)
LEDGER = cast(Table, t.LedgerEntry.__table__)
SCHEDULE = cast(Table, t.DueWork.__table__)
DELIVERIES = cast(Table, t.Delivery.__table__)
PUSH_SUBSCRIPTIONS = cast(Table, t.PushSubscription.__table__)


def existing_event_keys(connection: Connection, keys: Sequence[str]) -> set[str]:
    if not keys:
        return set()
    rows = connection.execute(select(EVENTS.c.key).where(EVENTS.c.key.in_(keys)))
    return {row.key for row in rows}


def due_subscriber_ids(connection: Connection, now: datetime, limit: int) -> list[int]:
    """Subscribers with work due by `now`, earliest first (an index range scan on due_at)."""
    rows = connection.execute(select(SCHEDULE.c.subscriber_id).where(SCHEDULE.c.due_at <= now)
                              .order_by(SCHEDULE.c.due_at).limit(limit))
    return list(dict.fromkeys(row.subscriber_id for row in rows))


def load_by_external_id(connection: Connection, external_ids: Sequence[str], plan: Plan,
                        now: datetime) -> dict[str, SubscriberState]:
    """States of these subscribers; those not stored yet come back new (id None)."""
    rows = connection.execute(select(SUBSCRIBERS).where(
        SUBSCRIBERS.c.external_id.in_(external_ids))).all()
    states = _from_rows(connection, rows, plan)
    for external_id in external_ids:
        if external_id not in states:
            states[external_id] = SubscriberState(external_id, None, {}, now)
    return states


def load_by_id(connection: Connection, ids: Sequence[int],
               plan: Plan) -> dict[str, SubscriberState]:
    rows = connection.execute(select(SUBSCRIBERS).where(SUBSCRIBERS.c.id.in_(ids))).all()
    return _from_rows(connection, rows, plan)


def _from_rows(connection: Connection, rows: Sequence[Any],
               plan: Plan) -> dict[str, SubscriberState]:
    states: dict[int, SubscriberState] = {}
    for row in rows:
        states[row.id] = SubscriberState(
            row.external_id, row.id, dict(row.attributes), row.created_at,
            row.last_event_at, row.processed_until, row.event_count)
    if states:
        _load_details(connection, states, plan)
    return {state.external_id: state for state in states.values()}


def _load_details(connection: Connection, states: dict[int, SubscriberState], plan: Plan) -> None:
    ids = list(states)
    marks = [s.processed_until for s in states.values() if s.processed_until is not None]
    oldest = min(marks) if marks else None

    for row in connection.execute(select(CONSENTS.c.subscriber_id, CONSENTS.c.channel,
                                         CONSENTS.c.granted)
                                  .where(CONSENTS.c.subscriber_id.in_(ids))
                                  .order_by(CONSENTS.c.id)):
        states[row.subscriber_id].consents[row.channel] = row.granted
    for row in connection.execute(select(TAGS.c.subscriber_id, TAGS.c.tag)
                                  .where(TAGS.c.subscriber_id.in_(ids))):
        states[row.subscriber_id].tags.add(row.tag)
    for row in connection.execute(
            select(PUSH_SUBSCRIPTIONS.c.subscriber_id, func.count().label("live"))
            .where(PUSH_SUBSCRIPTIONS.c.subscriber_id.in_(ids),
                   PUSH_SUBSCRIPTIONS.c.removed_at.is_(None))
            .group_by(PUSH_SUBSCRIPTIONS.c.subscriber_id)):
        states[row.subscriber_id].push_subscriptions = row.live

    enrolments: dict[int, Enrolment] = {}
    for row in connection.execute(select(ENROLMENTS).where(
            ENROLMENTS.c.subscriber_id.in_(ids), ENROLMENTS.c.ended_at.is_(None))):
        enrolment = Enrolment(row.workflow, row.stage, row.stage_seq, row.stage_entered_at,
                              row.enrolled_at, set(row.seen), row.id)
        enrolments[row.id] = enrolment
        states[row.subscriber_id].enrolments[row.workflow] = enrolment

    for row in connection.execute(select(SCORES).where(SCORES.c.subscriber_id.in_(ids))):
        states[row.subscriber_id].scores[(row.workflow, row.score)] = ScoreState(
            row.workflow, row.score, row.total,
            {k: Decimal(v) for k, v in row.fit.items()},
            [Contribution(rule, Decimal(points), Decimal(value), steps, from_micros(earned))
             for rule, points, value, steps, earned in row.contributions], stored=True)

    if plan.capped_rules and oldest is not None:
        since = oldest - plan.longest_max_window
        for row in connection.execute(
                select(LEDGER.c.subscriber_id, LEDGER.c.rule, LEDGER.c.delta, LEDGER.c.at)
                .where(LEDGER.c.subscriber_id.in_(ids), LEDGER.c.at > since,
                       LEDGER.c.kind == "event", LEDGER.c.rule.in_(sorted(plan.capped_rules)))
                .order_by(LEDGER.c.at, LEDGER.c.id)):
            states[row.subscriber_id].capped.setdefault(row.rule, []).append(
                (row.at, row.delta))

    if plan.longest_cap_window and oldest is not None:
        since = oldest - plan.longest_cap_window
        for row in connection.execute(
                select(DELIVERIES.c.subscriber_id, DELIVERIES.c.channel,
                       DELIVERIES.c.decided_at)
                .where(DELIVERIES.c.subscriber_id.in_(ids), DELIVERIES.c.decided_at > since,
                       DELIVERIES.c.status == "sent")
                .order_by(DELIVERIES.c.decided_at)):
            states[row.subscriber_id].sent.setdefault(row.channel, []).append(row.decided_at)

    for row in connection.execute(select(SCHEDULE).where(SCHEDULE.c.subscriber_id.in_(ids))
                                  .order_by(SCHEDULE.c.id)):
        state = states[row.subscriber_id]
        owner = enrolments.get(row.enrolment_id) if row.enrolment_id is not None else None
        state.due.append(Due(row.kind, row.due_at, row.workflow, owner, row.stage_seq,
                             row.step, row.occurrence, row.nominal_at, row.id, row.id))
        state.next_order = max(state.next_order, row.id)


# ---------------------------------------------------------------- writing back


def save(connection: Connection, states: Iterable[SubscriberState], now: datetime) -> None:
    """Write every change of these states (one transaction is the caller's)."""
    states = list(states)
    _save_subscribers(connection, states)
    _save_events(connection, states, now)
    _save_enrolments(connection, states)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in (
        "consents", "tags", "visits", "ledger", "deliveries")}
    for state in states:
        sid = state.id
        changes = state.changes
        rows["consents"] += [{"subscriber_id": sid, "channel": c.channel, "granted": c.granted,
                              "at": c.at, "source": c.source,
                              "event_seq": c.event.seq if c.event else None}
                             for c in changes.consents]
        rows["tags"] += [{"subscriber_id": sid, "tag": g.tag, "workflow": g.workflow,
                          "added_at": g.at, "event_seq": g.event.seq if g.event else None}
                         for g in changes.tags]
        rows["visits"] += [{"enrolment_id": v.enrolment.id, "subscriber_id": sid,
                            "workflow": v.workflow, "stage": v.stage, "seq": v.seq,
                            "entered_at": v.at, "cause": v.cause} for v in changes.visits]
        rows["ledger"] += [{"subscriber_id": sid, "workflow": e.workflow, "score": e.score,
                            "kind": e.kind, "delta": e.delta, "total": e.total, "rule": e.rule,
                            "event_seq": e.event.seq if e.event else None, "at": e.at}
                           for e in changes.ledger]
        rows["deliveries"] += [{
            "subscriber_id": sid, "workflow": d.workflow, "enrolment_id": d.enrolment.id,
            "stage": d.stage, "stage_seq": d.stage_seq, "step": d.step,
            "occurrence": d.occurrence, "step_rule": d.step_rule, "channel": d.channel,
            "message": d.message, "lang": d.lang, "status": d.status, "reason": d.reason,
            "content": d.content, "nominal_at": d.nominal_at, "decided_at": d.decided_at,
        } for d in changes.deliveries]
    for name, table in (("consents", CONSENTS), ("tags", TAGS), ("visits", VISITS),
                        ("ledger", LEDGER), ("deliveries", DELIVERIES)):
        if rows[name]:
            connection.execute(insert(table), rows[name])
    _save_scores(connection, states)
    _save_schedule(connection, states)


def _save_subscribers(connection: Connection, states: list[SubscriberState]) -> None:
    new = [s for s in states if s.id is None]
    changed = [s for s in states if s.subscriber_dirty and s.id is not None]
    if new:
        result = connection.execute(
            insert(SUBSCRIBERS).returning(SUBSCRIBERS.c.id, sort_by_parameter_order=True),
            [{"external_id": s.external_id, **_subscriber_values(s),
              "created_at": s.created_at} for s in new])
        for state, row in zip(new, result.all(), strict=True):
            state.id = row.id
    if changed:
        connection.execute(
            update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == bindparam("_id")),
            [{"_id": s.id, **_subscriber_values(s)} for s in changed])


def _subscriber_values(state: SubscriberState) -> dict[str, Any]:
    attributes = state.attributes
    zone, locale = attributes.get("timezone"), attributes.get("locale")
    return {"attributes": attributes,
            "timezone": zone[:64] if isinstance(zone, str) else None,
            "locale": locale[:35] if isinstance(locale, str) else None,
            "last_event_at": state.last_event_at, "processed_until": state.processed_until,
            "event_count": state.event_count}


def _save_events(connection: Connection, states: list[SubscriberState], now: datetime) -> None:
    rows = [{"subscriber_id": s.id, "seq": e.seq, "key": e.event.key, "type": e.event.type,
             "at": e.event.at, "properties": e.event.properties, "received_at": now}
            for s in states for e in s.changes.events]
    if rows:
        connection.execute(insert(EVENTS), rows)


def _save_enrolments(connection: Connection, states: list[SubscriberState]) -> None:
    new = [(s.id, e) for s in states for e in s.changes.enrolments if e.id is None]
    changed = [e for s in states for e in s.changes.enrolments if e.dirty and e.id is not None]
    if new:
        result = connection.execute(
            insert(ENROLMENTS).returning(ENROLMENTS.c.id, sort_by_parameter_order=True),
            [{"subscriber_id": sid, "workflow": e.workflow, "enrolled_at": e.enrolled_at,
              **_enrolment_values(e)} for sid, e in new])
        for (_, enrolment), row in zip(new, result.all(), strict=True):
            enrolment.id = row.id
    if changed:
        connection.execute(update(ENROLMENTS).where(ENROLMENTS.c.id == bindparam("_id")),
                           [{"_id": e.id, **_enrolment_values(e)} for e in changed])


def _enrolment_values(enrolment: Enrolment) -> dict[str, Any]:
    return {"stage": enrolment.stage, "stage_seq": enrolment.stage_seq,
            "stage_entered_at": enrolment.stage_entered_at, "ended_at": enrolment.ended_at,
            "exit_reason": enrolment.exit_reason, "seen": sorted(enrolment.seen)}


def _save_scores(connection: Connection, states: list[SubscriberState]) -> None:
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for state in states:
        for score in state.scores.values():
            if not score.dirty:
                continue
            values = {"total": score.total, "fit": {k: str(v) for k, v in score.fit.items()},
                      "contributions": [[c.rule, str(c.points), str(c.value), c.steps,
                                         to_micros(c.earned_at)] for c in score.contributions]}
            if score.stored:
                changed.append({"_sid": state.id, "_workflow": score.workflow,
                                "_score": score.score, **values})
            else:
                new.append({"subscriber_id": state.id, "workflow": score.workflow,
                            "score": score.score, **values})
    if new:
        connection.execute(insert(SCORES), new)
    if changed:
        connection.execute(update(SCORES).where(SCORES.c.subscriber_id == bindparam("_sid"),
                                                SCORES.c.workflow == bindparam("_workflow"),
                                                SCORES.c.score == bindparam("_score")), changed)


def _save_schedule(connection: Connection, states: list[SubscriberState]) -> None:
    removed = [i for s in states for i in s.changes.removed_due]
    if removed:
        connection.execute(delete(SCHEDULE).where(SCHEDULE.c.id.in_(removed)))
    new = sorted(((s, d) for s in states for d in s.due if d.id is None),
                 key=lambda pair: pair[1].order)
    if new:
        connection.execute(insert(SCHEDULE), [_due_values(s, d) for s, d in new])
    changed = [{"_id": d.id, "due_at": d.due_at, "nominal_at": d.nominal_at}
               for s in states for d in s.due if d.id is not None and d.dirty]
    if changed:
        connection.execute(update(SCHEDULE).where(SCHEDULE.c.id == bindparam("_id")), changed)


def _due_values(state: SubscriberState, due: Due) -> dict[str, Any]:
    return {"subscriber_id": state.id, "due_at": due.due_at, "kind": due.kind,
            "workflow": due.workflow,
            "enrolment_id": due.enrolment.id if due.enrolment is not None else None,
            "stage_seq": due.stage_seq, "step": due.step, "occurrence": due.occurrence,
            "nominal_at": due.nominal_at}


def next_due_at(connection: Connection) -> datetime | None:
    value: datetime | None = connection.execute(select(func.min(SCHEDULE.c.due_at))).scalar()
    return value
