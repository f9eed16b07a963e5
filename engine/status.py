"""Where a subscriber stands and what comes next: the question the timeline cannot answer.

"Why has Anna not moved to selection?", "when does Ben get the next newsletter?": for each
workflow a subscriber is in, the stage and since when, the scores, each transition of the
stage in the order it is tried with whether it holds (and for a `when`, each comparison with
the value it read), and the work planned: steps, sends held back by quiet hours or a cap,
timed moves, idle checks and decay, with when each is due. It is read from the subscriber's
state as the engine last left it (`processed_until`): work due since then is done by the
next tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from dsl import model as m
from dsl.conditions import MISSING, describe, evaluate, leaves, literal
from engine.plan import Plan, WorkflowPlan
from engine.records import json_number, tidy
from engine.scoring import when_lookup
from engine.sending import missing_consent_or_address, subscriber_zone
from engine.state import DUE_ORDER, Due, Enrolment, Judged, SubscriberState
from engine.timing import after_quiet_hours


@dataclass(frozen=True, slots=True)
class Check:
    """One comparison of a `when` condition: does it hold, and what it read."""

    condition: str
    holds: bool
    read: str
    """`engagement is 42`, `subscriber.role is "cto"`, `has no tag "vip"`."""


@dataclass(frozen=True, slots=True)
class TransitionStatus:
    transition: str
    rule: str
    verdict: str
    """`holds`, `does not hold`, `waits for a 'purchase' event`, `at 2026-03-09 …`."""
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True, slots=True)
class Planned:
    at: datetime
    what: str
    rule: str | None
    local: datetime | None = None
    """`at` in the subscriber's time zone (their `timezone`, else the workflow's): quiet
    hours are theirs."""


@dataclass(frozen=True, slots=True)
class EnrolmentStatus:
    workflow: str
    stage: str
    since: datetime
    enrolled_at: datetime
    scores: dict[str, int | Decimal]
    transitions: tuple[TransitionStatus, ...]
    planned: tuple[Planned, ...]
    declared: bool = True
    """Whether the workflow files declare the stage (an edit may have removed it)."""


@dataclass(frozen=True, slots=True)
class SubscriberStatus:
    subscriber: str
    processed_until: datetime | None
    tags: tuple[str, ...]
    enrolments: tuple[EnrolmentStatus, ...]
    elsewhere: tuple[str, ...] = field(default=())
    """Workflows the subscriber is in that the files loaded do not declare."""


def subscriber_status(plan: Plan, state: SubscriberState,
                      push_needs_subscription: bool = True) -> SubscriberStatus:
    """`push_needs_subscription` as the engine that decides: the service's does (a push goes
    to the subscriber's live browser subscriptions), the simulator's does not."""
    enrolments = []
    elsewhere = []
    for name, enrolment in state.enrolments.items():
        workflow = plan.by_name.get(name)
        if workflow is None:
            elsewhere.append(name)
            continue
        enrolments.append(_enrolment_status(workflow, state, enrolment,
                                            push_needs_subscription))
    return SubscriberStatus(state.external_id, state.processed_until, tuple(sorted(state.tags)),
                            tuple(enrolments), tuple(elsewhere))


def _enrolment_status(workflow: WorkflowPlan, state: SubscriberState, enrolment: Enrolment,
                      push_needs_subscription: bool) -> EnrolmentStatus:
    scores = {name: tidy(state.total(workflow.name, name))
              for name in (score.name for score in workflow.workflow.scores)}
    stage = workflow.stages.get(enrolment.stage)
    transitions = tuple(_transition_status(workflow, state, enrolment, t)
                        for t in (stage.transitions if stage is not None else ()))
    zone = subscriber_zone(state, workflow)
    planned = [replace(item, local=item.at.astimezone(zone))
               for item in (_planned(workflow, state, enrolment, due, push_needs_subscription)
                            for due in sorted(state.due, key=DUE_ORDER)
                            if due.workflow == workflow.name and (
                                due.enrolment is None or due.enrolment is enrolment))
               if item is not None]
    return EnrolmentStatus(workflow.name, enrolment.stage, enrolment.stage_entered_at,
                           enrolment.enrolled_at, scores, transitions,
                           tuple(sorted(planned, key=lambda p: p.at)), stage is not None)


def transition_text(transition: m.Transition) -> str:
    """The transition as written (conditions as `describe` writes them)."""
    match transition:
        case m.GoWhen(target=target, condition=condition):
            return f"go to {target} when {describe(condition)}"
        case m.GoOn(target=target, event=event, where=where):
            return f"go to {target} on {event}" + (f" where {describe(where)}" if where
                                                   else "")
        case m.GoAfter(target=target, delay=delay):
            return f"go to {target} after {delay}"
        case m.GoIdle(target=target, idle=idle):
            return f"go to {target} when idle for {idle}"
    raise TypeError(f"not a transition: {transition!r}")  # pragma: no cover


def _transition_status(workflow: WorkflowPlan, state: SubscriberState, enrolment: Enrolment,
                       transition: m.Transition) -> TransitionStatus:
    rule = transition.span.rule_ref
    written = transition_text(transition)
    match transition:
        case m.GoWhen(condition=condition):
            lookup = when_lookup(workflow, state)
            holds = evaluate(condition, lookup, state.tags)
            checks = tuple(_check(leaf, lookup, state.tags) for leaf in leaves(condition))
            return TransitionStatus(written, rule, "holds" if holds else "does not hold",
                                    checks)
        case m.GoOn(event=event):
            return TransitionStatus(written, rule, f"waits for a '{event}' event")
        case m.GoAfter(delay=delay):
            at = enrolment.stage_entered_at + delay.delta
            return TransitionStatus(written, rule, f"at {_shown(at)}")
        case m.GoIdle(idle=idle):
            moves = idle_until(state, enrolment.stage_entered_at, idle)
            return TransitionStatus(written, rule, f"at {_shown(moves)}, "
                                    "unless an event comes before")
    raise TypeError(f"not a transition: {transition!r}")  # pragma: no cover


def _check(leaf: m.Condition, lookup: Any, tags: set[str]) -> Check:
    holds = evaluate(leaf, lookup, tags)
    if isinstance(leaf, m.HasTag):
        return Check(describe(leaf), holds, f"has {'' if holds else 'no '}tag {literal(leaf.tag)}")
    assert isinstance(leaf, m.Comparison | m.Membership | m.TextMatch)
    value = lookup(leaf.left)
    shown = "missing" if value is MISSING else shown_value(value)
    return Check(describe(leaf), holds, f"{leaf.left} is {shown}")


def shown_value(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(tidy(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def idle_until(state: Judged, entered: datetime, idle: m.Duration) -> datetime:
    """When `when idle for` moves: counted from the later of entering the stage and the last
    event (its timer, planned at entry, looks again then and waits on if an event came)."""
    last = entered
    if state.last_event_at is not None and state.last_event_at > last:
        last = state.last_event_at
    return last + idle.delta


def _planned(workflow: WorkflowPlan, state: SubscriberState, enrolment: Enrolment,
             due: Due, push_needs_subscription: bool) -> Planned | None:
    if due.kind == "decay":
        decaying = ", ".join(sorted(workflow.decays)) or "scores"
        return Planned(due.due_at, f"decay of {decaying}", None)
    stage = workflow.stages.get(enrolment.stage)
    if stage is None or due.stage_seq != enrolment.stage_seq:
        return None  # work of a stage left (it is dropped when due)
    if due.kind in ("step", "send"):
        index = workflow.step_keys[stage.name].position(due.step, due.key)
        if index is None:
            return None  # an edit removed the step
        step = stage.steps[index]
        action = step.action
        what = f"send {action.channel} {action.message}"
        if isinstance(step, m.Every):
            times = f" of {step.times}" if step.times else ""
            what += f" (every {step.interval}, {_ordinal(due.occurrence)}{times})"
        if due.kind == "send":
            what += (f", held back since {_shown(due.nominal_at)} by "
                     f"{_holding(workflow, state, due, action.channel)}")
        elif isinstance(step, m.After) and step.unless in enrolment.seen:
            what += f": not sent, as a '{step.unless}' event came since entering the stage"
            return Planned(due.due_at, what, step.span.rule_ref)
        missing = None if action.channel == "webhook" else missing_consent_or_address(
            state, action.channel, push_needs_subscription)
        if missing is not None:
            what += f"; as things stand it would be skipped: {missing}"
        return Planned(due.due_at, what, step.span.rule_ref)
    index = workflow.transition_keys[stage.name].position(due.step, due.key)
    if index is None:
        return None
    transition = stage.transitions[index]
    if isinstance(transition, m.GoIdle):
        at = max(due.due_at, idle_until(state, enrolment.stage_entered_at, transition.idle))
        return Planned(at, f"go to {transition.target}, unless an event comes before",
                       transition.span.rule_ref)
    return Planned(due.due_at, f"go to {transition.target}", transition.span.rule_ref)


def _holding(workflow: WorkflowPlan, state: SubscriberState, due: Due, channel: str) -> str:
    """What holds a postponed send back: its time fell in quiet hours (and it waits until
    they end), or a frequency cap (it waits beyond that), or both."""
    quiet_end = after_quiet_hours(due.nominal_at, workflow.quiet,
                                  subscriber_zone(state, workflow))
    if quiet_end == due.nominal_at:
        return f"a cap on {channel}"
    return "quiet hours" if due.due_at <= quiet_end else f"quiet hours and a cap on {channel}"


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(
        number % 10, "th")
    return f"{number}{suffix}"


def _local(at: datetime | None) -> str:
    """` (08:00 Europe/Warsaw)`: the subscriber's wall clock, where it differs from UTC."""
    if at is None or str(at.tzinfo) in ("UTC", "Etc/UTC"):
        return ""
    return f" ({at:%H:%M} {at.tzinfo})"


