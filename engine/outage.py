"""Telling the operator that the database fails: at once, then once a minute, not per request.

A full disk, or a PostgreSQL server that restarts or refuses connections, makes every write
fail until someone mends it. Nothing is lost meanwhile: the API answers each request 503 (the
client sends it again), and the scheduler's jobs try again at their next run. But the operator
must learn of it, and neither a traceback every ten seconds (it is not a bug) nor a line per
refused request (thousands a minute) helps them. So the first failure is logged as one error
line with the database's own words, then one line a minute with the count since, and one line
when the database works again; `nurture_database_failures_total{where}` counts every failure
for alerts.

"Works again" needs a write that went through after a minute without failures: a job that had
nothing to write proves nothing, and a disk that is nearly full takes small writes and refuses
large ones, which would otherwise make the log flap between "failed" and "works again".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from prometheus_client import Counter as Metric

log = logging.getLogger("nurture.database")

REPEAT_SECONDS = 60.0
"""While the database keeps failing, how often the log says so again."""

PLACES = {"api": "an API request", "tick": "the scheduler's tick", "dispatch": "the dispatcher",
          "prune": "the retention job"}


class Outage:
    def __init__(self, metric: Metric, repeat_seconds: float = REPEAT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metric = metric
        self.repeat_seconds = repeat_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        """When the current outage began (None: the database works)."""
        self._last = 0.0
        """When the database last failed."""
        self._said_at = 0.0
        self._failures: Counter[str] = Counter()
        """Failures by where they struck, since the outage began."""
        self._unsaid = 0
        """Failures since the last line about them."""

    @property
    def failing(self) -> bool:
        return self._since is not None

    def failed(self, where: str, problem: BaseException) -> None:
        """A failure of the database met by `where` (`api`, `tick`, `dispatch`, `prune`)."""
        self.metric.labels(where=where).inc()
        now = self.clock()
        with self._lock:
            first = self._since is None
            if first:
                self._since = now
            self._last = now
            self._failures[where] += 1
            self._unsaid += 1
            if not first and now - self._said_at < self.repeat_seconds:
                return
            since_said = now - self._said_at
            self._said_at, unsaid, self._unsaid = now, self._unsaid, 0
            assert self._since is not None
            lasting = now - self._since
            by_place = dict(self._failures)
        if first:
            log.error("%s (at %s); nothing is lost: the API answers 503 so that clients send "
                      "again, and due work waits for the database", problem,
                      PLACES.get(where, where),
                      extra={"where": where, "reason": str(problem)})
        else:
            log.error("the database still fails: %d more failure(s) in the last %.0f s, "
                      "%.0f s since it began (%s)", unsaid, since_said, lasting,
                      problem, extra={"failures": by_place, "seconds": round(lasting),
                                      "reason": str(problem)})

    def worked(self) -> None:
        """The database took a write (not merely a job that found nothing to write): an
        outage is over if nothing failed for `repeat_seconds`."""
        if self._since is None:  # the common case, without the lock
            return
        now = self.clock()
        with self._lock:
            if self._since is None or now - self._last < self.repeat_seconds:
                return
            lasting = now - self._since
            failures = dict(self._failures)
            self._since, self._unsaid = None, 0
            self._failures.clear()
        log.warning("the database works again, after %.0f s and %d failure(s)", lasting,
                    sum(failures.values()), extra={"failures": failures,
                                                   "seconds": round(lasting)})
