"""Column types that keep the engine's values exact on every database.

Instants are timezone-aware UTC in the engine. PostgreSQL stores them as `timestamptz`; SQLite
has no time type, so they are stored there as integer microseconds since the epoch, which keeps
them exact, compact, index-friendly and cheap to convert (the hot paths convert millions).
Scores are exact decimals (`24.3`, not `24.299999`): `numeric` on PostgreSQL, text on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def to_micros(instant: datetime) -> int:
    return (instant - EPOCH) // MICROSECOND


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _micros_bind(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} cannot be stored")
    return (value - EPOCH) // MICROSECOND


def _micros_result(value: Any) -> datetime | None:
    return None if value is None else EPOCH + timedelta(microseconds=value)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC instant; naive datetimes are refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        # On SQLite, skip the generic decorator layers: millions of instants go through here.
        return _micros_bind if dialect.name == "sqlite" else super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "sqlite":
            return _micros_result
        return super().result_processor(dialect, coltype)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored")
        return to_micros(value) if dialect.name == "sqlite" else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_micros(int(value))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)


class ExactDecimal(TypeDecorator[Decimal]):
    """A decimal that round-trips exactly (scores, points)."""

    impl = String(60)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        return str if dialect.name == "sqlite" else super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "sqlite":
            return lambda value: None if value is None else Decimal(value)
        return super().result_processor(dialect, coltype)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(60))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return str(value) if dialect.name == "sqlite" else Decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(value) if isinstance(value, str) else Decimal(str(value))


Document = JSON().with_variant(JSONB(), "postgresql")
"""A JSON document column (JSONB on PostgreSQL)."""

def json_dumps(value: Any) -> str:
    """The database's JSON encoder (orjson: JSON columns are written for every event)."""
    return orjson.dumps(value, default=_json_default).decode()


def json_loads(text: str | bytes) -> Any:
    return orjson.loads(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


Key = BigInteger().with_variant(Integer(), "sqlite")
"""Integer keys: 64-bit on PostgreSQL (events and the ledger outgrow 2^31); SQLite's INTEGER
PRIMARY KEY is already 64-bit and must be spelt INTEGER to alias the row id."""
