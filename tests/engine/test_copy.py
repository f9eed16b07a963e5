"""`nurture copy`: a database copied row for row into an empty one (SQLite to PostgreSQL, the
scale-out path), and the service going on from the copy."""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from dsl.loader import load_text
from engine.cli import main
from engine.clock import VirtualClock
from engine.events import parse_event
from engine.processor import Engine
from engine.scheduler_lock import scheduler_lock
from engine.store import push_subscriptions
from engine.store import subscribers as store
from engine.store.copying import counts
from engine.store.database import Database, open_database
from engine.store.tables import metadata

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
FLOW = """
workflow w {
  exit on unsubscribed
  score heat {
    on click +5
    on like +2.5
    decay 10% every 1 day
  }
  tag "clicker" on click
  stage first {
    on enter: send email hello
    on enter: send push hi
    every 1 day, 3 times: send email hello
    go to second when heat >= 10
  }
  stage second {
    on enter: send webhook lead
  }
}
message hello email { subject "Hello" text "Hi {{ subscriber.id }}" }
message hi push { title "Hi" }
message lead webhook { url "https://crm.example/hook" }
"""


def _source(url: str) -> Database:
    """A database with a row in every table: consents, tags, scores with decaying points and
    their ledger, stage visits, due work, decisions with their dispatches (e-mail, push,
    webhook), a browser, an erasure."""
    catalog = load_text(FLOW, "w.flow").catalog
    assert catalog is not None
    database = open_database(url)
    clock = VirtualClock(T0)
    with database.transaction() as connection:
        push_subscriptions.add(connection, "ann", "https://push.example/ann", "key", "auth", T0)
    engine = Engine(catalog, database, clock=clock)
    raw = [{"subscriber": who, "type": "subscribed", "id": f"{who}-joined",
            "properties": {"channels": ["email", "push"], "email": f"{who}@example.com",
                           "attributes": {"plan": "pro", "seats": 12.5}}}
           for who in ("ann", "bob", "cy", "dee")]
    raw += [{"subscriber": "ann", "type": "click"}, {"subscriber": "ann", "type": "click"},
            {"subscriber": "bob", "type": "like"}]
    engine.ingest([parse_event(event, seq, T0) for seq, event in enumerate(raw)])
    clock.advance_to(T0 + timedelta(days=1, hours=1))
    engine.tick()
    engine.ingest([parse_event({"subscriber": "cy", "type": "unsubscribed"}, 99, clock.now())])
    with database.transaction() as connection:
        assert store.erase(connection, "dee", clock.now(), "a-keyed-hash")
    return database


def _rows(database: Database) -> dict[str, list[dict[str, Any]]]:
    with database.reading() as connection:
        return {table.name: [row._asdict() for row in connection.execute(
                    select(table).order_by(*table.primary_key.columns))]
                for table in metadata.sorted_tables}


def test_a_copy_holds_every_row_and_the_service_goes_on_from_it(
        tmp_path: Path, database_url: str) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    source = _source(source_url)
    rows = _rows(source)
    assert all(rows.values()), [name for name, found in rows.items() if not found]
    result = CliRunner().invoke(main, ["copy", database_url, "--db", source_url])
    assert result.exit_code == 0, result.output
    assert "copied " in result.stderr
    target = open_database(database_url)
    # every row as it was, through each database's own types (instants, decimals, JSON)
    assert _rows(target) == rows
    listed = {line.split()[0]: int(line.split()[1].replace(",", ""))
              for line in result.stdout.splitlines()}
    assert listed == counts(source) == counts(target)

    # the service goes on from the copy: new rows take ids after the copied ones
    catalog = load_text(FLOW, "w.flow").catalog
    assert catalog is not None
    later = T0 + timedelta(days=2)
    engine = Engine(catalog, target, clock=VirtualClock(later))
    engine.ingest([parse_event(event, seq, later) for seq, event in enumerate([
        {"subscriber": "eve", "type": "subscribed",
         "properties": {"channels": ["email"], "email": "eve@example.com"}},
        {"subscriber": "bob", "type": "click"}, {"subscriber": "bob", "type": "click"}])])
    engine.tick()
    after = _rows(target)
    for table in ("subscribers", "deliveries", "dispatches", "ledger", "stage_visits"):
        copied = {row["id"] for row in rows[table]}
        new = [row["id"] for row in after[table] if row["id"] not in copied]
        assert new and min(new) > max(copied), table
    assert [row["subscriber"] for row in after["erasures"]] == ["a-keyed-hash"]
    source.dispose()
    target.dispose()


def test_a_copy_goes_only_into_an_empty_database(
        tmp_path: Path, new_database_url: Callable[[], str]) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    _source(source_url).dispose()
    target_url = new_database_url()
    occupied = open_database(target_url)
    with occupied.transaction() as connection:
        push_subscriptions.add(connection, "zed", "https://push.example/zed", "k", "a", T0)
    before = _rows(occupied)
    result = CliRunner().invoke(main, ["copy", target_url, "--db", source_url])
    assert result.exit_code == 2
    assert result.stderr.endswith("the target database holds rows already (in subscribers, "
                                  "push_subscriptions): copy into an empty one; nothing was "
                                  "copied\n")
    assert _rows(occupied) == before
    occupied.dispose()
    same = CliRunner().invoke(main, ["copy", source_url, "--db", source_url])
    assert same.exit_code == 2 and "is the database to copy: name another" in same.stderr
    unreadable = CliRunner().invoke(main, ["copy", "db.internal/nurture", "--db", source_url])
    assert unreadable.exit_code == 2
    assert unreadable.stderr.startswith("nurture: the database URL is not one nurture can read")
    lock = scheduler_lock(str(tmp_path / "source.db"))
    with lock.open("w") as handle:  # as `nurture serve` holds it while it runs
        handle.write("4242")
        handle.flush()
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        running = CliRunner().invoke(main, ["copy", new_database_url(), "--db", source_url])
    assert running.exit_code == 2
    assert "a nurture process (pid 4242) runs on" in running.stderr


def test_a_postgresql_database_copies_into_sqlite(
        tmp_path: Path, pg_database_url_factory: Callable[[], str]) -> None:
    """The other way: production's PostgreSQL into a SQLite file to try something on."""
    source_url = pg_database_url_factory()
    source = _source(source_url)
    target_url = f"sqlite:///{tmp_path / 'copy.db'}"
    result = CliRunner().invoke(main, ["copy", target_url, "--db", source_url])
    assert result.exit_code == 0, result.output
    target = open_database(target_url)
    assert _rows(target) == _rows(source)
    source.dispose()
    target.dispose()


@pytest.mark.parametrize("command", [["copy", "sqlite:///elsewhere.db"], ["backup", "bk"],
                                     ["restore", "."]])
def test_an_unreadable_database_url_is_one_line_not_an_internal_error(
        command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # (before the fix, each was exit 70 with a traceback)
    result = CliRunner().invoke(main, [*command, "--db", "db.internal/nurture"])
    assert (result.exit_code, result.stderr) == (
        2, "nurture: the database URL is not one nurture can read; it looks like "
           "sqlite:///nurture.db or postgresql+psycopg://user@host/database\n")
