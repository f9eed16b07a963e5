"""A channel that records instead of sending: for `nurture simulate` and for tests."""

from __future__ import annotations

from channels.base import Outgoing


class RecordingChannel:
    """Keeps every decided send, in the order it was handed over."""

    def __init__(self) -> None:
        self.outgoing: list[Outgoing] = []

    def deliver(self, outgoing: Outgoing) -> None:
        self.outgoing.append(outgoing)

    def clear(self) -> None:
        self.outgoing.clear()
