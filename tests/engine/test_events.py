"""SPEC §2 (events, consent, attributes, idempotency) and §1.5a's order of input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.events import EventError, parse_event
from engine.store import queries
from tests.engine.conftest import brief, sends


@pytest.mark.parametrize(("raw", "field", "words"), [
    ([], "event", "JSON object"),
    ({"type": "x", "at": "2026-01-05T09:00:00Z"}, "subscriber", "required"),
    ({"subscriber": "", "type": "x", "at": "2026-01-05T09:00:00Z"}, "subscriber", "1 to 200"),
    ({"subscriber": "a", "at": "2026-01-05T09:00:00Z"}, "type", "required"),
    ({"subscriber": "a", "type": "Page View", "at": "2026-01-05T09:00:00Z"}, "type", "name"),
    ({"subscriber": "a", "type": "x"}, "at", "required"),
    ({"subscriber": "a", "type": "x", "at": "yesterday"}, "at", "ISO-8601"),
    ({"subscriber": "a", "type": "x", "at": "2026-01-05T09:00:00"}, "at", "no time zone"),
    # an export's placeholders: timers and rolling windows would leave Python's years
    ({"subscriber": "a", "type": "x", "at": "0001-01-01T00:00:00+01:00"}, "at",
     "'0001-01-01T00:00:00+01:00' is outside the years 1970 to 2999"),
    ({"subscriber": "a", "type": "x", "at": "9999-12-31T23:59:59Z"}, "at", "outside the years"),
    ({"subscriber": "a", "type": "x", "at": "1969-12-31T23:59:59Z"}, "at", "outside the years"),
    ({"subscriber": "a", "type": "x", "at": "2026-01-05T09:00:00Z", "properties": [1]},
     "properties", "JSON object"),
    ({"subscriber": "a", "type": "x", "at": "2026-01-05T09:00:00Z", "propertes": {}},
     "propertes", "unknown field"),
    ({"subscriber": "a", "type": "subscribed", "at": "2026-01-05T09:00:00Z"},
     "properties.channels", "required"),
    ({"subscriber": "a", "type": "subscribed", "at": "2026-01-05T09:00:00Z",
      "properties": {"channels": ["push", "sms"]}}, "properties.channels[1]", "'sms'"),
    ({"subscriber": "a", "type": "subscribed", "at": "2026-01-05T09:00:00Z",
      "properties": {"channels": [], "email": "nope"}}, "properties.email", "e-mail"),
    ({"subscriber": "a", "type": "attributes", "at": "2026-01-05T09:00:00Z",
      "properties": {"email": "a@shop.example\r\nBcc: eve@example.com"}}, "properties.email",
     "e-mail"),
    ({"subscriber": "a", "type": "subscribed", "at": "2026-01-05T09:00:00Z",
      "properties": {"channels": ["email"], "attributes": {"email": "Ann <a@shop.example>"}}},
     "properties.attributes.email", "e-mail"),
    ({"subscriber": "a", "type": "unsubscribed", "at": "2026-01-05T09:00:00Z",
      "properties": {"channels": "push"}}, "properties.channels", "list"),
    # a subscriber's own zone decides their quiet hours: a typo would move their night
    ({"subscriber": "a", "type": "attributes", "at": "2026-01-05T09:00:00Z",
      "properties": {"timezone": "Europe/Warsow"}}, "properties.timezone",
     "unknown time zone 'Europe/Warsow'; did you mean 'Europe/Warsaw'?"),
    ({"subscriber": "a", "type": "attributes", "at": "2026-01-05T09:00:00Z",
      "properties": {"timezone": "america/new_york"}}, "properties.timezone",
     "did you mean 'America/New_York'?"),
    ({"subscriber": "a", "type": "subscribed", "at": "2026-01-05T09:00:00Z",
      "properties": {"channels": ["push"], "attributes": {"timezone": "UTC+01:00"}}},
     "properties.attributes.timezone", "'UTC+01:00' is an offset, not a time zone"),
    ({"subscriber": "a", "type": "attributes", "at": "2026-01-05T09:00:00Z",
      "properties": {"timezone": 2}}, "properties.timezone",
     "expected a time zone such as 'Europe/Warsaw', got a number"),
    ({"subscriber": "a", "type": "attributes", "at": "2026-01-05T09:00:00Z",
      "properties": {"timezone": " "}}, "properties.timezone", "an empty name"),
    ({"subscriber": "a", "type": "attributes", "at": "2026-01-05T09:00:00Z",
      "properties": {"timezone": "Europe/" + "x" * 5000}}, "properties.timezone",
     "unknown time zone 'Europe/" + "x" * 50 + "...' (an IANA name"),  # not echoed whole
    ({"subscriber": "a", "type": "x", "at": "2026-01-05T09:00:00Z", "id": {"a": 1}}, "id",
     "string"),
    # half of a UTF-16 pair, as json.loads makes of "\\ud800": no database stores it
    ({"subscriber": "a\ud800", "type": "x", "at": "2026-01-05T09:00:00Z"}, "subscriber",
     "not valid text"),
    ({"subscriber": "a", "type": "attributes", "at": "2026-01-05T09:00:00Z",
      "properties": {"tags": ["ok", {"first_name": "An\udc00na"}]}},
     "properties.tags[1].first_name", "not valid text"),
])
def test_a_bad_event_names_the_field(raw: object, field: str, words: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(raw)
    assert caught.value.field == field
    assert words in caught.value.message


@pytest.mark.parametrize("zone", ["Europe/Warsaw", "UTC", "America/Argentina/Buenos_Aires",
                                  "Etc/GMT-2", None])
def test_a_time_zone_attribute_that_names_a_zone_is_taken(zone: str | None) -> None:
    event = parse_event({"subscriber": "a", "type": "attributes", "at": "2026-01-05T09:00:00Z",
                         "properties": {"timezone": zone}})
    assert event.properties == {"timezone": zone}  # None: not known (the workflow's zone)


def test_a_good_event_in_utc() -> None:
    event = parse_event({"subscriber": 42, "type": "page_view", "id": 7,
                         "at": "2026-01-05T10:00:00+01:00", "properties": {"url": "/x"}}, seq=3)
    assert (event.subscriber, event.key, event.seq) == ("42", "7", 3)
    assert event.at == datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_the_same_event_id_is_stored_once(flow) -> None:
    run = flow("workflow w { score s { on click +1 } stage a { } }\n")
    first = run.event("ann", "click", id="e-1")
    second = run.events([{"subscriber": "ann", "type": "click", "id": "e-1"},
                         {"subscriber": "ann", "type": "click", "id": "e-2"},
                         {"subscriber": "ann", "type": "click", "id": "e-2"}])
    assert (first.accepted, first.duplicates) == (1, [])
    assert (second.accepted, sorted(second.duplicates)) == (1, ["e-1", "e-2"])
    assert run.score("ann", "s") == 2


def test_subscribed_records_consent_with_time_and_source(flow) -> None:
    run = flow("workflow w { stage a { } }\n")
    run.event("ann", "subscribed", id="sub-1", channels=["push", "email"],
              email="ann@example.com", attributes={"first_name": "Ann"})
    run.advance(days=2)
    run.event("ann", "unsubscribed", channels=["email"])
    run.advance(days=1)
    run.event("ann", "unsubscribed")
    with run.database.transaction() as connection:
        key = queries.subscriber_key(connection, "ann")
        assert key is not None
        history = queries.consents(connection, key)
        attributes = queries.attributes(connection, key)
    assert [(c["channel"], c["granted"], c["at"].isoformat(), c["source"]) for c in history] == [
        ("push", True, "2026-01-05T09:00:00+00:00", "subscribed#sub-1"),
        ("email", True, "2026-01-05T09:00:00+00:00", "subscribed#sub-1"),
        ("email", False, "2026-01-07T09:00:00+00:00", "unsubscribed"),
        ("push", False, "2026-01-08T09:00:00+00:00", "unsubscribed"),
        ("email", False, "2026-01-08T09:00:00+00:00", "unsubscribed"),
    ]
    assert attributes == {"first_name": "Ann", "email": "ann@example.com"}


def test_attributes_events_merge(flow) -> None:
    run = flow("workflow w { stage a { } }\n")
    run.event("ann", "attributes", first_name="Ann", city="Gdańsk")
    run.event("ann", "attributes", city="Kraków", plan="pro")
    with run.database.transaction() as connection:
        key = queries.subscriber_key(connection, "ann")
        assert key is not None
        assert queries.attributes(connection, key) == {
            "first_name": "Ann", "city": "Kraków", "plan": "pro"}


def test_events_are_processed_in_order_of_at_whatever_the_input_order(flow) -> None:
    run = flow("""\
