"""Databases for tests: SQLite always, PostgreSQL too when `NURTURE_TEST_PG` names a server.

`backend` parametrizes a test over both; each test (or each call of `new_database_url`) gets a
database of its own: a SQLite file in its temporary folder, or a fresh PostgreSQL schema (a
`search_path` in the URL), dropped afterwards. Without `NURTURE_TEST_PG` the PostgreSQL runs
are skipped with that reason; `.ci/run` sets it, so CI never skips them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

PG = os.environ.get("NURTURE_TEST_PG")
SKIP_PG = ("PostgreSQL runs need NURTURE_TEST_PG=postgresql+psycopg://USER@HOST:PORT/DB "
           "(.ci/run sets it)")


def pg_schema_url(schema: str) -> str:
    assert PG is not None
    separator = "&" if "?" in PG else "?"
    return f"{PG}{separator}options={quote(f'-csearch_path={schema}')}"


class Schemas:
    """Fresh PostgreSQL schemas, dropped at the end."""

    def __init__(self) -> None:
        assert PG is not None
        self.admin = create_engine(PG)
        self.made: list[str] = []

    def new(self) -> str:
        schema = f"nurture_test_{uuid.uuid4().hex[:12]}"
        with self.admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        self.made.append(schema)
        return pg_schema_url(schema)

    def drop_all(self) -> None:
        """One transaction per schema: dropping hundreds in one (a property test makes a
        schema per example) runs out of the server's lock table (`max_locks_per_transaction`)."""
        for schema in self.made:
            with self.admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        self.admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not PG:
        pytest.skip(SKIP_PG)
    return str(request.param)


@pytest.fixture
def new_database_url(backend: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes a new, empty database for each call (SQLite file or PostgreSQL schema)."""
    schemas = Schemas() if backend == "postgresql" else None
    count = 0

    def make() -> str:
        nonlocal count
        count += 1
        if schemas is not None:
            return schemas.new()
        return f"sqlite:///{tmp_path / f'db-{count}.sqlite'}"

    yield make
    if schemas is not None:
        schemas.drop_all()


@pytest.fixture
def pg_database_url_factory() -> Iterator[Callable[[], str]]:
    """New PostgreSQL schemas on demand, for tests that exist only to run on PostgreSQL."""
    if not PG:
        pytest.skip(SKIP_PG)
    schemas = Schemas()
    yield schemas.new
    schemas.drop_all()


@pytest.fixture
def database_url(new_database_url: Callable[[], str]) -> str:
    return new_database_url()


def url_of(database: object) -> str:
    """The URL a subprocess needs to open the same database."""
    engine = database.engine  # type: ignore[attr-defined]
    return str(engine.url.render_as_string(hide_password=False))

