"""Whether a workflow's rules meet real traffic (`nurture rules`).

`nurture check` knows the files, not the site: a rule `on form_sumbit` checks clean and never
scores, because the site sends `form_submit`; a `where url contains "/diamonds"` never holds
when the shop's pages are under `/diamond-rings`. Here the files meet the database: every
event type the workflow names, with how many such events arrived (and, for one that never
did, the received type it probably meant); every score rule, with how often it changed a
score, for how many subscribers and by how many points in all, so that a rule that never
fired, or one that hands out most of the points, shows; and every tag rule, with how many
it tagged.

The ledger names a rule by `FILE:LINE` as the engine loaded it; a rule here is matched by its
file's name and its line, so an edit that moved rules to other lines leaves the entries made
before it under "recorded for lines that hold no such rule now" (count `--since` the edit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from dsl import model as m
from dsl.conditions import describe, literal
from dsl.diagnostics import closest
from dsl.validate import events_named
from engine.funnel import table
from engine.records import json_number, tidy
from engine.store import rule_counts
from engine.store.rule_counts import RuleCount


@dataclass(slots=True)
class EventLine:
    event: str
    lines: list[int]
    """Where the workflow names it."""
    received: int = 0
    meant: str | None = None
    """For a type nothing arrived of: the received type it probably meant."""
    meant_received: int = 0


@dataclass(slots=True)
class RuleLine:
    score: str
    written: str
    line: int
    kind: str
    points: Decimal | None = None
    """An event or fit rule's points (decay has none)."""
    capped: bool = False
    """An event rule with `max`: it may add less than its points."""
    counted: RuleCount | None = None

    def could_have_made(self, counted: RuleCount) -> bool:
        """Whether this rule could have made those changes: an edit that moved rules to
        other lines leaves entries under a line that now holds another rule, and most such
        mix-ups show in the points (a `+30` rule's entries under a line of `+2`)."""
        if self.points is None:
            return True
        if self.kind == "fit":
            return counted.deltas <= {self.points, -self.points}
        if not self.capped or not self.points:
            return counted.deltas <= {self.points}
        return all(0 < delta / self.points <= 1 for delta in counted.deltas)


@dataclass(slots=True)
class TagLine:
    tag: str
    written: str
    line: int
    subscribers: int = 0
    """Subscribers who have the tag from this workflow (shared by its rules of one tag)."""


@dataclass(slots=True)
class RulesReport:
    workflow: str
    since: datetime | None
    simulated: bool = False
    events: list[EventLine] = field(default_factory=list)
    rules: list[RuleLine] = field(default_factory=list)
    tags: list[TagLine] = field(default_factory=list)
    elsewhere: list[RuleCount] = field(default_factory=list)
    """Ledger entries of lines that hold no such rule of the workflow now."""


def named_events(workflow: m.Workflow) -> dict[str, list[int]]:
    """Each event type the workflow names (`dsl.validate.events_named`) with the lines it
    is named on, in the order of the file."""
    named: dict[str, set[int]] = {}
    for event, span in events_named(workflow):
        named.setdefault(event, set()).add(span.line)
    return {event: sorted(lines)
            for event, lines in sorted(named.items(), key=lambda item: min(item[1]))}


def _rules(workflow: m.Workflow) -> list[RuleLine]:
    lines = []
    for score in workflow.scores:
        for rule in score.event_rules:
            written = f"on {rule.event}" + (f" where {describe(rule.where)}" if rule.where
                                            else "") + f" {_signed(rule.points)}"
            written += f" max {rule.max}" if rule.max is not None else ""
            lines.append(RuleLine(score.name, written, rule.span.line, "event",
                                  Decimal(rule.points), rule.max is not None))
        for fit in score.fit_rules:
            lines.append(RuleLine(score.name, f"when {describe(fit.condition)} "
                                  f"{_signed(fit.points)}", fit.span.line, "fit",
                                  Decimal(fit.points)))
        if score.decay is not None:
            decay = score.decay
            lines.append(RuleLine(score.name, f"decay {decay.percent}% every {decay.every}",
                                  decay.span.line, "decay"))
    return lines


def _signed(points: m.Number) -> str:
    return f"+{points}" if points >= 0 else str(points)


def rules_report(workflow: m.Workflow, since: datetime | None, received: dict[str, int],
                 recorded: list[RuleCount], tagged: dict[str, int] | None = None,
                 simulated: bool = False) -> RulesReport:
    """`recorded` with an empty `kind` (a simulation's records do not say it) is matched by
    score and line alone: a simulation runs the very files it reports on."""
    report = RulesReport(workflow.name, since, simulated)
    arrived = [kind for kind, count in received.items() if count]
    for event, lines in named_events(workflow).items():
        line = EventLine(event, lines, received.get(event, 0))
        if not line.received and event not in m.BUILT_IN_EVENTS:
            line.meant = closest(event, arrived)
            line.meant_received = received.get(line.meant, 0) if line.meant else 0
        report.events.append(line)
    report.rules = _rules(workflow)
    report.tags = [TagLine(rule.tag, f"tag {literal(rule.tag)} on {rule.event}"
                           + (f" where {describe(rule.where)}" if rule.where else ""),
                           rule.span.line, (tagged or {}).get(rule.tag, 0))
                   for rule in workflow.tags]
    files = {PurePath(workflow.span.path).name}
    places = {(rule.score, rule.kind, rule.line): rule for rule in report.rules}
    places.update({(rule.score, "", rule.line): rule for rule in report.rules})
    for counted in recorded:
        path, _, number = counted.rule.rpartition(":")
        rule = (places.get((counted.score, counted.kind, int(number))) if number.isdigit()
                else None)
        if (rule is not None and PurePath(path).name in files and rule.counted is None
                and rule.could_have_made(counted)):
            rule.counted = counted
        else:
            report.elsewhere.append(counted)
    return report


