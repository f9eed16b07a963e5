"""Subscribers' states kept in memory between batches, used only while they are current.

Reading a subscriber's state costs more than processing an event for it, and the subscribers
who send events are, minute by minute, mostly the same ones. So after a batch commits, its
states are kept here (least recently used first out). A state is used again only if the
subscriber's `version` in the database is the one this state was saved with: any other writer
(another process, an API call that changed the subscriber's push subscriptions) moves the
version on, and the state is read from the database again. A state is taken out while a batch
works on it, so a batch that fails leaves nothing half-changed behind.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from engine.state import SubscriberState


class StateCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, SubscriberState] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()  # API requests and scheduled ticks share one engine

    def __len__(self) -> int:
        return len(self._states)

    def take(self, stored: Iterable[tuple[int, str, int]]
             ) -> tuple[dict[str, SubscriberState], list[int]]:
        """For `(id, external_id, version)` as stored: the kept states that are that version,
        and the ids of the subscribers whose state must be read again."""
        current: dict[str, SubscriberState] = {}
        stale: list[int] = []
        with self._lock:
            states = self._states
            for key, external_id, version in stored:
                state = states.pop(external_id, None)
                if state is None or state.id != key or state.version != version:
                    stale.append(key)
                else:
                    current[external_id] = state
        self.hits += len(current)
        self.misses += len(stale)
        return current, stale

    def keep(self, states: Iterable[SubscriberState]) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            for state in states:
                self._states[state.external_id] = state
                self._states.move_to_end(state.external_id)
            while len(self._states) > self.capacity:
                self._states.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._states.clear()
