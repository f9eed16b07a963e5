"""A full disk (SQLite's own SQLITE_FULL, not a stand-in) refuses a batch whole and loses
nothing: once there is room again, sending the refused events again ends exactly where a run
that never ran out of room ends.

The room is taken away with `PRAGMA max_page_count`, which makes SQLite fail a write that
would grow the file with the same error ("database or disk is full") as a full disk.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from bench.journeys import batches, journeys
from dsl.loader import load_paths
from engine.clock import VirtualClock
from engine.events import Event
from engine.processor import Engine
from engine.records import Record
from engine.store.database import Database, DatabaseUnavailable, open_database
from tests.engine.conftest import brief

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 2, 7, tzinfo=UTC)


def _events() -> tuple[list[Event], list[Event]]:
    events = journeys(200, 11, START, timedelta(hours=10), per_visit=5)
    return ([e for e in events if e.type == "subscribed"],
            [e for e in events if e.type != "subscribed"])


class Room:
    """How many pages the database file may grow to, for connections opened from now on."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.pages: int | None = None
        event.listen(database.engine, "connect", self._opened)

    def limit(self, pages: int | None) -> None:
        """`None`: SQLite's own maximum (the operator made room)."""
        self.pages = pages
        self.database.engine.dispose()

    def _opened(self, dbapi_connection: Any, _record: Any) -> None:
        if self.pages is not None:
            dbapi_connection.execute(f"PRAGMA max_page_count={self.pages}")


def _stored(database: Database) -> dict[str, Any]:
    with database.transaction() as connection:
        def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in connection.exec_driver_sql(sql)]
        return {
            "events": rows("SELECT s.external_id, e.seq, e.key, e.type FROM events e "
                           "JOIN subscribers s ON s.id = e.subscriber_id ORDER BY 1, 2"),
            "scores": rows("SELECT s.external_id, c.workflow, c.score, c.total FROM scores c "
                           "JOIN subscribers s ON s.id = c.subscriber_id ORDER BY 1, 2, 3"),
            "stages": rows("SELECT s.external_id, n.workflow, n.stage, n.stage_seq "
                           "FROM enrolments n JOIN subscribers s ON s.id = n.subscriber_id "
                           "ORDER BY 1, 2"),
            "ledger": rows("SELECT count(*) FROM ledger"),
            "deliveries": rows("SELECT s.external_id, d.seq, d.message, d.status "
                               "FROM deliveries d JOIN subscribers s "
                               "ON s.id = d.subscriber_id ORDER BY 1, 2"),
            "due": rows("SELECT s.external_id, d.kind, d.due_at FROM schedule d "
                        "JOIN subscribers s ON s.id = d.subscriber_id ORDER BY 1, 2, 3"),
        }


def test_a_full_disk_refuses_a_batch_whole_and_loses_nothing(tmp_path: Path) -> None:
    catalog = load_paths([str(ROOT / "workflows" / "jewelry.flow")]).catalog
    assert catalog is not None
    joins, acts = _events()
    runs: dict[str, tuple[list[Record], dict[str, Any]]] = {}
    refused: list[str] = []
    for name in ("roomy", "full"):
        database = open_database(f"sqlite:///{tmp_path / name}.db")
        clock = VirtualClock(START)
        records: list[Record] = []
        engine = Engine(catalog, database, clock=clock, on_record=records.append,
                        push_needs_subscription=False)
        room = Room(database)
        engine.ingest(joins)
        for number, batch in enumerate(batches(acts, 400)):
            clock.advance_to(max(clock.now(), batch[-1].at))
            if name == "full" and number == 2:  # mid-journey, states kept in memory
                with database.transaction() as connection:
                    pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
                room.limit(int(pages or 0) + 2)
            before = _stored(database) if name == "full" else {}
            try:
                engine.ingest(batch)
            except DatabaseUnavailable as problem:
                refused.append(str(problem))
                assert _stored(database) == before  # nothing of the refused batch is kept
                room.limit(None)  # the operator makes room
                again = engine.ingest(batch)  # the client sends it again
                assert (again.accepted, again.duplicates) == (len(batch), [])
        engine.tick()
        runs[name] = (records, _stored(database))
        database.dispose()
    assert len(refused) == 1 and "full" in refused[0]
    (roomy_records, roomy), (full_records, full) = runs["roomy"], runs["full"]
    assert len(roomy["events"]) == len(joins) + len(acts)
    assert full == roomy
    assert brief(full_records) == brief(roomy_records)
    assert [r.fields for r in full_records] == [r.fields for r in roomy_records]


@pytest.mark.parametrize("room", [0, 1])
def test_a_full_disk_is_the_operators_matter_in_one_line(tmp_path: Path, room: int) -> None:
    catalog = load_paths([str(ROOT / "workflows" / "jewelry.flow")]).catalog
    assert catalog is not None
    joins, _ = _events()
    database = open_database(f"sqlite:///{tmp_path / 'n.db'}")
    engine = Engine(catalog, database, clock=VirtualClock(START), push_needs_subscription=False)
    engine.ingest(joins[:1])
    with database.transaction() as connection:
        pages = int(connection.exec_driver_sql("PRAGMA page_count").scalar() or 0)
    Room(database).limit(pages + room)
    with pytest.raises(DatabaseUnavailable, match=r"^the database failed: database or disk "
                                                  r"is full$"):
        engine.ingest(joins[1:])
    database.dispose()


def test_a_full_disk_during_a_tick_puts_nobodys_work_off(tmp_path: Path) -> None:
    """The service's engine puts off the due work of a subscriber whose work fails alone
    (`quarantine`); a full disk is not that subscriber's fault: the tick fails whole, and once
    there is room the work is done at the instants it was due."""
    catalog = load_paths([str(ROOT / "workflows" / "jewelry.flow")]).catalog
    assert catalog is not None
    joins, _ = _events()
    runs: dict[str, tuple[list[Record], dict[str, Any]]] = {}
    for name in ("roomy", "full"):
        database = open_database(f"sqlite:///{tmp_path / name}.db")
        clock = VirtualClock(START)
        records: list[Record] = []
        engine = Engine(catalog, database, clock=clock, on_record=records.append,
                        push_needs_subscription=False, quarantine=timedelta(hours=1))
        room = Room(database)
        engine.ingest(joins)
        clock.advance_to(START + timedelta(hours=3))  # every welcome push is due
        if name == "full":
            before = _stored(database)
            with database.transaction() as connection:
                pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
            room.limit(int(pages or 0))
            with pytest.raises(DatabaseUnavailable, match="full"):
                engine.tick()
            assert _stored(database) == before
            room.limit(None)
        engine.tick()
        clock.advance_to(START + timedelta(days=4))
        engine.tick()
        runs[name] = (records, _stored(database))
        database.dispose()
    (roomy_records, roomy), (full_records, full) = runs["roomy"], runs["full"]
    assert sum(1 for r in roomy_records if r.kind == "send") > 200
    assert full == roomy
    assert [(r.at, r.subscriber, r.kind, r.fields) for r in full_records] == [
        (r.at, r.subscriber, r.kind, r.fields) for r in roomy_records]
