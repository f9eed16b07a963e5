"""`nurture simulate`: the engine itself, on throw-away databases, in virtual time.

Nothing here re-implements a rule but one: an event `id` is stored once, which the engine
checks against its database, is checked here first, because the subscribers may be shared
among processes with databases of their own. Events go through `Engine.ingest` with a virtual
clock set to the end of the simulation, so each subscriber is carried through its events and
every piece of due work in between, each at its exact instant (virtual time jumps from one due
time to the next). Subscribers are independent of one another, so they are simulated in
batches, shared among forked processes when there are several CPUs; each batch's records are
printed and sorted and, when there is more than one batch, spilled to a temporary file, and
the files are merged into one timeline in time order. Memory follows the batch, not the
simulation.
"""

from __future__ import annotations

import gc
import heapq
import io
import multiprocessing
import os
import pickle
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from dsl import model as m
from dsl.text import NotUtf8Text
from dsl.validate import misspelt_event
from engine.clock import VirtualClock
from engine.events import Event, EventError, parse_event
from engine.json_paths import field_offset
from engine.processor import Engine
from engine.records import Record
from engine.store.database import open_database

DEFAULT_HORIZON = timedelta(days=30)
SUBSCRIBERS_PER_BATCH = 500
PICKLE_CHUNK = 2000
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
"""The bytes that were not UTF-8, as `surrogateescape` keeps them."""
SQLITE_CACHE_MIB = 16
"""Per process. Each subscriber is read and written in one batch only, so a large cache
would mostly hold pages no one reads again (the service's is 64 MiB)."""


@dataclass(frozen=True, slots=True)
class InputProblem:
    line: int
    column: int
    message: str


@dataclass(slots=True)
class EventsFile:
    events: list[Event] = field(default_factory=list)
    problems: list[InputProblem] = field(default_factory=list)
    type_columns: dict[str, int] = field(default_factory=dict)
    """Where the type is written on the line of each type's first event (a warning about a
    misspelt type points there)."""


def open_events(path: str) -> IO[str]:
    """The events file (`-`: standard input) for `read_events`: UTF-8, with or without the
    byte order mark that spreadsheet and Windows tools write, bytes in another encoding kept
    for `read_events` to find."""
    if path == "-":  # `nurture events | nurture simulate … --events -`
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig",
                                errors="surrogateescape")
    return open(path, encoding="utf-8-sig", errors="surrogateescape")


def read_events(stream: IO[str]) -> EventsFile:
    """Parse a JSON-lines file of events; every bad line is reported with its number.

    A line in another encoding than UTF-8 (a name typed in Windows-1250, say) is one bad line
    among the others, reported where its first such byte is, if the stream kept those bytes
    (`open_events` does)."""
    result = EventsFile()
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        undecoded = _NOT_UTF8.search(line)
        if undecoded is not None:
            if number == 1 and line.startswith(("\udcff\udcfe", "\udcfe\udcff")):
                # every line is, the same way: once is enough
                problem = NotUtf8Text(1, 1, None)
            else:
                problem = NotUtf8Text(number, undecoded.start() + 1,
                                      ord(undecoded.group()) - 0xDC00)
            result.problems.append(InputProblem(problem.line, problem.column,
                                                f"{problem}: save the file as UTF-8"))
            if problem.byte is None:
                return result
            continue
        try:
            raw = orjson.loads(line)  # the JSON the HTTP API accepts
        except orjson.JSONDecodeError as problem:
            result.problems.append(InputProblem(number, problem.colno,
                                                f"not valid JSON: {problem.msg}"))
            continue
        if isinstance(raw, list):  # the whole file as one JSON array, say
            result.problems.append(InputProblem(number, 1, (
                "expected an event (a JSON object), got a list: write one event per line "
                "(JSON lines), not an array")))
            continue
        try:
            event = parse_event(raw, seq=number)
            result.events.append(event)
            if event.type not in result.type_columns:
                offset = field_offset(line, "type")
                result.type_columns[event.type] = 1 if offset is None else offset + 1
        except EventError as problem:
            offset = field_offset(line, problem.field, key=problem.key)
            column = 1 if offset is None else offset + 1
            result.problems.append(InputProblem(number, column, str(problem)))
    return result


def misspelt_types(events: list[Event], catalog: m.Catalog
                   ) -> list[tuple[int, str, str, int]]:
    """Event types of a file that nearly spell one the workflows name and are not it (a
    hand-written file's `purchse`): (first line, type, the one meant, how many events). The
    events are simulated as they are, since a site sends events of any name; the marketer
    is told, as the simulation would otherwise just show nothing happening."""
    first: dict[str, int] = {}
    counts: Counter[str] = Counter()
    for event in events:
        counts[event.type] += 1
        first.setdefault(event.type, event.seq)
    found = []
    for name, line in first.items():
        meant = misspelt_event(name, catalog)
        if meant is not None:
            found.append((line, name, meant, counts[name]))
    return sorted(found)