def read_rules(connection: Any, workflow: m.Workflow, since: datetime | None,
               received: dict[str, int] | None = None) -> RulesReport:
    """The report of a loaded workflow from the database (`connection`: a reading one,
    handed to `engine.store.rule_counts`); `received`, the events by type, when several
    workflows share one count."""
    if received is None:
        received = rule_counts.events_by_type(connection, since)
    return rules_report(workflow, since, received,
                        rule_counts.ledger_by_rule(connection, workflow.name, since),
                        rule_counts.tagged(connection, workflow.name, since))


_never = {"event": "never fired", "fit": "never held", "decay": "no step yet"}


def _points(points: Decimal) -> str:
    shown = tidy(points.quantize(Decimal("0.01")) if points != points.to_integral_value()
                 else points)
    return f"+{shown:,}" if shown > 0 else f"{shown:,}"


def rules_lines(report: RulesReport) -> list[str]:
    """The report as a marketer reads it."""
    since = (f"since {report.since.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
             if report.since is not None else "all time")
    since = "in the simulation" if report.simulated else since
    lines = [f"workflow {report.workflow}, {since}", ""]
    lines += table(["event", "received", "named on line", ""], [
        [event.event, f"{event.received:,}", ", ".join(map(str, event.lines)),
         "" if event.received else "none arrived" + (
             f"; did you mean '{event.meant}' ({event.meant_received:,} arrived)?"
             if event.meant else "")]
        for event in report.events], right=(1,))
    for score in dict.fromkeys(rule.score for rule in report.rules):
        lines.append("")
        lines += table([f"score {score}", "line", "changes", "subscribers", "points", ""], [
            [rule.written, str(rule.line)] + (
                [f"{rule.counted.changes:,}", f"{rule.counted.subscribers:,}",
                 _points(rule.counted.points), ""] if rule.counted is not None
                else ["0", "0", "0", _never[rule.kind]])
            for rule in report.rules if rule.score == score], right=(1, 2, 3, 4))
    if report.tags:
        lines.append("")
        lines += table(["tag rule", "line", "tagged", ""], [
            [tag.written, str(tag.line), f"{tag.subscribers:,}",
             "" if tag.subscribers else "nobody tagged"] for tag in report.tags],
            right=(1, 2))
    if report.elsewhere:
        lines += ["", "  recorded for lines that hold no such rule now (an edit moved or "
                  "removed it; --since the edit counts the rules as they are):"]
        lines += table(["rule", "score", "changes", "subscribers", "points"], [
            [other.rule, other.score, f"{other.changes:,}", f"{other.subscribers:,}",
             _points(other.points)] for other in report.elsewhere], right=(2, 3, 4))
    return lines


def rules_json(report: RulesReport) -> dict[str, Any]:
    def counted(line: RuleCount | None) -> dict[str, Any]:
        if line is None:
            return {"changes": 0, "subscribers": 0, "points": 0}
        return {"changes": line.changes, "subscribers": line.subscribers,
                "points": json_number(line.points)}

    return {
        "workflow": report.workflow,
        "since": None if report.since is None else f"{report.since:%Y-%m-%dT%H:%M:%SZ}",
        "events": [{"event": e.event, "received": e.received, "lines": e.lines,
                    "meant": e.meant} for e in report.events],
        "rules": [{"score": r.score, "rule": r.written, "line": r.line, "kind": r.kind,
                   **counted(r.counted)} for r in report.rules],
        "tags": [{"tag": t.tag, "rule": t.written, "line": t.line, "subscribers": t.subscribers}
                 for t in report.tags],
        "elsewhere": [{"rule": o.rule, "score": o.score, "kind": o.kind, **counted(o)}
                      for o in report.elsewhere],
    }


class RecordTally:
    """The rules report of a simulation, counted from its records (`nurture simulate
    --rules`): each `score` record is one ledger entry, with its rule as `FILE:LINE`."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[tuple[str, str], RuleCount]] = {}
        self.reached: dict[tuple[str, str, str], set[str]] = {}
        self.tags: dict[str, dict[str, int]] = {}

    def add(self, record: dict[str, Any]) -> None:
        if record["kind"] == "tag":  # a subscriber is given a tag once
            tags = self.tags.setdefault(record["workflow"], {})
            tags[record["tag"]] = tags.get(record["tag"], 0) + 1
        if record["kind"] != "score":
            return
        workflow, rule, score = record["workflow"], record["rule"], record["score"]
        counted = self.counts.setdefault(workflow, {}).setdefault(
            (rule, score), RuleCount(rule, score, ""))
        delta = Decimal(str(record["delta"]))
        counted.changes += 1
        counted.points += delta
        counted.deltas.add(delta)
        self.reached.setdefault((workflow, rule, score), set()).add(record["subscriber"])

    def recorded(self, workflow: str) -> list[RuleCount]:
        counts = list(self.counts.get(workflow, {}).values())
        for counted in counts:
            counted.subscribers = len(self.reached[workflow, counted.rule, counted.score])
        return counts
