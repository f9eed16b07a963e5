"""The state machine (SPEC §1.5, §1.5a): events and due work move subscribers through stages.

For each subscriber the journey processes, in time order, the events handed to it and every
piece of its due work up to `now`; at one instant events come before due work. An event is
recorded (consent, attributes), scored, tagged, then it may enrol or end enrolments, and then
the current stage's transitions are tried in written order, the first that holds wins, and a
move enters the new stage at once: its `on enter` actions, then its timers, then its `when`
transitions — so one event can carry a subscriber across several stages, each at most once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dsl import model as m
from engine.events import BOUNCED_EMAIL, bounced, is_email_address, same_address
from engine.moment import Moment
from engine.plan import Guarded, Plan, WorkflowPlan
from engine.records import DUE_PHASE, EVENT_PHASE
from engine.scoring import decay, refresh_fit, score_event, when_lookup
from engine.sending import SendOptions, SendStep, decide_send
from engine.state import (
    ConsentRow,
    Due,
    Enrolment,
    OutboxCancel,
    StoredEvent,
    SubscriberState,
    TagRow,
    VisitRow,
)

STAGE_WORK = frozenset({"step", "send", "move", "idle"})
"""Due work that belongs to a stage visit and is cancelled when the subscriber leaves it."""


class Journey:
    """Runs the workflows of one plan over subscribers' states."""

    def __init__(self, plan: Plan, options: SendOptions | None = None) -> None:
        self.plan = plan
        self.options = options or SendOptions()

    # ------------------------------------------------------------ driving time

    def advance(self, state: SubscriberState, events: Sequence[StoredEvent], now: datetime,
                rank: int, *, until_inclusive: bool = True) -> None:
        """Process `events` (sorted by time) and all due work up to `now`, in time order.

        An event is processed at its own instant, but never before what was already processed
        for this subscriber, nor after `now`. With `until_inclusive=False` the work due exactly
        at `now` is left for later: more events of this instant may still come, and they go
        first (SPEC §1.5a).
        """
        for stored in events:
            at = min(stored.event.at, now)
            phase, order = EVENT_PHASE, stored.event.seq
            if state.processed_until is not None and at < state.processed_until:
                # a late event: it happens now in the journey, after what is already done
                at, phase, order = state.processed_until, DUE_PHASE, rank
            self._run_due(state, at, now, rank, inclusive=False)
            self._process_event(Moment(state, at, phase, order, stored, now))
            state.processed_until = at
            state.subscriber_dirty = True
        self._run_due(state, now, now, rank, inclusive=until_inclusive)

    def _run_due(self, state: SubscriberState, limit: datetime, now: datetime, rank: int,
                 inclusive: bool) -> None:
        while True:
            due = state.next_due()
            if due is None or due.due_at > limit or (due.due_at == limit and not inclusive):
                return
            at = due.due_at
            if state.processed_until is not None and at < state.processed_until:
                at = state.processed_until
            state.take(due)
            kept = self._process_due(Moment(state, at, DUE_PHASE, rank, None, now), due)
            if not kept and due.stored:
                state.changes.removed_due.append(due.order)
            state.processed_until = at
            state.subscriber_dirty = True

    # ------------------------------------------------------------ events

    def _process_event(self, moment: Moment) -> None:
        """Record, score, tag, enrol, exit, then try transitions (SPEC §1.5)."""
        state = moment.state
        assert moment.event is not None
        event = moment.event.event
        state.event_count += 1
        moment.event.seq = state.event_count
        state.changes.events.append(moment.event)
        first_event = state.last_event_at is None
        state.last_event_at = moment.at
        attributes_changed = self._record(moment, event.type, event.properties)
        self._note_awaited(state, event.type)
        if attributes_changed or first_event:
            for workflow in self.plan.workflows:
                refresh_fit(workflow, moment)
        enrolled: set[str] = set()
        if event.type in self.plan.event_types:  # some rule, tag, entry or exit names it
            self._score_and_tag(moment, event.type)
            enrolled = self._enrol_and_exit(moment, event.type)
        for workflow in self.plan.workflows:
            active = state.enrolments.get(workflow.name)
            if active is not None and workflow.name not in enrolled:
                self._try_transitions(workflow, active, moment, event.type)

    def _note_awaited(self, state: SubscriberState, event_type: str) -> None:
        """Remember an event that an `after … unless` of the current stage waits for."""
        for name, enrolment in state.enrolments.items():
            workflow = self.plan.by_name.get(name)
            awaited = workflow.awaited.get(enrolment.stage, ()) if workflow else ()
            if event_type in awaited and event_type not in enrolment.seen:
                enrolment.seen.add(event_type)
                self._touch(state, enrolment)

    def _score_and_tag(self, moment: Moment, event_type: str) -> None:
        for workflow in self.plan.workflows:
            score_event(workflow, moment, event_type)
        if self._tag(moment, event_type) and self.plan.fit_uses_tags:
            for workflow in self.plan.workflows:
                refresh_fit(workflow, moment, only_tag_rules=True)

    def _enrol_and_exit(self, moment: Moment, event_type: str) -> set[str]:
        """Entries, then exits; the workflows this event enrolled in."""
        state = moment.state
        enrolled: set[str] = set()
        for workflow in self.plan.workflows:
            if workflow.name not in state.enrolments and self._triggered(
                    workflow.entries.get(event_type), moment):
                self._enrol(workflow, moment)
                enrolled.add(workflow.name)
        for workflow in self.plan.workflows:
            if workflow.name in state.enrolments and self._triggered(
                    workflow.exits.get(event_type), moment):
                self._exit(workflow, moment, event_type)
        return enrolled

    def _record(self, moment: Moment, kind: str, properties: Any) -> bool:
        """Consent and attributes carried by reserved events (SPEC §2); True if the
        subscriber's attributes changed."""
        state = moment.state
        updates: dict[str, Any] = {}
        if kind == "subscribed":
            for channel in properties.get("channels", ()):
                self._consent(moment, channel, True)
            updates.update(properties.get("attributes") or {})
            if properties.get("email") is not None:
                updates["email"] = properties["email"]
                if state.attributes.get(BOUNCED_EMAIL) is not None:
                    updates[BOUNCED_EMAIL] = None  # a new opt-in: its address is tried again
        elif kind == "unsubscribed":
            channels = properties.get("channels")
            for channel in channels if channels is not None else ("push", "email"):
                self._consent(moment, channel, False)
        elif kind == "attributes":
            updates.update(properties)
        elif kind == "email_bounced":
            # The dispatcher's (with `address`), or a site's from its mail service (with
            # `email`, or none: the current address): about the current address only.
            gone = properties.get("address", properties.get("email", state.attributes.get(
                "email")))
            current = state.attributes.get("email")
            if same_address(gone, current):
                updates[BOUNCED_EMAIL] = current
        changed = {k: v for k, v in updates.items() if state.attributes.get(k, ...) != v}
        if changed:
            state.attributes.update(changed)
            state.subscriber_dirty = state.attributes_dirty = True
            if "email" in changed:
                self._readdress(moment, changed["email"])
            elif BOUNCED_EMAIL in changed and bounced(state.attributes):
                self._cancel_queued(moment, OutboxCancel(
                    "email", None, "the address bounced before it was sent"))
        return bool(changed)

    def _readdress(self, moment: Moment, address: Any) -> None:
        """The subscriber's address changed: e-mails waiting in the outbox go to the new one
        (the person asked for it: an old address may be someone else's by now), and are
        cancelled if the address was removed."""
        if not self.options.outbox:
            return
        if not is_email_address(address):
            self._cancel_queued(moment, OutboxCancel(
                "email", None, "the e-mail address was removed before it was sent"))
            return
        state = moment.state
        for delivery in state.changes.deliveries:  # decided in this batch: not stored yet
            if delivery.channel == "email":
                for row in delivery.dispatches:
                    row.address = address
        if state.id is not None:
            state.changes.readdressed = address  # and those stored before

    def _consent(self, moment: Moment, channel: str, granted: bool) -> None:
        state = moment.state
        stored = moment.event
        assert stored is not None
        event = stored.event
        source = f"{event.type}#{event.key}" if event.key else event.type
        state.consents[channel] = granted
        state.changes.consents.append(ConsentRow(channel, granted, moment.at, source, stored))
        if not granted:
            self._cancel_queued(moment, OutboxCancel(
                channel, None, f"consent for {channel} was withdrawn before it was sent"))

    def _cancel_queued(self, moment: Moment, cancel: OutboxCancel) -> None:
        """Pushes and e-mails decided earlier and not yet sent are not to be sent any more
        (SPEC §2: sends need consent; §1.3: an exit cancels pending messages): the dispatcher
        may hold one for hours (late into quiet hours, a peer asking to retry)."""
        if not self.options.outbox:
            return
        state = moment.state
        for delivery in state.changes.deliveries:  # decided in this batch: not stored yet
            if delivery.channel in OutboxCancel.CHANNELS and (
                    cancel.channel in (None, delivery.channel)) and (
                    cancel.enrolment in (None, delivery.enrolment)) and (
                    cancel.stage_seq in (None, delivery.stage_seq)) and (
                    cancel.before is None or delivery.decided_at < cancel.before):
                for row in delivery.dispatches:
                    row.cancelled = row.cancelled or cancel.reason
        if state.id is not None and (cancel.enrolment is None or cancel.enrolment.id is not None):
            state.changes.cancels.append(cancel)  # and those stored before

    def _tag(self, moment: Moment, event_type: str) -> bool:
        state = moment.state
        added = False
        for workflow in self.plan.workflows:
            for guarded in workflow.tag_rules.get(event_type, ()):
                rule: m.TagRule = guarded.node
                if rule.tag in state.tags:
                    continue
                if guarded.test is None or guarded.test(moment.event_property, state.tags):
                    state.tags.add(rule.tag)
                    state.changes.tags.append(TagRow(rule.tag, workflow.name, moment.at,
                                                     moment.event))
                    moment.record(workflow.name, "tag", {"tag": rule.tag})
                    added = True
        return added

    @staticmethod
    def _triggered(triggers: list[Guarded] | None, moment: Moment) -> bool:
        if not triggers:
            return False
        tags = moment.state.tags
        return any(t.test is None or t.test(moment.event_property, tags) for t in triggers)

    # ------------------------------------------------------------ enrolment and stages

    def _enrol(self, workflow: WorkflowPlan, moment: Moment) -> None:
        state = moment.state
        start = workflow.workflow.start
        enrolment = Enrolment(workflow.name, start, 0, moment.at, moment.at, set())
        state.enrolments[workflow.name] = enrolment
        state.changes.enrolments.append(enrolment)
        self._enter(workflow, enrolment, start, moment, "entry")
        self._try_transitions(workflow, enrolment, moment, None)

    def _exit(self, workflow: WorkflowPlan, moment: Moment, reason: str) -> None:
        state = moment.state
        enrolment = state.enrolments.pop(workflow.name)
        self._cancel_stage_work(state, enrolment)
        enrolment.ended_at = moment.at
        enrolment.exit_reason = reason
        self._touch(state, enrolment)
        moment.record(workflow.name, "exit", {"reason": reason})
        self._cancel_queued(moment, OutboxCancel(
            None, enrolment, f"the subscriber left workflow {workflow.name} before it was sent"))

    def _enter(self, workflow: WorkflowPlan, enrolment: Enrolment, stage_name: str,
               moment: Moment, cause: str) -> None:
        state = moment.state
        self._cancel_stage_work(state, enrolment)
        if enrolment.stage_seq:  # a stage left: its sends still in the outbox go with it
            self._cancel_queued(moment, OutboxCancel(
                None, enrolment, f"the subscriber left stage {enrolment.stage} before it was "
                "sent", enrolment.stage_seq, moment.at))
        enrolment.stage = stage_name
        enrolment.stage_seq += 1
        enrolment.stage_entered_at = moment.at
        enrolment.seen = set()
        self._touch(state, enrolment)
        state.changes.visits.append(VisitRow(enrolment, workflow.name, stage_name,
                                             enrolment.stage_seq, moment.at, cause))
        moment.record(workflow.name, "enter", {"stage": stage_name})
        stage = workflow.stages[stage_name]
        for index, step in enumerate(stage.steps):
            if isinstance(step, m.OnEnter):
                decide_send(self.plan, workflow, moment,
                            SendStep(enrolment, stage, index, index, 0, moment.at), None,
                            self.options)
        steps = workflow.step_keys[stage_name].keys
        for index, step in enumerate(stage.steps):
            if isinstance(step, m.After):
                self._plan_work(state, "step", moment.at + step.delay.delta, enrolment, index,
                                0, steps[index])
            elif isinstance(step, m.Every):
                self._plan_work(state, "step", moment.at + step.interval.delta, enrolment,
                                index, 1, steps[index])
        transitions = workflow.transition_keys[stage_name].keys
        for index, transition in enumerate(stage.transitions):
            if isinstance(transition, m.GoAfter):
                self._plan_work(state, "move", moment.at + transition.delay.delta, enrolment,
                                index, 0, transitions[index])
            elif isinstance(transition, m.GoIdle):
                self._plan_work(state, "idle", moment.at + transition.idle.delta, enrolment,
                                index, 0, transitions[index])

    def move(self, state: SubscriberState, workflow_name: str, target: str, at: datetime,
             rank: int) -> None:
        """An operator moves an enrolled subscriber into `target` (after an edit renamed the
        stage they were in, say): the stage is entered as by a transition."""
        workflow = self.plan.by_name[workflow_name]
        enrolment = state.enrolments[workflow_name]
        moment = Moment(state, at, DUE_PHASE, rank, None, at)
        self._enter(workflow, enrolment, target, moment, "moved by an operator")
        self._try_transitions(workflow, enrolment, moment, None)

    @staticmethod
    def _plan_work(state: SubscriberState, kind: str, at: datetime, enrolment: Enrolment,
                   number: int, occurrence: int, key: str) -> None:
        state.schedule(Due(kind, at, enrolment.workflow, enrolment, enrolment.stage_seq, number,
                           occurrence, at, state.new_order(), key))

    @staticmethod
    def _cancel_stage_work(state: SubscriberState, enrolment: Enrolment) -> None:
        for due in [d for d in state.due if d.enrolment is enrolment and d.kind in STAGE_WORK]:
            state.unschedule(due)

    @staticmethod
    def _touch(state: SubscriberState, enrolment: Enrolment) -> None:
        if not enrolment.dirty:
            enrolment.dirty = True
            if enrolment.id is not None:
                state.changes.enrolments.append(enrolment)

    # ------------------------------------------------------------ transitions

    def _try_transitions(self, workflow: WorkflowPlan, enrolment: Enrolment, moment: Moment,
                         event_type: str | None, timer: bool = False) -> None:
        """Move while a transition holds; each stage at most once per evaluation. `timer`:
        this evaluation is a timed transition's own due work (see `_first_holding`)."""
        visited = {enrolment.stage}
        while True:
            transition = self._first_holding(workflow, enrolment, moment, event_type, timer)
            if transition is None or transition.target in visited:
                return
            visited.add(transition.target)
            self._enter(workflow, enrolment, transition.target, moment,
                        transition.span.rule_ref)
            event_type, timer = None, False  # a new stage waits for its own event and timers

    def _first_holding(self, workflow: WorkflowPlan, enrolment: Enrolment, moment: Moment,
                       event_type: str | None, timer: bool) -> m.Transition | None:
        """The first transition in written order that holds.

        `go to … after` and `when idle for` hold at their instant only when their own timer
        runs: events of that instant come before it, and due work planned before it runs
        before it (SPEC §1.5a), and neither may take the move early, cutting off a step due
        at the same instant. One with no timer waiting (an edit added it to a stage that
        people were in) holds at its instant and after in any evaluation, as it always did.
        """
        state = moment.state
        names: Any = None
        for guarded in workflow.transitions.get(enrolment.stage, ()):  # () if edited away
            transition = guarded.node
            match transition:
                case m.GoWhen():
                    names = names or when_lookup(workflow, state)
                    assert guarded.test is not None
                    if guarded.test(names, state.tags):
                        return transition
                case m.GoOn(event=event):
                    if event == event_type and (
                            guarded.test is None or guarded.test(moment.event_property,
                                                                 state.tags)):
                        return transition
                case m.GoAfter(delay=delay):
                    deadline = enrolment.stage_entered_at + delay.delta
                    if moment.at > deadline or (moment.at == deadline and (
                            timer or not _timer_pending(state, enrolment, "move", deadline))):
                        return transition
                case m.GoIdle(idle=idle):
                    deadline = self._idle_since(state, enrolment) + idle.delta
                    if moment.at > deadline or (moment.at == deadline and (
                            timer or not _timer_pending(state, enrolment, "idle", deadline))):
                        return transition
        return None

    @staticmethod
    def _idle_since(state: SubscriberState, enrolment: Enrolment) -> datetime:
        last = state.last_event_at
        entered = enrolment.stage_entered_at
        return entered if last is None or last < entered else last

    # ------------------------------------------------------------ due work

    def _process_due(self, moment: Moment, due: Due) -> bool:
        """Run one piece of due work; True when `due` itself was put back to wait again."""
        workflow = self.plan.by_name.get(due.workflow)
        state = moment.state
        if workflow is None:
            return False  # its workflow is no longer loaded
        if due.kind == "decay":
            decay(workflow, moment)
            enrolment = state.enrolments.get(workflow.name)
            if enrolment is not None:
                self._try_transitions(workflow, enrolment, moment, None)
            return False
        enrolment = due.enrolment
        if (enrolment is None or state.enrolments.get(workflow.name) is not enrolment
                or enrolment.stage_seq != due.stage_seq
                or enrolment.stage not in workflow.stages):
            return False  # left the stage (or an edit removed the stage)
        stage = workflow.stages[enrolment.stage]
        kept = False
        if due.kind in ("step", "send"):
            index = workflow.step_keys[stage.name].position(due.step, due.key)
            if index is None:
                return False  # an edit removed (or changed) the step: its work goes with it
            if due.kind == "step":
                self._run_step(workflow, stage, enrolment, moment, due, index)
            else:
                kept = decide_send(self.plan, workflow, moment,
                                   SendStep(enrolment, stage, index, due.step, due.occurrence,
                                            due.nominal_at), due, self.options)
        elif due.kind == "move":
            index = workflow.transition_keys[stage.name].position(due.step, due.key)
            transition = stage.transitions[index] if index is not None else None
            if isinstance(transition, m.GoAfter):
                wake = enrolment.stage_entered_at + transition.delay.delta
                if wake > moment.at:  # an edit made the delay longer: wait for it
                    due.due_at = due.nominal_at = wake
                    due.dirty = True
                    state.schedule(due)
                    return True
        elif due.kind == "idle":
            index = workflow.transition_keys[stage.name].position(due.step, due.key)
            transition = stage.transitions[index] if index is not None else None
            if not isinstance(transition, m.GoIdle):
                return False  # an edit removed the transition
            wake = self._idle_since(state, enrolment) + transition.idle.delta
            if wake > moment.at:  # an event came since: check again later
                due.due_at = due.nominal_at = wake
                due.dirty = True
                state.schedule(due)
                return True
        self._try_transitions(workflow, enrolment, moment, None,
                              timer=due.kind in ("move", "idle"))
        return kept

    def _run_step(self, workflow: WorkflowPlan, stage: m.Stage, enrolment: Enrolment,
                  moment: Moment, due: Due, index: int) -> None:
        """Run the step now at `index` (planned as number `due.step`)."""
        step = stage.steps[index]
        if isinstance(step, m.After):
            if step.unless is not None and step.unless in enrolment.seen:
                return  # cancelled: the `unless` event arrived since entering the stage
        elif isinstance(step, m.Every):
            if step.times is None or due.occurrence < step.times:
                # entry + (k+1)·interval, from this occurrence's own time: an edit that
                # changed the interval goes on from here, instead of from entry at once
                self._plan_work(moment.state, "step", due.nominal_at + step.interval.delta,
                                enrolment, due.step, due.occurrence + 1,
                                workflow.step_keys[stage.name].keys[index])
        else:
            return  # work planned before keys, whose number now names an `on enter` step
        decide_send(self.plan, workflow, moment,
                    SendStep(enrolment, stage, index, due.step, due.occurrence, due.due_at),
                    None, self.options)


def _timer_pending(state: SubscriberState, enrolment: Enrolment, kind: str,
                   at: datetime) -> bool:
    """Whether a timed transition's timer (`move` or `idle`) of this stage visit is waiting
    to run at `at`. Asked only when an evaluation falls on a timed move's very instant."""
    return any(due.kind == kind and due.enrolment is enrolment
               and due.stage_seq == enrolment.stage_seq and due.due_at == at
               for due in state.due)
