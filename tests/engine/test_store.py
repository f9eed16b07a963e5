"""The storage layer: migrations equal the models, indexes serve every hot query, keys hold."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, func, insert, inspect, select, text

from dsl.loader import load_text
from engine.clock import VirtualClock
from engine.events import parse_event
from engine.processor import Engine
from engine.store import database as database_module
from engine.store import sqlite_schema, states
from engine.store.database import (
    Conflict,
    Database,
    alembic_config,
    open_database,
    upgrade,
)
from engine.store.states import ENROLMENTS, EVENTS, SUBSCRIBERS
from engine.store.tables import metadata

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = open_database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    db = open_database(f"sqlite:///{tmp_path / 'n.db'}")
    yield db
    db.dispose()


def test_the_migrations_create_exactly_the_models(database_url: str) -> None:
    database = open_database(database_url, migrate=False)
    try:
        upgrade(database, replay=True)  # every migration, not the new database's one step
        with database.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    finally:
        database.dispose()


def test_a_database_a_newer_nurture_upgraded_is_refused_untouched(
        new_database_url: Callable[[], str]) -> None:
    # nurture rolled back after a newer version migrated the database
    url = new_database_url()
    database = open_database(url)
    with database.transaction() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0099_future'")
    before = schema_of(database)
    database.dispose()
    with pytest.raises(database_module.DatabaseUnavailable) as refused:
        open_database(url)
    assert "its schema is at version '0099_future', which this nurture does not know (its " \
           "newest is '0007'); a newer nurture has upgraded it. Run that version, or restore " \
           "the backup taken before the upgrade (nothing was changed)" in str(refused.value)
    again = open_database(url, migrate=False)
    try:
        assert schema_of(again) == before
    finally:
        again.dispose()
    if url.startswith("sqlite"):  # what an operator sees: one line, exit 2
        nurture = Path(sys.executable).with_name("nurture")
        run = subprocess.run([str(nurture), "funnel", "--db", url],
                             capture_output=True, text=True, check=False)
        assert (run.returncode, run.stdout) == (2, "")
        assert run.stderr.startswith("nurture: cannot use the database sqlite:///")
        assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) == 1


def schema_of(database: Database) -> dict[str, Any]:
    """Every table's columns, keys, indexes (with their conditions) and version, as the
    database itself describes them. Columns are compared by name: a column a migration
    added comes last in its table, and nothing reads columns by position."""
    with database.engine.connect() as connection:
        seen = inspect(connection)
        tables: dict[str, Any] = {}
        for name in sorted(seen.get_table_names()):
            tables[name] = {
                "columns": sorted((c["name"], str(c["type"]), c["nullable"], c.get("default"))
                                  for c in seen.get_columns(name)),
                "primary key": seen.get_pk_constraint(name)["constrained_columns"],
                "foreign keys": sorted(
                    (tuple(k["constrained_columns"]), k["referred_table"],
                     tuple(k["referred_columns"]), k["options"].get("ondelete"))
                    for k in seen.get_foreign_keys(name)),
                "indexes": sorted(
                    (i["name"], tuple(str(c) for c in i["column_names"]), i["unique"],
                     sorted((option, str(value)) for option, value
                            in (i.get("dialect_options") or {}).items()))
                    for i in seen.get_indexes(name)),
                "unique": sorted(tuple(u["column_names"])
                                 for u in seen.get_unique_constraints(name)),
            }
        tables["version"] = connection.exec_driver_sql(
            "SELECT version_num FROM alembic_version").scalars().all()
    return tables


def test_a_new_database_made_in_one_step_equals_one_migrated_step_by_step(
        new_database_url: Callable[[], str]) -> None:
    """A new database is created from the models and stamped (faster); an existing one is
    migrated. Both must end with the same schema, down to index conditions and cascades."""
    at_once = open_database(new_database_url())
    step_by_step = open_database(new_database_url(), migrate=False)
    try:
        upgrade(step_by_step, replay=True)
        made = schema_of(at_once)
        conditions = [option for table in made.values() if "indexes" in table
                      for index in table["indexes"] for option, _ in index[3]
                      if option.endswith("_where")]
        assert len(made) > 10 and len(conditions) == 2  # the partial indexes are compared
        assert made == schema_of(step_by_step)
    finally:
        at_once.dispose()
        step_by_step.dispose()


def test_a_new_sqlite_database_is_made_again_from_the_first_ones_statements(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first new SQLite database of a process is made by Alembic; the next ones run the
    statements read back from it, without Alembic, and end with the same schema."""
    sqlite_schema.forget()
    shared = tmp_path / "first.db"  # with another application's table, which is not copied
    other = create_engine(f"sqlite:///{shared}")
    with other.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE theirs (x)")
    other.dispose()
    first = open_database(f"sqlite:///{shared}")
    with monkeypatch.context() as patched:
        def no_alembic(*_: Any, **__: Any) -> None:
            raise AssertionError("Alembic ran for a new database")
        patched.setattr(database_module.command, "upgrade", no_alembic)
        again = open_database(f"sqlite:///{tmp_path / 'again.db'}")
    try:
        with first.engine.connect() as a, again.engine.connect() as b:
            made = sqlite_schema.read(a)
            assert len(made.statements) > 20 and made.revision
            assert sqlite_schema.read(b) == made
        ours = schema_of(first)
        assert ours.pop("theirs")
        assert schema_of(again) == ours
    finally:
        first.dispose()
        again.dispose()


