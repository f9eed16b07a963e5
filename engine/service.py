"""The scheduler of a running nurture (the only module importing APScheduler).

Three jobs: `tick` (the engine's due work), `dispatch` (the outbox) and `watch` (reload the
workflows when a file changed); a fourth, `prune`, once a day when a retention period is set.
Each runs at most once at a time and late runs coalesce, so a slow tick is never overlapped by
the next one. The dispatcher lives on an event loop thread of its own, so that its connection
pools stay warm between runs. Stopping lets the jobs in hand
finish their current batch, then stops. APScheduler's own job stores are not used: what is due
per subscriber is in the database (`schedule`, `dispatches`), shared by every process.

On SQLite one process at a time may run the scheduler (a lock file beside the database says
who); several workers need PostgreSQL.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import IO, TypeVar

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from engine.clock import SystemClock
from engine.dispatcher import Dispatcher
from engine.runtime import Runtime
from engine.scheduler_lock import scheduler_lock
from engine.store import retention
from engine.store.database import DatabaseUnavailable

log = logging.getLogger("nurture.service")
T = TypeVar("T")
PRUNE_SECONDS = 24 * 3600
PRUNE_FIRST = timedelta(minutes=1)
"""The first prune comes a minute after start, so that its log line shows the setting works."""


class _Overruns(logging.Filter):
    """One warning per overrun, not one per interval: APScheduler warns each time a job's
    next run comes while it still runs ("skipped: maximum number of running instances
    reached"), which this service wants (a slow tick is never overlapped), so a database held
    for a minute by a backup filled the log with a line a second. The first skip of a job
    is let through; the next ones are dropped until the job finishes."""

    def __init__(self) -> None:
        super().__init__()
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if "maximum number of running instances" not in str(record.msg):
            return True
        job = getattr(record.args[0], "id", None) if isinstance(record.args, tuple) else None
        if job is None:
            return True
        with self._lock:
            if job in self._warned:
                return False
            self._warned.add(job)
        return True

    def finished(self, event: JobExecutionEvent) -> None:
        with self._lock:
            self._warned.discard(event.job_id)


class AlreadyRunning(RuntimeError):
    """Another process runs the scheduler on this SQLite database."""


class Service:
    def __init__(self, runtime: Runtime, dispatcher: Dispatcher, *,
                 tick_seconds: float | None = None, dispatch_seconds: float = 1.0,
                 watch_seconds: float = 2.0) -> None:
        self.runtime = runtime
        self.dispatcher = dispatcher
        if dispatcher.on_bounce is None:  # addresses the mail server refused: events
            dispatcher.on_bounce = runtime.ingest
        if dispatcher.on_database_failure is None:
            dispatcher.on_database_failure = lambda problem: runtime.outage.failed(
                "dispatch", problem)
        self.tick_seconds = tick_seconds or runtime.settings.tick_seconds
        self.dispatch_seconds = dispatch_seconds
        self.watch_seconds = watch_seconds
        self.stopping = threading.Event()
        self.scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                             name="nurture-dispatch-loop")
        self._lock_file: IO[str] | None = None
        self._overruns = _Overruns()
        self.scheduler.add_listener(self._overruns.finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running) and not self.stopping.is_set()

    def claim(self) -> None:
        """Become the scheduler of this database (AlreadyRunning on a taken SQLite one)."""
        if self._lock_file is None:
            self._take_sqlite_lock()

    def start(self) -> None:
        self.claim()
        self._loop_thread.start()
        self.scheduler.add_job(self.tick, "interval", seconds=self.tick_seconds, id="tick",
                               next_run_time=SystemClock().now())
        self.scheduler.add_job(self.dispatch, "interval", seconds=self.dispatch_seconds,
                               id="dispatch", next_run_time=SystemClock().now())
        self.scheduler.add_job(self.watch, "interval", seconds=self.watch_seconds, id="watch")
        if self.runtime.settings.retention is not None:
            self.scheduler.add_job(self.prune, "interval", seconds=PRUNE_SECONDS, id="prune",
                                   next_run_time=SystemClock().now() + PRUNE_FIRST)
        logging.getLogger("apscheduler.scheduler").addFilter(self._overruns)
        self.scheduler.start()
        period = self.runtime.settings.retention
        log.info("scheduler started", extra={
            "tick_seconds": self.tick_seconds, "dispatch_seconds": self.dispatch_seconds,
            "retention_days": period / timedelta(days=1) if period else None})

    def stop(self) -> None:
        """Finish the batches in hand, then stop (SIGTERM)."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        logging.getLogger("apscheduler.scheduler").removeFilter(self._overruns)
        if self._loop_thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.dispatcher.close(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(30)
        self._loop.close()
        self._release_sqlite_lock()
        log.info("scheduler stopped")

    # ------------------------------------------------------------ jobs

    def tick(self) -> None:
        began = time.perf_counter()
        result = self._attempt("tick", lambda: self.runtime.engine.tick(
            stop=self.stopping.is_set))
        if result is None:
            return
        if result.subscribers:
            self.runtime.outage.worked()
        elapsed = time.perf_counter() - began
        self.runtime.metrics.tick.observe(elapsed)
        self.runtime.metrics.put_off.inc(result.put_off)
        if result.subscribers:
            log.info("tick", extra={"subscribers": result.subscribers,
                                    "seconds": round(elapsed, 4)})

    def dispatch(self) -> None:
        began = time.perf_counter()
        future = asyncio.run_coroutine_threadsafe(
            self.dispatcher.drain(stop=self.stopping.is_set), self._loop)
        stats = self._attempt("dispatch", future.result)
        if stats is None:
            return
        if stats.claimed:
            self.runtime.outage.worked()
        self.runtime.metrics.dispatch.observe(time.perf_counter() - began)
        for (channel, outcome), count in stats.by_channel.items():
            self.runtime.metrics.sends.labels(channel=channel, outcome=outcome).inc(count)
        if stats.claimed:
            log.info("dispatch", extra={"claimed": stats.claimed, "outcomes": stats.outcomes})

    def prune(self) -> None:
        """Remove what is older than the retention period (`engine.store.retention`)."""
        period = self.runtime.settings.retention
        if period is None:
            return
        before = self.runtime.engine.clock.now() - period
        pruned = self._attempt("prune", lambda: retention.prune(
            self.runtime.database, before, stop=self.stopping.is_set))
        if pruned is None:
            return
        self.runtime.metrics.pruned.labels(kind="events").inc(pruned.events)
        self.runtime.metrics.pruned.labels(kind="messages").inc(pruned.messages)
        self.runtime.metrics.pruned.labels(kind="browsers").inc(pruned.browsers)
        self.runtime.metrics.pruned.labels(kind="ledger").inc(pruned.ledger)
        log.info("pruned", extra={"events": pruned.events, "messages": pruned.messages,
                                  "held": pruned.held, "browsers": pruned.browsers,
                                  "ledger": pruned.ledger,
                                  "before": f"{before:%Y-%m-%dT%H:%M:%SZ}"})

    def _attempt(self, job: str, work: Callable[[], T]) -> T | None:
        """A job's work, or None when the database failed: that is the operator's matter,
        said by `Outage` (not a traceback at every run: it is no bug), and the job tries
        again at its next run. The job says when it wrote (`Outage.worked`)."""
        try:
            return work()
        except DatabaseUnavailable as problem:
            self.runtime.outage.failed(job, problem)
            return None

    def watch(self) -> None:
        if self.runtime.files_changed():
            self.runtime.reload()

    def reload(self) -> None:
        """SIGHUP: load the workflows again (refused, and reported, if they do not check)."""
        self.scheduler.add_job(self.runtime.reload, id="reload", replace_existing=True)

    # ------------------------------------------------------------ one scheduler per SQLite

    def _take_sqlite_lock(self) -> None:
        database_file = self.runtime.database.sqlite_file()
        if database_file is None:
            return
        handle = scheduler_lock(database_file).open("a+")  # (not "w": the holder's pid stays)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise AlreadyRunning(
                f"another nurture process runs the scheduler on {database_file}: on SQLite run "
                "one `nurture serve` or `nurture worker`; several workers need PostgreSQL "
                "(NURTURE_DB=postgresql+psycopg://…)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def _release_sqlite_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None
