"""Quiet hours and caps (SPEC §1.5a) at exact instants, across midnight and DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.timing import (
    CapRule,
    Window,
    after_caps,
    after_quiet_hours,
    send_time,
    wall_clock_to_utc,
)

WARSAW = ZoneInfo("Europe/Warsaw")
NIGHT = Window(time(21, 0), time(8, 0))
DAY = timedelta(days=1)
WEEK = timedelta(weeks=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("due", "expected"), [
    ("2026-01-15 12:00", "2026-01-15 12:00"),  # 13:00 in Warsaw: outside
    ("2026-01-15 21:30", "2026-01-16 07:00"),  # 22:30 local → 08:00 local next day
    ("2026-01-16 02:00", "2026-01-16 07:00"),  # 03:00 local → 08:00 local same day
    ("2026-01-15 20:00", "2026-01-16 07:00"),  # exactly 21:00 local: inside
    ("2026-01-16 07:00", "2026-01-16 07:00"),  # exactly 08:00 local: outside
    ("2026-01-16 06:59", "2026-01-16 07:00"),
])
def test_quiet_hours_across_midnight(due: str, expected: str) -> None:
    assert after_quiet_hours(utc(due), NIGHT, WARSAW) == utc(expected)


def test_quiet_hours_within_one_day() -> None:
    lunch = Window(time(12, 0), time(14, 0))
    assert after_quiet_hours(utc("2026-01-15 11:30"), lunch, WARSAW) == utc("2026-01-15 13:00")
    assert after_quiet_hours(utc("2026-01-15 13:00"), lunch, WARSAW) == utc("2026-01-15 13:00")


def test_quiet_hours_across_spring_forward() -> None:
    # 2026-03-29: Warsaw goes from CET (+1) to CEST (+2) at 02:00 local.
    due = utc("2026-03-28 21:00")  # 22:00 CET
    assert after_quiet_hours(due, NIGHT, WARSAW) == utc("2026-03-29 06:00")  # 08:00 CEST


def test_quiet_hours_across_fall_back() -> None:
    # 2026-10-25: Warsaw goes from CEST (+2) to CET (+1) at 03:00 local.
    due = utc("2026-10-24 20:00")  # 22:00 CEST
    assert after_quiet_hours(due, NIGHT, WARSAW) == utc("2026-10-25 07:00")  # 08:00 CET


def test_quiet_hours_ending_in_a_dst_gap_go_at_the_first_valid_instant() -> None:
    window = Window(time(0, 0), time(2, 30))  # 02:30 does not exist on 2026-03-29
    due = utc("2026-03-29 00:00")  # 01:00 CET
    assert after_quiet_hours(due, window, WARSAW) == utc("2026-03-29 01:00")  # 03:00 CEST


def test_wall_clock_in_a_repeated_hour_takes_the_first() -> None:
    # 02:30 happens twice on 2026-10-25 in Warsaw: first at 00:30Z (CEST), then 01:30Z (CET)
    assert wall_clock_to_utc(date(2026, 10, 25), time(2, 30), WARSAW) == utc("2026-10-25 00:30")


def test_no_quiet_hours() -> None:
    assert after_quiet_hours(utc("2026-01-15 23:00"), None, WARSAW) == utc("2026-01-15 23:00")


def test_cap_window_excludes_what_is_exactly_w_earlier() -> None:
    sent = [utc("2026-01-01 10:00")]
    caps = [CapRule(1, DAY)]
    assert after_caps(utc("2026-01-01 12:00"), sent, caps) == utc("2026-01-02 10:00")
    assert after_caps(utc("2026-01-02 10:00"), sent, caps) == utc("2026-01-02 10:00")


def test_several_caps_defer_to_the_strictest() -> None:
    sent = [utc("2026-01-01 10:00"), utc("2026-01-02 10:00"), utc("2026-01-03 10:00")]
    caps = [CapRule(1, DAY), CapRule(3, WEEK)]
    # the day cap alone says Jan 4 10:00; the week cap waits for Jan 1 10:00 to leave
    assert after_caps(utc("2026-01-03 11:00"), sent, caps) == utc("2026-01-08 10:00")


def test_cap_and_quiet_hours_together() -> None:
    # Another workflow without quiet hours sent at 23:00 local; this one caps 1 per day.
    sent = [utc("2026-01-15 22:00")]  # 23:00 Warsaw
    moment = send_time(utc("2026-01-16 09:00"), NIGHT, WARSAW, sent, [CapRule(1, DAY)])
    # the cap says 23:00 local on the 16th, which is quiet: 08:00 local on the 17th
    assert moment == utc("2026-01-17 07:00")


@settings(max_examples=300, deadline=None)
@given(
    due=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1),
                     timezones=st.just(UTC)),
    offsets=st.lists(st.integers(0, 14 * 24 * 60), max_size=12),
    counts=st.tuples(st.integers(1, 3), st.integers(1, 6)),
)
def test_send_time_is_the_earliest_allowed_instant(due: datetime, offsets: list[int],
                                                   counts: tuple[int, int]) -> None:
    sent = sorted(due - timedelta(minutes=o) for o in offsets)
    caps = [CapRule(counts[0], DAY), CapRule(counts[1], WEEK)]
    moment = send_time(due, NIGHT, WARSAW, sent, caps)

    def allowed(t: datetime) -> bool:
        if NIGHT.contains(t.astimezone(WARSAW).time()):
            return False
        return all(sum(1 for s in sent if t - c.window < s <= t) < c.count for c in caps)

    assert moment >= due and allowed(moment)
    step = timedelta(minutes=1)
    probe = moment - step
    while probe >= due and probe >= moment - timedelta(hours=3):
        assert not allowed(probe), f"{probe} was allowed before {moment}"
        probe -= step
