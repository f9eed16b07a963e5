"""Loading subscribers' states for a batch, and writing back what the journey changed.

A batch costs a fixed number of statements whatever its size: each table is read once with
`IN (…)` (on PostgreSQL `= ANY(array)`) over the batch's subscribers (through an index), and
each kind of change is written with one executemany. Nothing here scans a table: the cost of
a batch follows the batch, not the number of subscribers stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    String,
    Table,
    and_,
    any_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from engine.plan import Plan
from engine.state import (
    Contribution,
    Due,
    Enrolment,
    OutboxCancel,
    ScoreState,
    StageMember,
    StoredEvent,
    SubscriberState,
)
from engine.state_cache import StateCache
from engine.store import tables as t
from engine.store.bulk import BatchWriter
from engine.store.types import from_micros, json_dumps, to_micros

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
ERASURES = cast(Table, t.Erasure.__table__)
DISPATCHES = cast(Table, t.Dispatch.__table__)


def among(connection: Connection, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column` is one of `values`, passed as a single parameter: on PostgreSQL
    `column = ANY(array)`, on SQLite `column IN (SELECT value FROM json_each(…))`.

    A batch's lists are hundreds long; as `IN (?, ?, …)` the statement would be rendered
    again for every length and every value bound one by one, costing more than the lookups.
    """
    if connection.dialect.name == "postgresql":
        return cast(ColumnElement[bool],
                    column == any_(literal(list(values), ARRAY(column.type))))
    listed = func.json_each(literal(json_dumps(list(values)), String)).table_valued("value")
    return cast(ColumnElement[bool], column.in_(select(listed.c.value)))


def existing_event_keys(connection: Connection, keys: Sequence[str]) -> set[str]:
    if not keys:
        return set()
    rows = connection.execute(select(EVENTS.c.key).where(among(connection, EVENTS.c.key, keys)))
    return {row.key for row in rows}


def due_subscriber_ids(connection: Connection, now: datetime, limit: int) -> list[int]:
    """Subscribers with work due by `now`, earliest first (an index range scan on due_at).

    On PostgreSQL the subscribers are locked as they are found, skipping those another
    transaction holds: several workers ticking at once each take the next free subscribers
    instead of all finding the same first ones, locked, and giving up.
    """
    query = (select(SCHEDULE.c.subscriber_id).where(SCHEDULE.c.due_at <= now)
             .order_by(SCHEDULE.c.due_at).limit(limit))
    if connection.dialect.name == "postgresql":
        query = (query.join(SUBSCRIBERS, SUBSCRIBERS.c.id == SCHEDULE.c.subscriber_id)
                 .with_for_update(of=SUBSCRIBERS, skip_locked=True))
    rows = connection.execute(query)
    return list(dict.fromkeys(row.subscriber_id for row in rows))


def erased_at(connection: Connection,
              fingerprints: dict[str, Sequence[str]]) -> dict[str, datetime]:
    """Subscriber id -> when they were last erased, for the ids (given with their keyed
    hashes: one per signing secret, current and earlier) that were."""
    if not fingerprints:
        return {}
    ids = {hashed: external_id for external_id, hashes in fingerprints.items()
           for hashed in hashes}
    rows = connection.execute(
        select(ERASURES.c.subscriber, func.max(ERASURES.c.erased_at).label("at"))
        .where(among(connection, ERASURES.c.subscriber, list(ids)))
        .group_by(ERASURES.c.subscriber))
    erased: dict[str, datetime] = {}
    for row in rows:
        external_id = ids[row.subscriber]
        erased[external_id] = max(row.at, erased.get(external_id, row.at))
    return erased


def load_by_external_id(connection: Connection, external_ids: Sequence[str], plan: Plan,
                        now: datetime, cache: StateCache) -> dict[str, SubscriberState]:
    """States of these subscribers; those not stored yet come back new (id None)."""
    # Lock the rows (PostgreSQL): one transaction at a time works on a subscriber. In id
    # order, so that two batches never wait for each other in a circle.
    versions = connection.execute(
        select(SUBSCRIBERS.c.id, SUBSCRIBERS.c.external_id, SUBSCRIBERS.c.version)
        .where(among(connection, SUBSCRIBERS.c.external_id, external_ids))
        .order_by(SUBSCRIBERS.c.id)
        .with_for_update()).all()
    states = _current(connection, versions, plan, cache)
    for external_id in external_ids:
        if external_id not in states:
            states[external_id] = SubscriberState(external_id, None, {}, now)
    return states


