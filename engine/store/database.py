"""Opening a database: SQLite (the default, WAL mode) or PostgreSQL, migrated with Alembic.

SQLite is set up for a single writing process: write-ahead logging so that readers never wait
for the writer, and every transaction begins IMMEDIATE, so that reads and the writes decided
from them are one atomic unit (pysqlite's own default would start the transaction only at the
first write). A simulation's throw-away database also turns off fsync.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)

from engine.store import sqlite_schema
from engine.store.checkpoint import BACKSTOP_PAGES, Checkpointer
from engine.store.types import json_dumps, json_loads

MIGRATIONS = "engine.store:migrations"
CONFLICTS = {"23505", "40001", "40P01"}
"""PostgreSQL: unique violation, serialization failure, deadlock detected."""


class DatabaseUnavailable(RuntimeError):
    """The database URL cannot be used: unreadable, no driver, unreachable, not a database;
    or, once open, it failed (the connection dropped, the server went away, the disk is full).

    The operator's matter, not a bug: the command line says so in one line, the API answers
    503 (try again), and the tick does not put anyone's work off for it."""


@contextmanager
def _translated() -> Iterator[None]:
    """The driver's errors in the terms callers act on: `Conflict` (try again now) and
    `DatabaseUnavailable` (the database failed: try again later); the rest unchanged."""
    try:
        yield
    except (IntegrityError, OperationalError) as problem:
        if is_conflict(problem):
            raise Conflict(str(problem.orig or problem)[:300]) from problem
        if isinstance(problem, OperationalError):
            raise _failed(problem) from problem
        raise
    except DBAPIError as problem:
        if problem.connection_invalidated:
            raise _failed(problem) from problem
        raise


def _failed(problem: DBAPIError) -> DatabaseUnavailable:
    reason = (str(problem.orig or problem).strip().splitlines() or ["no reason given"])[0]
    return DatabaseUnavailable(f"the database failed: {reason[:300]}")


class Conflict(RuntimeError):
    """Another process changed the same rows at the same time; the work can be retried."""


def is_conflict(problem: IntegrityError | OperationalError) -> bool:
    code = getattr(problem.orig, "sqlstate", None) or getattr(problem.orig, "pgcode", None)
    if code is not None:
        return code in CONFLICTS
    text = str(problem.orig or "").lower()  # SQLite
    return "unique constraint failed" in text or "database is locked" in text


READING = "nurture_reading"
"""Execution option of connections opened by `Database.reading`."""


