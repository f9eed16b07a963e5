"""The engine: events in, due work done, decisions stored — one code path for every driver.

The live service, `nurture simulate` and tests drive the same `Engine`; they differ only in the
clock it reads (system time, which freezegun freezes, or a virtual clock) and the channels it
hands decided sends to. Work is done in batches of subscribers: their states are loaded with a
fixed number of queries, advanced in memory, and written back in one transaction, so that a
decided send and the state change that decided it commit together. Records and sends are handed
out only after that commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from channels.base import Channel, Outgoing, Rendered
from dsl import model as m
from dsl.diagnostics import did_you_mean
from engine.clock import Clock, SystemClock
from engine.events import Event
from engine.journey import Journey
from engine.plan import Plan, build_plan
from engine.records import Record
from engine.sending import SendOptions
from engine.state import StoredEvent, SubscriberState
from engine.state_cache import StateCache
from engine.store import states as store
from engine.store.bulk import BatchWriter
from engine.store.database import Conflict, Database, DatabaseUnavailable

log = logging.getLogger("nurture.engine")
RecordSink = Callable[[Record], None]
_EVENT_ORDER = attrgetter("at", "seq")
ATTEMPTS = 5
"""Tries of a batch that raced another process (the same new subscriber or event id)."""


class PartlyIngested(RuntimeError):
    """An ingest call failed after some of its batches were stored: trying the same events
    again would store those a second time (all but those with ids)."""


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: list[str] = field(default_factory=list)
    """Idempotency keys that were already stored (or repeated in the input): not processed."""
    erased: list[Event] = field(default_factory=list)
    """Events of erased subscribers, dated before their erasure: refused (a replay)."""


@dataclass(slots=True)
class TickResult:
    subscribers: int = 0
    """Subscribers whose due work was done."""
    records: int = 0
    """Timeline records written (counted only when a listener wants them)."""
    put_off: int = 0
    """Subscribers whose due work failed and was put off (`quarantine`)."""


class Engine:
    def __init__(self, catalog: m.Catalog, database: Database, *, clock: Clock | None = None,
                 channels: Mapping[str, Channel] | None = None,
                 on_record: RecordSink | None = None, push_needs_subscription: bool = True,
                 outbox: bool = True, batch_size: int = 500, cache_size: int = 20_000,
                 quarantine: timedelta | None = None,
                 fingerprint: Callable[[str], Sequence[str]] | None = None,
                 late_limit: timedelta | None = None) -> None:
        """`outbox=False` (the simulator, tests) hands decided sends to `channels` in process
        instead of writing them to the outbox for the dispatcher.

        `quarantine` (the service's choice): when a tick's batch fails with an unexpected
        exception, its subscribers are done one by one, and the due work of one that fails
        alone is put off by this long (logged), so that one subscriber whose state trips a
        bug does not stop the scheduled work of everyone after it. Without it, the
        exception propagates (the simulator and tests want to see it).

        `fingerprint` (the service's: the keyed hashes of a subscriber id, as erasure keeps it,
        with the current signing secret and each earlier one) lets ingestion refuse events of
        an erased subscriber dated before the erasure.

        `late_limit` (the service's `NURTURE_LATE_LIMIT`): pushes and e-mails that the engine
        reaches later than this after their time are skipped as `late` (see `SendOptions`)."""
        self.plan: Plan = build_plan(catalog)
        self.journey = Journey(self.plan, SendOptions(push_needs_subscription, outbox,
                                                           late_limit))
        self.database = database
        self.writer = BatchWriter(database.engine.dialect)
        self.clock: Clock = clock or SystemClock()
        self.channels = dict(channels or {})
        self.on_record = on_record
        self.batch_size = batch_size
        self.cache = StateCache(cache_size)
        self.quarantine = quarantine
        self.fingerprint = fingerprint

    # ------------------------------------------------------------ events

    def ingest(self, events: Iterable[Event]) -> IngestResult:
        """Store and process events (validated `Event`s), batch by batch of subscribers.

        Each subscriber is brought up to now: its events in time order, with the due work
        that falls between them, then its due work before now. Work due exactly now is
        `tick`'s, so that every event of this instant, however it arrives, comes first.
        """
        result = IngestResult()
        by_subscriber: dict[str, list[Event]] = {}
        seen_keys: set[str] = set()
        for event in events:
            if event.key is not None:
                if event.key in seen_keys:
                    result.duplicates.append(event.key)
                    continue
                seen_keys.add(event.key)
            by_subscriber.setdefault(event.subscriber, []).append(event)
        subscribers = list(by_subscriber)
        for start in range(0, len(subscribers), self.batch_size):
            batch = {s: by_subscriber[s] for s in subscribers[start:start + self.batch_size]}
            try:
                self._ingest_with_retries(batch, result)
            except Exception as problem:
                if start == 0:
                    raise  # nothing was stored
                raise PartlyIngested(f"{result.accepted} event(s) were stored before: "
                                     f"{problem}") from problem
        return result

    def _ingest_with_retries(self, batch: dict[str, list[Event]], result: IngestResult) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            duplicates: list[str] = []
            erased: list[Event] = []
            try:
                result.accepted += self._ingest_batch(batch, duplicates, erased)
            except Conflict as problem:
                if attempt == ATTEMPTS:
                    # Races end when the other writer commits; one that never ends is the
                    # stored rows refusing what the engine writes: the operator must see it.
                    log.error("the events of %d subscriber(s) were refused: writing them "
                              "conflicted with stored rows %d times in a row (%s); if this "
                              "repeats for the same subscribers, it is a fault, not a race",
                              len(batch), ATTEMPTS, problem,
                              extra={"subscribers": list(batch)[:10]})
                    raise
                continue  # another process raced us: read everything again
            result.duplicates += duplicates
            result.erased += erased
            return

    def _ingest_batch(self, batch: dict[str, list[Event]], duplicates: list[str],
                      erased: list[Event]) -> int:
        now = self.clock.now()
        accepted = 0
        with self.database.transaction() as connection:
            keys = [e.key for events in batch.values() for e in events if e.key is not None]
            stored_keys = store.existing_event_keys(connection, keys)
            states = store.load_by_external_id(connection, list(batch), self.plan, now,
                                               self.cache)
            gone = self._erased(connection, states)
            recording = self.on_record is not None
            for subscriber, events in batch.items():
                fresh = events
                if subscriber in gone:
                    fresh = [e for e in events if e.at > gone[subscriber]]
                    erased += [e for e in events if e.at <= gone[subscriber]]
                    if not fresh:
                        del states[subscriber]  # nobody to store
                        continue
                if stored_keys:
                    duplicates.extend(e.key for e in fresh if e.key in stored_keys)
                    fresh = [e for e in fresh if e.key is None or e.key not in stored_keys]
                    if not fresh:
                        continue
                if len(fresh) > 1:
                    fresh.sort(key=_EVENT_ORDER)
                accepted += len(fresh)
                state = states[subscriber]
                state.recording = recording
                rank = state.id if state.id is not None else min(e.seq for e in fresh)
                self.journey.advance(state, [StoredEvent(e) for e in fresh], now, rank,
                                     until_inclusive=False)
            store.save(connection, self.writer, states.values(), now)
        self._hand_out(states.values())
        return accepted

    def _erased(self, connection: Any,
                states: dict[str, SubscriberState]) -> dict[str, datetime]:
        """Subscribers new to the database who were erased before: when (the last time)."""
        if self.fingerprint is None:
            return {}
        new = {s: self.fingerprint(s) for s, state in states.items() if state.id is None}
        return store.erased_at(connection, new)

    # ------------------------------------------------------------ time

    def tick(self, stop: Callable[[], bool] | None = None) -> TickResult:
        """Do all work due up to now: only subscribers with due work are read.

        `stop` is asked between batches: a service shutting down finishes the batch in hand.
        """
        result = TickResult()
        done: set[int] = set()
        while stop is None or not stop():
            now = self.clock.now()
            taken: list[int] = []
            try:
                states = self._tick_batch(now, done, taken)
            except (Conflict, DatabaseUnavailable):
                raise  # not this batch's fault: nobody's work is put off for it
            except Exception:
                if self.quarantine is None or not taken:
                    raise
                states, put_off = self._tick_one_by_one(taken, now)
                result.put_off += put_off
            if states is None:
                return result  # nothing due, or other workers have it all
            result.subscribers += len(states)
            result.records += sum(len(s.records) for s in states)
            self._hand_out(states)
        return result

    def _tick_batch(self, now: datetime, done: set[int], taken: list[int],
                    ids: list[int] | None = None,
                    then: Callable[[SubscriberState], None] | None = None
                    ) -> list[SubscriberState] | None:
        """One transaction: find the next due subscribers (unless `ids` says which), advance
        them (and do `then` to each), save them. On PostgreSQL finding them locks them, until
        the commit."""
        with self.database.transaction() as connection:
            if ids is None:
                ids = store.due_subscriber_ids(connection, now, self.batch_size)
                if not ids:
                    return None
                if done.issuperset(ids):
                    raise RuntimeError(f"due work of subscribers {ids[:5]} was not consumed")
                done.update(ids)
                taken += ids
            states = store.load_by_id(connection, ids, self.plan, self.cache)
            if not states:
                return None
            for state in states.values():
                assert state.id is not None
                state.recording = self.on_record is not None
                self.journey.advance(state, [], now, state.id)
                if then is not None:
                    then(state)
            store.save(connection, self.writer, states.values(), now)
        return list(states.values())

    def _tick_one_by_one(self, ids: list[int],
                         now: datetime) -> tuple[list[SubscriberState], int]:
        """A failed batch again, a subscriber at a time; one that fails alone waits. The
        states done, and how many subscribers' work was put off."""
        assert self.quarantine is not None
        states: list[SubscriberState] = []
        put_off = 0
        for subscriber_id in ids:
            try:
                states += self._tick_batch(now, set(), [], [subscriber_id]) or []
            except (Conflict, DatabaseUnavailable):
                raise  # as from a whole batch
            except Exception:
                until = now + self.quarantine
                log.exception("the due work of subscriber %d failed; it is put off until %s",
                              subscriber_id, f"{until:%Y-%m-%dT%H:%M:%SZ}",
                              extra={"subscriber_id": subscriber_id})
                with self.database.transaction() as connection:
                    store.put_off_due(connection, subscriber_id, now, until)
                put_off += 1
        return states, put_off

    def move(self, workflow: str, source: str, target: str) -> int:
        """Move everyone enrolled in `source` (a stage an edit renamed or removed, or any
        other) into `target`, entered now as by a transition; how many were moved. Each is
        first brought up to now, as a tick would."""
        plan = self.plan.by_name.get(workflow)
        if plan is None:
            raise ValueError(f"no workflow '{workflow}' is loaded"
                             f"{did_you_mean(workflow, self.plan.by_name)}")
        if target not in plan.stages:
            raise ValueError(f"workflow '{workflow}' has no stage '{target}'"
                             f"{did_you_mean(target, plan.stages)}")
        moved, after, moved_before = 0, 0, 0
        now = self.clock.now()

        def carry(state: SubscriberState) -> None:
            nonlocal moved
            enrolment = state.enrolments.get(workflow)
            if enrolment is not None and enrolment.stage == source:
                assert state.id is not None
                self.journey.move(state, workflow, target, now, state.id)
                moved += 1

        while True:
            with self.database.reading() as connection:
                ids = store.enrolled_in(connection, workflow, source, self.batch_size, after)
            if not ids:  # end of a pass; on PostgreSQL busy subscribers were skipped
                if after == 0 or moved == moved_before:
                    return moved
                after, moved_before = 0, moved
                continue
            after = ids[-1]
            now = self.clock.now()
            self._hand_out(self._tick_batch(now, set(), [], ids, carry) or [])

    def next_due_at(self) -> datetime | None:
        """When the earliest pending work is due (for the simulator and the scheduler)."""
        with self.database.transaction() as connection:
            return store.next_due_at(connection)

    # ------------------------------------------------------------ after commit

    def _hand_out(self, states: Iterable[SubscriberState]) -> None:
        """Records and decided sends go out after commit; then the states are kept."""
        states = list(states)
        late = 0
        for state in states:
            if self.on_record is not None:
                for record in state.records:
                    self.on_record(record)
            for delivery in state.changes.deliveries:
                late += delivery.reason == "late"
                channel = self.channels.get(delivery.channel)
                if channel is None or delivery.status != "sent":
                    continue
                key = (f"{state.external_id}/{delivery.workflow}/{delivery.enrolment.id}/"
                       f"{delivery.stage_seq}/{delivery.step}/{delivery.occurrence}")
                rendered = Rendered(delivery.channel, delivery.message, delivery.lang,
                                    delivery.content)
                address = state.attributes.get("email") if delivery.channel == "email" else None
                channel.deliver(Outgoing(key, state.external_id, delivery.workflow, rendered,
                                         address if isinstance(address, str) else None))
        for state in states:
            state.settle(self.plan.longest_cap_window, self.plan.longest_max_window)
        self.cache.keep(states)
        if late:  # an outage, or events from the past: the operator should know
            log.warning("%d push(es) and e-mail(s) were due more than the late limit ago and "
                        "were not sent (skipped as late)", late, extra={"late": late})
