"""Concurrent ingest calls are written as one batch, and each gets its own answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dsl.loader import load_text
from engine.clock import VirtualClock
from engine.events import Event
from engine.group_commit import GroupCommit
from engine.processor import Engine, IngestResult
from engine.store import queries
from engine.store.database import Database, open_database

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
FLOW = """
workflow w {
  score heat { on page_view +1 }
  stage only { }
}
"""


def event(who: str, key: str | None, seq: int = 0, kind: str = "page_view") -> Event:
    return Event(who, kind, T0, {}, key, seq)


class Gate:
    """An ingest function that holds its first call until released, recording every batch."""

    def __init__(self, stored: set[str] | None = None) -> None:
        self.batches: list[list[Event]] = []
        self.stored = stored or set()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail: BaseException | None = None

    def __call__(self, events: list[Event]) -> IngestResult:
        self.batches.append(events)
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(10)
        if self.fail is not None:
            raise self.fail
        if any(e.subscriber == "poison" for e in events):
            raise ValueError("a bug that one subscriber's events trip")
        erased = [e for e in events if e.subscriber == "erased"]
        events = [e for e in events if e.subscriber != "erased"]
        duplicates = [e.key for e in events if e.key in self.stored]
        self.stored.update(e.key for e in events if e.key is not None)
        return IngestResult(len(events) - len(duplicates), duplicates, erased)


def submit_all(groups: GroupCommit, gate: Gate, requests: list[list[Event]]
               ) -> list[IngestResult | BaseException]:
    """The first request is being written; the others arrive meanwhile, in order."""
    answers: list[IngestResult | BaseException | None] = [None] * len(requests)

    def run(index: int) -> None:
        try:
            answers[index] = groups.submit(requests[index])
        except BaseException as problem:
            answers[index] = problem

    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert gate.entered.wait(10)
    others = []
    for index in range(1, len(requests)):
        thread = threading.Thread(target=run, args=(index,))
        thread.start()
        others.append(thread)
        deadline = time.monotonic() + 10
        while groups.waiting < index and time.monotonic() < deadline:  # queued in this order
            time.sleep(0.001)
        assert groups.waiting == index
    gate.release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def test_requests_that_wait_are_written_together_each_with_its_own_answer() -> None:
    gate = Gate(stored={"old"})
    groups = GroupCommit(gate)
    answers = submit_all(groups, gate, [
        [event("a", "a1")],
        [event("b", "b1"), event("b", "b1"), event("b", "old")],  # its own repeat, a stored id
        [event("c", "a1"), event("c", "c1"), event("c", None)],   # an id stored just before
        [event("d", "b1"), event("d", "d1")],                     # an id of an earlier request
    ])
    assert [len(batch) for batch in gate.batches] == [1, 6]  # the three waiting: one batch
    assert answers == [IngestResult(1, []), IngestResult(1, ["b1", "old"]),
                       IngestResult(2, ["a1"]), IngestResult(1, ["b1"])]
    assert groups.groups == 2


def test_events_of_erased_subscribers_are_counted_for_the_request_that_sent_them() -> None:
    gate = Gate()
    groups = GroupCommit(gate)
    answers = submit_all(groups, gate, [
        [event("a", "a1")],
        [event("erased", None), event("b", "b1")],
        [event("erased", None), event("erased", "x1"), event("c", None)],
    ])
    results = [a for a in answers if isinstance(a, IngestResult)]
    assert [(r.accepted, len(r.erased)) for r in results] == [(1, 0), (1, 1), (1, 2)]
    assert [e.subscriber for e in results[2].erased] == ["erased", "erased"]


def test_a_group_keeps_the_arrival_order_of_its_requests() -> None:
    gate = Gate()
    groups = GroupCommit(gate)
    submit_all(groups, gate, [[event("a", "first")],
                              [event("s", "x", seq=0), event("s", "y", seq=1)],
                              [event("s", "z", seq=0)]])
    assert [(e.key, e.seq) for e in gate.batches[1]] == [("x", 0), ("y", 1), ("z", 2)]


def test_a_group_stops_growing_at_its_size() -> None:
    gate = Gate()
    groups = GroupCommit(gate, most_events=3)
    submit_all(groups, gate, [[event("a", "a")], [event("b", "b1"), event("b", "b2")],
                              [event("c", "c1"), event("c", "c2")], [event("d", "d")]])
    assert [[e.key for e in batch] for batch in gate.batches] == [
        ["a"], ["b1", "b2"], ["c1", "c2", "d"]]


def test_a_failed_group_fails_each_of_its_requests_and_the_next_group_is_written() -> None:
    gate = Gate()
    groups = GroupCommit(gate)
    gate.fail = RuntimeError("database unavailable")
    answers = submit_all(groups, gate, [[event("a", "a")], [event("b", "b")],
                                        [event("c", "c")]])
    assert all(isinstance(answer, RuntimeError) for answer in answers)
    gate.fail = None
    assert groups.submit([event("d", "d")]) == IngestResult(1, [])
    assert groups.writing is False


def test_a_request_that_fails_its_group_fails_alone() -> None:
    """The group is written again request by request: only the request whose events trip
    the error gets it; the others get their answers, as if they had come alone."""
    gate = Gate()
    groups = GroupCommit(gate)
    answers = submit_all(groups, gate, [[event("a", "a")], [event("b", "b")],
                                        [event("poison", "p"), event("c", "c")],
                                        [event("d", "d")]])
    assert answers[0] == IngestResult(1, [])
    assert answers[1] == IngestResult(1, [])
    assert isinstance(answers[2], ValueError)
    assert answers[3] == IngestResult(1, [])
    # the first alone; then b, poison+c and d together (refused); then each alone
    assert [[e.subscriber for e in batch] for batch in gate.batches] == [
        ["a"], ["b", "poison", "c", "d"], ["b"], ["poison", "c"], ["d"]]
    assert groups.writing is False


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = open_database(f"sqlite:///{tmp_path / 'g.db'}")
    yield db
    db.dispose()


def test_many_threads_through_the_engine_store_every_event_once(database: Database) -> None:
    catalog = load_text(FLOW, "w.flow").catalog
    assert catalog is not None
    engine = Engine(catalog, database, clock=VirtualClock(T0), push_needs_subscription=False)
    groups = GroupCommit(engine.ingest)
    answers: list[IngestResult] = []

    def client(number: int) -> None:
        for round_ in range(10):  # every id is sent twice, by two clients
            batch = [event(f"s{(number + i) % 7}", f"e{(number // 2) * 100 + round_ * 10 + i}")
                     for i in range(5)]
            answers.append(groups.submit(batch))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(a.accepted for a in answers) == 200  # 400 sent, each id twice
    assert sum(len(a.duplicates) for a in answers) == 200
    with database.transaction() as connection:
        totals = [queries.scores(connection, key)
                  for who in (f"s{i}" for i in range(7))
                  if (key := queries.subscriber_key(connection, who)) is not None]
    assert sum(total for found in totals for total in found.values()) == 200


def test_an_engine_call_that_fails_after_storing_part_says_so(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of subscribers are transactions of their own: a failure in a later one leaves
    the earlier ones stored. The error says so, and a group is then not written again
    (events without ids would be stored twice); a failure before anything is stored is
    plain, and the group is written again request by request."""
    from engine.journey import Journey
    from engine.processor import PartlyIngested

    catalog = load_text(FLOW, "w.flow").catalog
    assert catalog is not None
    engine = Engine(catalog, database, clock=VirtualClock(T0), push_needs_subscription=False,
                    batch_size=1)
    real = Journey.advance

    def advance(self: Journey, state: object, *args: object, **kwargs: object) -> None:
        if getattr(state, "external_id", None) == "poison":
            raise ValueError("a bug")
        real(self, state, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Journey, "advance", advance)
    with pytest.raises(PartlyIngested, match="1 event\\(s\\) were stored before: a bug"):
        engine.ingest([event("a", None, 0), event("poison", None, 1)])
    with pytest.raises(ValueError, match="a bug"):
        engine.ingest([event("poison", None, 0), event("b", None, 1)])
    with database.transaction() as connection:
        assert queries.subscriber_key(connection, "a") is not None
        assert queries.subscriber_key(connection, "b") is None

    gate = Gate()
    groups = GroupCommit(gate)
    gate.fail = PartlyIngested("2 event(s) were stored before: a bug")
    answers = submit_all(groups, gate, [[event("x", None)], [event("y", None)],
                                        [event("z", None)]])
    assert all(isinstance(answer, PartlyIngested) for answer in answers)
    assert len(gate.batches) == 2  # the first request, then the group: nothing again
