"""Batch writes at the driver level: SQLAlchemy compiles, the driver runs executemany.

A batch writes thousands of rows. Going through `Connection.execute(insert(t), dicts)` costs
several microseconds of Python per row (parameter dictionaries, per-row processing) — more than
the database spends storing it. Here each statement is compiled once per dialect, values are
converted with the columns' own bind processors (the same conversions SQLAlchemy applies), and
the rows go to the driver's `executemany` as plain tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ClauseElement,
    Column,
    Connection,
    Dialect,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    update,
)

Processor = Callable[[Any], Any] | None


class Statement:
    """One compiled statement and how to turn a row of values into its parameters."""

    def __init__(self, sql: str, processors: Sequence[Processor], names: Sequence[str],
                 positional: bool) -> None:
        self.sql = sql
        self.processors = tuple(processors)
        self.names = tuple(names)
        self.positional = positional
        self.convert = _converter(self.processors)

    def run(self, connection: Connection, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        converted = self.convert(rows)
        parameters: Any = converted if self.positional else [
            dict(zip(self.names, row, strict=True)) for row in converted]
        connection.exec_driver_sql(self.sql, parameters)


def _converter(processors: Sequence[Processor]
               ) -> Callable[[Sequence[Sequence[Any]]], Sequence[Any]]:
    """A function converting rows with the columns' processors, written out for this statement.

    Thousands of rows go through it per batch: a comprehension that names each column (and
    calls only the processors there are) took 0.74 ms for 1,000 event rows, where a loop over
    the columns of each row took 0.96 ms (most of the rest is the processors themselves).
    """
    if all(process is None for process in processors):
        return lambda rows: rows
    names = [f"v{i}" for i in range(len(processors))]
    values = [name if process is None else f"(None if {name} is None else p{i}({name}))"
              for i, (name, process) in enumerate(zip(names, processors, strict=True))]
    unpacked = ", ".join(names) + ("," if len(names) == 1 else "")
    source = (f"def convert(rows):\n"
              f"    return [({', '.join(values)},) for {unpacked} in rows]\n")
    scope: dict[str, Any] = {f"p{i}": p for i, p in enumerate(processors) if p is not None}
    exec(source, scope)
    convert: Callable[[Sequence[Sequence[Any]]], Sequence[Any]] = scope["convert"]
    return convert


StatementKey = tuple[str, str, tuple[str, ...], tuple[str, ...]]
_COMPILED: dict[tuple[Any, ...], dict[StatementKey, Statement]] = {}
"""The statements of every writer of the process, by dialect: a simulation or a test opens a
new database (and a new writer) each time, and compiling its ten statements again took
longer than running a small simulation."""


def _dialect_key(dialect: Dialect) -> tuple[Any, ...]:
    """What the compiled text and the bind processors depend on."""
    return (type(dialect), dialect.paramstyle, dialect.server_version_info,
            getattr(dialect, "_json_serializer", None))


class BatchWriter:
    """Compiled insert / update / delete statements for one dialect, built on first use."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._statements = _COMPILED.setdefault(_dialect_key(dialect), {})

    def insert(self, connection: Connection, table: Table, columns: Sequence[str],
               rows: Sequence[Sequence[Any]]) -> None:
        """INSERT rows given as tuples in the order of `columns`."""
        if rows:
            self._statement("insert", table, tuple(columns), ()).run(connection, rows)

    def update(self, connection: Connection, table: Table, columns: Sequence[str],
               keys: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """UPDATE `columns` where `keys` match; each row is the columns' values then the keys'."""
        if rows:
            self._statement("update", table, tuple(columns), tuple(keys)).run(connection, rows)

    def delete(self, connection: Connection, table: Table, keys: Sequence[str],
               rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._statement("delete", table, (), tuple(keys)).run(connection, rows)

    def run(self, connection: Connection, name: str,
            build: Callable[[], tuple[ClauseElement, Mapping[str, Column[Any]]]],
            rows: Sequence[Mapping[str, Any]], fixed: Mapping[str, Any] | None = None) -> None:
        """A statement of the caller's, built and compiled once per writer (`name` tells it
        apart): `build` gives it with every value a named `bindparam`, and the column whose
        type converts each; each row gives the values by those names, and `fixed` those that
        are the same in every row."""
        if not rows:
            return
        if fixed:
            rows = [{**fixed, **row} for row in rows]
        key = ("run", name, (), ())
        statement = self._statements.get(key)
        if statement is None:
            built, binds = build()
            compiled: Any = built.compile(dialect=self.dialect)
            order = list(compiled.positiontup or binds)
            if set(order) != set(binds):
                raise RuntimeError(f"{compiled}: parameters {order} are not {list(binds)}")
            statement = self._statements[key] = Statement(
                str(compiled), [binds[n].type.bind_processor(self.dialect) for n in order],
                order, compiled.positiontup is not None)
        statement.run(connection, [tuple(row[n] for n in statement.names) for row in rows])

    def _statement(self, kind: str, table: Table, columns: tuple[str, ...],
                   keys: tuple[str, ...]) -> Statement:
        cache_key = (kind, table.name, columns, keys)
        statement = self._statements.get(cache_key)
        if statement is None:
            statement = self._statements[cache_key] = self._compile(kind, table, columns, keys)
        return statement

    def _compile(self, kind: str, table: Table, columns: tuple[str, ...],
                 keys: tuple[str, ...]) -> Statement:
        values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in columns}
        if kind == "insert":
            statement: Any = insert(table).values(values)
        else:
            match_keys = and_(*(table.c[key] == bindparam(f"k_{key}") for key in keys))
            statement = delete(table) if kind == "delete" else update(table).values(values)
            statement = statement.where(match_keys)
        compiled = statement.compile(dialect=self.dialect)
        order = [f"v_{name}" for name in columns] + [f"k_{key}" for key in keys]
        positional = compiled.positiontup is not None
        if positional and list(compiled.positiontup or ()) != order:
            raise RuntimeError(f"{compiled}: parameters in an unexpected order")
        targets = [table.c[name] for name in columns] + [table.c[key] for key in keys]
        processors = [column.type.bind_processor(self.dialect) for column in targets]
        return Statement(str(compiled), processors, order, positional)
