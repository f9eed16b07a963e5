"""Copying one database into another (`nurture copy`): a deployment that began on SQLite,
nurture's default, moving to PostgreSQL when one process is no longer enough (or a copy of
production's PostgreSQL into a SQLite file to try something on).

Replaying the recorded events into a new database would not do: the engine would decide
every send again, at today's time. So the rows themselves are copied, every table in the
order its foreign keys need, read from one read-only snapshot of the source and written
through the target's own column types (an instant kept as microseconds on SQLite becomes a
`timestamptz`, a score's exact decimal text a `numeric`). It all happens in one transaction
of the target: a copy that fails leaves the target as empty as it found it. On PostgreSQL
each table's id sequence is then set past the largest id copied, so that the rows the
service writes next do not collide with the copied ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, func, insert, literal, make_url, select, text
from sqlalchemy.exc import ArgumentError

from engine.store.database import Database
from engine.store.tables import metadata


class CopyRefused(RuntimeError):
    """The target is not empty; the message names what it holds."""


@dataclass(frozen=True, slots=True)
class CopiedTable:
    name: str
    rows: int


def copy_database(source: Database, target: Database, page: int = 5000,
                  progress: Callable[[str, int], None] | None = None) -> list[CopiedTable]:
    """Copy every row of `source` into `target`, which must hold none (else `CopyRefused`,
    and nothing is written). `progress(table, rows so far)` after each page."""
    copied: list[CopiedTable] = []
    with target.transaction() as writing:
        occupied = [table.name for table in metadata.sorted_tables
                    if writing.execute(select(literal(1)).select_from(table).limit(1)).first()]
        if occupied:
            raise CopyRefused(f"the target database holds rows already (in "
                              f"{', '.join(occupied)}): copy into an empty one")
        with source.reading() as reading:
            for table in metadata.sorted_tables:
                copied.append(CopiedTable(table.name,
                                          _copy_table(reading, writing, table, page, progress)))
        if writing.dialect.name == "postgresql":
            for table in metadata.sorted_tables:
                _move_sequence_past(writing, table)
    return copied


def _copy_table(reading: Connection, writing: Connection, table: Table, page: int,
                progress: Callable[[str, int], None] | None) -> int:
    done = 0
    ordered = select(table).order_by(*table.primary_key.columns)
    for rows in reading.execution_options(yield_per=page).execute(ordered).partitions():
        writing.execute(insert(table), [row._asdict() for row in rows])
        done += len(rows)
        if progress is not None:
            progress(table.name, done)
    return done


def _move_sequence_past(writing: Connection, table: Table) -> None:
    """Set the sequence behind an integer `id` key past the largest id copied (the next
    `nextval` gives the one after it); a table without one is left alone."""
    column: Any = table.c.get("id")
    if column is None or not column.primary_key:
        return
    sequence = writing.execute(text("SELECT pg_get_serial_sequence(:table, 'id')"),
                               {"table": table.name}).scalar()
    if sequence is None:
        return
    largest = writing.execute(select(func.max(column))).scalar()
    writing.execute(text("SELECT setval(:sequence, :value, :called)"),
                    {"sequence": sequence, "value": largest or 1,
                     "called": largest is not None})


def same_database(first: str, second: str) -> bool:
    """Whether two URLs name the same database, as far as they say (not two names of one
    host, nor two paths of one file); an unreadable URL is nobody's (opening it says why)."""
    try:
        return make_url(first) == make_url(second)
    except ArgumentError:
        return False


def counts(database: Database) -> dict[str, int]:
    """Rows per table, to compare a copy with its source."""
    with database.reading() as connection:
        return {table.name: int(connection.execute(
                    select(func.count()).select_from(table)).scalar_one())
                for table in metadata.sorted_tables}
