"""What the subscribers of each stage are waiting for: `nurture status`, counted over a stage.

"Why does nobody reach selection?" The funnel report counts who moved on; this counts what
keeps the others. For each `go to … when` of a stage: how many of the stage's subscribers meet
each of its comparisons, and how many would move if that comparison alone held, which is the
comparison holding the stage back; and how the names it reads are spread among them (a score's
median, 90th percentile and highest; an attribute's commonest values). For the other ways out:
which event they wait for, or between which instants the timed moves fall.

Each subscriber is judged exactly as `nurture status` judges one (the same lookups, the same
compiled conditions), from their state as stored, read a page at a time without locks.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from dsl import model as m
from dsl.conditions import MISSING, describe, evaluate, holds_if, leaves
from dsl.diagnostics import did_you_mean
from engine.plan import Plan, WorkflowPlan
from engine.records import json_number, tidy
from engine.scoring import when_lookup
from engine.state import StageMember
from engine.status import idle_until, shown_value, transition_text
from engine.store import states

COMMONEST = 3
"""Values of an attribute listed (the rest are counted)."""


@dataclass(slots=True)
class Spread:
    """The values one name took among a stage's subscribers."""

    name: str
    numbers: Counter[Decimal] = field(default_factory=Counter)
    others: Counter[str] = field(default_factory=Counter)
    """Values that are not numbers, by how they are written (a list is not hashable)."""
    raw: dict[str, Any] = field(default_factory=dict)
    """A value as read, by how it is written (what the JSON gives)."""
    missing: int = 0
    """Values are counted, not kept: a stage of a million holds a few hundred scores."""

    def add(self, value: Any) -> None:
        if value is MISSING:
            self.missing += 1
        elif _is_number(value):
            number = Decimal(str(value))
            self.numbers[number] += 1
            self.raw.setdefault(shown_value(tidy(number)), value)
        else:
            shown = shown_value(value)
            self.others[shown] += 1
            self.raw.setdefault(shown, value)

    def digest(self) -> dict[str, Any]:
        """Numbers as `lowest` (when below 0), `median`, `p90` (nearest rank: a value some
        subscriber has) and `highest`; when some values are not numbers, every value counted,
        the commonest first (ties as written, in order); and how many have no value."""
        digest: dict[str, Any] = {}
        if self.numbers and not self.others:
            ordered = sorted(self.numbers.items())
            count = sum(self.numbers.values())
            if ordered[0][0] < 0:
                digest["lowest"] = tidy(ordered[0][0])
            middle = (_ranked(ordered, (count + 1) // 2) + _ranked(ordered, count // 2 + 1)) / 2
            digest["median"] = tidy(middle)
            digest["p90"] = tidy(_ranked(ordered, max(1, math.ceil(0.9 * count))))
            digest["highest"] = tidy(ordered[-1][0])
        elif self.others:
            counted = Counter({shown_value(tidy(number)): n
                               for number, n in self.numbers.items()}) + self.others
            digest["values"] = [(shown, self.raw[shown], n) for shown, n in
                                sorted(counted.items(), key=lambda item: (-item[1], item[0]))]
        if self.missing:
            digest["missing"] = self.missing
        return digest

    def summary(self) -> str:
        """`median 22, 90th percentile 51, highest 80`, or `"basic" 1,400, "pro" 12, missing
        3`."""
        digest = self.digest()
        words = {"lowest": "lowest", "median": "median", "p90": "90th percentile",
                 "highest": "highest"}
        parts = [f"{words[key]} {digest[key]}" for key in words if key in digest]
        counted = digest.get("values", [])
        parts += [f"{shown} {count:,}" for shown, _, count in counted[:COMMONEST]]
        if len(counted) > COMMONEST:
            rest = sum(count for _, _, count in counted[COMMONEST:])
            parts.append(f"{len(counted) - COMMONEST:,} other values {rest:,}")
        if "missing" in digest:
            parts.append(f"missing {digest['missing']:,}")
        return ", ".join(parts)


def _is_number(value: Any) -> bool:
    """A number to spread (a float that is not finite, which only Python can hand the
    test fixture, is counted as a value)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def _ranked(ordered: list[tuple[Decimal, int]], rank: int) -> Decimal:
    """The value at `rank` (from 1) of counted values in ascending order."""
    for value, count in ordered:
        rank -= count
        if rank <= 0:
            return value
    raise IndexError(rank)  # pragma: no cover


@dataclass(slots=True)
class ComparisonCount:
    condition: str
    reads: str | None
    """The name it reads (None for `has tag`)."""
    holds: int = 0
    would_move: int = 0
    """Subscribers the transition does not move now, but would if this comparison held."""


@dataclass(slots=True)
class TransitionCount:
    transition: str
    rule: str
    kind: str
    """`when`, `on`, `after` or `idle`."""
    holds: int = 0
    """For a `when`: subscribers it would move now (they move at their next event or due
    time: an edit of the workflow files, say, made it hold)."""
    comparisons: list[ComparisonCount] = field(default_factory=list)
    earliest: datetime | None = None
    latest: datetime | None = None
    """For `after` and `idle`: when the first and the last of them are due to move."""

    def due(self, at: datetime) -> None:
        self.earliest = at if self.earliest is None else min(self.earliest, at)
        self.latest = at if self.latest is None else max(self.latest, at)


@dataclass(slots=True)
class StageCount:
    stage: str
    declared: bool
    subscribers: int = 0
    transitions: list[TransitionCount] = field(default_factory=list)
    spreads: dict[str, Spread] = field(default_factory=dict)
    """The names its `when`s read, by name as written, in the order first read."""


@dataclass(slots=True)
class WorkflowWaiting:
    workflow: str
    stages: list[StageCount]

    @property
    def subscribers(self) -> int:
        return sum(stage.subscribers for stage in self.stages)


class StageCounter:
    """Counts one stage's subscribers, fed a page of states at a time."""

    def __init__(self, workflow: WorkflowPlan, stage: str) -> None:
        self.workflow = workflow
        declared = workflow.stages.get(stage)
        self.transitions: tuple[m.Transition, ...] = (
            declared.transitions if declared is not None else ())
        self.count = StageCount(stage, declared is not None)
        self.leaves = [leaves(t.condition) if isinstance(t, m.GoWhen) else []
                       for t in self.transitions]
        """Each `when`'s tests, walked once for the stage, not once per subscriber."""
        for transition in self.transitions:
            self.count.transitions.append(_transition_count(transition))
            if isinstance(transition, m.GoWhen):
                for leaf in leaves(transition.condition):
                    name = _reads(leaf)
                    if name is not None:
                        self.count.spreads.setdefault(name, Spread(name))

    def add(self, members: Iterable[StageMember]) -> None:
        for member in members:
            self._add(member)

    def _add(self, member: StageMember) -> None:
        self.count.subscribers += 1
        lookup: Callable[[m.Reference], Any] | None = None
        read: set[str] = set()
        for transition, tests, counted in zip(self.transitions, self.leaves,
                                              self.count.transitions, strict=True):
            match transition:
                case m.GoWhen(condition=condition):
                    lookup = lookup or when_lookup(self.workflow, member)
                    holds = evaluate(condition, lookup, member.tags)
                    counted.holds += holds
                    for leaf, comparison in zip(tests, counted.comparisons, strict=True):
                        comparison.holds += evaluate(leaf, lookup, member.tags)
                        if not holds and holds_if(condition, leaf, lookup, member.tags):
                            comparison.would_move += 1
                        if comparison.reads is not None and comparison.reads not in read:
                            assert isinstance(leaf, m.Comparison | m.Membership | m.TextMatch)
                            read.add(comparison.reads)
                            self.count.spreads[comparison.reads].add(lookup(leaf.left))
                case m.GoAfter(delay=delay):
                    counted.due(member.stage_entered_at + delay.delta)
                case m.GoIdle(idle=idle):
                    counted.due(idle_until(member, member.stage_entered_at, idle))


def _transition_count(transition: m.Transition) -> TransitionCount:
    written, rule = transition_text(transition), transition.span.rule_ref
    match transition:
        case m.GoWhen(condition=condition):
            return TransitionCount(written, rule, "when", comparisons=[
                ComparisonCount(describe(leaf), _reads(leaf)) for leaf in leaves(condition)])
        case m.GoOn():
            return TransitionCount(written, rule, "on")
        case m.GoAfter():
            return TransitionCount(written, rule, "after")
    return TransitionCount(written, rule, "idle")


def _reads(leaf: m.Condition) -> str | None:
    """The name a comparison reads, as written (None for `has tag`)."""
    if isinstance(leaf, m.Comparison | m.Membership | m.TextMatch):
        return str(leaf.left)
    return None


def _subscribers(count: int) -> str:
    return f"{count:,} subscriber{'' if count == 1 else 's'}"


def _share(part: int, whole: int) -> str:
    return f"{part:,} ({100 * part / whole:.1f}%)" if whole else f"{part:,}"


def _shown(at: datetime | None) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M:%S} UTC"


def waiting_lines(report: WorkflowWaiting) -> list[str]:
    """The report as a marketer reads it (`nurture waiting`)."""
    lines = [f"workflow {report.workflow}: {_subscribers(report.subscribers)} in it"]
    for stage in report.stages:
        note = "" if stage.declared else " (not in the workflow files)"
        if not stage.subscribers:
            lines.append(f"  stage {stage.stage}{note}: nobody")
            continue
        lines.append(f"  stage {stage.stage}{note}: {_subscribers(stage.subscribers)}")
        if not stage.declared:
            lines.append("    they stay until moved (`nurture move`) or they exit")
        elif not stage.transitions:
            lines.append("    no way out: they stay until they exit")
        for counted in stage.transitions:
            lines.append(f"    {counted.transition}  ({counted.rule}): "
                         + _verdict(counted, stage.subscribers))
            for comparison in counted.comparisons:
                line = (f"      {comparison.condition}: holds for "
                        f"{_share(comparison.holds, stage.subscribers)}")
                if len(counted.comparisons) > 1:
                    line += f"; would move {comparison.would_move:,} if it held"
                lines.append(line)
        spreads = [spread for spread in stage.spreads.values() if spread.summary()]
        if spreads:
            lines.append("    among them:")
            lines += [f"      {spread.name}: {spread.summary()}" for spread in spreads]
    return lines


def _verdict(counted: TransitionCount, subscribers: int) -> str:
    match counted.kind:
        case "when":
            if not counted.holds:
                return "holds for nobody"
            return (f"holds for {_share(counted.holds, subscribers)} (they move at their next "
                    "event or due time)")
        case "on":
            return "waits for the event"
        case "idle":
            return (f"due from {_shown(counted.earliest)} to {_shown(counted.latest)}, for "
                    "those without an event before")
    return f"due from {_shown(counted.earliest)} to {_shown(counted.latest)}"


def _spread_json(spread: Spread) -> dict[str, Any]:
    """Numbers that are not whole as their exact text, as `nurture status --json` gives
    scores; values with how many have each, the commonest first."""
    digest = spread.digest()
    if "values" in digest:
        digest["values"] = [{"value": raw, "count": count}
                            for _, raw, count in digest["values"]]
    return {key: json_number(value) if isinstance(value, Decimal) else value
            for key, value in digest.items()}


def waiting_json(report: WorkflowWaiting) -> dict[str, Any]:
    """The report as one JSON object (`nurture waiting --json`)."""
    def instant(at: datetime | None) -> str | None:
        return None if at is None else f"{at:%Y-%m-%dT%H:%M:%SZ}"

    return {"workflow": report.workflow, "subscribers": report.subscribers, "stages": [{
        "stage": stage.stage, "declared": stage.declared, "subscribers": stage.subscribers,
        "transitions": [{
            "transition": t.transition, "rule": t.rule, "kind": t.kind,
            **({"holds": t.holds, "comparisons": [
                {"condition": c.condition, "reads": c.reads, "holds": c.holds,
                 "would_move": c.would_move} for c in t.comparisons]}
               if t.kind == "when" else {}),
            **({"earliest": instant(t.earliest), "latest": instant(t.latest)}
               if t.kind in ("after", "idle") else {}),
        } for t in stage.transitions],
        "spreads": {name: _spread_json(spread) for name, spread in stage.spreads.items()},
    } for stage in report.stages]}


def stage_names(workflow: WorkflowPlan, in_use: Iterable[str]) -> list[str]:
    """The workflow's stages as declared, then those only the database knows (an edit
    removed or renamed them while subscribers were in them)."""
    declared = list(workflow.stages)
    return declared + sorted(set(in_use) - set(declared))


def count_stage(workflow: WorkflowPlan, stage: str,
                pages: Iterable[Iterable[StageMember]]) -> StageCount:
    counter = StageCounter(workflow, stage)
    for page in pages:
        counter.add(page)
    return counter.count


class UnknownStage(ValueError):
    """A stage asked for that the workflow neither declares nor has anyone in."""


def read_waiting(connection: Any, plan: Plan, workflow: str,
                 only: Collection[str] = ()) -> WorkflowWaiting:
    """The report of a loaded workflow, read in one snapshot (`connection`: a reading one,
    handed to `engine.store.states`): every stage, or those in `only`."""
    loaded = plan.by_name[workflow]
    names = stage_names(loaded, states.stages_in_use(connection, workflow))
    for stage in only:
        if stage not in names:
            raise UnknownStage(f"workflow {workflow!r} has no stage {stage!r}"
                               f"{did_you_mean(stage, names)}")
    return WorkflowWaiting(workflow, [
        count_stage(loaded, stage, states.stage_pages(connection, workflow, stage))
        for stage in names if not only or stage in only])
