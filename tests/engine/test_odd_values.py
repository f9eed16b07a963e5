"""Whatever values a site sends, the engine runs: property and attribute values of any JSON
type meet conditions, templates and the reserved attributes of the example workflows.

A site's events are not typed: `amount` may come as `"1200"`, a list or null, `first_name`
as an object, `locale` as a number. SPEC §1.6 says a comparison with a missing value is false,
never an error at run time; the README extends that to a value of another type, and a
template that cannot render such a value skips the send as `render_error`: nothing reaches
a subscriber as Python writes null or an object ("Hi None!", "Hi {'given': 'Ann'}!"). Here
hypothesis sends such events through the example workflows (all of their conditions, templates and
stages) in `nurture simulate`'s engine, and any exception fails the test.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.loader import load_paths
from engine.events import EventError, parse_event
from engine.records import Record
from engine.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_paths([str(ROOT / "workflows")]).catalog
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
PYTHON_REPR = re.compile(r"\bNone\b|\{'")
"""How Python writes null and an object (the drawn texts hold neither). (A list prints as
Jinja2 prints it: SPEC §1.7 says the fields are Jinja2 templates.)"""

SCALARS = (st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(st.characters(blacklist_characters="N{}[]'", blacklist_categories=["Cs"]),
                     max_size=12)
           | st.sampled_from(["/diamonds", "1200", "fashion", "marketing", "pl-PL", "ebook",
                              "demo_request", "not_now", "Europe/Warsaw", "a@shop.example"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
NAMES = st.sampled_from(["url", "amount", "form", "outcome", "plan", "seats", "role",
                         "industry", "company_size", "first_name", "locale", "country",
                         "product", "category", "total", "title", "x"])
TYPES = st.sampled_from(["page_view", "email_open", "push_click", "form_submit", "purchase",
                         "offer_declined", "sales_feedback", "deal_won", "trial_started",
                         "attributes", "login", "refund"])


def without_lists(text: str) -> str:
    """The text without what lists printed (the drawn texts hold no brackets): Jinja2 prints
    a list as Python writes it, nulls and objects in it included."""
    while (shorter := re.sub(r"\[[^\[\]]*\]", "", text)) != text:
        text = shorter
    return text


@st.composite
def odd_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    people = ["ann", "bob"]
    events: list[dict[str, Any]] = []
    for person in people:
        attributes = draw(st.dictionaries(NAMES, VALUES, max_size=4))
        events.append({"subscriber": person, "type": "subscribed",
                       "at": T0.isoformat(), "properties": {
                           "channels": ["push", "email"], "email": f"{person}@shop.example",
                           "attributes": attributes}})
        events.append({"subscriber": person, "type": "form_submit", "at": T0.isoformat(),
                       "properties": {"form": draw(st.sampled_from(["ebook", "webinar"]))}})
    for _ in range(draw(st.integers(1, 12))):
        minutes = draw(st.integers(0, 60 * 24 * 40))
        events.append({"subscriber": draw(st.sampled_from(people)), "type": draw(TYPES),
                       "at": (T0 + timedelta(minutes=minutes)).isoformat(),
                       "properties": draw(st.dictionaries(NAMES, VALUES, max_size=4))})
    return events


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(odd_events())
def test_events_with_values_of_any_type_run_through_the_example_workflows(
        raw: list[dict[str, Any]]) -> None:
    assert CATALOG is not None
    events = []
    for number, item in enumerate(raw, start=1):
        try:
            events.append(parse_event(json.loads(json.dumps(item)), seq=number))
        except EventError:
            continue  # refused with a named field, as the API and simulate refuse it
    lines: list[str] = []
    summary = simulate(CATALOG, events, T0, T0 + timedelta(days=45), lines.append,
                       Record.to_json)
    assert summary.records == len(lines) > 0
    for line in lines:
        record = json.loads(line)
        if record["kind"] == "skip":
            assert record["reason"] in ("no_consent", "no_address", "render_error"), record
        if record["kind"] == "send":
            shown = [v for k, v in record.items() if k in ("title", "body", "subject")
                     and isinstance(v, str)]
            assert not any(PYTHON_REPR.search(without_lists(text)) for text in shown), record