def test_a_database_shared_with_other_tables_is_made_from_scratch_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    other = create_engine(url)
    with other.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    other.dispose()
    database = open_database(url)
    try:
        tables = schema_of(database)
        assert "orders" in tables and "subscribers" in tables
        assert tables["version"] == [ScriptDirectory.from_config(
            alembic_config()).get_current_head()]
    finally:
        database.dispose()


def test_sqlite_runs_in_wal_mode(sqlite_database: Database) -> None:
    with sqlite_database.transaction() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_instants_and_decimals_round_trip_exactly(database: Database) -> None:
    instant = datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=UTC)
    with database.transaction() as connection:
        connection.execute(insert(SUBSCRIBERS), {"external_id": "a", "attributes": {"x": 1},
                                                 "created_at": instant, "event_count": 0,
                                                 "version": 0})
        row = connection.execute(select(SUBSCRIBERS)).one()
    assert row.created_at == instant and row.created_at.tzinfo is not None
    with database.transaction() as connection:
        connection.exec_driver_sql(
            "INSERT INTO scores VALUES (1, 'w', 's', '21.870000000000000000000000001', '{}', '[]')")
        total = connection.execute(text("SELECT total FROM scores")).scalar()
    assert Decimal(total) == Decimal("21.870000000000000000000000001")


def test_a_reading_sees_one_snapshot_however_many_statements_it_runs(
        database: Database) -> None:
    """A report's counts, or a copy's tables, from one moment: a row written while the
    reading goes on is not seen by its later statements (on PostgreSQL, REPEATABLE READ; on
    SQLite, the read of the write-ahead log)."""
    def add(external_id: str) -> None:
        with database.transaction() as connection:
            connection.execute(insert(SUBSCRIBERS), {
                "external_id": external_id, "attributes": {}, "version": 0,
                "created_at": datetime(2026, 3, 2, tzinfo=UTC), "event_count": 0})

    add("a")
    with database.reading() as reading:
        count = select(func.count()).select_from(SUBSCRIBERS)
        assert reading.execute(count).scalar_one() == 1
        add("b")  # committed by another connection meanwhile
        assert reading.execute(count).scalar_one() == 1
    with database.reading() as reading:
        assert reading.execute(count).scalar_one() == 2


def test_naive_datetimes_are_refused(database: Database) -> None:
    with pytest.raises(Exception, match="naive"), database.transaction() as connection:
        connection.execute(insert(SUBSCRIBERS), {"external_id": "a", "attributes": {},
                                                 "created_at": datetime(2026, 1, 1),
                                                 "event_count": 0, "version": 0})


