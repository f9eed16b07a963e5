"""A subscriber's earliest due work is kept as work is planned, done, cancelled and moved.

The journey asks for it twice per event, so `SubscriberState` remembers it instead of searching;
whatever the sequence of changes, it must be the one a search would find.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.state import DUE_ORDER, Due, SubscriberState

T0 = datetime(2026, 3, 1, tzinfo=UTC)

operations = st.lists(st.tuples(st.sampled_from(["schedule", "take", "unschedule", "forward",
                                                 "ask"]),
                                st.integers(0, 40), st.integers(0, 1000)), max_size=60)


def new_state() -> SubscriberState:
    return SubscriberState("someone", 1, {}, T0)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_the_kept_earliest_is_the_earliest(steps: list[tuple[str, int, int]]) -> None:
    state = new_state()
    for operation, minutes, pick in steps:
        if operation == "schedule":  # equal instants are common: creation order decides
            at = T0 + timedelta(minutes=minutes)
            state.schedule(Due("step", at, "w", None, 0, 0, 0, at, state.new_order()))
        elif operation == "ask":
            pass
        elif state.due:
            due = state.due[pick % len(state.due)]
            if operation == "take":
                state.take(due)
            elif operation == "unschedule":
                state.unschedule(due)
            elif due.due_at > T0:
                state.bring_forward(due, due.due_at - timedelta(minutes=1 + pick % 30))
        expected = min(state.due, key=DUE_ORDER) if state.due else None
        assert state.next_due() is expected


def test_work_taken_and_put_back_later_is_found_again() -> None:
    """A postponed send leaves the list while it is decided, then waits again, later."""
    state = new_state()
    first = state.schedule(Due("send", T0, "w", None, 0, 0, 0, T0, state.new_order()))
    second = state.schedule(Due("step", T0 + timedelta(hours=1), "w", None, 0, 1, 0,
                                T0 + timedelta(hours=1), state.new_order()))
    assert state.next_due() is first
    state.take(first)
    assert state.next_due() is second
    first.due_at = T0 + timedelta(hours=2)  # outside quiet hours, say
    state.schedule(first)
    assert state.next_due() is second
    state.take(second)
    assert state.next_due() is first
    state.unschedule(first)
    assert state.next_due() is None
    assert state.changes.removed_due == []  # neither was stored


def test_postponed_work_due_at_the_same_instant_keeps_its_place() -> None:
    """Equal due times: the one first due (nominal time), then the one planned first."""
    state = new_state()
    late = state.schedule(Due("step", T0, "w", None, 0, 1, 0, T0, state.new_order()))
    postponed = state.schedule(Due("send", T0, "w", None, 0, 0, 0, T0 - timedelta(hours=3),
                                   state.new_order()))
    assert state.next_due() is postponed
    state.take(postponed)
    assert state.next_due() is late