def received_types(events: Sequence[Event], until: datetime) -> dict[str, int]:
    """The events of each type the simulation takes in (those up to `until`, an id
    repeated counted once, as the engine stores it once): `nurture simulate --rules`."""
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    for event in events:
        if event.at > until or (event.key is not None and event.key in seen):
            continue
        if event.key is not None:
            seen.add(event.key)
        counts[event.type] += 1
    return dict(counts)


@dataclass(slots=True)
class Tally:
    """What was simulated, counted as it went (in each process)."""

    records: int = 0
    hidden: int = 0
    """Records before `--from`, simulated but not printed."""
    sends: int = 0
    skips: int = 0


@dataclass(slots=True)
class Summary(Tally):
    events: int = 0
    subscribers: int = 0
    duplicates: int = 0
    after_until: int = 0

    def count(self, tally: Tally) -> None:
        self.records += tally.records
        self.hidden += tally.hidden
        self.sends += tally.sends
        self.skips += tally.skips


SortKey = tuple[int, int, int, int]
"""A record's place in the timeline: its instant in microseconds, then `Record.key`."""
Line = tuple[SortKey, str]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def simulate(catalog: m.Catalog, events: list[Event], start: datetime, until: datetime,
             emit: Callable[[str], None], show: Callable[[Record], str],
             workdir: str | None = None, jobs: int = 1) -> Summary:
    """Run the workflows over `events` up to `until` (inclusive); `emit` each record from
    `start` on, in time order, as `show` prints it.

    `events` is consumed (emptied): memory does not hold the whole input until the end. With
    `jobs` > 1 (and more than one batch of subscribers) the batches are shared among that many
    forked processes, each with a database of its own, which print their own records; the
    timeline is the same, line for line, as with one.
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
    summary.duplicates = _drop_repeated_ids(by_subscriber)
    batches = (len(by_subscriber) + SUBSCRIBERS_PER_BATCH - 1) // SUBSCRIBERS_PER_BATCH
    jobs = max(1, min(jobs, batches)) if "fork" in multiprocessing.get_all_start_methods() else 1
    works = _share_out(by_subscriber, jobs)
    with tempfile.TemporaryDirectory(prefix="nurture-simulate-", dir=workdir) as folder:
        share = Share(catalog, start, until, show, Path(folder), spill=batches > 1)
        if jobs <= 1:
            outcomes = [share.simulate(0, works.pop())]
        else:
            share.set_aside(works)  # and out of this process's memory
            global _SHARE
            _SHARE = share  # forked processes inherit it: nothing is pickled but the answers
            try:
                context = multiprocessing.get_context("fork")
                with ProcessPoolExecutor(jobs, mp_context=context) as pool:
                    outcomes = list(pool.map(_simulate_share, range(jobs)))
            finally:
                _SHARE = None
        for _, tally in outcomes:
            summary.count(tally)
        for _, text in heapq.merge(*(runs.read() for runs, _ in outcomes)):
            emit(text)
    return summary


def available_cpus() -> int:
    """The CPUs this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _drop_repeated_ids(by_subscriber: dict[str, list[Event]]) -> int:
    """An event id is stored once (SPEC §2): the first in subscriber, then time order keeps
    it, as one engine ingesting the batches in turn would. Done here, before the batches are
    shared out, so that processes with databases of their own agree on it."""
    seen: set[str] = set()
    repeated = 0
    for subscriber, events in list(by_subscriber.items()):
        kept = []
        for event in events:
            if event.key is not None:
                if event.key in seen:
                    repeated += 1
                    continue
                seen.add(event.key)
            kept.append(event)
        if len(kept) != len(events):
            by_subscriber[subscriber] = kept
    return repeated


@dataclass(slots=True)
class Work:
    """One process's part: the events of its batches of subscribers, and the place of each of
    its subscribers in the whole input (by first event)."""

    batches: list[list[Event]]
    rank: dict[str, int]


def _share_out(by_subscriber: dict[str, list[Event]], jobs: int) -> list[Work]:
    """Batches of subscribers, dealt round-robin (subscriptions and activity drift through
    the input, so each process gets some of every period); `by_subscriber` is emptied."""
    subscribers = list(by_subscriber)
    chunks = [subscribers[first:first + SUBSCRIBERS_PER_BATCH]
              for first in range(0, len(subscribers), SUBSCRIBERS_PER_BATCH)]
    rank = {s: number for number, s in enumerate(subscribers, start=1)}
    return [Work([[e for s in chunk for e in by_subscriber.pop(s)] for chunk in mine],
                 {s: rank[s] for chunk in mine for s in chunk})
            for mine in (chunks[index::jobs] for index in range(jobs))]


