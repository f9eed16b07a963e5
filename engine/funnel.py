"""The funnel report as a marketer reads it: stages in the order the workflow declares them
(those nobody is in included), then what became of each message.

The counts come from `engine.store.funnel`; here they are ordered, shaped for JSON (the API,
`nurture funnel --json`) and laid out as text.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dsl import model as m
from engine.events import EventError, parse_instant
from engine.store.funnel import FunnelCounts, MessageCounts
from engine.store.tables import UNFINISHED

PENDING = UNFINISHED
"""Dispatch states that are not an outcome yet."""


def parse_since(text: str, now: datetime, field_path: str = "since") -> datetime:
    """`--since` / `?since=`: an instant (`2026-03-02`, `2026-03-02T09:00:00Z`) or a span
    back from now in the language's units (`7 days`, `12 hours`, `2 weeks`)."""
    span = m.span_in_words(text)
    if span is not None:
        return now - span
    try:
        return parse_instant(text, field_path, date_only_ok=True)
    except EventError:
        raise EventError(field_path, f"{text!r} is neither a time such as '2026-03-02' or "
                                     "'2026-03-02T09:00:00Z' nor a span such as '7 days'"
                         ) from None


def stage_order(counts: FunnelCounts, workflow: m.Workflow | None) -> list[str]:
    """The workflow's stages as declared, then any stage that only the database knows (an
    edit renamed or removed it while subscribers were in it)."""
    declared = [stage.name for stage in workflow.stages] if workflow is not None else []
    known = set(declared)
    others = sorted({*counts.in_stage, *counts.entered} - known)
    return declared + others


def ordered_messages(counts: FunnelCounts, order: Sequence[str]) -> list[MessageCounts]:
    """Messages by stage in the funnel's order, then by name."""
    rank = {name: index for index, name in enumerate(order)}
    return sorted(counts.messages, key=lambda line: (rank.get(line.stage, len(rank)),
                                                     line.stage, line.message, line.channel))


def ordered_moves(counts: FunnelCounts, order: Sequence[str]
                  ) -> list[tuple[tuple[str, str], list[float]]]:
    """Moves by the stage they left, in the funnel's order, then by where they went."""
    rank = {name: index for index, name in enumerate(order)}
    return sorted(counts.moves.items(), key=lambda item: (
        rank.get(item[0][0], len(rank)), rank.get(item[0][1], len(rank)), item[0]))


def as_json(counts: FunnelCounts, workflow: m.Workflow | None) -> dict[str, Any]:
    """`loaded`: the workflow files declare this workflow (it may be gone from them while
    people are still enrolled); a stage's `declared`: they declare that stage (null when the
    workflow is not loaded)."""
    declared = {stage.name for stage in workflow.stages} if workflow is not None else set()
    order = stage_order(counts, workflow)
    return {
        "workflow": counts.workflow,
        "loaded": workflow is not None,
        "since": counts.since,
        "active": counts.active,
        "enrolled": counts.enrolled,
        "exited": sum(counts.exits.values()),
        "exits": counts.exits,
        "stages": [{"stage": name, "in_stage": counts.in_stage.get(name, 0),
                    "entered": counts.entered.get(name, 0),
                    "moved_on": counts.moved_on(name),
                    "median_stay_seconds": _whole(counts.median_stay(name)),
                    "declared": name in declared if workflow is not None else None}
                   for name in order],
        "moves": [{"from": source, "to": target, "moved": len(stays),
                   "median_stay_seconds": _whole(statistics.median(stays))}
                  for (source, target), stays in ordered_moves(counts, order)],
        "messages": [{"stage": line.stage, "message": line.message, "channel": line.channel,
                      "sent": line.sent, "skipped": line.skipped,
                      "dispatches": line.dispatches, "responses": line.responses}
                     for line in ordered_messages(counts, order)],
    }


def as_text(counts: FunnelCounts, workflow: m.Workflow | None, simulated: bool = False) -> str:
    """`simulated`: the counts of a simulation, whose "now" is its end."""
    now = "at the end" if simulated else "now"
    order = stage_order(counts, workflow)
    declared = {stage.name for stage in workflow.stages} if workflow is not None else None
    since = (f"since {counts.since.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
             if counts.since is not None else "all time")
    exits = ", ".join(f"{reason} {count:,}" for reason, count in sorted(counts.exits.items()))
    since = "in the simulation" if simulated else since
    lines = [f"workflow {counts.workflow}: {counts.active:,} in it {now}; {since}: "
             f"{counts.enrolled:,} enrolled, {sum(counts.exits.values()):,} exited"
             + (f" ({exits})" if exits else ""), ""]
    lines.extend(table(
        ["stage", f"in it {now}", "entered", "moved on", "median stay"],
        [[name + ("  (not in the workflow files)"
                  if declared is not None and name not in declared else ""),
          f"{counts.in_stage.get(name, 0):,}", f"{counts.entered.get(name, 0):,}",
          _share(counts.moved_on(name), counts.entered.get(name, 0)),
          _duration(counts.median_stay(name))]
         for name in order],
        right=(1, 2, 3, 4)))
    sources = [source for source, _ in counts.moves]
    if len(sources) > len(set(sources)):  # people left a stage for different stages
        lines.append("")
        lines.extend(table(
            ["from", "to", "moved", "median stay"],
            [[source, target, f"{len(stays):,}", _duration(statistics.median(stays))]
             for (source, target), stays in ordered_moves(counts, order)],
            right=(2, 3)))
    if counts.messages:
        # the outbox's columns, unless there is no outbox (a simulation)
        outbox = any(line.dispatches for line in counts.messages)
        came_back = any(line.responses for line in counts.messages)
        lines.append("")
        lines.extend(table(
            ["stage", "message", "channel", "sent"]
            + (["delivered", "pending", "not delivered"] if outbox else []) + ["skipped"]
            + (["came back"] if came_back else []),
            [[line.stage, line.message, line.channel, f"{line.sent:,}"]
             + ([_delivered(line), _pending(line),
                 _listed({s: n for s, n in line.dispatches.items()
                          if s not in PENDING and s != "delivered"})] if outbox else [])
             + [_listed(line.skipped)]
             + ([_came_back(line)] if came_back else [])
             for line in ordered_messages(counts, order)],
            right=(3, 4, 5) if outbox else (3,)))
    return "\n".join(lines)


