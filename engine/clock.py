"""The one source of "now" for the whole engine.

The live service reads the system clock (which freezegun freezes in tests); the simulator moves
a virtual clock from due time to due time. Nothing else in the engine calls `datetime.now()`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """Time that only moves when told to, and never backwards."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance_to(self, instant: datetime) -> None:
        instant = as_utc(instant)
        if instant < self._now:
            raise ValueError(f"virtual time cannot go back from {self._now} to {instant}")
        self._now = instant


def as_utc(instant: datetime) -> datetime:
    """Refuses naive datetimes: an instant without a zone is a bug waiting to happen."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant!r}: give a time zone")
    return instant.astimezone(UTC)