def peek(connection: Connection, external_ids: Sequence[str],
         plan: Plan) -> dict[str, SubscriberState]:
    """States of these subscribers as stored, for a reader (`nurture status`): no lock is
    taken and nothing is kept, so the engine's work goes on meanwhile."""
    versions = connection.execute(
        select(SUBSCRIBERS.c.id, SUBSCRIBERS.c.external_id, SUBSCRIBERS.c.version)
        .where(among(connection, SUBSCRIBERS.c.external_id, external_ids))
        .order_by(SUBSCRIBERS.c.id)).all()
    return _current(connection, versions, plan, StateCache(0))


def stage_pages(connection: Connection, workflow: str, stage: str,
                page: int = 1000) -> Iterator[list[StageMember]]:
    """Everyone in a stage, a page at a time, read without locks (`nurture waiting`): four
    reads a page, of what judging the stage's transitions needs. Memory follows the page,
    not the stage."""
    after = 0
    while True:
        enrolled = connection.execute(
            select(ENROLMENTS.c.subscriber_id, ENROLMENTS.c.stage_entered_at)
            .where(ENROLMENTS.c.workflow == workflow, ENROLMENTS.c.stage == stage,
                   ENROLMENTS.c.ended_at.is_(None), ENROLMENTS.c.subscriber_id > after)
            .order_by(ENROLMENTS.c.subscriber_id).limit(page)).all()
        if not enrolled:
            return
        after = enrolled[-1].subscriber_id
        ids = [row.subscriber_id for row in enrolled]
        entered: dict[int, datetime] = {row.subscriber_id: row.stage_entered_at
                                         for row in enrolled}
        members: dict[int, StageMember] = {}
        for row in connection.execute(
                select(SUBSCRIBERS.c.id, SUBSCRIBERS.c.external_id, SUBSCRIBERS.c.attributes,
                       SUBSCRIBERS.c.last_event_at)
                .where(among(connection, SUBSCRIBERS.c.id, ids))):
            members[row.id] = StageMember(row.external_id, row.attributes, row.last_event_at,
                                          entered[row.id])
        totals = workflow_totals(connection, workflow, ids)
        tags = tags_of(connection, ids)
        for key, member in members.items():
            member.totals = totals.get(key, {})
            member.tags = tags.get(key, set())
        yield [members[i] for i in ids]


def workflow_totals(connection: Connection, workflow: str,
                    ids: Sequence[int]) -> dict[int, dict[str, Decimal]]:
    """The workflow's score totals of these subscribers (a report's page), by score name;
    a subscriber without any is not there."""
    found: dict[int, dict[str, Decimal]] = {}
    for row in connection.execute(
            select(SCORES.c.subscriber_id, SCORES.c.score, SCORES.c.total)
            .where(among(connection, SCORES.c.subscriber_id, ids),
                   SCORES.c.workflow == workflow)):
        found.setdefault(row.subscriber_id, {})[row.score] = row.total
    return found


def tags_of(connection: Connection, ids: Sequence[int]) -> dict[int, set[str]]:
    """These subscribers' tags (a report's page); a subscriber without any is not there."""
    found: dict[int, set[str]] = {}
    for row in connection.execute(select(TAGS.c.subscriber_id, TAGS.c.tag)
                                  .where(among(connection, TAGS.c.subscriber_id, ids))):
        found.setdefault(row.subscriber_id, set()).add(row.tag)
    return found


def stages_in_use(connection: Connection, workflow: str) -> list[str]:
    """The stages someone is in now (an edit may have removed some from the files)."""
    return list(connection.execute(
        select(ENROLMENTS.c.stage).distinct()
        .where(ENROLMENTS.c.workflow == workflow, ENROLMENTS.c.ended_at.is_(None))
        .order_by(ENROLMENTS.c.stage)).scalars())


def enrolled_in(connection: Connection, workflow: str, stage: str, limit: int,
                after: int = 0) -> list[int]:
    """Subscribers (ids above `after`, ascending) with an active enrolment in this stage."""
    return list(connection.execute(
        select(ENROLMENTS.c.subscriber_id)
        .where(ENROLMENTS.c.workflow == workflow, ENROLMENTS.c.stage == stage,
               ENROLMENTS.c.ended_at.is_(None), ENROLMENTS.c.subscriber_id > after)
        .order_by(ENROLMENTS.c.subscriber_id).limit(limit)).scalars())


