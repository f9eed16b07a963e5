"""Alembic environment: migrations run on the engine that `engine.store.database` opened."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from engine.store.tables import metadata

config = context.config
MIGRATION_LOCK = 0x6E757274_75726521
"""A PostgreSQL advisory lock key: processes starting together migrate one after the other."""


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if not isinstance(engine, Engine):
        raise RuntimeError("run migrations through engine.store.database.upgrade()")
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # held until this migration commits
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.configure(connection=connection, target_metadata=metadata,
                          render_as_batch=connection.dialect.name == "sqlite",
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
