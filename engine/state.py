"""A subscriber's state in memory while the engine works on it, and what changed.

The store loads the states of a batch of subscribers with a few set-based queries, the journey
works on them in plain Python, and the store writes back only what changed, in one
transaction: rows created here have `id is None`, rows changed here are marked `dirty`, and
everything append-only (events, consents, ledger, visits, deliveries) is collected in `Changes`.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any, ClassVar, Protocol

from engine.events import Event
from engine.records import Record


@dataclass(slots=True, eq=False)
class StoredEvent:
    """An event accepted in this batch; `seq` numbers it among the subscriber's events."""

    event: Event
    seq: int = 0


@dataclass(slots=True, eq=False)
class Enrolment:
    workflow: str
    stage: str
    stage_seq: int
    stage_entered_at: datetime
    enrolled_at: datetime
    seen: set[str]
    """Of the events an `after … unless` of the current stage watches for, those that arrived
    since entering it."""
    id: int | None = None
    ended_at: datetime | None = None
    exit_reason: str | None = None
    dirty: bool = False


@dataclass(slots=True, eq=False)
class Due:
    """Pending work: `step`, `send` (postponed), `move`, `idle` or `decay`."""

    kind: str
    due_at: datetime
    workflow: str
    enrolment: Enrolment | None
    stage_seq: int
    step: int
    """The step's (or transition's) number in the stage as it was when the subscriber
    entered it: with `stage_seq` and `occurrence`, what names a delivery of this visit."""
    occurrence: int
    nominal_at: datetime
    order: int
    """Creation order: work due at the same instant runs in the order it was planned. Also
    the row's key (with the subscriber)."""
    key: str | None = None
    """The step's stable key (`engine.plan.step_text`): where it is now, if an edit of the
    workflow moved it, and whether it is still there (None: work planned before keys)."""
    stored: bool = False
    dirty: bool = False
    queued: bool = False
    """In its subscriber's pending work (`SubscriberState.schedule` .. `take`)."""


_PUSHES = itertools.count()

DUE_ORDER = attrgetter("due_at", "nominal_at", "order")
"""The order in which due work runs: when due, then when first due (postponed sends keep
their place), then creation order. Read in C: the journey asks for it twice per event."""


@dataclass(slots=True, eq=False)
class Contribution:
    """Points of one event that are still decaying: value = points * factor^steps. (Which
    rule earned them is in the ledger; kept here it made every score row a third larger, and
    a score row is rewritten with each of its events.)"""

    points: Decimal
    value: Decimal
    steps: int
    earned_at: datetime
    stored_form: list[Any] | None = None
    """How it is written (kept: a score's contributions are rewritten with every change)."""

    def decayed(self, value: Decimal, steps: int) -> None:
        self.value, self.steps, self.stored_form = value, steps, None


@dataclass(slots=True, eq=False)
class ScoreState:
    workflow: str
    score: str
    total: Decimal
    fit: dict[str, Decimal]
    """Signatures of the fit rules that hold now -> their points."""
    contributions: list[Contribution] = field(default_factory=list)
    """Event points still decaying (scores with `decay` only)."""
    stored: bool = False
    dirty: bool = False
    stored_fit: dict[str, str] | None = None
    """The `fit` column as last written (kept until the fit rules that hold change)."""
    stored_contributions: list[list[Any]] | None = None
    """The `contributions` column as last written: item i is contribution i's stored form.
    Earning only appends (the new ones are added to it when written); a decay step changes
    values and drops contributions, and sets it to None (written anew)."""
    wakes: list[tuple[datetime, int, Contribution]] | None = None
    """The live contributions by their next decay boundary (a heap, with their place in
    `contributions` to keep ties in order), for the `every` in `wakes_every`; built when
    first needed (`engine.scoring`), not stored."""
    wakes_every: timedelta | None = None
    retired: int = 0
    """Contributions in `contributions` that decay has brought to 0 and that are still there
    (they are dropped once they are half of the list)."""


@dataclass(slots=True)
class LedgerRow:
    workflow: str
    score: str
    kind: str
    delta: Decimal
    total: Decimal
    rule: str
    event: StoredEvent | None
    at: datetime
    rule_key: str | None = None
    """An event rule's stable key (`EventRulePlan.key`)."""


@dataclass(slots=True)
class ConsentRow:
    channel: str
    granted: bool
    at: datetime
    source: str
    event: StoredEvent | None


