"""The lock file beside a SQLite database that says which process runs its scheduler.

`nurture serve` and `nurture worker` hold it (`engine.service`); `nurture restore` reads it, to
refuse to write under a running process, without importing the scheduler (APScheduler) for it.
"""

from __future__ import annotations

import fcntl
from pathlib import Path


def scheduler_lock(database_file: str) -> Path:
    """The file whose lock says which process runs the scheduler on a SQLite database."""
    return Path(database_file).with_suffix(".scheduler.lock")


def scheduler_holder(database_file: str) -> int | None:
    """The process that runs the scheduler on this SQLite database (`serve`, `worker`), by
    its id (0 when it did not write one), or None when no process does."""
    try:
        handle = scheduler_lock(database_file).open("r")
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            written = handle.read().strip()
            return int(written) if written.isdigit() else 0
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
