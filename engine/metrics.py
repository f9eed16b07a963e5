"""Prometheus metrics of a running service (`/metrics`).

Counters for what happens (events ingested, sends by channel and outcome, subscribers whose
due work failed and was put off, failures of the database: two to alert on), the tick's
duration, and the backlog read from the database when scraped (due work and dispatches due
now, and how long the oldest of each has waited), so that several processes sharing a database
report the same backlog. The wait is what to alert on: a burst makes a long backlog that
goes in seconds, while a scheduler or dispatcher that died or cannot keep up makes the oldest
work wait longer and longer, however few rows are due.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.store.queries import Backlog


class _Backlog(Collector):
    def __init__(self, read: Callable[[], Backlog], now: Callable[[], datetime]) -> None:
        self.read = read
        self.now = now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog = self.read()
        now = self.now()
        counts = GaugeMetricFamily("nurture_due_backlog", "Work due now and not yet done",
                                   labels=["kind"])
        counts.add_metric(["schedule"], backlog.due_work)
        counts.add_metric(["outbox"], backlog.dispatches)
        yield counts
        lags = GaugeMetricFamily(
            "nurture_due_lag_seconds", "How long the oldest work due and not yet done has "
            "waited past its due time (0 when none waits)", labels=["kind"])
        lags.add_metric(["schedule"], _waited(backlog.oldest_due_work, now))
        lags.add_metric(["outbox"], _waited(backlog.oldest_dispatch, now))
        yield lags


def _waited(since: datetime | None, now: datetime) -> float:
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())


class Metrics:
    def __init__(self, backlog: Callable[[], Backlog], now: Callable[[], datetime]) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter("nurture_events_ingested", "Events accepted",
                              registry=self.registry)
        self.duplicates = Counter("nurture_events_duplicate", "Events refused as repeats",
                                  registry=self.registry)
        self.sends = Counter("nurture_sends", "Dispatch outcomes",
                             ["channel", "outcome"], registry=self.registry)
        self.put_off = Counter("nurture_due_work_put_off",
                               "Subscribers whose due work failed and was put off",
                               registry=self.registry)
        self.pruned = Counter("nurture_pruned", "Rows removed for the retention period",
                              ["kind"], registry=self.registry)
        self.database_failures = Counter(
            "nurture_database_failures", "Failures of the database (a full disk, a server gone),"
            " by where they struck: api, tick, dispatch, prune", ["where"],
            registry=self.registry)
        self.tick = Histogram("nurture_tick_seconds", "Duration of a tick",
                              registry=self.registry,
                              buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60))
        self.dispatch = Histogram("nurture_dispatch_seconds", "Duration of a dispatch batch",
                                  registry=self.registry,
                                  buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60))
        self.registry.register(_Backlog(backlog, now))

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
