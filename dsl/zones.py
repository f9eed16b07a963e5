"""Time zone names (IANA), judged one way wherever one is written: a workflow's `timezone` and
a subscriber's `timezone` attribute. Quiet hours are read in that zone, so a zone that is not
one would move a subscriber's night without anyone noticing; both places refuse it, with the
name that was probably meant."""

from __future__ import annotations

import functools
import re
import zoneinfo

from dsl.diagnostics import closest

OFFSET = re.compile(r"(?i)(utc|gmt)?\s*[+\u2212-]\s*\d{1,2}(:?\d{2})?")
"""`+01:00`, `UTC+1`, `GMT-05:00`: a fixed offset, where a place's zone was wanted."""
MAX_SHOWN = 60
"""A longer name (the longest zone has 32 characters) is cut short in messages."""


@functools.lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.lru_cache(maxsize=1024)
def time_zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The zone of this name, or None when there is none."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return None


def zone_problem(name: str) -> str | None:
    """What is wrong with a time zone name, in words for the person who wrote it; None when
    it names a zone."""
    if time_zone(name) is not None:
        return None
    if not name.strip():
        return "an empty name is not a time zone (an IANA name such as 'Europe/Warsaw')"
    shown = name if len(name) <= MAX_SHOWN else name[:MAX_SHOWN - 3] + "..."
    if OFFSET.fullmatch(name.strip()):
        return (f"'{shown}' is an offset, not a time zone; write the place's zone (such as "
                "'Europe/Warsaw'), which follows its daylight-saving changes")
    match = closest(name.strip(), known_zones()) if len(name) <= MAX_SHOWN else None
    if match is None:
        return f"unknown time zone '{shown}' (an IANA name such as 'Europe/Warsaw')"
    return f"unknown time zone '{shown}'; did you mean '{match}'?"
