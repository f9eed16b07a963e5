"""Copying SQLite's write-ahead log back into the database file, off the writer's path.

In WAL mode a commit appends the changed pages to the log; a checkpoint later copies them into
the database file (and syncs it). SQLite's own automatic checkpoint runs inside the commit that
crosses its threshold, so one batch in a few pays for copying everything its predecessors
wrote. Here a thread of its own does it instead, on its own connection, with a PASSIVE
checkpoint: it never blocks the writer, and since the sqlite3 module releases the GIL while
SQLite works, the copy runs on another core while the engine decides the next batch.

The writer's connections keep SQLite's automatic checkpoint as a backstop, at a high mark, for
when this thread cannot keep up (or is not running): the log stays bounded either way.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time

BACKSTOP_PAGES = 50_000
"""The writer checkpoints by itself only when the log holds this many pages (~200 MB)."""
INTERVAL_SECONDS = 0.25
"""While commits come, at most one checkpoint this often: pages rewritten meanwhile are copied
once, and the log stays at a few thousand pages."""
QUIET_SECONDS = 1.0
"""After this long without a commit, whatever is left in the log is copied back."""
IDLE_SECONDS = 30.0
"""After this long without a commit the thread ends (and closes its connection); the next
commit starts it again, so an unused database holds no thread."""


class Checkpointer:
    """Checkpoints one SQLite database file in the background, nudged after each commit."""

    def __init__(self, path: str, durable: bool = True) -> None:
        """`durable=False`: a throw-away database (see `open_database`), copied without
        fsync."""
        self.path = path
        self.durable = durable
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending = 0
        self.checkpoints = 0
        """Checkpoints run (for tests and metrics)."""

    def committed(self) -> None:
        """A write transaction committed: the log grew."""
        with self._lock:
            if self._stop.is_set():
                return
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nurture-checkpoint",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Copy what is left and end the thread (before the database is closed)."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=30,
                                     check_same_thread=False)
        if not self.durable:
            connection.execute("PRAGMA synchronous=OFF")
        try:
            self._loop(connection)
        finally:
            connection.close()

    def _loop(self, connection: sqlite3.Connection) -> None:
        last_commit = last_checkpoint = time.monotonic()
        dirty = False
        while not self._stop.is_set():
            woken = self._wake.wait(QUIET_SECONDS)
            self._wake.clear()
            if woken:  # let commits gather: at most one checkpoint per interval
                self._stop.wait(last_checkpoint + INTERVAL_SECONDS - time.monotonic())
            with self._lock:
                if self._pending:
                    self._pending, dirty, last_commit = 0, True, time.monotonic()
                elif not dirty and time.monotonic() - last_commit >= IDLE_SECONDS:
                    self._thread = None  # idle: the next commit starts a new thread
                    return
            if dirty:
                self._checkpoint(connection)
                dirty, last_checkpoint = False, time.monotonic()
        self._checkpoint(connection)

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):  # busy or gone: the next round tries again
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
