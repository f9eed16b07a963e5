"""Files that are slow to make and cheap to keep, in the user's cache folder.

The parser's tables are the one such file: building them from `grammar.lark` took 85 to 155 ms
on a slow machine, where reading them back takes 12 to 18 ms, and every `nurture` command, every
process of the service and every test process paid it (a `nurture check` there took 0.5 to 0.9
s in all).

What is kept here is read back as a pickle, which runs code: a file is only read from a folder
of the current user's that nobody else may write to, and only if it is the user's and nobody
else may write to it either (as the user's own start-up files are trusted). Files are written
whole (a temporary file, renamed), so that two processes starting at once never read half of
one. Anything wrong (no home folder, a read-only one, a foreign file) only means the file is
made again, as before there was a cache: nothing here raises.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def folder() -> Path | None:
    """A systemd service's `$CACHE_DIRECTORY` (its unit's `CacheDirectory=`: the sample unit
    hides home folders), else `$XDG_CACHE_HOME/nurture`, else `~/.cache/nurture`; None where
    there is none of them."""
    service = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]  # the first, if several
    if os.path.isabs(service):
        return Path(service)
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):  # unset, or relative (which the XDG rules say to ignore)
        base = os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):  # no home folder ("~" was left as it is)
        return None
    return Path(base) / "nurture"


def read(name: str) -> bytes | None:
    """The kept file's bytes, or None (none kept, or not to be trusted)."""
    place = folder()
    if place is None or not hasattr(os, "getuid"):
        return None
    try:
        with open(place / name, "rb") as stream:
            if not (_private(os.fstat(stream.fileno())) and _private(os.stat(place))):
                return None
            return stream.read()
    except OSError:
        return None


def write(name: str, data: bytes) -> None:
    """Keep `data` as `name`, if the folder can be made and is the user's alone."""
    place = folder()
    if place is None or not hasattr(os, "getuid"):
        return
    temporary = None
    try:
        place.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(os.stat(place)):
            return
        descriptor, temporary = tempfile.mkstemp(dir=place, prefix=f".{name}.", suffix=".tmp")
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        os.replace(temporary, place / name)
        temporary = None
    except OSError:
        return
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _private(status: os.stat_result) -> bool:
    return (status.st_uid == os.getuid()
            and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH))