@dataclass(slots=True)
class Share:
    """What every simulating process needs: the catalog, the window, how to print."""

    catalog: m.Catalog
    start: datetime
    until: datetime
    show: Callable[[Record], str]
    folder: Path
    spill: bool

    def set_aside(self, works: list[Work]) -> None:
        """Each process's work to a file of its own, and out of this process's memory: forked
        processes would otherwise each copy the pages of every event they touch, and this one
        would hold them all while they run. `works` is emptied."""
        for index in range(len(works)):
            _write_work(self.folder / f"work-{index}.pickle", works[index])
        works.clear()
        # Measured: without a full collection here, about 100 MB of the freed events' memory
        # stayed with this process (it collects nothing; CPython then gives memory back).
        gc.collect()

    def simulate(self, index: int, work: Work | None = None) -> tuple[SortedRuns, Tally]:
        """Simulate a share of the batches on a database of this process's own.

        Due work at one instant is ordered by subscriber (SPEC §1.5a); the final tick ranks
        subscribers by their database ids, which differ from one process's database to the
        next, so its records are ranked by the subscriber's place in the whole input instead
        (the id one database would have given them)."""
        if work is None:
            with (self.folder / f"work-{index}.pickle").open("rb") as stream:
                rows, rank = pickle.load(stream)  # our own file, written by set_aside
            work = Work([[Event(*row) for row in batch] for batch in rows], rank)
            del rows  # (the events are in `work` now)
        database = open_database(f"sqlite:///{self.folder / f'simulation-{index}.db'}",
                                 durable=False, cache_mib=SQLITE_CACHE_MIB)
        runs = SortedRuns(self.folder, spill=self.spill, name=f"run-{index}")
        tally = Tally()
        batch: list[Record] = []
        # States are not kept between batches: a subscriber's batch is its only one.
        engine = Engine(self.catalog, database, clock=VirtualClock(self.until),
                        on_record=batch.append, push_needs_subscription=False, outbox=False,
                        batch_size=SUBSCRIBERS_PER_BATCH, cache_size=0)
        try:
            work.batches.reverse()
            while work.batches:  # each batch's events let go once simulated
                engine.ingest(work.batches.pop())
                runs.add(self._lines(batch, tally))
                batch.clear()
            engine.tick()  # the work due exactly at --until (inclusive)
            batch[:] = [replace(r, key=(r.key[0], work.rank[r.subscriber], r.key[2]))
                        for r in batch]
            runs.add(self._lines(batch, tally))
        finally:
            database.dispose()
        return runs, tally

    def _lines(self, records: list[Record], tally: Tally) -> list[Line]:
        """The records to print, with their places in the timeline; the others counted."""
        lines = []
        tally.records += len(records)
        for record in records:
            if record.at < self.start:
                tally.hidden += 1
                continue
            tally.sends += record.kind == "send"
            tally.skips += record.kind == "skip"
            lines.append((((record.at - _EPOCH) // _MICROSECOND, *record.key),
                          self.show(record)))
        return lines


def _write_work(path: Path, work: Work) -> None:
    """As plain tuples: pickling 200,000 `Event`s took 3.4 s, their fields about 1 s."""
    rows = [[(e.subscriber, e.type, e.at, e.properties, e.key, e.seq) for e in batch]
            for batch in work.batches]
    with path.open("wb") as out:
        pickle.dump((rows, work.rank), out, pickle.HIGHEST_PROTOCOL)


_SHARE: Share | None = None


def _simulate_share(index: int) -> tuple[SortedRuns, Tally]:
    """In a forked process: simulate a share of the batches; its runs are in files."""
    assert _SHARE is not None
    return _SHARE.simulate(index)


class SortedRuns:
    """Sorted runs of printed records, merged lazily; spilled to files when there are many."""

    def __init__(self, folder: Path, spill: bool, name: str = "run") -> None:
        self.folder = folder
        self.spill = spill
        self.name = name
        self.memory: list[list[Line]] = []
        self.files: list[Path] = []

    def add(self, lines: list[Line]) -> None:
        lines.sort()  # sort keys are unique: the text is never compared
        if not self.spill:
            self.memory.append(lines)
            return
        path = self.folder / f"{self.name}-{len(self.files)}.pickle"
        with path.open("wb") as out:
            for start in range(0, len(lines), PICKLE_CHUNK):
                pickle.dump(lines[start:start + PICKLE_CHUNK], out, pickle.HIGHEST_PROTOCOL)
        self.files.append(path)

    def read(self) -> Iterator[Line]:
        """This process's runs merged: already in timeline order."""
        sources: list[Any] = [iter(run) for run in self.memory]
        sources += [_read_run(path) for path in self.files]
        return heapq.merge(*sources)


def _read_run(path: Path) -> Iterator[Line]:
    with path.open("rb") as stream:
        while True:
            try:
                chunk: list[Line] = pickle.load(stream)  # our own file, written above
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
