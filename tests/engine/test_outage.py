"""`Outage`: a failing database is told to the operator at once, then once a minute with the
count since, then once when a write goes through after a minute without failures; every
failure is counted for alerts."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, Counter

from engine.outage import Outage
from engine.store.database import DatabaseUnavailable

FULL = DatabaseUnavailable("the database failed: database or disk is full")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _outage() -> tuple[Outage, CollectorRegistry, Clock]:
    registry = CollectorRegistry()
    metric = Counter("nurture_database_failures", "", ["where"], registry=registry)
    clock = Clock()
    return Outage(metric, repeat_seconds=60, clock=clock), registry, clock


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "nurture.database"]


def test_one_line_at_once_one_a_minute_while_it_lasts_and_one_when_it_is_over(
        caplog: pytest.LogCaptureFixture) -> None:
    outage, registry, clock = _outage()
    with caplog.at_level(logging.INFO, logger="nurture.database"):
        outage.worked()  # nothing to say while all is well
        assert _lines(caplog) == [] and not outage.failing
        outage.failed("tick", FULL)
        for second in range(1, 60):  # a request a second, a tick every ten: said once
            clock.now = 1000 + second
            outage.failed("tick" if second % 10 == 0 else "api", FULL)
        assert _lines(caplog) == [(logging.ERROR, (
            "the database failed: database or disk is full (at the scheduler's tick); "
            "nothing is lost: the API answers 503 so that clients send again, and due work "
            "waits for the database"))]
        clock.now = 1060
        outage.failed("api", FULL)
        assert _lines(caplog)[1:] == [(logging.ERROR, (
            "the database still fails: 60 more failure(s) in the last 60 s, 60 s since it "
            "began (the database failed: database or disk is full)"))]
        clock.now = 1200  # a quiet while, then one more: counted since the last line
        outage.failed("api", FULL)
        assert _lines(caplog)[2:] == [(logging.ERROR, (
            "the database still fails: 1 more failure(s) in the last 140 s, 200 s since it "
            "began (the database failed: database or disk is full)"))]
        clock.now = 1215  # a write went through, but the last failure is 15 s old: a disk
        outage.worked()   # nearly full takes small writes and refuses large ones
        assert _lines(caplog)[3:] == [] and outage.failing
        clock.now = 1261
        outage.worked()
        outage.worked()
        assert _lines(caplog)[3:] == [(
            logging.WARNING, "the database works again, after 261 s and 62 failure(s)")]
        assert not outage.failing
        clock.now = 2000
        outage.failed("dispatch", FULL)  # a new outage is told at once again
        assert "(at the dispatcher)" in _lines(caplog)[4][1]
    assert all(r.exc_info is None for r in caplog.records)  # no traceback: it is no bug
    by_place = {place: registry.get_sample_value("nurture_database_failures_total",
                                                 {"where": place})
                for place in ("api", "tick", "dispatch")}
    assert by_place == {"api": 56.0, "tick": 6.0, "dispatch": 1.0}