def load_by_id(connection: Connection, ids: Sequence[int], plan: Plan,
               cache: StateCache) -> dict[str, SubscriberState]:
    """States of the subscribers no other transaction is working on (PostgreSQL skips the
    locked ones: another worker, or an API request, has them)."""
    versions = connection.execute(
        select(SUBSCRIBERS.c.id, SUBSCRIBERS.c.external_id, SUBSCRIBERS.c.version)
        .where(among(connection, SUBSCRIBERS.c.id, ids)).order_by(SUBSCRIBERS.c.id)
        .with_for_update(skip_locked=True)).all()
    return _current(connection, versions, plan, cache)


def _current(connection: Connection, versions: Sequence[Any], plan: Plan,
             cache: StateCache) -> dict[str, SubscriberState]:
    """Kept states that are still current, and the others read from the database."""
    states, missing = cache.take(versions)
    if missing:
        rows = connection.execute(
            select(SUBSCRIBERS).where(among(connection, SUBSCRIBERS.c.id, missing))).all()
        states.update(_from_rows(connection, rows, plan))
    return states


def _from_rows(connection: Connection, rows: Sequence[Any],
               plan: Plan) -> dict[str, SubscriberState]:
    states: dict[int, SubscriberState] = {}
    for row in rows:
        states[row.id] = SubscriberState(
            row.external_id, row.id, dict(row.attributes), row.created_at,
            row.last_event_at, row.processed_until, row.event_count, row.version,
            row.delivery_count)
    if states:
        _load_details(connection, states, plan)
    return {state.external_id: state for state in states.values()}


def _load_details(connection: Connection, states: dict[int, SubscriberState], plan: Plan) -> None:
    ids = list(states)
    marks = [s.processed_until for s in states.values() if s.processed_until is not None]
    oldest = min(marks) if marks else None

    for row in connection.execute(select(CONSENTS.c.subscriber_id, CONSENTS.c.channel,
                                         CONSENTS.c.granted)
                                  .where(among(connection, CONSENTS.c.subscriber_id, ids))
                                  .order_by(CONSENTS.c.id)):
        states[row.subscriber_id].consents[row.channel] = row.granted
    for row in connection.execute(select(TAGS.c.subscriber_id, TAGS.c.tag)
                                  .where(among(connection, TAGS.c.subscriber_id, ids))):
        states[row.subscriber_id].tags.add(row.tag)
    for row in connection.execute(
            select(PUSH_SUBSCRIPTIONS.c.subscriber_id, PUSH_SUBSCRIPTIONS.c.id)
            .where(among(connection, PUSH_SUBSCRIPTIONS.c.subscriber_id, ids),
                   PUSH_SUBSCRIPTIONS.c.removed_at.is_(None))
            .order_by(PUSH_SUBSCRIPTIONS.c.id)):
        states[row.subscriber_id].push_subscriptions.append(row.id)

    enrolments: dict[int, Enrolment] = {}
    for row in connection.execute(select(ENROLMENTS).where(
            among(connection, ENROLMENTS.c.subscriber_id, ids), ENROLMENTS.c.ended_at.is_(None))):
        enrolment = Enrolment(row.workflow, row.stage, row.stage_seq, row.stage_entered_at,
                              row.enrolled_at, set(row.seen), row.id)
        enrolments[row.id] = enrolment
        states[row.subscriber_id].enrolments[row.workflow] = enrolment

    for row in connection.execute(
            select(SCORES).where(among(connection, SCORES.c.subscriber_id, ids))):
        states[row.subscriber_id].scores[(row.workflow, row.score)] = ScoreState(
            row.workflow, row.score, row.total,
            {k: Decimal(v) for k, v in row.fit.items()},
            [_contribution(form) for form in row.contributions],
            stored=True, stored_fit=dict(row.fit),
            stored_contributions=list(row.contributions))

    if plan.capped_rules and oldest is not None:
        since = oldest - plan.longest_max_window
        legacy = plan.capped_refs  # rows written before rule keys, by the rule's line
        for row in connection.execute(
                select(LEDGER.c.subscriber_id, LEDGER.c.rule, LEDGER.c.rule_key,
                       LEDGER.c.delta, LEDGER.c.at)
                .where(among(connection, LEDGER.c.subscriber_id, ids), LEDGER.c.at > since,
                       LEDGER.c.kind == "event",
                       or_(LEDGER.c.rule_key.in_(sorted(plan.capped_rules)),
                           and_(LEDGER.c.rule_key.is_(None),
                                LEDGER.c.rule.in_(sorted(legacy)))))
                .order_by(LEDGER.c.at, LEDGER.c.id)):
            key = row.rule_key or legacy[row.rule]
            states[row.subscriber_id].capped.setdefault(key, []).append((row.at, row.delta))

    if plan.longest_cap_window and oldest is not None:
        since = oldest - plan.longest_cap_window
        for row in connection.execute(
                select(DELIVERIES.c.subscriber_id, DELIVERIES.c.channel,
                       DELIVERIES.c.decided_at)
                .where(among(connection, DELIVERIES.c.subscriber_id, ids),
                       DELIVERIES.c.decided_at > since,
                       DELIVERIES.c.status == "sent")
                .order_by(DELIVERIES.c.decided_at)):
            states[row.subscriber_id].sent.setdefault(row.channel, []).append(row.decided_at)

    for row in connection.execute(
            select(SCHEDULE).where(among(connection, SCHEDULE.c.subscriber_id, ids))):
        state = states[row.subscriber_id]
        owner = enrolments.get(row.enrolment_id) if row.enrolment_id is not None else None
        state.schedule(Due(row.kind, row.due_at, row.workflow, owner, row.stage_seq,
                           row.step, row.occurrence, row.nominal_at, row.seq, row.step_key,
                           stored=True))
        state.next_order = max(state.next_order, row.seq)