def _share(part: int, whole: int) -> str:
    """`6,181 (60%)`: how many of those who entered moved on."""
    return f"{part:,} ({part / whole:.0%})" if whole and part else f"{part:,}"


def _whole(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds)


def _duration(seconds: float | None) -> str:
    """A stay as a marketer says it: `45 min`, `30 h`, `6.5 days`."""
    if seconds is None:
        return "-"
    if seconds < 120 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.1f} days".replace(".0 days", " days")


def _delivered(line: MessageCounts) -> str:
    return f"{line.dispatches.get('delivered', 0):,}" if line.dispatches else "-"


def _pending(line: MessageCounts) -> str:
    if not line.dispatches:
        return "-"
    return f"{sum(line.dispatches.get(status, 0) for status in PENDING):,}"


RESPONSE_WORDS = {"email_open": "opened", "push_received": "shown", "email_click": "clicked",
                  "push_click": "clicked", "email_bounced": "bounced"}
"""The tracking events as a marketer says them, in the order a reader follows them."""


def _came_back(line: MessageCounts) -> str:
    """`opened 412 (41%), clicked 57 (5.7%), bounced 3 (0.3% of sent)`: sends followed by
    each kind of event, as a share of the deliveries (the usual open and click rates); a
    bounce, which is not delivered, as a share of the sends (the usual bounce rate)."""
    delivered = line.dispatches.get("delivered", 0)
    shown = []
    for kind, word in RESPONSE_WORDS.items():
        if kind in line.responses:
            count = line.responses[kind]
            whole, of = (line.sent, " of sent") if kind == "email_bounced" else (delivered, "")
            shown.append(f"{word} {count:,}" + (f" ({_rate(count, whole)}{of})" if whole else ""))
    return ", ".join(shown) or "-"


def _rate(part: int, whole: int) -> str:
    share = 100 * part / whole
    return f"{share:.0f}%" if share >= 10 or share == 0 else f"{share:.1f}%"


def _listed(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in sorted(counts.items())) or "-"


def table(header: Sequence[str], rows: Sequence[Sequence[str]],
           right: Sequence[int] = ()) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows,
                                                                        strict=False)]

    def laid_out(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(width) if index in right else cell.ljust(width)
                         for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
                         ).rstrip()

    return ["  " + laid_out(header)] + ["  " + laid_out(row) for row in rows]


class TimelineTally:
    """The funnel of a simulation, counted from its timeline (`nurture simulate --funnel`):
    the simulator keeps no database to count in, and its records say everything the report
    needs. A send or skip belongs to the stage the subscriber is in when it is recorded (the
    records of a subscriber come in the order they happened)."""

    def __init__(self) -> None:
        self.current: dict[tuple[str, str], str] = {}
        self.since: dict[tuple[str, str], datetime] = {}
        """When each subscriber entered the stage they are in."""
        self.counts: dict[str, FunnelCounts] = {}
        self.lines: dict[tuple[str, str, str, str], MessageCounts] = {}

    def add(self, record: dict[str, Any]) -> None:
        workflow, kind = record["workflow"], record["kind"]
        counts = self.counts.get(workflow)
        if counts is None:
            counts = self.counts[workflow] = FunnelCounts(workflow, None)
        where = (record["subscriber"], workflow)
        if kind == "enter":
            at = datetime.fromisoformat(record["at"])
            if where not in self.current:
                counts.enrolled += 1
            stage = record["stage"]
            if where in self.current:
                stayed = (at - self.since[where]).total_seconds()
                counts.moves.setdefault((self.current[where], stage), []).append(stayed)
            self.current[where] = stage
            self.since[where] = at
            counts.entered[stage] = counts.entered.get(stage, 0) + 1
        elif kind == "exit":
            self.current.pop(where, None)
            reason = str(record["reason"])
            counts.exits[reason] = counts.exits.get(reason, 0) + 1
        elif kind in ("send", "skip"):
            key = (workflow, self.current.get(where, ""), record["message"],
                   record["channel"])
            line = self.lines.get(key)
            if line is None:
                line = self.lines[key] = MessageCounts(*key[1:])
                counts.messages.append(line)
            if kind == "send":
                line.sent += 1
            else:
                reason = str(record["reason"])
                line.skipped[reason] = line.skipped.get(reason, 0) + 1

    def finished(self) -> list[FunnelCounts]:
        """The counts of every workflow that saw a record, who is where at the end included."""
        for (_, workflow), stage in self.current.items():
            in_stage = self.counts[workflow].in_stage
            in_stage[stage] = in_stage.get(stage, 0) + 1
        return [self.counts[name] for name in sorted(self.counts)]
