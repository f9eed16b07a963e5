"""The timeline: what happened to whom and when, as the simulator prints it (SPEC §3.1).

The engine emits a `Record` for every enter, score, tag, send, skip and exit. Records carry a
sort key so that a timeline assembled from many subscribers reads in time order, records at
one instant in the order they happened: events before due work (SPEC §1.5a), events in arrival
order, due work by subscriber, and within one subscriber in processing order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

EVENT_PHASE = 0
DUE_PHASE = 1

KINDS = ("enter", "score", "tag", "send", "skip", "exit")


@dataclass(frozen=True, slots=True)
class Record:
    at: datetime
    subscriber: str
    workflow: str
    kind: str
    fields: dict[str, Any]
    key: tuple[int, int, int]
    """(phase, order within the phase, sequence within the subscriber's processing)."""
    note: str | None = None
    """An explanation for people (why a template failed); not part of the JSON record."""

    def get(self, name: str) -> Any:
        return self.fields.get(name)

    def to_json(self) -> str:
        """One JSON line with the SPEC's field order; numbers exact (no float rounding)."""
        parts = [f'"at": "{format_instant(self.at)}"',
                 f'"subscriber": {json.dumps(self.subscriber, ensure_ascii=False)}',
                 f'"workflow": {json.dumps(self.workflow, ensure_ascii=False)}',
                 f'"kind": "{self.kind}"']
        parts += [f"{json.dumps(name)}: {json_value(value)}" for name, value in
                  self.fields.items()]
        return "{" + ", ".join(parts) + "}"

    def to_dict(self) -> dict[str, Any]:
        return {"at": format_instant(self.at), "subscriber": self.subscriber,
                "workflow": self.workflow, "kind": self.kind, **self.fields}


def format_instant(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_number(value: Decimal | int) -> str:
    """Integers when whole, otherwise the exact decimal, never in exponent form."""
    if isinstance(value, int):
        return str(value)
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def tidy(value: Decimal) -> int | Decimal:
    """A score as users see it: `27`, not `27.0`; `24.3`, not `24.30`."""
    if value == value.to_integral_value():
        return int(value)
    return value.normalize()


def json_number(value: int | Decimal) -> int | str:
    """A score or points in a report's JSON: an integer when whole, else the exact decimal
    as text (a JSON number would be read back as a float, rounded)."""
    shown = tidy(value) if isinstance(value, Decimal) else value
    return shown if isinstance(shown, int) else str(shown)


def exact(value: Decimal) -> Decimal:
    """The same number with no trailing zeros (`-3.0` → `-3`), for storing and comparing."""
    if value == value.to_integral_value():
        return Decimal(int(value))
    return value.normalize()


def json_value(value: Any) -> str:
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return format_number(value)
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------- the readable table
# (here rather than in the simulator: `nurture timeline` prints it without loading the engine)


CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""Characters that a terminal acts on instead of showing: line breaks and tabs that tear a
table apart, escape sequences (colours, moving the cursor, clearing the screen, a window
title), and the bidirectional marks that show text in another order than it is."""


def printable(text: str) -> str:
    """Text for a terminal: control characters as Python escapes it (`\\n`, `\\x1b`). What
    the tables show comes from subscribers' data and peers' answers, which the operator's
    terminal must show, not obey."""
    return CONTROLS.sub(lambda found: found[0].encode("unicode_escape").decode("ascii"), text)


class TableFormat:
    """The timeline as aligned columns: time, subscriber, workflow, what happened. Every
    line is `printable`."""

    def __init__(self, subscribers: Sequence[str], workflows: Sequence[str]) -> None:
        self.who = max(len("subscriber"), min(max(map(len, subscribers), default=0), 24))
        self.workflow = max(len("workflow"), *map(len, workflows))

    def header(self) -> str:
        return (f"{'time (UTC)':<19}  {'subscriber':<{self.who}}  "
                f"{'workflow':<{self.workflow}}  what")

    def line(self, record: Record, outcome: str | None = None) -> str:
        when = record.at.strftime("%Y-%m-%d %H:%M:%S")
        return printable(f"{when}  {record.subscriber:<{self.who}}  "
                         f"{record.workflow:<{self.workflow}}  {describe(record)}"
                         + (f"  -> {outcome}" if outcome else ""))


def describe(record: Record) -> str:
    f = record.fields
    match record.kind:
        case "enter":
            return f"enter {f['stage']}"
        case "score":
            delta = format_number(f["delta"])
            sign = "" if delta.startswith("-") else "+"
            return (f"score {f['score']} {sign}{delta} = {format_number(f['total'])}  "
                    f"({f['rule']})")
        case "tag":
            return f"tag {f['tag']}"
        case "send":
            lang = f" [{f['lang']}]" if f.get("lang") else ""
            shown = [str(f[name]) for name in ("subject", "title", "body", "url")
                     if f.get(name) is not None]
            return f"send {f['channel']} {f['message']}{lang}: " + " | ".join(shown)
        case "skip":
            note = f" ({record.note})" if record.note else ""
            return f"skip {f['channel']} {f['message']}: {f['reason']}{note}"
        case "exit":
            return f"exit ({f['reason']})"
    return record.kind