def _shown(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


SHOWN = 20
"""Planned work listed in the text; a subscriber whose sends a cap holds back can have
thousands waiting."""


def status_lines(status: SubscriberStatus) -> list[str]:
    """The status as a person reads it (`nurture status`)."""
    as_of = (f"as the engine left them at {_shown(status.processed_until)}"
             if status.processed_until is not None else "as stored")
    lines = [f"{status.subscriber} ({as_of})"]
    if status.tags:
        lines.append("  tags: " + ", ".join(status.tags))
    if not status.enrolments and not status.elsewhere:
        lines.append("  in no workflow")
    for item in status.enrolments:
        note = "" if item.declared else " (not in the workflow files)"
        lines.append(f"  workflow {item.workflow}: stage {item.stage}{note} since "
                     f"{_shown(item.since)} (enrolled {_shown(item.enrolled_at)})")
        if item.scores:
            lines.append("    scores: " + ", ".join(f"{name} {value}"
                                                    for name, value in item.scores.items()))
        if item.transitions:
            lines.append("    transitions, in the order they are tried:")
        for transition in item.transitions:
            lines.append(f"      {transition.transition}  ({transition.rule}): "
                         f"{transition.verdict}")
            lines += [f"        {check.condition}: {'yes' if check.holds else 'no'} "
                      f"({check.read})" for check in transition.checks]
        lines.append("    planned:" if item.planned else "    planned: nothing")
        lines += [f"      {_shown(p.at)}{_local(p.local)}  {p.what}"
                  + (f"  ({p.rule})" if p.rule else "") for p in item.planned[:SHOWN]]
        if len(item.planned) > SHOWN:
            lines.append(f"      … and {len(item.planned) - SHOWN:,} more (--json lists them)")
    lines += [f"  workflow {name}: not in the workflow files loaded" for name in status.elsewhere]
    return lines


def status_json(status: SubscriberStatus) -> dict[str, Any]:
    """The status as one JSON object (`nurture status --json`)."""
    def instant(at: datetime | None) -> str | None:
        return None if at is None else f"{at:%Y-%m-%dT%H:%M:%SZ}"

    return {
        "subscriber": status.subscriber, "processed_until": instant(status.processed_until),
        "tags": list(status.tags),
        "enrolments": [{
            "workflow": item.workflow, "stage": item.stage, "declared": item.declared,
            "since": instant(item.since), "enrolled_at": instant(item.enrolled_at),
            "scores": {name: json_number(value) for name, value in item.scores.items()},
            "transitions": [{
                "transition": t.transition, "rule": t.rule, "verdict": t.verdict,
                "checks": [{"condition": c.condition, "holds": c.holds, "read": c.read}
                           for c in t.checks]} for t in item.transitions],
            "planned": [{"at": instant(p.at), "local": p.local and p.local.isoformat(),
                         "what": p.what, "rule": p.rule}
                        for p in item.planned]} for item in status.enrolments],
        "not_loaded": list(status.elsewhere),
    }
