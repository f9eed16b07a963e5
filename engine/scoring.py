"""Scores (SPEC §1.4): event rules with rolling `max` caps, fit rules, and decay.

Every change is a ledger row naming its rule (`FILE:LINE`) and a `score` record. Contributions
of scores that decay are kept until they are worthless, so that each decay step can be computed
exactly from the points earned: value = points * (1 - P/100)^floor(age / every).
"""

from __future__ import annotations

import heapq
from datetime import datetime
from decimal import Decimal
from typing import Any

from dsl import model as m
from dsl.conditions import MISSING
from engine.moment import Moment
from engine.plan import DecayPlan, EventRulePlan, WorkflowPlan
from engine.records import exact, tidy
from engine.state import Contribution, Due, Judged, LedgerRow, ScoreState, SubscriberState

RETIRED_BELOW = Decimal("0.01")
"""A decaying contribution worth less than this (in absolute value) is brought to 0 by the
decay step that gets it there and is never looked at again (dropped from the score's list once
such ones are half of it), so that old points do not make work forever."""


def score_event(plan: WorkflowPlan, moment: Moment, event_type: str) -> None:
    """Apply every rule of the workflow that the event matches, in written order."""
    rules = plan.event_rules.get(event_type)
    if not rules:
        return
    tags = moment.state.tags
    for rule in rules:
        if rule.where is None or rule.where(moment.event_property, tags):
            _earn(plan, moment, rule)


def _earn(plan: WorkflowPlan, moment: Moment, rule: EventRulePlan) -> None:
    points = Decimal(rule.rule.points)
    if rule.max_window is not None and rule.max_points is not None:
        points = _within_max(moment, rule, points)
        if points == 0:
            return  # the cap leaves nothing: no ledger entry, no record (SPEC §1.5a)
    decay = plan.decays.get(rule.score)
    change(plan, moment, rule.score, points, rule.ref, "event", rule.key)
    if decay is not None:
        state = moment.state
        score = state.score(plan.name, rule.score)
        contribution = Contribution(points, points, 0, moment.at)
        score.contributions.append(contribution)
        if score.wakes is not None and score.wakes_every == decay.every:
            heapq.heappush(score.wakes, (moment.at + decay.every,
                                         len(score.contributions) - 1, contribution))
        _wake_for_decay(state, plan.name, moment.at + decay.every)


def _wake_for_decay(state: SubscriberState, workflow: str, at: datetime) -> None:
    """One decay wake-up per workflow, at the earliest boundary of its contributions."""
    for due in state.due:
        if due.kind == "decay" and due.workflow == workflow:
            if due.due_at > at:  # a score that decays faster than the others
                state.bring_forward(due, at)
            return
    state.schedule(Due("decay", at, workflow, None, 0, 0, 0, at, state.new_order()))


def _within_max(moment: Moment, rule: EventRulePlan, points: Decimal) -> Decimal:
    """What is left under `max M per PERIOD`: the rule's additions in (t - W, t] count."""
    assert rule.max_window is not None and rule.max_points is not None
    history = moment.state.capped.setdefault(rule.key, [])
    cutoff = moment.at - rule.max_window
    while history and history[0][0] <= cutoff:
        history.pop(0)
    used = abs(sum((added for _, added in history), Decimal(0)))
    left = rule.max_points - used
    if left <= 0:
        return Decimal(0)
    allowed = min(abs(points), left).copy_sign(points)
    history.append((moment.at, allowed))
    return allowed


def change(plan: WorkflowPlan, moment: Moment, score: str, delta: Decimal, rule: str,
           kind: str, rule_key: str | None = None) -> None:
    """Add `delta` to a score: the total, a ledger row and a timeline record."""
    state = moment.state
    total = state.score(plan.name, score)
    total.total = exact(total.total + delta)
    total.dirty = True
    event = moment.event if kind == "event" else None
    state.changes.ledger.append(LedgerRow(plan.name, score, kind, delta, total.total, rule,
                                          event, moment.at, rule_key))
    if state.recording:
        moment.record(plan.name, "score", {"score": score, "delta": tidy(delta),
                                           "total": tidy(total.total), "rule": rule})


# ---------------------------------------------------------------- fit


