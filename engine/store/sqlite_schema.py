"""New SQLite databases made from the schema the process's first one got from Alembic.

Every simulation, every `nurture` test fixture and every `--jobs` process opens a throw-away
SQLite database. Making one through Alembic (loading its environment and every migration
script, then `create_all`) took about 55 ms on the machine of 2026-12-01, more than a small
simulation itself. The first new database of a process is made by Alembic as always; its
`CREATE` statements and Alembic stamp are then read back from `sqlite_master`, and later new
databases of the process run those statements (about 2 ms). The schema is, statement for
statement, what Alembic made: a test compares the two.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from engine.store.tables import OWN_TABLES


@dataclass(frozen=True, slots=True)
class Schema:
    statements: tuple[str, ...]
    """`CREATE TABLE` and `CREATE INDEX` statements in the order SQLite recorded them."""
    revision: str
    """The Alembic revision the schema is at."""


_lock = threading.Lock()
_learned: Schema | None = None


def is_new(connection: Connection) -> bool:
    """No table of nurture's yet (another application's tables may share the file)."""
    names: Sequence[str] = connection.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table'").scalars().all()
    return not OWN_TABLES.intersection(names)


def create(connection: Connection) -> bool:
    """Give a new database (`is_new`, in this transaction) the schema at the head from the
    statements learned earlier in this process; False if none were learned yet."""
    with _lock:
        schema = _learned
    if schema is None:
        return False
    for statement in schema.statements:
        connection.exec_driver_sql(statement)
    connection.exec_driver_sql("INSERT INTO alembic_version (version_num) VALUES (?)",
                               (schema.revision,))
    return True


def learn(connection: Connection) -> None:
    """Keep the statements that make this database's schema again, for `create`."""
    global _learned
    schema = read(connection)
    with _lock:
        _learned = schema


def read(connection: Connection) -> Schema:
    """The statements that make nurture's tables and indexes of a database again (not
    those of another application sharing the file)."""
    rows = connection.exec_driver_sql(
        "SELECT tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite_%' ORDER BY rowid").all()
    revision: str = connection.exec_driver_sql(
        "SELECT version_num FROM alembic_version").scalar_one()
    return Schema(tuple(str(row.sql) for row in rows if row.tbl_name in OWN_TABLES), revision)


def forget() -> None:
    """Learn the schema again from the next new database (for tests)."""
    global _learned
    with _lock:
        _learned = None
