"""Long-running commands set the cycle collector for a heap of cached states."""

from __future__ import annotations

import gc

from engine.collector import YOUNG_THRESHOLD, tune_for_long_runs


def test_young_objects_are_collected_less_often_and_the_startup_heap_is_set_aside() -> None:
    before = gc.get_threshold()
    try:
        tune_for_long_runs()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