def refresh_fit(plan: WorkflowPlan, moment: Moment, only_tag_rules: bool = False) -> None:
    """Re-evaluate fit rules: a rule that starts holding adds its points, one that stops
    holding takes them back."""
    state = moment.state
    for fit in plan.fit_rules:
        if only_tag_rules and not fit.uses_tags:
            continue
        holds = fit.holds(moment.attribute, state.tags)
        score = state.score(plan.name, fit.score)
        held = fit.signature in score.fit
        if holds == held:
            continue
        points = Decimal(fit.rule.points)
        if holds:
            score.fit[fit.signature] = points
        else:
            points = -score.fit.pop(fit.signature)
        score.stored_fit = None
        change(plan, moment, fit.score, points, fit.ref, "fit")


# ---------------------------------------------------------------- decay


def decay(plan: WorkflowPlan, moment: Moment) -> None:
    """Apply every decay step due by now: one record per score, the sum of its losses.

    Only the contributions whose boundary has come are looked at (`_wakes`): each earned at
    its own instant has its own boundaries, so a subscriber with thousands of them has
    thousands of decay steps, and looking at all of them at each step was quadratic."""
    state = moment.state
    for name, rule in plan.decays.items():
        score = state.scores.get((plan.name, name))
        if score is None or not score.contributions:
            continue
        wakes = _wakes(score, rule)
        due: list[tuple[int, Contribution]] = []
        while wakes and wakes[0][0] <= moment.at:
            _, place, contribution = heapq.heappop(wakes)
            due.append((place, contribution))
        if not due:
            continue
        due.sort(key=lambda item: item[0])  # summed in the order they were earned
        loss = sum((_decay_one(c, rule, moment.at) for _, c in due), Decimal(0))
        for place, contribution in due:
            if contribution.value == 0:
                score.retired += 1
            else:
                heapq.heappush(wakes, (_boundary(contribution, rule), place, contribution))
        if score.retired * 2 > len(score.contributions):
            score.contributions = [c for c in score.contributions if c.value != 0]
            score.retired, score.wakes = 0, None  # places changed: built again when needed
        score.dirty = True
        score.stored_contributions = None
        if loss != 0:
            change(plan, moment, name, loss, rule.ref, "decay")
    following = next_decay(plan, state)
    if following is not None:
        state.schedule(Due("decay", following, plan.name, None, 0, 0, 0, following,
                           state.new_order()))


def _boundary(contribution: Contribution, rule: DecayPlan) -> datetime:
    """When the contribution next loses value: at each full `every` of its age."""
    return contribution.earned_at + (contribution.steps + 1) * rule.every


def _wakes(score: ScoreState, rule: DecayPlan) -> list[tuple[datetime, int, Contribution]]:
    """The score's live contributions by next boundary (built on first use, or again when
    an edit changed the decay's period)."""
    if score.wakes is None or score.wakes_every != rule.every:
        score.wakes = [(_boundary(c, rule), place, c)
                       for place, c in enumerate(score.contributions) if c.value != 0]
        heapq.heapify(score.wakes)
        score.wakes_every = rule.every
        score.retired = len(score.contributions) - len(score.wakes)
    return score.wakes


def _decay_one(contribution: Contribution, rule: DecayPlan, at: datetime) -> Decimal:
    steps = (at - contribution.earned_at) // rule.every
    if steps <= contribution.steps:
        return Decimal(0)
    value = exact(contribution.points * rule.factor ** steps)
    if abs(value) < RETIRED_BELOW:
        value = Decimal(0)
    loss = value - contribution.value
    contribution.decayed(value, steps)
    return loss


def next_decay(plan: WorkflowPlan, state: SubscriberState) -> datetime | None:
    """The next instant at which one of the workflow's contributions loses value."""
    boundaries = [wakes[0][0] for name, rule in plan.decays.items()
                  if (score := state.scores.get((plan.name, name))) is not None
                  and score.contributions and (wakes := _wakes(score, rule))]
    return min(boundaries, default=None)


# ---------------------------------------------------------------- reading scores


def when_lookup(plan: WorkflowPlan, state: Judged) -> Any:
    """Names in `go to … when`: a score of the workflow if declared, else an attribute."""

    def lookup(reference: m.Reference) -> Any:
        if reference.scope == "plain" and reference.name in plan.score_names:
            return state.total(plan.name, reference.name)
        return state.attributes.get(reference.name, MISSING)

    return lookup


def score_values(plan: WorkflowPlan, state: SubscriberState) -> dict[str, int | Decimal]:
    """The workflow's scores as templates see them (`scores.engagement`)."""
    return {name: tidy(state.total(plan.name, name)) for name in sorted(plan.score_names)}
