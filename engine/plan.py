"""The loaded catalog, indexed for the engine's hot path.

A `Plan` is built once per catalog: rules are looked up by event type instead of scanned, time
zones, quiet hours and caps are converted once, and the fit rules, stage steps and transitions
get stable keys, so that what was remembered or planned for them (fit rules that hold, pending
steps, timers) follows them across reloads that move lines around, and is dropped with them
when an edit removes or changes them.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from dsl import model as m
from dsl.conditions import Predicate, describe, predicate, tags_read
from engine.timing import CapRule, Window


@dataclass(frozen=True, slots=True)
class EventRulePlan:
    score: str
    rule: m.EventRule
    ref: str
    """`FILE:LINE`."""
    key: str
    """Stable across edits that move lines (what the rule counts: its workflow, score, event
    and condition): the ledger files its additions under it, and a `max` counts them by it."""
    max_window: timedelta | None
    max_points: Decimal | None
    where: Predicate | None


@dataclass(frozen=True, slots=True)
class Guarded:
    """A tag rule, trigger or transition with its condition compiled (None: always)."""

    node: Any
    test: Predicate | None


@dataclass(frozen=True, slots=True)
class FitRulePlan:
    score: str
    rule: m.FitRule
    ref: str
    signature: str
    uses_tags: bool
    holds: Predicate


@dataclass(frozen=True, slots=True)
class DecayPlan:
    score: str
    factor: Decimal
    """1 - P/100."""
    every: timedelta
    ref: str


@dataclass(frozen=True, slots=True)
class Keys:
    """The stable keys of a stage's steps (or transitions), in written order.

    A key is two digests: of the step's whole text (`step_text`), and of what it does
    without its timing, count or `with` values (`step_gist`). Work planned for a step finds
    it again by the first wherever an edit moved it, and by the second when the edit
    changed only those details and no other step of the stage does the same thing (an
    edited `with` value, a longer delay, another count: the marketer's step still)."""

    keys: tuple[str, ...]
    texts: dict[str, int]
    """Digest of a whole text -> position."""
    gists: dict[str, int]
    """Digest of a gist -> position, for the gists only one step of the stage has."""

    def position(self, hint: int, key: str | None) -> int | None:
        """Where the step planned as number `hint` with `key` is now; None if it is gone.

        Work planned before keys were stored (`key` None) trusts the number."""
        if key is None:
            return hint if 0 <= hint < len(self.keys) else None
        if 0 <= hint < len(self.keys) and self.keys[hint] == key:
            return hint
        found = self.texts.get(key[:DIGEST])
        return found if found is not None else self.gists.get(key[DIGEST:])


DIGEST = 16
"""Hex characters of one digest; a stored key is two of them."""


@dataclass(slots=True)
class WorkflowPlan:
    workflow: m.Workflow
    zone: ZoneInfo
    quiet: Window | None
    caps: dict[str, tuple[CapRule, ...]]
    score_names: frozenset[str]
    event_rules: dict[str, list[EventRulePlan]] = field(default_factory=dict)
    """Event type → the rules it can match, in written order (scores in written order)."""
    fit_rules: list[FitRulePlan] = field(default_factory=list)
    decays: dict[str, DecayPlan] = field(default_factory=dict)
    tag_rules: dict[str, list[Guarded]] = field(default_factory=dict)
    entries: dict[str, list[Guarded]] = field(default_factory=dict)
    exits: dict[str, list[Guarded]] = field(default_factory=dict)
    stages: dict[str, m.Stage] = field(default_factory=dict)
    transitions: dict[str, list[Guarded]] = field(default_factory=dict)
    """Stage -> its transitions in written order, `when` and `on … where` compiled."""
    awaited: dict[str, frozenset[str]] = field(default_factory=dict)
    """Stage -> the events its `after … unless EVENT` steps watch for."""
    step_keys: dict[str, Keys] = field(default_factory=dict)
    """Stage -> the keys of its steps (see `step_key`)."""
    transition_keys: dict[str, Keys] = field(default_factory=dict)
    name: str = field(init=False)
    """The workflow's name (a plain attribute: it is read for every rule of every event)."""

    def __post_init__(self) -> None:
        self.name = self.workflow.name


@dataclass(slots=True)
class Plan:
    catalog: m.Catalog
    workflows: list[WorkflowPlan]
    by_name: dict[str, WorkflowPlan]
    variants: dict[tuple[str, str], tuple[m.Message, ...]]
    capped_rules: frozenset[str]
    """Keys of the event rules with a `max`."""
    capped_refs: dict[str, str]
    """`FILE:LINE` -> key of those rules (for ledger rows written before keys)."""
    longest_max_window: timedelta
    longest_cap_window: timedelta
    fit_uses_tags: bool
    event_types: frozenset[str]
    """Event types that some score rule, tag rule, entry or exit names."""


def build_plan(catalog: m.Catalog) -> Plan:
    workflows = [_workflow_plan(w) for w in catalog.workflows]
    variants: dict[tuple[str, str], list[m.Message]] = defaultdict(list)
    for message in catalog.messages:
        variants[(message.name, message.channel)].append(message)
    rules = [r for w in workflows for rs in w.event_rules.values() for r in rs]
    capped = [r for r in rules if r.max_window is not None]
    caps = [c.window for w in workflows for cs in w.caps.values() for c in cs]
    return Plan(
        catalog=catalog,
        workflows=workflows,
        by_name={w.name: w for w in workflows},
        variants={key: tuple(value) for key, value in variants.items()},
        capped_rules=frozenset(r.key for r in capped),
        capped_refs={r.ref: r.key for r in capped},
        longest_max_window=max((r.max_window for r in capped if r.max_window), default=timedelta()),
        longest_cap_window=max(caps, default=timedelta()),
        fit_uses_tags=any(f.uses_tags for w in workflows for f in w.fit_rules),
        event_types=frozenset(kind for w in workflows for kinds in (
            w.event_rules, w.tag_rules, w.entries, w.exits) for kind in kinds),
    )


def _workflow_plan(workflow: m.Workflow) -> WorkflowPlan:
    quiet = workflow.quiet_hours
    plan = WorkflowPlan(
        workflow=workflow,
        zone=ZoneInfo(workflow.timezone),
        quiet=Window(quiet.start, quiet.end) if quiet else None,
        caps={limit.channel: tuple(CapRule(int(cap.count), cap.window) for cap in limit.caps)
              for limit in workflow.limits},
        score_names=frozenset(score.name for score in workflow.scores),
        stages={stage.name: stage for stage in workflow.stages},
        awaited={stage.name: frozenset(step.unless for step in stage.steps
                                       if isinstance(step, m.After) and step.unless)
                 for stage in workflow.stages},
    )
    numbered = iter([_digest(text) for text in _ranked(
        f"{workflow.name}/{score.name}: on {rule.event}" + (
            f" where {describe(rule.where)}" if rule.where else "")
        for score in workflow.scores for rule in score.event_rules)])
    for score in workflow.scores:
        for rule in score.event_rules:
            plan.event_rules.setdefault(rule.event, []).append(EventRulePlan(
                score.name, rule, rule.span.rule_ref, next(numbered),
                rule.max.window if rule.max else None,
                Decimal(rule.max.count) if rule.max else None, _compiled(rule.where)))
        signatures = _ranked(f"{score.name}: when {describe(fit.condition)} {fit.points}"
                             for fit in score.fit_rules)
        for fit, signature in zip(score.fit_rules, signatures, strict=True):
            plan.fit_rules.append(FitRulePlan(score.name, fit, fit.span.rule_ref, signature,
                                              bool(tags_read(fit.condition)),
                                              predicate(fit.condition)))
        if score.decay is not None:
            plan.decays[score.name] = DecayPlan(
                score.name, 1 - Decimal(score.decay.percent) / 100, score.decay.every.delta,
                score.decay.span.rule_ref)
    for tag in workflow.tags:
        plan.tag_rules.setdefault(tag.event, []).append(Guarded(tag, _compiled(tag.where)))
    for trigger in workflow.entries:
        plan.entries.setdefault(trigger.event, []).append(
            Guarded(trigger, _compiled(trigger.where)))
    for trigger in workflow.exits:
        plan.exits.setdefault(trigger.event, []).append(
            Guarded(trigger, _compiled(trigger.where)))
    for stage in workflow.stages:
        plan.transitions[stage.name] = [Guarded(t, _transition_test(t))
                                        for t in stage.transitions]
        plan.step_keys[stage.name] = _keys([(step_text(s), step_gist(s))
                                            for s in stage.steps])
        plan.transition_keys[stage.name] = _keys([(transition_text(t), transition_gist(t))
                                                  for t in stage.transitions])
    return plan


def step_text(step: m.Step) -> str:
    """A step as what it does, whatever its line or spelling (`24 hours` is `1 day`)."""
    match step:
        case m.OnEnter():
            when = "on enter"
        case m.After(delay=delay, unless=unless):
            when = f"after {_seconds(delay)}" + (f" unless {unless}" if unless else "")
        case m.Every(interval=interval, times=times):
            when = f"every {_seconds(interval)}" + (f", {times} times" if times else "")
    action = step.action
    values = ", ".join(f"{name} = {value!r}" for name, value in action.params)
    return f"{when}: send {action.channel} {action.message}" + (
        f" with {values}" if values else "")


def step_gist(step: m.Step) -> str:
    """What a step does, without when exactly, how often, or with which values."""
    kind = {m.OnEnter: "on enter", m.After: "after", m.Every: "every"}[type(step)]
    return f"{kind}: send {step.action.channel} {step.action.message}"


def transition_text(transition: m.Transition) -> str:
    match transition:
        case m.GoWhen(condition=condition):
            when = f"when {describe(condition)}"
        case m.GoOn(event=event, where=where):
            when = f"on {event}" + (f" where {describe(where)}" if where else "")
        case m.GoAfter(delay=delay):
            when = f"after {_seconds(delay)}"
        case m.GoIdle(idle=idle):
            when = f"when idle for {_seconds(idle)}"
    return f"go to {transition.target} {when}"


def transition_gist(transition: m.Transition) -> str:
    kind = {m.GoWhen: "when", m.GoOn: "on", m.GoAfter: "after", m.GoIdle: "idle"}
    return f"go to {transition.target} {kind[type(transition)]}"


def _seconds(duration: m.Duration) -> str:
    return f"{duration.seconds.normalize():f}s"


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=DIGEST // 2).hexdigest()


def _ranked(texts: Iterable[str]) -> list[str]:
    """The texts, a text written more than once told apart by its rank (`#2`)."""
    seen: dict[str, int] = {}
    ranked = []
    for text in texts:
        seen[text] = seen.get(text, 0) + 1
        ranked.append(text if seen[text] == 1 else f"{text} #{seen[text]}")
    return ranked


def _keys(pairs: list[tuple[str, str]]) -> Keys:
    """Keys from each step's (whole text, gist)."""
    texts, gists = zip(*pairs, strict=True) if pairs else ((), ())
    whole = [_digest(text) for text in _ranked(texts)]
    gist = [_digest(text) for text in gists]
    once = {g for g in gist if gist.count(g) == 1}
    return Keys(tuple(w + g for w, g in zip(whole, gist, strict=True)),
                {w: index for index, w in enumerate(whole)},
                {g: index for index, g in enumerate(gist) if g in once})


def _compiled(condition: m.Condition | None) -> Predicate | None:
    return predicate(condition) if condition is not None else None


def _transition_test(transition: m.Transition) -> Predicate | None:
    if isinstance(transition, m.GoWhen):
        return predicate(transition.condition)
    if isinstance(transition, m.GoOn):
        return _compiled(transition.where)
    return None
