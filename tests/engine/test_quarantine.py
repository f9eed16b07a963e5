"""One subscriber whose due work fails does not stop everyone else's (the service's engine)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dsl.loader import load_text
from engine.clock import VirtualClock
from engine.events import parse_event
from engine.journey import Journey
from engine.processor import Engine
from engine.records import Record
from engine.store.database import Database, DatabaseUnavailable, open_database

FLOW = """\
workflow drip {
  stage first { after 10 minutes: send push hello }
}
message hello push { title "Hello" }
"""
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path, database_url: str) -> Iterator[Database]:
    opened = open_database(database_url or f"sqlite:///{tmp_path / 'q.db'}")
    yield opened
    opened.dispose()


def engine_on(database: Database, records: list[Record], **options: Any) -> Engine:
    catalog = load_text(FLOW, "drip.flow").catalog
    assert catalog is not None
    engine = Engine(catalog, database, clock=VirtualClock(T0), on_record=records.append,
                    push_needs_subscription=False, batch_size=10, **options)
    engine.ingest([parse_event({"subscriber": who, "type": "subscribed",
                                "properties": {"channels": ["push"]}}, n, default_at=T0)
                   for n, who in enumerate(("ann", "bob", "cid"))])
    return engine


def failing_for(who: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The journey raises for one subscriber, as a bug tripped by their state would."""
    real = Journey.advance

    def advance(self: Journey, state: Any, *args: Any, **kwargs: Any) -> None:
        if state.external_id == who:
            raise ValueError("a bug")
        real(self, state, *args, **kwargs)

    monkeypatch.setattr(Journey, "advance", advance)


def test_the_others_are_done_and_the_failing_one_waits_an_hour(
        database: Database, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    records: list[Record] = []
    engine = engine_on(database, records, quarantine=timedelta(hours=1))
    failing_for("bob", monkeypatch)
    engine.clock.advance_to(T0 + timedelta(minutes=10))  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR, logger="nurture.engine"):
        result = engine.tick()
    assert (result.subscribers, result.put_off) == (2, 1)
    assert [(r.subscriber, r.kind, r.at) for r in records if r.kind == "send"] == [
        ("ann", "send", T0 + timedelta(minutes=10)), ("cid", "send", T0 + timedelta(minutes=10))]
    [logged] = [r for r in caplog.records if r.name == "nurture.engine"]
    assert logged.getMessage() == ("the due work of subscriber 2 failed; it is put off until "
                                   "2026-03-02T10:10:00Z")
    assert logged.exc_info is not None and str(logged.exc_info[1]) == "a bug"
    assert engine.next_due_at() == T0 + timedelta(minutes=70)
    assert engine.tick().subscribers == 0  # nothing else due: the tick does not spin on bob

    monkeypatch.undo()  # the bug is fixed: bob's push goes an hour late, once
    engine.clock.advance_to(T0 + timedelta(minutes=70))  # type: ignore[attr-defined]
    assert engine.tick().subscribers == 1
    assert [(r.subscriber, r.at) for r in records if r.kind == "send"][-1] == (
        "bob", T0 + timedelta(minutes=70))
    assert engine.next_due_at() is None


def test_without_quarantine_the_failure_is_raised(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator and users' tests want to see the exception, not a postponed step."""
    engine = engine_on(database, [])
    failing_for("bob", monkeypatch)
    engine.clock.advance_to(T0 + timedelta(minutes=10))  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="a bug"):
        engine.tick()
    assert engine.next_due_at() == T0 + timedelta(minutes=10)  # nothing was saved


def test_a_failing_database_puts_nobody_off(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database going away is nobody's state: the tick fails as a whole and is tried
    again, instead of redoing the batch one by one and putting everyone off by an hour."""
    records: list[Record] = []
    engine = engine_on(database, records, quarantine=timedelta(hours=1))

    def advance(self: Journey, state: Any, *args: Any, **kwargs: Any) -> None:
        raise DatabaseUnavailable("the database failed: server closed the connection")

    monkeypatch.setattr(Journey, "advance", advance)
    engine.clock.advance_to(T0 + timedelta(minutes=10))  # type: ignore[attr-defined]
    with pytest.raises(DatabaseUnavailable):
        engine.tick()
    monkeypatch.undo()  # the server is back
    assert engine.tick().subscribers == 3
    assert {(r.subscriber, r.at) for r in records if r.kind == "send"} == {
        (who, T0 + timedelta(minutes=10)) for who in ("ann", "bob", "cid")}


def test_events_that_keep_conflicting_are_refused_and_logged(
        database: Database, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A race ends when the other writer commits; rows that refuse what the engine writes
    every time are a fault: the events are refused (the API answers 503, nothing stored) and
    the operator reads why in the log."""
    from engine.store import states
    from engine.store.database import Conflict

    records: list[Record] = []
    engine = engine_on(database, records)
    tries = []

    def refusing(*_args: Any, **_kwargs: Any) -> None:
        tries.append(1)
        raise Conflict("UNIQUE constraint failed: enrolments.subscriber_id")

    monkeypatch.setattr(states, "save", refusing)
    with caplog.at_level(logging.ERROR, logger="nurture.engine"), pytest.raises(Conflict):
        engine.ingest([parse_event({"subscriber": "ann", "type": "click"}, 9, default_at=T0)])
    assert len(tries) == 5
    [logged] = caplog.records
    assert "refused" in logged.getMessage() and "5 times" in logged.getMessage()
    assert "UNIQUE constraint failed" in logged.getMessage()
    assert logged.subscribers == ["ann"]  # type: ignore[attr-defined]


def test_a_failure_in_the_database_logs_no_personal_data(
        database: Database, new_database_url: Callable[[], str],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A statement that fails carries its values (SQLAlchemy prints the parameters,
    PostgreSQL the failing row): in the log they would put subscribers' data where operators,
    log shippers and bug reports see it."""
    from engine.logs import JsonLines

    records: list[Record] = []
    engine = engine_on(database, records, quarantine=timedelta(hours=1))
    other = open_database(new_database_url())  # (the tick's transaction holds this one)
    real = Journey.advance
    private = '{"email": "bob.private@example.com", "first_name": "Bob"}'

    def advance(self: Journey, state: Any, *args: Any, **kwargs: Any) -> None:
        if state.external_id == "bob":  # a bug writes his data where it does not fit
            with other.transaction() as connection:
                marker = "?" if other.dialect == "sqlite" else "%s"
                connection.exec_driver_sql(
                    "INSERT INTO events (subscriber_id, seq, key, type, at, properties, "
                    f"received_at) VALUES ({', '.join([marker] * 7)})",
                    (state.id, 99, "k", "t", None, private, None))
        real(self, state, *args, **kwargs)

    monkeypatch.setattr(Journey, "advance", advance)
    engine.clock.advance_to(T0 + timedelta(minutes=10))  # type: ignore[attr-defined]
    try:
        with caplog.at_level(logging.ERROR, logger="nurture.engine"):
            assert engine.tick().put_off == 1
    finally:
        other.dispose()
    [logged] = [r for r in caplog.records if r.name == "nurture.engine"]
    line = JsonLines().format(logged)
    assert "IntegrityError" in line and "events" in line  # what failed, and where
    assert "bob.private" not in line and "Bob" not in line
