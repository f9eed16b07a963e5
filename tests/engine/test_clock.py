"""The engine's one clock: frozen by freezegun in tests, virtual in the simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from freezegun import freeze_time

from engine.clock import SystemClock, VirtualClock, as_utc


def test_system_clock_follows_freezegun() -> None:
    with freeze_time("2026-03-29 01:30:00"):
        assert SystemClock().now() == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_virtual_clock_moves_forward_only() -> None:
    clock = VirtualClock(datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=1))))
    assert clock.now() == datetime(2026, 1, 1, 11, tzinfo=UTC)
    clock.advance_to(datetime(2026, 1, 2, tzinfo=UTC))
    assert clock.now() == datetime(2026, 1, 2, tzinfo=UTC)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance_to(datetime(2026, 1, 1, tzinfo=UTC))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        as_utc(datetime(2026, 1, 1))
