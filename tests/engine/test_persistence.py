"""Saving and reloading state changes nothing: one pass in memory equals many small passes.

The simulator carries a subscriber through all its events in one pass; the live service
reloads the subscriber from the database for every event and tick. Both must decide exactly
the same things at the same instants, whatever the events and wherever the ticks fall.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.loader import load_text
from engine.clock import VirtualClock
from engine.events import Event
from engine.processor import Engine
from engine.records import Record
from engine.store import queries
from engine.store.database import open_database
from tests.engine.conftest import brief

FLOW = """\
workflow shop {
  exit on unsubscribed
  timezone "Europe/Warsaw"
  quiet hours 21:00 to 08:00
  limit push to 2 per day, 5 per week
  limit email to 1 per day
  score engagement {
    on page_view where url contains "/diamonds"  +30
    on email_open                                +10 max 20 per day
    on purchase                                  +25
    on offer_declined                            -20
    decay 50% every 2 days
  }
  score fit { when role == "marketing" +10 }
  score heat { on email_open +8 decay 50% every 6 hours }
  tag "diamonds" on page_view where url contains "/diamonds"
  stage awareness {
    after 10 minutes: send push welcome
    every 8 hours, 4 times: send push drip
    go to interest when engagement >= 20
  }
  stage interest {
    every 1 day: send email letter
    after 12 hours unless email_open: send push offer
    go to selection when engagement >= 50 and has tag "diamonds"
    go to awareness when engagement < 10
  }
  stage selection {
    on enter: send push offer
    after 1 day unless purchase: send push offer
    go to sale on purchase
    go to interest when idle for 3 days
  }
  stage sale {
    on enter: send email letter
    go to awareness after 2 days
  }
}
message welcome push { title "Hi {{ subscriber.first_name | default('there') }}" }
message drip push { title "Drip {{ scores.engagement }}" }
message offer push { title "Offer for {{ stage }}" }
message letter email { subject "Letter {{ tags | join(',') }}" text "Hi" }
workflow care {
  entry on purchase
  exit on unsubscribed
  limit push to 1 per day
  score loyalty { on purchase +10  on email_open +2 max 4 per day  decay 25% every 1 day }
  stage thanks {
    on enter: send email thanks
    after 2 hours: send push tip
    go to loyal when loyalty >= 20
    go to lapsed when idle for 2 days
  }
  stage loyal { every 12 hours, 2 times: send push tip }
  stage lapsed { go to loyal on purchase }
}
message thanks email { subject "Thanks {{ scores.loyalty }}" text "Thank you" }
message tip push { title "Tip for {{ stage }}" }
"""

START = datetime(2026, 3, 27, 18, tzinfo=UTC)  # spans the spring daylight-saving change

EVENT_TYPES = [
    ("page_view", {"url": "/diamonds/rings"}), ("page_view", {"url": "/about"}),
    ("email_open", {}), ("purchase", {"amount": 100}), ("offer_declined", {}),
    ("attributes", {"role": "marketing"}), ("attributes", {"first_name": "Ann"}),
    ("unsubscribed", {"channels": ["push"]}), ("unsubscribed", {}),
    ("subscribed", {"channels": ["push", "email"], "email": "a@example.com"}),
]

steps = st.lists(st.tuples(st.integers(0, 60 * 36), st.integers(0, len(EVENT_TYPES) - 1),
                           st.booleans()), min_size=1, max_size=14)


def run(events: list[Event], ticks: list[datetime] | None, end: datetime,
        cache_size: int = 0, database_url: str | None = None,
        grouped: bool = False) -> tuple[Any, ...]:
    """`ticks=None`: every event in one call, the clock at `end`. Otherwise the clock moves
    from event to event and tick to tick; each event is one call, or with `grouped` the
    events between two ticks are one call (at the instant of the last of them)."""
    catalog = load_text(FLOW, "shop.flow").catalog
    assert catalog is not None
    records: list[Record] = []
    with tempfile.TemporaryDirectory() as folder:
        database = open_database(database_url or f"sqlite:///{Path(folder) / 'n.db'}",
                                 durable=False)
        clock = VirtualClock(START if ticks is not None else end)
        engine = Engine(catalog, database, clock=clock, on_record=records.append,
                        push_needs_subscription=False, cache_size=cache_size)
        if ticks is None:
            engine.ingest(events)
            engine.tick()
        else:
            pending = sorted([(e.at, 0, e) for e in events] + [(t, 1, None) for t in ticks],
                             key=lambda item: (item[0], item[1]))
            group: list[Event] = []
            for at, _, event in pending:
                if event is not None and grouped:
                    group.append(event)
                    continue
                if group:
                    clock.advance_to(group[-1].at)
                    engine.ingest(group)
                    group = []
                clock.advance_to(at)
                if event is None:
                    engine.tick()
                else:
                    engine.ingest([event])
            if group:
                clock.advance_to(group[-1].at)
                engine.ingest(group)
            clock.advance_to(end)
            engine.tick()
        with database.transaction() as connection:
            key = queries.subscriber_key(connection, "ann")
            assert key is not None
            state = (queries.stages(connection, key), queries.scores(connection, key),
                     sorted(queries.tags(connection, key)),
                     [(p["kind"], p["due_at"], p["nominal_at"]) for p in
                      queries.pending(connection, key)],
                     # what the outbox holds: cancels made within a batch (one pass) and
                     # in the database (many passes) must be the same
                     sorted(tuple(row) for row in connection.exec_driver_sql(
                         "SELECT delivery_seq, channel, status, last_error FROM dispatches "
                         f"WHERE subscriber_id = {int(key)}")))
        database.dispose()
    return (brief(records), [r.fields for r in records], state)


@pytest.mark.parametrize(("cache_size", "grouped"), [(0, False), (100, True)],
                         ids=["read-every-time-one-event-a-call", "kept-states-grouped"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=steps)
def test_one_pass_equals_many_passes_through_the_database(plan: list[tuple[int, int, bool]],
                                                          cache_size: int,
                                                          grouped: bool) -> None:
    check_passes(plan, cache_size, None, grouped)


@settings(max_examples=12, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(plan=steps)
def test_the_same_on_postgresql(plan: list[tuple[int, int, bool]],
                                pg_database_url_factory: Callable[[], str]) -> None:
    check_passes(plan, 100, pg_database_url_factory, grouped=True)


def check_passes(plan: list[tuple[int, int, bool]], cache_size: int,
                 new_url: Callable[[], str] | None, grouped: bool = False) -> None:
    events = [Event("ann", "subscribed", START, {"channels": ["push", "email"]}, None, 0)]
    ticks: list[datetime] = []
    at = START
    for seq, (minutes, kind, tick_before) in enumerate(plan, start=1):
        gap = timedelta(minutes=minutes)
        if tick_before:
            ticks.append(at + gap / 2)
        at += gap
        event_type, properties = EVENT_TYPES[kind]
        events.append(Event("ann", event_type, at, properties, None, seq))
    end = at + timedelta(days=6)
    at_once = run(events, None, end, 0, new_url() if new_url else None)
    step_by_step = run(events, ticks, end, cache_size, new_url() if new_url else None,
                       grouped)
    assert at_once == step_by_step
    assert at_once[0]  # something happened