def test_one_active_enrolment_per_workflow_and_event_ids_are_unique(database: Database) -> None:
    with database.transaction() as connection:
        connection.execute(insert(SUBSCRIBERS), {"external_id": "a", "attributes": {},
                                                 "created_at": T0, "event_count": 0, "version": 0})
    row = {"subscriber_id": 1, "workflow": "w", "stage": "s", "stage_seq": 1,
           "stage_entered_at": T0, "enrolled_at": T0, "seen": []}
    with database.transaction() as connection:
        connection.execute(insert(ENROLMENTS), {**row, "ended_at": T0})  # an ended one
        connection.execute(insert(ENROLMENTS), row)
    with pytest.raises(Conflict), database.transaction() as connection:
        connection.execute(insert(ENROLMENTS), row)
    event_row = {"subscriber_id": 1, "seq": 1, "key": "e1", "type": "x", "at": T0, "properties": {},
                 "received_at": T0}
    with database.transaction() as connection:
        connection.execute(insert(EVENTS), event_row)
    with pytest.raises(Conflict), database.transaction() as connection:
        connection.execute(insert(EVENTS), {**event_row, "seq": 2})  # the same id
    with pytest.raises(Conflict), database.transaction() as connection:
        connection.execute(insert(EVENTS), {**event_row, "key": "e2"})  # the same number


FLOW = """\
workflow w {
  limit push to 1 per day
  score engagement { on click +5 max 10 per day  decay 10% every 30 days }
  stage a {
    after 10 minutes: send push hello
    every 1 day, 2 times: send push hello
    go to b when idle for 3 days
  }
  stage b { }
}
message hello push { title "Hi" }
"""


def test_tick_reads_only_subscribers_with_due_work_through_indexes(
        sqlite_database: Database) -> None:
    database = sqlite_database
    catalog = load_text(FLOW, "w.flow").catalog
    assert catalog is not None
    clock = VirtualClock(T0)
    engine = Engine(catalog, database, clock=clock, push_needs_subscription=False)
    engine.ingest([parse_event({"subscriber": f"s{i}", "type": "subscribed",
                                "properties": {"channels": ["push"]}}, i, default_at=T0)
                   for i in range(20)])
    clock.advance_to(T0 + timedelta(minutes=5))
    engine.ingest([parse_event({"subscriber": "late", "type": "subscribed",
                                "properties": {"channels": ["push"]}}, 99,
                               default_at=clock.now())])
    clock.advance_to(T0 + timedelta(minutes=12))
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and not executemany:
            statements.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", capture)
    try:
        result = engine.tick()
    finally:
        event.remove(database.engine, "before_cursor_execute", capture)
    assert result.subscribers == 20  # `late` is not due until 12:05 and is not read
    assert statements
    with database.engine.connect() as connection:
        for statement, parameters in statements:
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}",
                                              parameters).all()
            details = [row[-1] for row in plan]
            # reading the batch's own list of keys (json_each over one parameter) is no scan
            scans = [d for d in details if d.startswith("SCAN") and "VIRTUAL TABLE" not in d]
            assert not scans, f"{statement}\n→ {details}"


def test_the_outbox_migration_numbers_existing_deliveries(tmp_path: Path) -> None:
    from engine.store.database import upgrade

    db = open_database(f"sqlite:///{tmp_path / 'old.db'}", migrate=False)
    upgrade(db, "0001")
    with db.transaction() as connection:
        connection.exec_driver_sql(
            "INSERT INTO subscribers (id, external_id, attributes, created_at, event_count, "
            "version) VALUES (1, 'a', '{}', 0, 0, 0), (2, 'b', '{}', 0, 0, 0)")
        connection.exec_driver_sql(
            "INSERT INTO enrolments (id, subscriber_id, workflow, stage, stage_seq, "
            "stage_entered_at, enrolled_at, seen) VALUES (1, 1, 'w', 's', 1, 0, 0, '[]'), "
            "(2, 2, 'w', 's', 1, 0, 0, '[]')")
        for subscriber, step in [(1, 0), (2, 0), (1, 1), (1, 2), (2, 1)]:
            connection.exec_driver_sql(
                "INSERT INTO deliveries (subscriber_id, workflow, enrolment_id, stage, "
                "stage_seq, step, occurrence, step_rule, channel, message, status, content, "
                f"nominal_at, decided_at) VALUES ({subscriber}, 'w', {subscriber}, 's', 1, "
                f"{step}, 0, 'f:1', 'push', 'm', 'sent', '{{}}', 0, 0)")
    upgrade(db)
    with db.transaction() as connection:
        assert connection.exec_driver_sql(
            "SELECT subscriber_id, seq FROM deliveries ORDER BY id").all() == [
            (1, 1), (2, 1), (1, 2), (1, 3), (2, 2)]
        assert connection.exec_driver_sql(
            "SELECT id, delivery_count FROM subscribers ORDER BY id").all() == [(1, 3), (2, 2)]
    with db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    db.dispose()