# ---------------------------------------------------------------- writing back

SUBSCRIBER_COLUMNS = ("last_event_at", "processed_until", "event_count", "version",
                      "delivery_count")
ATTRIBUTE_COLUMNS = ("attributes", "timezone", "locale")
ENROLMENT_COLUMNS = ("stage", "stage_seq", "stage_entered_at", "ended_at", "exit_reason",
                     "seen")
SCHEDULE_COLUMNS = ("subscriber_id", "seq", "due_at", "kind", "workflow", "enrolment_id",
                    "stage_seq", "step", "occurrence", "nominal_at", "step_key")


def save(connection: Connection, writer: BatchWriter, states: Iterable[SubscriberState],
         now: datetime) -> None:
    """Write every change of these states (one transaction is the caller's).

    Rows written are marked stored as they are written (a batch that fails is thrown away
    whole, states included); each subscriber's `version` goes up by one, and the caller
    settles the states after commit.
    """
    states = list(states)
    _save_subscribers(connection, writer, states)
    _save_enrolments(connection, writer, states)
    events, consents, tags, visits, ledger, deliveries, dispatches = [], [], [], [], [], [], []
    for state in states:
        sid = state.id
        changes = state.changes
        events += [(sid, e.seq, e.event.key, e.event.type, e.event.at, e.event.properties, now)
                   for e in changes.events]
        consents += [(sid, c.channel, c.granted, c.at, c.source, _seq(c.event))
                     for c in changes.consents]
        tags += [(sid, g.tag, g.workflow, g.at, _seq(g.event)) for g in changes.tags]
        visits += [(v.enrolment.id, sid, v.workflow, v.stage, v.seq, v.at, v.cause)
                   for v in changes.visits]
        ledger += [(sid, e.workflow, e.score, e.kind, e.delta, e.total, e.rule, _seq(e.event),
                    e.at, e.rule_key) for e in changes.ledger]
        deliveries += [(sid, d.seq, d.workflow, d.enrolment.id, d.stage, d.stage_seq, d.step,
                        d.occurrence, d.step_rule, d.channel, d.message, d.lang, d.status,
                        d.reason, d.content, d.nominal_at, d.decided_at)
                       for d in changes.deliveries]
        dispatches += [(sid, d.seq, r.channel, r.push_subscription, r.address,
                        "cancelled" if r.cancelled else "queued", 0,
                        None if r.cancelled else d.decided_at, r.expires_at, r.cancelled,
                        now if r.cancelled else None, r.quiet)
                       for d in changes.deliveries for r in d.dispatches]
    writer.insert(connection, EVENTS, ("subscriber_id", "seq", "key", "type", "at",
                                       "properties", "received_at"), events)
    writer.insert(connection, CONSENTS, ("subscriber_id", "channel", "granted", "at", "source",
                                         "event_seq"), consents)
    writer.insert(connection, TAGS, ("subscriber_id", "tag", "workflow", "added_at",
                                     "event_seq"), tags)
    writer.insert(connection, VISITS, ("enrolment_id", "subscriber_id", "workflow", "stage",
                                       "seq", "entered_at", "cause"), visits)
    writer.insert(connection, LEDGER, ("subscriber_id", "workflow", "score", "kind", "delta",
                                       "total", "rule", "event_seq", "at", "rule_key"), ledger)
    writer.insert(connection, DELIVERIES, (
        "subscriber_id", "seq", "workflow", "enrolment_id", "stage", "stage_seq", "step",
        "occurrence", "step_rule", "channel", "message", "lang", "status", "reason", "content",
        "nominal_at", "decided_at"), deliveries)
    _amend_queued(connection, writer, states, now)  # (before this batch's dispatches are written)
    writer.insert(connection, DISPATCHES, (
        "subscriber_id", "delivery_seq", "channel", "push_subscription_id", "address", "status",
        "attempts", "due_at", "expires_at", "last_error", "finished_at", "quiet"), dispatches)
    _save_scores(connection, writer, states)
    _save_schedule(connection, writer, states)