@dataclass(slots=True)
class TagRow:
    tag: str
    workflow: str
    at: datetime
    event: StoredEvent | None


@dataclass(slots=True)
class VisitRow:
    enrolment: Enrolment
    workflow: str
    stage: str
    seq: int
    at: datetime
    cause: str


@dataclass(slots=True)
class DispatchRow:
    """One recipient of a decided send, for the outbox."""

    channel: str
    push_subscription: int | None
    address: str | None
    expires_at: datetime | None
    quiet: str | None = None
    """The quiet hours that applied, in the subscriber's zone (`timing.quiet_text`): the
    dispatcher holds back a send that comes late into them."""
    cancelled: str | None = None
    """Why it is not to be sent after all (consent withdrawn, an exit) when that happened in
    the batch that decided it: it is stored `cancelled`."""


@dataclass(frozen=True, slots=True)
class OutboxCancel:
    """Pushes and e-mails of a subscriber already in the outbox and not yet sent that are not
    to be sent: those of a channel whose consent was withdrawn, of an enrolment that ended,
    or of a stage the subscriber left (SPEC §1.5a: a postponed send stays tied to its stage
    step)."""

    channel: str | None
    enrolment: Enrolment | None
    reason: str
    stage_seq: int | None = None
    """Only the sends of this visit of a stage of the enrolment (the stage was left)."""
    before: datetime | None = None
    """Only the sends decided before this instant: one decided at the very instant of the
    move went out then, as the timeline says (a stage passed through in one evaluation)."""

    CHANNELS: ClassVar[tuple[str, ...]] = ("push", "email")
    """The channels cancelled so: webhooks go to the business, which hears of what was
    decided."""


@dataclass(slots=True)
class DeliveryRow:
    seq: int
    enrolment: Enrolment
    workflow: str
    stage: str
    stage_seq: int
    step: int
    occurrence: int
    step_rule: str
    channel: str
    message: str
    lang: str | None
    status: str
    reason: str | None
    content: dict[str, Any]
    nominal_at: datetime
    decided_at: datetime
    dispatches: list[DispatchRow] = field(default_factory=list)


@dataclass(slots=True)
class Changes:
    """Append-only rows created while processing, in creation order."""

    events: list[StoredEvent] = field(default_factory=list)
    consents: list[ConsentRow] = field(default_factory=list)
    tags: list[TagRow] = field(default_factory=list)
    ledger: list[LedgerRow] = field(default_factory=list)
    visits: list[VisitRow] = field(default_factory=list)
    deliveries: list[DeliveryRow] = field(default_factory=list)
    enrolments: list[Enrolment] = field(default_factory=list)
    """Enrolments touched here (new ones, moved ones, ended ones)."""
    removed_due: list[int] = field(default_factory=list)
    """`order` of stored due work that is done or cancelled."""
    cancels: list[OutboxCancel] = field(default_factory=list)
    readdressed: str | None = None
    """The subscriber's new e-mail address, for their e-mails still in the outbox."""

    def clear(self) -> None:
        """Once written: empty every list (most are empty already)."""
        for rows in (self.events, self.consents, self.tags, self.ledger, self.visits,
                     self.deliveries, self.enrolments, self.removed_due, self.cancels):
            if rows:
                rows.clear()
        self.readdressed = None


class Judged(Protocol):
    """What judging a `go to … when` or an idle timer reads of a subscriber: a whole state
    (`SubscriberState`) or a report's view of one (`StageMember`)."""

    attributes: dict[str, Any]
    last_event_at: datetime | None
    tags: set[str]

    def total(self, workflow: str, score: str) -> Decimal: ...


@dataclass(slots=True)
class StageMember:
    """A subscriber in a stage as `nurture waiting` reads them: only what judging the
    stage's transitions needs. A whole state costs a dozen reads and objects per subscriber
    (consents, browsers, due work, the contributions behind each total), which is most of
    the time of a report over a million people."""

    external_id: str
    attributes: dict[str, Any]
    last_event_at: datetime | None
    stage_entered_at: datetime
    totals: dict[str, Decimal] = field(default_factory=dict)
    """The workflow's scores by name (the total as stored; none: 0)."""
    tags: set[str] = field(default_factory=set)

    def total(self, workflow: str, score: str) -> Decimal:
        return self.totals.get(score, Decimal(0))


