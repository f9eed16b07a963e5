"""`nurture simulate`: the engine itself, on a throw-away database, in virtual time.

Nothing here re-implements a rule. Events go through `Engine.ingest` with a virtual clock set to
the end of the simulation, so each subscriber is carried through its events and every piece of
due work in between, each at its exact instant (virtual time jumps from one due time to the
next). Subscribers are independent of one another, so they are simulated in batches; each
batch's records are sorted and, when there is more than one batch, spilled to a temporary file,
and the files are merged into one timeline in time order. Memory follows the batch, not the
simulation.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from dsl import model as m
from engine.clock import VirtualClock
from engine.events import Event, EventError, parse_event
from engine.processor import Engine
from engine.records import Record, format_number
from engine.store.database import open_database

DEFAULT_HORIZON = timedelta(days=30)
SUBSCRIBERS_PER_BATCH = 500
PICKLE_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class InputProblem:
    line: int
    column: int
    message: str


@dataclass(slots=True)
class EventsFile:
    events: list[Event] = field(default_factory=list)
    problems: list[InputProblem] = field(default_factory=list)


def read_events(stream: IO[str]) -> EventsFile:
    """Parse a JSON-lines file of events; every bad line is reported with its number."""
    result = EventsFile()
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            raw = orjson.loads(line)  # the JSON the HTTP API accepts
        except orjson.JSONDecodeError as problem:
            result.problems.append(InputProblem(number, problem.colno,
                                                f"not valid JSON: {problem.msg}"))
            continue
        try:
            result.events.append(parse_event(raw, seq=number))
        except EventError as problem:
            result.problems.append(InputProblem(number, 1, str(problem)))
    return result


@dataclass(slots=True)
class Summary:
    events: int = 0
    subscribers: int = 0
    duplicates: int = 0
    after_until: int = 0
    records: int = 0
    hidden: int = 0
    """Records before `--from`, simulated but not printed."""
    sends: int = 0
    skips: int = 0


def simulate(catalog: m.Catalog, events: list[Event], start: datetime, until: datetime,
             emit: Callable[[Record], None], workdir: str | None = None) -> Summary:
    """Run the workflows over `events` up to `until` (inclusive); emit records from `start`.

    `events` is consumed (emptied): each batch's events are let go once simulated, so that
    memory does not hold the whole input until the end.
    """
    summary = Summary()
    total = len(events)
    events.sort(key=lambda e: (e.at, e.seq))
    by_subscriber: dict[str, list[Event]] = {}
    for event in events:
        if event.at <= until:
            by_subscriber.setdefault(event.subscriber, []).append(event)
            summary.events += 1
    events.clear()
    summary.after_until = total - summary.events
    summary.subscribers = len(by_subscriber)
    subscribers = list(by_subscriber)
    with tempfile.TemporaryDirectory(prefix="nurture-simulate-", dir=workdir) as folder:
        database = open_database(f"sqlite:///{Path(folder) / 'simulation.db'}", durable=False)
        runs = SortedRuns(Path(folder), spill=len(subscribers) > SUBSCRIBERS_PER_BATCH)
        batch: list[Record] = []
        engine = Engine(catalog, database, clock=VirtualClock(until), on_record=batch.append,
                        push_needs_subscription=False, outbox=False,
                        batch_size=SUBSCRIBERS_PER_BATCH)
        try:
            for first in range(0, len(subscribers), SUBSCRIBERS_PER_BATCH):
                chunk = subscribers[first:first + SUBSCRIBERS_PER_BATCH]
                result = engine.ingest([e for s in chunk for e in by_subscriber.pop(s)])
                summary.duplicates += len(result.duplicates)
                runs.add(batch)
                batch.clear()
            engine.tick()  # the work due exactly at --until (inclusive)
            runs.add(batch)
            batch.clear()
            for record in runs.merged():
                summary.records += 1
                if record.at < start:
                    summary.hidden += 1
                    continue
                summary.sends += record.kind == "send"
                summary.skips += record.kind == "skip"
                emit(record)
        finally:
            database.dispose()
    return summary


class SortedRuns:
    """Sorted runs of records, merged lazily; spilled to files when there are many."""

    def __init__(self, folder: Path, spill: bool) -> None:
        self.folder = folder
        self.spill = spill
        self.memory: list[list[Record]] = []
        self.files: list[Path] = []

    def add(self, records: list[Record]) -> None:
        run = sorted(records, key=Record.sort_key)
        if not self.spill:
            self.memory.append(run)
            return
        path = self.folder / f"run-{len(self.files)}.pickle"
        with path.open("wb") as out:
            for start in range(0, len(run), PICKLE_CHUNK):
                pickle.dump(run[start:start + PICKLE_CHUNK], out, pickle.HIGHEST_PROTOCOL)
        self.files.append(path)

    def merged(self) -> Iterator[Record]:
        sources: list[Any] = [iter(run) for run in self.memory]
        sources += [_read_run(path) for path in self.files]
        return heapq.merge(*sources, key=Record.sort_key)


def _read_run(path: Path) -> Iterator[Record]:
    with path.open("rb") as stream:
        while True:
            try:
                chunk: list[Record] = pickle.load(stream)  # our own file, written above
            except EOFError:
                return
            yield from chunk


def default_window(events: Sequence[Event], start: datetime | None,
                   until: datetime | None) -> tuple[datetime, datetime] | None:
    """`--from` defaults to the earliest event, `--until` to the latest plus 30 days."""
    if events:
        start = start or min(e.at for e in events)
        until = until or max(e.at for e in events) + DEFAULT_HORIZON
    if start is None or until is None:
        return None
    return start, until


# ---------------------------------------------------------------- the readable table


class TableFormat:
    """The timeline as aligned columns: time, subscriber, workflow, what happened."""

    def __init__(self, subscribers: Sequence[str], workflows: Sequence[str]) -> None:
        self.who = max(len("subscriber"), min(max(map(len, subscribers), default=0), 24))
        self.workflow = max(len("workflow"), *map(len, workflows))

    def header(self) -> str:
        return (f"{'time (UTC)':<19}  {'subscriber':<{self.who}}  "
                f"{'workflow':<{self.workflow}}  what")

    def line(self, record: Record) -> str:
        when = record.at.strftime("%Y-%m-%d %H:%M:%S")
        return (f"{when}  {record.subscriber:<{self.who}}  {record.workflow:<{self.workflow}}  "
                f"{describe(record)}")


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
