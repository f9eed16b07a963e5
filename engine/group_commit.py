"""Concurrent ingest calls share one engine batch (group commit).

The HTTP API takes events in requests of up to 1,000 (often far fewer), and on SQLite one
transaction writes at a time: requests that arrive while a batch is being written would each
wait for the lock and then write a small batch of their own. A small batch costs more per
event than a large one, since every commit rewrites the pages it touched, and a page touched by
two requests is written twice. Here the requests that wait are taken together: whoever finds
nobody writing leads, writes what is waiting as one batch, hands each request its own answer,
and passes the lead to the next request that arrived meanwhile. A request alone is written at
once, as before; none waits for a timer.

Within a group, events keep their arrival order (a later request's events at the same instant
come after an earlier one's), and each request's answer is its own: how many of its events were
accepted, and which of its ids were duplicates (of stored events, of its own events, or of an
earlier request's in the same group). If a group fails before any of it is stored, its requests
are written again one by one: a request whose events trip an error fails alone.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.events import Event
from engine.processor import IngestResult, PartlyIngested

Ingest = Callable[[list[Event]], IngestResult]
MOST_EVENTS = 5_000
"""A group stops growing at this many events (a transaction is held while it is written)."""


@dataclass(eq=False)
class _Request:
    events: list[Event]
    answered: threading.Event = field(default_factory=threading.Event)
    result: IngestResult | None = None
    error: BaseException | None = None


class GroupCommit:
    """`submit` from any thread; requests waiting together are written as one batch."""

    def __init__(self, ingest: Ingest, most_events: int = MOST_EVENTS) -> None:
        self._ingest = ingest
        self.most_events = most_events
        self._lock = threading.Lock()
        self._waiting: list[_Request] = []
        self._writing = False
        self.groups = 0
        """Batches written (for tests and metrics)."""

    @property
    def waiting(self) -> int:
        """Requests waiting for the batch being written (for tests and metrics)."""
        with self._lock:
            return len(self._waiting)

    @property
    def writing(self) -> bool:
        with self._lock:
            return self._writing

    def submit(self, events: list[Event]) -> IngestResult:
        request = _Request(events)
        with self._lock:
            self._waiting.append(request)
            leads = not self._writing
            self._writing = True
        if not leads:
            request.answered.wait()  # answered, or woken to lead
        if request.result is None and request.error is None:
            self._lead()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _lead(self) -> None:
        with self._lock:
            group = self._take()
        try:
            self._write(group)
        finally:
            with self._lock:
                following = self._waiting[0] if self._waiting else None
                self._writing = following is not None
            for request in group:
                request.answered.set()
            if following is not None:
                following.answered.set()  # no answer yet: it leads the next group

    def _take(self) -> list[_Request]:
        """The waiting requests, oldest first, up to the size of a group (at least one)."""
        taken, events = 0, 0
        for request in self._waiting:
            if taken and events + len(request.events) > self.most_events:
                break
            taken += 1
            events += len(request.events)
        group, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return group

    def _write(self, group: list[_Request]) -> None:
        merged: list[Event] = []
        owners: dict[str, _Request] = {}
        accepted = {id(request): 0 for request in group}
        duplicates: dict[int, list[str]] = {id(request): [] for request in group}
        erased: dict[int, list[Event]] = {id(request): [] for request in group}
        sender: dict[int, _Request] = {}  # id of a merged event -> its request
        renumber = len(group) > 1
        for request in group:
            for event in request.events:
                if event.key is not None:
                    if event.key in owners:
                        duplicates[id(request)].append(event.key)
                        continue
                    owners[event.key] = request
                if renumber:  # arrival order across the group
                    event = dataclasses.replace(event, seq=len(merged))
                merged.append(event)
                sender[id(event)] = request
                accepted[id(request)] += 1
        try:
            result = self._ingest(merged)
        except Exception as problem:
            self.groups += 1
            if len(group) == 1 or isinstance(problem, PartlyIngested):
                for request in group:  # part is stored: writing again could store it twice
                    request.error = problem
            else:
                self._write_alone(group)
            return
        except BaseException as problem:
            for request in group:
                request.error = problem
            raise
        self.groups += 1
        for key in result.duplicates:  # already stored: each key belongs to one request
            owner = owners[key]
            accepted[id(owner)] -= 1
            duplicates[id(owner)].append(key)
        for event in result.erased:
            owner = sender[id(event)]
            accepted[id(owner)] -= 1
            erased[id(owner)].append(event)
        for request in group:
            request.result = IngestResult(accepted[id(request)], duplicates[id(request)],
                                          erased[id(request)])

    def _write_alone(self, group: list[_Request]) -> None:
        """After a group failed: each request on its own, so that one request whose events
        trip an error fails alone and the others are answered as if they had come alone
        (ids that part of the group already stored come back as duplicates)."""
        for request in group:
            try:
                request.result = self._ingest(request.events)
            except Exception as problem:
                request.error = problem
            finally:
                self.groups += 1
