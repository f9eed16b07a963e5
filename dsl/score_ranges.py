"""The values a score can take, and the `go to … when` comparisons that can never hold.

A score is the sum of its contributions (SPEC §1.4): fit rules add their points while their
condition holds, event rules add theirs for each matching event, and decay only brings event
points closer to 0. So a score with no event rule adding points can never exceed the sum of
its positive fit rules, nor go below the sum of its negative ones without an event rule
taking points away; and a score made of fit rules alone takes only the sums of some of them.
A threshold beyond that (`go to selection when fit >= 40` where fit's rules add 20 and 10) is
a funnel that silently moves nobody: `nurture check` warns about it.

Conditions are judged one comparison at a time (two comparisons of one score that contradict
each other are not looked for), so a warning is only given where one is surely deserved.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations

from dsl import model as m

MAX_SUMMED_RULES = 12
"""Fit rules up to which every sum of some of them is worked out (4,096 sums)."""


@dataclass(frozen=True, slots=True)
class ScoreRange:
    lowest: m.Number | None
    """None: no bound (an event rule takes points away)."""
    highest: m.Number | None
    """None: no bound (an event rule adds points)."""
    values: frozenset[m.Number] | None
    """Every value it can take, for a score of a few fit rules alone; else None."""
    why: str
    """The rules that bound it, in words."""


def score_range(score: m.Score) -> ScoreRange:
    fit = [rule.points for rule in score.fit_rules]
    adds = any(rule.points > 0 for rule in score.event_rules)
    takes = any(rule.points < 0 for rule in score.event_rules)
    lowest = None if takes else sum((p for p in fit if p < 0), start=0)
    highest = None if adds else sum((p for p in fit if p > 0), start=0)
    values = None
    if not score.event_rules and len(fit) <= MAX_SUMMED_RULES:
        values = frozenset(sum(chosen, start=0) for size in range(len(fit) + 1)
                           for chosen in combinations(fit, size))
    rules = " and ".join(_signed(p) for p in fit) if fit else "none"
    events = ("no event rule" if not score.event_rules else
              "its event rules add and take away points" if adds and takes else
              "its event rules only add points" if adds else
              "its event rules only take points away")
    return ScoreRange(lowest, highest, values, f"fit rules: {rules}; {events}")


def never_holding(condition: m.Condition,
                  ranges: dict[str, ScoreRange]) -> list[tuple[m.Comparison, str]]:
    """The comparisons that make a `when` condition never hold, each with why, or none when
    it may hold. `ranges`: the workflow's scores by name (plain names in `when` read them)."""
    found: list[tuple[m.Comparison, str]] = []
    if _may_hold(condition, ranges, found):
        return []
    return found


def _may_hold(condition: m.Condition, ranges: dict[str, ScoreRange],
              found: list[tuple[m.Comparison, str]]) -> bool:
    match condition:
        case m.And(operands=operands):
            results = [_may_hold(c, ranges, found) for c in operands]
            return all(results)
        case m.Or(operands=operands):
            results = [_may_hold(c, ranges, found) for c in operands]
            return any(results)
        case m.Comparison(left=left, operator=operator, right=right):
            reach = ranges.get(left.name) if left.scope == "plain" else None
            if reach is None or isinstance(right, bool) or not isinstance(right, int | Decimal):
                return True
            why = _why_never(reach, operator, right)
            if why is None:
                return True
            found.append((condition, f"score '{left.name}' {why} ({reach.why})"))
            return False
    return True  # `not`, tags, attributes: not judged


def _why_never(reach: ScoreRange, operator: str, value: m.Number) -> str | None:
    high, low = reach.highest, reach.lowest
    if reach.values is not None:
        if any(_compare(v, operator, value) for v in reach.values):
            return None
        shown = sorted(reach.values)
        high, low = shown[-1], shown[0]
        if operator == "!=":
            return f"is always {value}"
        if operator == "==" and low <= value <= high:
            listed = ", ".join(str(v) for v in shown[:-1]) + f" or {shown[-1]}"
            return f"is only ever {listed}" if len(shown) <= 8 else \
                f"is never {value}: it is a sum of some of its fit rules"
    if operator in (">=", ">", "==") and high is not None and (
            high < value or (operator == ">" and high == value)):
        return f"is at most {high}"
    if operator in ("<=", "<", "==") and low is not None and (
            low > value or (operator == "<" and low == value)):
        return f"is at least {low}"
    return None


def _compare(left: m.Number, operator: str, right: m.Number) -> bool:
    match operator:
        case "==":
            return left == right
        case "!=":
            return left != right
        case "<":
            return left < right
        case "<=":
            return left <= right
        case ">":
            return left > right
    return left >= right


def _signed(points: m.Number) -> str:
    return f"+{points}" if points > 0 else str(points)
