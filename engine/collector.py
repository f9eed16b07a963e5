"""Python's cycle collector, set for a process that runs the engine for long.

The engine keeps thousands of subscribers' states in memory between batches (`StateCache`) and
allocates many short-lived objects for every event. With CPython's default thresholds a full
collection, which walks every live object, runs every few batches; on the ingest benchmark that
was 4 to 6 µs of every event's ~50 µs. Nearly everything the engine allocates is freed by
reference counting as soon as it is dropped (states hold no reference cycles), so collecting
young objects less often costs little memory and saves most of that time.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (CPython's default: 700)."""


def tune_for_long_runs() -> None:
    """For `serve`, `worker`, `dispatch` and `simulate`: what is loaded by now (modules, the
    catalog, the web framework) lives as long as the process, so it is set aside from every
    later collection; then young objects are collected less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