workflow w {
  score s { on click +1 }
  stage a { go to b when s >= 1 }
  stage b { }
}
""")
    run.advance(hours=2)
    run.events([
        {"subscriber": "ann", "type": "click", "at": "2026-01-05T10:00:00Z"},
        {"subscriber": "ann", "type": "subscribed", "at": "2026-01-05T09:00:00Z",
         "properties": {"channels": []}},
    ])
    assert brief(run.timeline("ann")) == [
        ("2026-01-05T09:00:00Z", "enter", "a"),
        ("2026-01-05T10:00:00Z", "score", "s +1 = 1"),
        ("2026-01-05T10:00:00Z", "enter", "b"),
    ]


def test_equal_times_keep_the_input_order(flow) -> None:
    run = flow("workflow w { stage a { go to b on click } stage b { go to c on buy } "
               "stage c { } }\n")
    run.events([{"subscriber": "ann", "type": "subscribed", "properties": {"channels": []}},
                {"subscriber": "ann", "type": "click"},
                {"subscriber": "ann", "type": "buy"}])
    assert run.stage("ann") == "c"


def test_at_one_instant_events_come_before_due_steps(flow) -> None:
    run = flow("""\
workflow w {
  stage a {
    after 1 day unless click: send push nudge
    go to b after 1 day
  }
  stage b { }
}
""")
    run.advance(days=1)
    run.events([  # bob's click arrives exactly when his step is due
        {"subscriber": "ann", "type": "subscribed", "at": "2026-01-05T09:00:00Z",
         "properties": {"channels": ["push"]}},
        {"subscriber": "bob", "type": "subscribed", "at": "2026-01-05T09:00:00Z",
         "properties": {"channels": ["push"]}},
        {"subscriber": "bob", "type": "click", "at": "2026-01-06T09:00:00Z"},
    ])
    assert sends(run, "ann") == []  # due exactly now: more events of this instant may come
    run.advance()
    assert sends(run, "ann") == [("2026-01-06T09:00:00Z", "nudge")]
    assert sends(run, "bob") == []
    assert run.stage("ann") == run.stage("bob") == "b"


def test_the_timeline_shows_an_instant_in_the_order_things_were_done(flow) -> None:
    # advance() did ann's step due at 10:00; her click of 10:00 came after it. The records
    # say so (the send first), not the order an event and a step of one instant take when
    # they arrive together (as in the test above).
    run = flow("""\
