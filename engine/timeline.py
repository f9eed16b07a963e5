"""A subscriber's real timeline: what the engine did to them, told in the simulator's words.

`nurture simulate` shows what workflows would do; this shows what they did, from the stored
rows (`engine.store.timeline`), as the same records (SPEC §3.1) — so a marketer asking "why did
Anna get this at 3 am?" reads the answer in the form they already know, and a tool can compare
a real journey with a simulated one line by line. A sent message also says what the outbox
did with it (delivered, queued, failed and why, cancelled).

The database keeps when each thing happened, not the order of things at one instant. At one
instant the timeline puts score changes first (in the order they were made), then tags, then
the journeys: enrolments begun at that instant, then exits, then the moves and sends of the
other enrolments; each workflow's in the order the files declare them, every stage entry
followed by the sends and skips of that stage visit. That is the order in which one event does
things, and each workflow's records are in the order they happened. Records of different
workflows at one instant may have happened in another order (two workflows' due work falling
on the same instant is done in the order it was planned); and an event that arrives after the
due work of its own instant was done is scored after that work, where the timeline shows its
score first.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.records import Record, format_instant, tidy
from engine.sending import RECORDED_FIELDS
from engine.store.timeline import Happening, Outcome

SCORES, TAGS, JOURNEY = 0, 1, 2
ENROLLING, EXITING, MOVING = 0, 1, 2
PLACE_IN_VISIT = {"enter": 0, "send": 1, "skip": 1, "exit": 2}


@dataclass(frozen=True, slots=True)
class TimelineLine:
    record: Record
    outcomes: tuple[Outcome, ...] = ()
    """For a `send`: what the outbox did with each of its dispatches."""

    def to_dict(self) -> dict[str, Any]:
        """The record as SPEC §3.1 words it; a send also has `dispatches`."""
        shown = self.record.to_dict()
        if self.record.kind == "send":
            shown["dispatches"] = [
                {"status": o.status,
                 "finished_at": format_instant(o.finished_at) if o.finished_at else None,
                 "error": o.error} for o in self.outcomes]
        return shown

    def to_json(self) -> str:
        """One JSON line: the simulator's (`Record.to_json`: SPEC order, exact numbers), and a
        send's `dispatches`."""
        line = self.record.to_json()
        if self.record.kind != "send":
            return line
        dispatches = json.dumps(self.to_dict()["dispatches"], ensure_ascii=False)
        return f'{line[:-1]}, "dispatches": {dispatches}}}'

    def outcome_text(self) -> str:
        """`delivered`, `delivered, gone (the subscription is gone)`: one word per dispatch,
        with why when it was not delivered."""
        return ", ".join(o.status if o.error is None or o.status == "delivered"
                         else f"{o.status} ({o.error})" for o in self.outcomes)


def timeline(found: Sequence[tuple[str, Sequence[Happening]]], workflow_order: Sequence[str],
             latest: int | None = None) -> list[TimelineLine]:
    """The subscribers' happenings (each with their id) as one timeline, in time order;
    `workflow_order` is the order the files declare workflows in (others follow by name);
    with `latest`, only the last that many lines."""
    rank = {name: index for index, name in enumerate(workflow_order)}

    def place(who: int, item: Happening) -> tuple[Any, ...]:
        workflow = (rank.get(item.workflow, len(rank)), item.workflow)
        if item.kind == "score":
            return (item.at, who, SCORES, item.order)
        if item.kind == "tag":
            return (item.at, who, TAGS, workflow, item.order, item.values["tag"])
        # as one event does them: enrolments it begins, then exits, then moves of the others
        step = ENROLLING if item.enrolled_at == item.at and item.kind != "exit" else (
            EXITING if item.kind == "exit" else MOVING)
        return (item.at, who, JOURNEY, step, workflow, item.enrolment, item.visit,
                PLACE_IN_VISIT[item.kind], item.order)

    ordered = sorted(((place(who, item), subscriber, item)
                      for who, (subscriber, items) in enumerate(found) for item in items),
                     key=lambda entry: entry[0])
    if latest is not None:
        ordered = ordered[-latest:] if latest else []
    return [_line(subscriber, item, index) for index, (_, subscriber, item) in
            enumerate(ordered)]


def _line(subscriber: str, item: Happening, index: int) -> TimelineLine:
    values = item.values
    note = None
    match item.kind:
        case "score":
            fields = {"score": values["score"], "delta": tidy(values["delta"]),
                      "total": tidy(values["total"]), "rule": values["rule"]}
        case "send":
            content = values["content"]
            fields = {"channel": values["channel"], "message": values["message"],
                      "lang": values["lang"]}
            for name in RECORDED_FIELDS.get(values["channel"], ()):
                fields[name] = content.get(name)
        case "skip":
            fields = {"channel": values["channel"], "message": values["message"],
                      "reason": values["reason"]}
            note = values["content"].get("error")
        case _:
            fields = dict(values)
    record = Record(item.at, subscriber, item.workflow, item.kind, fields, (0, 0, index), note)
    return TimelineLine(record, tuple(item.outcomes))