def test_ticks_on_postgresql_share_due_work_instead_of_waiting_for_each_other(
        pg_database_url_factory: Callable[[], str]) -> None:
    database = open_database(pg_database_url_factory())
    try:
        catalog = load_text(FLOW, "w.flow").catalog
        assert catalog is not None
        clock = VirtualClock(T0)
        engine = Engine(catalog, database, clock=clock, push_needs_subscription=False)
        engine.ingest([parse_event({"subscriber": f"s{i:02d}", "type": "subscribed",
                                    "properties": {"channels": ["push"]}}, i, default_at=T0)
                       for i in range(20)])
        clock.advance_to(T0 + timedelta(minutes=12))
        with database.transaction() as first:  # a worker holding its batch
            held = states.due_subscriber_ids(first, clock.now(), 8)
            with database.transaction() as second:
                other = states.due_subscriber_ids(second, clock.now(), 8)
            assert len(held) == len(other) == 8 and not set(held) & set(other)
            assert engine.tick().subscribers == 12  # every subscriber but the held ones
        assert engine.tick().subscribers == 8
        assert engine.tick().subscribers == 0
    finally:
        database.dispose()


def test_processes_starting_together_on_a_new_postgresql_database_migrate_it_once(
        pg_database_url_factory: Callable[[], str]) -> None:
    url = pg_database_url_factory()
    opening = [subprocess.Popen(  # four workers started at once on an empty database
        [sys.executable, "-c", "import sys; from engine.store.database import open_database; "
         "open_database(sys.argv[1]).dispose()", url], stderr=subprocess.PIPE)
        for _ in range(4)]
    for process in opening:
        _, errors = process.communicate(timeout=60)
        assert process.returncode == 0, errors.decode()
    database = open_database(url, migrate=False)
    with database.transaction() as connection:
        assert connection.exec_driver_sql(
            "SELECT version_num FROM alembic_version").scalars().all() == [
            ScriptDirectory.from_config(alembic_config()).get_current_head()]
    database.dispose()


def test_two_writers_meeting_the_same_new_subscribers_lose_no_event(database_url: str) -> None:
    """Two API processes see the first events of the same new subscribers at once: one of
    them inserts each subscriber, the other's batch conflicts, is read again and retried,
    and every event of both is stored and scored once (on PostgreSQL the new ids come from
    the sequences, on SQLite from `INSERT … RETURNING`)."""
    catalog = load_text(FLOW, "w.flow").catalog
    assert catalog is not None
    first, second = open_database(database_url), open_database(database_url)
    rounds, people = 6, 40
    try:
        engines = [Engine(catalog, db, clock=VirtualClock(T0), push_needs_subscription=False)
                   for db in (first, second)]
        for number in range(rounds):
            barrier = threading.Barrier(2)
            failures: list[BaseException] = []

            def feed(engine: Engine, side: int, number: int = number,
                     barrier: threading.Barrier = barrier,
                     failures: list[BaseException] = failures) -> None:
                events = [parse_event({"subscriber": f"r{number}-p{i}", "type": "click",
                                       "id": f"r{number}-p{i}-{side}"}, i, default_at=T0)
                          for i in range(people)]
                barrier.wait()
                try:
                    result = engine.ingest(events)
                    assert result.accepted == people and result.duplicates == []
                except BaseException as problem:  # reported below, in the test's thread
                    failures.append(problem)

            threads = [threading.Thread(target=feed, args=(engine, side))
                       for side, engine in enumerate(engines)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert failures == []
        with first.transaction() as connection:
            counts = connection.execute(
                select(SUBSCRIBERS.c.external_id, SUBSCRIBERS.c.event_count)).all()
            stored = connection.execute(select(EVENTS.c.key)).scalars().all()
            totals = connection.execute(text(
                "SELECT SUM(delta) FROM ledger GROUP BY subscriber_id")).scalars().all()
        assert len(counts) == rounds * people  # each subscriber once
        assert {count for _, count in counts} == {2}  # both of its events
        assert len(stored) == len(set(stored)) == 2 * rounds * people
        assert {Decimal(str(total)) for total in totals} == {Decimal(10)}  # 5 + 5, each once
    finally:
        first.dispose()
        second.dispose()