@dataclass(slots=True, eq=False)
class SubscriberState:
    external_id: str
    id: int | None
    attributes: dict[str, Any]
    created_at: datetime
    last_event_at: datetime | None = None
    processed_until: datetime | None = None
    event_count: int = 0
    version: int = 0
    delivery_count: int = 0
    consents: dict[str, bool] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    push_subscriptions: list[int] = field(default_factory=list)
    """Ids of the live browser subscriptions (a push goes to each)."""
    enrolments: dict[str, Enrolment] = field(default_factory=dict)
    """Active enrolments by workflow name."""
    scores: dict[tuple[str, str], ScoreState] = field(default_factory=dict)
    capped: dict[str, list[tuple[datetime, Decimal]]] = field(default_factory=dict)
    """Rule `FILE:LINE` → (when, points) it added recently, for `max N per PERIOD`."""
    sent: dict[str, list[datetime]] = field(default_factory=dict)
    """Channel → instants of recent sends, ascending, for frequency caps."""
    due: list[Due] = field(default_factory=list)
    changes: Changes = field(default_factory=Changes)
    records: list[Record] = field(default_factory=list)
    recording: bool = True
    """Whether timeline records are wanted (someone listens: the simulator, a test)."""
    subscriber_dirty: bool = False
    attributes_dirty: bool = False
    next_order: int = 0
    _heap: list[tuple[datetime, datetime, int, int, Due]] = field(default_factory=list)
    """`due` as a heap in `DUE_ORDER`, for the earliest: the journey asks for it twice per
    event and after each piece of work done. Entries of work taken or moved since are left
    in place and skipped when they come up (a subscriber whose sends a cap holds back can
    have thousands waiting: searching them all for each one done took quadratic time)."""

    def score(self, workflow: str, score: str) -> ScoreState:
        key = (workflow, score)
        state = self.scores.get(key)
        if state is None:
            state = self.scores[key] = ScoreState(workflow, score, Decimal(0), {})
        return state

    def total(self, workflow: str, score: str) -> Decimal:
        state = self.scores.get((workflow, score))
        return state.total if state is not None else Decimal(0)

    # `due` changes only through these methods, which keep `_next` right.

    def schedule(self, due: Due) -> Due:
        self.due.append(due)
        due.queued = True
        self._consider(due)
        return due

    def take(self, due: Due) -> None:
        """Remove `due` from the pending work (done, or about to be done)."""
        self.due.remove(due)
        due.queued = False

    def unschedule(self, due: Due) -> None:
        """Cancel `due`: removed, and deleted from storage with the batch."""
        self.take(due)
        if due.stored:
            self.changes.removed_due.append(due.order)

    def bring_forward(self, due: Due, at: datetime) -> None:
        """Make pending `due` due earlier, at `at` (its nominal time with it)."""
        due.due_at = due.nominal_at = at
        due.dirty = True
        self._consider(due)

    def _consider(self, due: Due) -> None:
        """`due` was added or made earlier: it may be the new earliest."""
        heap = self._heap
        if len(heap) > 2 * len(self.due) + 16:  # mostly entries of work gone or moved
            heap[:] = [(d.due_at, d.nominal_at, d.order, next(_PUSHES), d) for d in self.due]
            heapq.heapify(heap)
        else:  # (the count keeps two entries of one piece of work from comparing it)
            heapq.heappush(heap, (due.due_at, due.nominal_at, due.order, next(_PUSHES), due))

    def next_due(self) -> Due | None:
        heap = self._heap
        while heap:
            due_at, nominal_at, _, _, due = heap[0]
            if due.queued and due.due_at == due_at and due.nominal_at == nominal_at:
                return due
            heapq.heappop(heap)
        return None

    def settle(self, sent_window: timedelta, max_window: timedelta) -> None:
        """After the batch's changes are committed: everything in memory is now stored, at
        the next version. Send and cap history older than any window needs is dropped."""
        if self.subscriber_dirty:  # written at the next version (store.states.save)
            self.version += 1
            self.subscriber_dirty = self.attributes_dirty = False
        # (scores, due work and enrolments were marked stored as they were written)
        self.changes.clear()
        if self.records:
            self.records = []
        if self.processed_until is not None:
            oldest = self.processed_until - sent_window
            for channel, sent in self.sent.items():
                if sent and sent[0] <= oldest:
                    self.sent[channel] = [at for at in sent if at > oldest]
            oldest = self.processed_until - max_window
            for rule, added in self.capped.items():
                if added and added[0][0] <= oldest:
                    self.capped[rule] = [(at, points) for at, points in added if at > oldest]

    def new_order(self) -> int:
        self.next_order += 1
        return self.next_order
