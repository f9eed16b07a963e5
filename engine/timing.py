"""When may a send go out: quiet hours in local time, and rolling frequency caps (pure).

SPEC §1.5a: a send goes at the earliest instant at or after its due time that is outside quiet
hours and fits every cap of its channel. Quiet hours are wall-clock times in the subscriber's
zone (DST-correct via zoneinfo); a window end that does not exist that day (a daylight-saving
gap) means the first valid instant after it. A cap window of length W at t counts (t - W, t].
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Window:
    """Quiet hours: from `start` (inclusive) to `end` (exclusive), local wall-clock times."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def quiet_text(quiet: Window, zone: ZoneInfo) -> str:
    """Quiet hours in a subscriber's zone as the outbox keeps them: `21:00-08:00 Europe/Warsaw`."""
    return f"{quiet.start:%H:%M}-{quiet.end:%H:%M} {zone.key}"


@functools.lru_cache(maxsize=1024)
def parse_quiet(text: str) -> tuple[Window, ZoneInfo]:
    """`quiet_text` read back (raises ValueError for anything else)."""
    span, _, zone = text.partition(" ")
    start, _, end = span.partition("-")
    return Window(time.fromisoformat(start), time.fromisoformat(end)), ZoneInfo(zone)


@dataclass(frozen=True, slots=True)
class CapRule:
    """At most `count` sends within any rolling `window`."""

    count: int
    window: timedelta


def wall_clock_to_utc(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The instant a local wall-clock time happens; the first valid instant after it if the
    time falls in a daylight-saving gap; the earlier of the two if it happens twice."""
    naive = datetime.combine(day, clock)
    candidate = naive.replace(tzinfo=zone, fold=0)
    if candidate.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return candidate.astimezone(UTC)
    # In a gap: the transition lies between the two readings of the missing time.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = candidate.astimezone(UTC)
    low, high = min(low, high), max(low, high)
    after = high.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if high.microsecond else high


def after_quiet_hours(at: datetime, quiet: Window | None, zone: ZoneInfo) -> datetime:
    """`at` if it is outside quiet hours, else the end of the window it falls in."""
    if quiet is None:
        return at
    local = at.astimezone(zone)
    if not quiet.contains(local.time().replace(tzinfo=None)):
        return at
    day = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        day += timedelta(days=1)
    return max(at, wall_clock_to_utc(day, quiet.end, zone))


def after_caps(at: datetime, sent: Sequence[datetime], caps: Sequence[CapRule]) -> datetime:
    """The earliest instant ≥ `at` at which one more send keeps every cap.

    `sent` are the instants of earlier sends on the channel, sorted ascending.
    """
    moment = at
    moved = True
    while moved:
        moved = False
        for cap in caps:
            first = bisect.bisect_right(sent, moment - cap.window)
            last = bisect.bisect_right(sent, moment)
            excess = (last - first) - cap.count + 1
            if excess > 0:
                # wait until the `excess` oldest sends in the window have left it
                moment = sent[first + excess - 1] + cap.window
                moved = True
    return moment


def send_time(due: datetime, quiet: Window | None, zone: ZoneInfo, sent: Sequence[datetime],
              caps: Sequence[CapRule]) -> datetime:
    """Earliest instant ≥ due outside quiet hours that fits every cap (SPEC §1.5a)."""
    moment = due
    while True:
        later = after_caps(after_quiet_hours(moment, quiet, zone), sent, caps)
        if later == moment:
            return moment
        moment = later