def _amend_queued(connection: Connection, writer: BatchWriter, states: list[SubscriberState],
                  now: datetime) -> None:
    """Amend stored pushes and e-mails not yet sent: a new address for e-mails
    (`Journey._readdress`), cancelled ones (`Journey._cancel_queued`). Stages are left all
    the time: their cancels are one compiled statement for the batch (a statement per
    subscriber took a third of a batch of web visits); the rest is rare (an address changed,
    a withdrawal, an exit): one statement each."""
    left = [{"reason": cancel.reason, "subscriber": state.id, "enrolment": cancel.enrolment.id,
             "visit": cancel.stage_seq, "before": cancel.before}
            for state in states for cancel in state.changes.cancels
            if cancel.stage_seq is not None and cancel.enrolment is not None]
    writer.run(connection, "cancel the sends of a stage left", _cancel_visit, left,
               {"status": "cancelled", "due": None, "at": now, "queued": "queued",
                **{f"channel{i}": name for i, name in enumerate(OutboxCancel.CHANNELS)}})
    for state in states:
        if state.changes.readdressed is not None:
            connection.execute(update(DISPATCHES).where(
                DISPATCHES.c.subscriber_id == state.id, DISPATCHES.c.channel == "email",
                DISPATCHES.c.status == "queued").values(address=state.changes.readdressed))
        for cancel in state.changes.cancels:
            if cancel.stage_seq is not None:
                continue  # above
            condition = [DISPATCHES.c.subscriber_id == state.id,
                         DISPATCHES.c.channel.in_(OutboxCancel.CHANNELS)]
            if cancel.channel is not None:
                condition.append(DISPATCHES.c.channel == cancel.channel)
            if cancel.enrolment is not None:
                condition.append(DISPATCHES.c.delivery_seq.in_(
                    select(DELIVERIES.c.seq).where(
                        DELIVERIES.c.subscriber_id == state.id,
                        DELIVERIES.c.enrolment_id == cancel.enrolment.id)))
            end_queued(connection, condition, "cancelled", cancel.reason, now)


def _cancel_visit() -> tuple[Any, dict[str, Any]]:
    """`end_queued` for the pushes and e-mails of one stage visit decided before it ended."""
    dispatch, delivery = DISPATCHES.c, DELIVERIES.c
    channels = [f"channel{i}" for i in range(len(OutboxCancel.CHANNELS))]
    statement = update(DISPATCHES).where(
        dispatch.subscriber_id == bindparam("subscriber"),
        dispatch.status == bindparam("queued"),
        dispatch.channel.in_([bindparam(name) for name in channels]),
        dispatch.delivery_seq.in_(select(delivery.seq).where(
            delivery.subscriber_id == dispatch.subscriber_id,
            delivery.enrolment_id == bindparam("enrolment"),
            delivery.stage_seq == bindparam("visit"),
            delivery.decided_at < bindparam("before"))),
    ).values(status=bindparam("status"), due_at=bindparam("due"),
             finished_at=bindparam("at"), last_error=bindparam("reason"))
    binds = {"status": dispatch.status, "due": dispatch.due_at, "at": dispatch.finished_at,
             "reason": dispatch.last_error, "subscriber": dispatch.subscriber_id,
             "queued": dispatch.status, "enrolment": delivery.enrolment_id,
             "visit": delivery.stage_seq, "before": delivery.decided_at,
             **{name: dispatch.channel for name in channels}}
    return statement, binds


