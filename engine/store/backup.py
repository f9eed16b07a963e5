"""Copies of a live SQLite database, and putting one back.

Copying `nurture.db` with `cp` while the service runs gives a torn file: the latest commits
live in the write-ahead log beside it (`nurture.db-wal`), and the checkpoint thread copies
pages into the file while `cp` reads it. Putting a copy back with `cp` over a database whose
log still holds frames is worse: SQLite replays that log onto the restored file at the next
open and corrupts it. So both directions go through SQLite itself:

- `snapshot` runs `VACUUM INTO`: one read transaction, so the copy is exactly the database as
  of one commit; in WAL mode a reader holds no writer up, so the service goes on ingesting and
  sending meanwhile; the copy is compacted (no free pages) and checked
  (`PRAGMA integrity_check`) before it is called good.
- `restore` uses SQLite's online backup into the live path: the pages are written through a
  connection, under the write lock, log included, so no stale frame survives.

PostgreSQL has its own tools (`pg_dump`, base backups): the command line points at them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from engine.store.database import read_url


class BackupError(RuntimeError):
    """A copy that cannot be made or used; the message says why."""


@dataclass(frozen=True, slots=True)
class Copied:
    path: Path
    bytes: int
    subscribers: int
    events: int


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database (or SQLite in memory)."""
    parsed = read_url(url)
    file = parsed.database
    if parsed.get_backend_name() != "sqlite" or not file or file == ":memory:":
        return None
    return Path(file)


def snapshot(source: Path, target: Path) -> Copied:
    """Copy the SQLite database at `source` as of one commit into `target` (a new file),
    while it is in use: a plain read, which neither waits for the service's writer nor holds
    it up (the engine's own connections begin every transaction as a writer)."""
    if not source.is_file():
        raise BackupError(f"{source}: no such file")
    if target.exists():
        raise BackupError(f"{target} exists already: a backup never overwrites")
    try:
        connection = _read_only(source)
        try:
            connection.execute("VACUUM INTO ?", (str(target),))
        finally:
            connection.close()
    except sqlite3.Error as problem:
        raise BackupError(f"{source}: cannot be copied ({problem})") from None
    target.chmod(0o600)  # subscribers' data, for the owner's eyes (the caller's folder too)
    return check(target)


def check(path: Path) -> Copied:
    """Open a copy read-only and check it through: a backup is only as good as this."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        connection = _read_only(path)
    except sqlite3.Error as problem:
        raise BackupError(f"{path}: cannot be opened ({problem})") from None
    try:
        verdict = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            raise BackupError(f"{path}: damaged: {'; '.join(verdict[:3])}")
        subscribers, events = (connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                               for table in ("subscribers", "events"))
    except sqlite3.DatabaseError as problem:
        raise BackupError(f"{path}: not a nurture database ({problem})") from None
    finally:
        connection.close()
    return Copied(path, path.stat().st_size, subscribers, events)


def subscribers_in(path: Path) -> int | None:
    """How many subscribers the database at `path` holds (0: no file); None when it cannot
    be read, damaged perhaps (the case a restore is for: not checked through, only read)."""
    if not path.is_file():
        return 0
    try:
        connection = _read_only(path)
        try:
            return int(connection.execute("SELECT count(*) FROM subscribers").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.Error:
        return None


def restore(copied: Copied, target: Path) -> None:
    """Replace the database at `target` (created if missing) with a copy that `check` passed.

    The caller makes sure no service uses `target` meanwhile: one running would go on from
    what it holds in memory, on data that is no longer there. A `target` that cannot be read
    as a database is moved aside first (`NAME.damaged`, with its log), not written into."""
    if subscribers_in(target) is None:
        for suffix in ("", "-wal", "-shm"):
            damaged = target.with_name(target.name + suffix)
            if damaged.exists():
                damaged.replace(target.with_name(f"{target.name}.damaged{suffix}"))
    target.parent.mkdir(parents=True, exist_ok=True)
    reading = _read_only(copied.path)
    writing = sqlite3.connect(target, timeout=30)
    try:
        writing.execute("PRAGMA journal_mode=WAL")
        reading.backup(writing)
        writing.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        reading.close()
        writing.close()


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that can only read (and never creates the file), in autocommit: a
    statement's read is its own snapshot, and waits up to 30 s for a lock.

    Read-only takes a `file:` URI, where `#`, `?` and `%` are syntax: a folder called
    `backups #1` would otherwise open (and create) `backups ` instead, so the path is
    percent-encoded (`as_uri`)."""
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30,
                           isolation_level=None)
