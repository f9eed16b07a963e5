"""Alembic environment: migrations run on the engine that `engine.store.database` opened."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine, inspect

from engine.store.tables import OWN_TABLES, metadata

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
        if _to_head() and _new(connection):
            # A new database is made as the models say and stamped at the head (Alembic's
            # "building an up to date database from scratch"): two to six times faster than
            # replaying every migration, for each new deployment, simulation and test.
            # Tests prove that replaying the migrations makes the same schema.
            metadata.create_all(connection)
            context.get_context().stamp(context.script, "head")
            return
        with context.begin_transaction():
            context.run_migrations()


def _to_head() -> bool:
    if config.attributes.get("replay", False):
        return False  # asked to run every migration (the tests comparing both ways)
    return context.get_revision_argument() in ("head", context.get_head_revision())


def _new(connection: Connection) -> bool:
    """No table of nurture's yet (another application's tables may share the database)."""
    return not OWN_TABLES.intersection(inspect(connection).get_table_names())


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