def end_queued(connection: Connection, condition: Sequence[ColumnElement[bool]], status: str,
               reason: str, at: datetime) -> None:
    """End the dispatches still queued that match `condition`, unsent: `gone`, `cancelled`
    (one in flight, `sending`, is the dispatcher's to finish)."""
    connection.execute(update(DISPATCHES).where(DISPATCHES.c.status == "queued", *condition)
                       .values(status=status, due_at=None, finished_at=at, last_error=reason))


def _seq(event: StoredEvent | None) -> int | None:
    return event.seq if event is not None else None


def _save_subscribers(connection: Connection, writer: BatchWriter,
                      states: list[SubscriberState]) -> None:
    new = [s for s in states if s.id is None]
    changed = [s for s in states if s.id is not None and s.subscriber_dirty]
    if new:  # first sight only; their ids are needed for every other row
        rows = [(s.external_id, s.created_at, *_progress(s), *_attributes(s)) for s in new]
        ids = _insert_with_ids(connection, writer, SUBSCRIBERS,
                               ("external_id", "created_at", *SUBSCRIBER_COLUMNS,
                                *ATTRIBUTE_COLUMNS), rows)
        for state, new_id in zip(new, ids, strict=True):
            state.id = new_id
    writer.update(connection, SUBSCRIBERS, SUBSCRIBER_COLUMNS, ("id",),
                  [(*_progress(s), s.id) for s in changed])
    writer.update(connection, SUBSCRIBERS, ATTRIBUTE_COLUMNS, ("id",),
                  [(*_attributes(s), s.id) for s in changed if s.attributes_dirty])


def _insert_with_ids(connection: Connection, writer: BatchWriter, table: Table,
                     columns: Sequence[str], rows: list[tuple[Any, ...]]) -> list[int]:
    """Insert rows whose new ids the caller needs, returning the ids in the rows' order.

    On PostgreSQL the ids are taken from the table's sequence first and the rows go through
    the driver's pipelined executemany: `INSERT … RETURNING` of many rows is one long
    statement with thousands of parameters, which psycopg parses anew every time (it caches
    statements of up to 50 parameters): new subscribers were ingested at half the rate. On
    SQLite one `INSERT … RETURNING` per batch costs little.
    """
    if connection.dialect.name == "postgresql":
        ids = list(map(int, connection.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence(%(t)s, 'id')) FROM generate_series(1, %(n)s)",
            {"t": table.name, "n": len(rows)}).scalars()))
        writer.insert(connection, table, ("id", *columns),
                      [(new_id, *row) for new_id, row in zip(ids, rows, strict=True)])
        return ids
    result = connection.execute(
        insert(table).returning(table.c.id, sort_by_parameter_order=True),
        [dict(zip(columns, row, strict=True)) for row in rows])
    return [row.id for row in result.all()]


def _progress(state: SubscriberState) -> tuple[Any, ...]:
    return (state.last_event_at, state.processed_until, state.event_count, state.version + 1,
            state.delivery_count)


def _attributes(state: SubscriberState) -> tuple[Any, ...]:
    attributes = state.attributes
    zone, locale = attributes.get("timezone"), attributes.get("locale")
    return (attributes, zone[:64] if isinstance(zone, str) else None,
            locale[:35] if isinstance(locale, str) else None)


def _save_enrolments(connection: Connection, writer: BatchWriter,
                     states: list[SubscriberState]) -> None:
    new = [(s.id, e) for s in states for e in s.changes.enrolments if e.id is None]
    changed = [e for s in states for e in s.changes.enrolments if e.dirty and e.id is not None]
    # Ended ones first: a subscriber who left a workflow and came back in this batch has a
    # stored enrolment to end before the new one may be active (`uq_enrolments_active`).
    writer.update(connection, ENROLMENTS, ENROLMENT_COLUMNS, ("id",),
                  [(*_enrolment_values(e), e.id) for e in changed])
    if new:
        rows = [(sid, e.workflow, e.enrolled_at, *_enrolment_values(e)) for sid, e in new]
        ids = _insert_with_ids(connection, writer, ENROLMENTS,
                               ("subscriber_id", "workflow", "enrolled_at", *ENROLMENT_COLUMNS),
                               rows)
        for (_, enrolment), new_id in zip(new, ids, strict=True):
            enrolment.id = new_id
    for state in states:
        for enrolment in state.changes.enrolments:
            enrolment.dirty = False