workflow w {
  score s { on click +1 }
  stage a {
    after 1 hour: send push nudge
    go to b when s >= 1
  }
  stage b { }
}
""")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=1)
    run.event("ann", "click")
    assert brief(run.timeline("ann")) == [
        ("2026-01-05T09:00:00Z", "enter", "a"),
        ("2026-01-05T10:00:00Z", "send", "push nudge"),
        ("2026-01-05T10:00:00Z", "score", "s +1 = 1"),
        ("2026-01-05T10:00:00Z", "enter", "b"),
    ]


def test_within_one_call_an_instant_keeps_the_input_order(flow) -> None:
    # bob is known (his state is kept from the first call), ann is new: the engine works on
    # them in another order, but the timeline follows the events.
    run = flow("workflow w { score s { on click +1 } stage a { } }\n")
    run.event("bob", "subscribed", channels=[])
    run.advance(hours=1)
    run.events([{"subscriber": "ann", "type": "subscribed", "properties": {"channels": []}},
                {"subscriber": "bob", "type": "click"}])
    assert [(r.subscriber, r.kind) for r in run.timeline()] == [
        ("bob", "enter"), ("ann", "enter"), ("bob", "score")]


def test_an_event_from_the_past_is_processed_where_the_journey_is(flow) -> None:
    run = flow("""\
workflow w {
  score s { on click +1 }
  stage a { go to b after 1 hour }
  stage b { go to c when s >= 1 }
  stage c { }
}
""")
    run.event("ann", "subscribed", channels=[])
    run.advance(hours=2)  # ann moved to b at 10:00
    run.event("ann", "click", at="2026-01-05T09:30:00Z")  # arrives late
    assert brief(run.timeline("ann"))[-2:] == [
        ("2026-01-05T10:00:00Z", "score", "s +1 = 1"),
        ("2026-01-05T10:00:00Z", "enter", "c"),
    ]
