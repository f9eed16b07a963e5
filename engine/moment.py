"""One subscriber at one instant: what the journey and scoring work on.

Every change the engine makes happens at a `Moment`: an event's instant or a due time. The
moment knows the subscriber's state, the event being processed (if any) and how to write a
timeline record with a sort key that puts it in its place (see `engine.records`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dsl import model as m
from dsl.conditions import MISSING
from engine.records import Record
from engine.state import StoredEvent, SubscriberState


@dataclass(slots=True)
class Moment:
    state: SubscriberState
    at: datetime
    phase: int
    order: int
    event: StoredEvent | None = None
    now: datetime | None = None
    """When the engine does this work, by its clock: `at` is behind it when the engine
    catches up (after an outage, or with events dated in the past)."""

    def record(self, workflow: str, kind: str, fields: dict[str, Any],
               note: str | None = None) -> None:
        if not self.state.recording:
            return
        records = self.state.records
        records.append(Record(self.at, self.state.external_id, workflow, kind, fields,
                              (self.phase, self.order, len(records)), note))

    # ------------------------------------------------------------ names in conditions

    def attribute(self, reference: m.Reference) -> Any:
        """Fit rules: every name is an attribute."""
        return self.state.attributes.get(reference.name, MISSING)

    def event_property(self, reference: m.Reference) -> Any:
        """`where` after an event: plain names are the event's properties (SPEC §1.6)."""
        if reference.scope == "subscriber":
            return self.state.attributes.get(reference.name, MISSING)
        if self.event is None:
            return MISSING
        return self.event.event.properties.get(reference.name, MISSING)