def _enrolment_values(enrolment: Enrolment) -> tuple[Any, ...]:
    return (enrolment.stage, enrolment.stage_seq, enrolment.stage_entered_at,
            enrolment.ended_at, enrolment.exit_reason, sorted(enrolment.seen))


def _save_scores(connection: Connection, writer: BatchWriter,
                 states: list[SubscriberState]) -> None:
    new: list[tuple[Any, ...]] = []
    changed: list[tuple[Any, ...]] = []
    for state in states:
        for score in state.scores.values():
            if not score.dirty:
                continue
            if score.stored_fit is None:
                score.stored_fit = {k: str(v) for k, v in score.fit.items()}
            stored = score.stored_contributions
            if stored is None:
                score.stored_contributions = [_stored_form(c) for c in score.contributions]
            elif len(stored) < len(score.contributions):
                stored += [_stored_form(c) for c in score.contributions[len(stored):]]
            values = (score.total, score.stored_fit, score.stored_contributions)
            if score.stored:
                changed.append((*values, state.id, score.workflow, score.score))
            else:
                new.append((state.id, score.workflow, score.score, *values))
            score.stored, score.dirty = True, False
    writer.insert(connection, SCORES, ("subscriber_id", "workflow", "score", "total", "fit",
                                       "contributions"), new)
    writer.update(connection, SCORES, ("total", "fit", "contributions"),
                  ("subscriber_id", "workflow", "score"), changed)


def _stored_form(contribution: Contribution) -> list[Any]:
    form = contribution.stored_form
    if form is None:
        form = contribution.stored_form = [
            str(contribution.points), str(contribution.value), contribution.steps,
            to_micros(contribution.earned_at)]
    return form


def _contribution(form: list[Any]) -> Contribution:
    """A stored contribution; one written before 2026-12 begins with its rule (unread)."""
    points, value, steps, earned = form[-4:]
    return Contribution(Decimal(points), Decimal(value), steps, from_micros(earned), form)


def _save_schedule(connection: Connection, writer: BatchWriter,
                   states: list[SubscriberState]) -> None:
    writer.delete(connection, SCHEDULE, ("subscriber_id", "seq"),
                  [(s.id, seq) for s in states for seq in s.changes.removed_due])
    new: list[tuple[Any, ...]] = []
    moved: list[tuple[Any, ...]] = []
    for state in states:
        for due in state.due:
            if not due.stored:
                new.append((state.id, due.order, due.due_at, due.kind, due.workflow,
                            due.enrolment.id if due.enrolment is not None else None,
                            due.stage_seq, due.step, due.occurrence, due.nominal_at,
                            due.key))
                due.stored, due.dirty = True, False
            elif due.dirty:
                moved.append((due.due_at, due.nominal_at, state.id, due.order))
                due.dirty = False
    writer.insert(connection, SCHEDULE, SCHEDULE_COLUMNS, new)
    writer.update(connection, SCHEDULE, ("due_at", "nominal_at"), ("subscriber_id", "seq"),
                  moved)


def put_off_due(connection: Connection, subscriber_id: int, now: datetime,
                until: datetime) -> None:
    """Move a subscriber's work due by `now` to `until` (its nominal times stay, and so does
    the order of its postponed sends). The version moves on, so that no process uses a state
    it kept in memory with the old times."""
    connection.execute(update(SCHEDULE).where(SCHEDULE.c.subscriber_id == subscriber_id,
                                              SCHEDULE.c.due_at <= now).values(due_at=until))
    connection.execute(update(SUBSCRIBERS).where(SUBSCRIBERS.c.id == subscriber_id)
                       .values(version=SUBSCRIBERS.c.version + 1))


def next_due_at(connection: Connection) -> datetime | None:
    value: datetime | None = connection.execute(select(func.min(SCHEDULE.c.due_at))).scalar()
    return value