class Database:
    """One SQLAlchemy engine and the way this project opens transactions on it.

    On SQLite, transactions of one process take turns on a Python lock first: SQLite's own
    busy handler waits by sleeping in growing steps, so threads of one process (API requests,
    the tick, the dispatcher) would otherwise wake long after the database is free.
    """

    def __init__(self, engine: Engine, *, durable: bool = True) -> None:
        self.engine = engine
        self._turns = threading.Lock() if engine.dialect.name == "sqlite" else None
        path = self.sqlite_file()
        self.checkpointer = Checkpointer(path, durable) if path is not None else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction; a race with another process surfaces as `Conflict`, a database
        that fails as `DatabaseUnavailable`."""
        with _translated():
            if self._turns is None:
                with self.engine.begin() as connection:
                    yield connection
                return
            with self._turns:
                with self.engine.begin() as connection:
                    yield connection
                if self.checkpointer is not None:
                    self.checkpointer.committed()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A transaction that only reads (an export, a count for metrics, a report): on
        SQLite a snapshot of the write-ahead log that neither waits for the writer nor holds
        it up, where `transaction` would queue behind every write and hold the next ones up
        for as long as the reading takes. Nothing written in it is kept."""
        with _translated(), self.engine.connect() as connection:
            connection.execution_options(**{READING: True})
            with connection.begin() as transaction:
                if self.dialect == "postgresql":  # one snapshot for all its statements, as
                    # SQLite's read of the log is (READ COMMITTED would take one per statement:
                    # a report's counts, or a copy's tables, from different moments)
                    connection.exec_driver_sql(
                        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield connection
                transaction.rollback()

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()

    def ping(self) -> None:
        """Raises if the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def sqlite_file(self) -> str | None:
        """The file of a SQLite database (None for other databases or in memory)."""
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return os.path.abspath(url.database)


def read_url(url: str) -> URL:
    """A database URL as SQLAlchemy reads it; one it cannot read is the operator's setting
    (`DatabaseUnavailable`, one line), not an internal error."""
    try:
        return make_url(url)
    except ArgumentError:
        raise DatabaseUnavailable(
            "the database URL is not one nurture can read; it looks like "
            "sqlite:///nurture.db or postgresql+psycopg://user@host/database") from None


def open_database(url: str, *, migrate: bool = True, durable: bool = True,
                  cache_mib: int = 64, existing: bool = False) -> Database:
    """Connect to `url` and bring its schema to the latest migration.

    A statement that fails does not show its values in the error (`hide_parameters`): they
    are subscribers' data, and errors end up in logs (`engine.logs` also hides the failing
    row that PostgreSQL itself reports).

    `durable=False` (simulations, tests) skips fsync on SQLite: a crash may lose the file,
    which such a database does not mind. `cache_mib`: SQLite's page cache per connection.
    `existing` (a report): a SQLite file that is not there is an error, not a new database
    (a mistyped path would otherwise report an empty funnel and leave a file behind).
    """
    parsed = read_url(url)
    shown = parsed.render_as_string(hide_password=True)
    path = parsed.database or ""
    if existing and parsed.get_backend_name() == "sqlite" and path not in ("", ":memory:") \
            and not os.path.exists(path):
        raise DatabaseUnavailable(f"cannot open the database {shown}: there is no such file")
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(url, durable, cache_mib)
        else:
            engine = create_engine(url, pool_pre_ping=True, json_serializer=json_dumps,
                                   json_deserializer=json_loads, hide_parameters=True)
    except (NoSuchModuleError, ImportError) as problem:
        raise DatabaseUnavailable(
            f"cannot open the database {shown}: no driver for it ({problem}); nurture works "
            "with sqlite:/// and postgresql+psycopg://") from None
    except OSError as problem:  # the SQLite file's folder cannot be made
        raise DatabaseUnavailable(f"cannot open the database {shown}: {problem}") from None
    try:  # the first connection: unreachable, refused, or not a database
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except DBAPIError as problem:
        engine.dispose()
        reason = str(problem.orig or problem).strip().splitlines()[0]
        raise DatabaseUnavailable(f"cannot open the database {shown}: {reason}") from None
    database = Database(engine, durable=durable)
    if migrate:
        try:
            _migrate(database)
        except BaseException:
            database.dispose()  # its connections, and on SQLite its checkpointing thread
            raise
    return database


def _sqlite_engine(url: str, durable: bool, cache_mib: int) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        folder = os.path.dirname(os.path.abspath(parsed.database))
        os.makedirs(folder, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=json_dumps,
                           json_deserializer=json_loads, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we say when transactions begin
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={'NORMAL' if durable else 'OFF'}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA cache_size={-1024 * cache_mib}")  # in KiB when negative
        # The log is copied back by a thread of its own (`Checkpointer`); a commit does it
        # only as a backstop, when the log has grown large.
        cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection: Connection) -> None:
        reading = connection.get_execution_options().get(READING, False)
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")

    return engine


def printable_url(url: str) -> str:
    """A database URL fit for a log: `postgresql://nurture:***@db/nurture`."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable URL)"


def alembic_config(database: Database | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    if database is not None:
        config.attributes["engine"] = database.engine
    return config


def upgrade(database: Database, revision: str = "head", *, replay: bool = False) -> None:
    """Migrate to `revision`. A new database going to the head is created from the models
    in one step (see `migrations/env.py`); `replay` runs every migration instead."""
    config = alembic_config(database)
    config.attributes["replay"] = replay
    _refuse_a_newer_schema(database, config)
    command.upgrade(config, revision)


def _refuse_a_newer_schema(database: Database, config: Config) -> None:
    """A database that a newer nurture migrated (and this one was put back after it: a
    rollback) has a schema this code does not know. Said in one line, with what to do,
    before anything is touched, rather than as Alembic's "Can't locate revision"."""
    scripts = ScriptDirectory.from_config(config)
    known = {script.revision for script in scripts.walk_revisions()}
    with database.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    unknown = [revision for revision in current if revision not in known]
    if unknown:
        shown = database.engine.url.render_as_string(hide_password=True)
        newest = scripts.get_current_head()
        raise DatabaseUnavailable(
            f"cannot use the database {shown}: its schema is at version '{unknown[0]}', which "
            f"this nurture does not know (its newest is '{newest}'); a newer nurture has "
            "upgraded it. Run that version, or restore the backup taken before the upgrade "
            "(nothing was changed)")


def _migrate(database: Database) -> None:
    """Bring the schema to the head: a new SQLite database from the statements the first
    one of this process was made with (`sqlite_schema`), anything else by Alembic."""
    if database.engine.dialect.name != "sqlite":
        upgrade(database)
        return
    with database.engine.begin() as connection:  # IMMEDIATE: one process creates it
        new = sqlite_schema.is_new(connection)
        if new and sqlite_schema.create(connection):
            return
    upgrade(database)
    if new:
        with database.engine.begin() as connection:
            sqlite_schema.learn(connection)


def migrations_folder() -> str:
    return str(resources.files("engine.store") / "migrations")
