"""The write-ahead log is copied back by a thread of its own, not by the committing batch."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store import checkpoint
from engine.store.checkpoint import BACKSTOP_PAGES
from engine.store.database import Database, open_database


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    db = open_database(f"sqlite:///{tmp_path / 'n.db'}")
    yield db
    db.dispose()


def _write(database: Database, rows: int) -> None:
    with database.transaction() as connection:
        connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS filler (x BLOB)")
        for _ in range(rows):  # a page each
            connection.exec_driver_sql("INSERT INTO filler VALUES (randomblob(3000))")


def _log_state(path: Path) -> tuple[int, int]:
    """(pages in the log, pages of it already copied back), read by a checkpoint of nothing
    new: a PASSIVE checkpoint copies only what is not yet copied."""
    with sqlite3.connect(path) as connection:
        _busy, logged, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    connection.close()
    return logged, copied


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "nurture-checkpoint"]


def test_the_committing_connection_leaves_the_log_to_the_checkpointer(
        sqlite_database: Database) -> None:
    with sqlite_database.transaction() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == BACKSTOP_PAGES


def test_a_commit_is_copied_back_in_the_background(sqlite_database: Database,
                                                   tmp_path: Path) -> None:
    checkpointer = sqlite_database.checkpointer
    assert checkpointer is not None
    before = checkpointer.checkpoints
    _write(sqlite_database, 200)
    deadline = time.monotonic() + 10
    while checkpointer.checkpoints == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert checkpointer.checkpoints > before
    logged, copied = _log_state(tmp_path / "n.db")
    assert logged > 200 and copied == logged  # every page written is in the database file


def test_the_thread_ends_when_idle_and_comes_back_with_the_next_commit(
        sqlite_database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checkpoint, "QUIET_SECONDS", 0.05)
    monkeypatch.setattr(checkpoint, "IDLE_SECONDS", 0.2)
    _write(sqlite_database, 1)
    deadline = time.monotonic() + 10
    while _threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _threads() == []
    _write(sqlite_database, 1)
    assert len(_threads()) == 1


def test_dispose_copies_what_is_left_and_ends_the_thread(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'd.db'}")
    _write(database, 50)
    database.dispose()
    assert _threads() == []
    logged, copied = _log_state(tmp_path / "d.db")
    assert copied == logged


def test_a_database_in_memory_has_no_checkpointer() -> None:
    database = open_database("sqlite://")
    try:
        assert database.checkpointer is None
    finally:
        database.dispose()
