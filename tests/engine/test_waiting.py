"""What each stage's subscribers are waiting for (`nurture waiting`): `nurture status`
counted over a stage, the comparison that holds it back found."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from dsl import model as m
from dsl.conditions import MISSING, holds_if, leaves
from dsl.loader import load_text
from engine.cli import main
from engine.store import states
from engine.testing import FlowTest
from engine.waiting import Spread
from tests.engine.conftest import MESSAGES

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)  # where `flow` starts (tests/engine/conftest.py)

FLOW = """
workflow w {
  entry on subscribed
  score heat {
    on click +5
  }
  tag "vip" on buy
  stage first {
    go to second when heat >= 10 and subscriber.plan == "pro"
    go to third when has tag "vip" or heat >= 100
    go to second on click where page == "/pricing"
    go to third after 5 days
    go to second when idle for 3 days
  }
  stage second { }
  stage third {
    go to first on click
  }
}
"""

EXPECTED = """\
workflow w: 5 subscribers in it
  stage first: 3 subscribers
    go to second when heat >= 10 and subscriber.plan == "pro"  (w.flow:9): holds for nobody
      heat >= 10: holds for 1 (33.3%); would move 1 if it held
      subscriber.plan == "pro": holds for 1 (33.3%); would move 1 if it held
    go to third when has tag "vip" or heat >= 100  (w.flow:10): holds for nobody
      has tag "vip": holds for 0 (0.0%); would move 3 if it held
      heat >= 100: holds for 0 (0.0%); would move 3 if it held
    go to second on click where page == "/pricing"  (w.flow:11): waits for the event
    go to third after 5 days  (w.flow:12): due from 2026-01-10 09:00:00 UTC to 2026-01-10 \
11:00:00 UTC
    go to second when idle for 3 days  (w.flow:13): due from 2026-01-08 11:00:00 UTC to \
2026-01-08 11:30:00 UTC, for those without an event before
    among them:
      heat: median 5, 90th percentile 15, highest 15
      subscriber.plan: "basic" 1, "pro" 1, missing 1
  stage second: 1 subscriber
    no way out: they stay until they exit
  stage third: 1 subscriber
    go to first on click  (w.flow:17): waits for the event
"""


def _journeys(run: FlowTest) -> None:
    """ann: hot enough but on the basic plan; bo: on the pro plan but not hot enough; cy:
    neither; dee: both, so she moved on; eve bought, so she is a vip in `third`."""
    run.event("ann", "subscribed", channels=["push"], attributes={"plan": "basic"})
    run.event("dee", "subscribed", channels=["push"], attributes={"plan": "pro"})
    run.event("eve", "subscribed", channels=["push"])
    run.advance(hours=1)
    run.event("bo", "subscribed", channels=["push"], attributes={"plan": "pro"})
    run.advance(hours=1)
    run.event("cy", "subscribed", channels=["push"])
    for who in ("ann", "ann", "bo", "dee", "dee"):
        run.event(who, "click", page="/home")
    run.event("eve", "buy")
    run.advance(minutes=30)
    run.event("ann", "click", page="/home")


def _waiting(url: str, *arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["waiting", *arguments, "--db", url, "--workflows", "."])
    return result.exit_code, result.stdout, result.stderr


def test_waiting_counts_what_keeps_each_stage_from_moving_on(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _journeys(run)
    assert [run.stage(who) for who in ("ann", "bo", "cy", "dee", "eve")] == [
        "first", "first", "first", "second", "third"]
    assert _waiting(database_url) == (0, EXPECTED, "")
    # each subscriber judged as `nurture status` judges them, one by one
    report = run.waiting()  # the same, for a team's own tests
    [first] = run.waiting(stage="first").stages
    assert report.stages[0] == first
    assert [(c.condition, c.holds, c.would_move) for c in first.transitions[0].comparisons] == [
        ("heat >= 10", 1, 1), ('subscriber.plan == "pro"', 1, 1)]
    with pytest.raises(ValueError, match="has no stage 'frist'; did you mean 'first'"):
        run.waiting(stage="frist")
    verdicts = {who: [c.holds for t in run.status(who).enrolments[0].transitions[:1]
                      for c in t.checks] for who in ("ann", "bo", "cy")}
    assert verdicts == {"ann": [True, False], "bo": [False, True], "cy": [False, False]}


def test_a_page_of_a_stage_holds_what_judging_its_transitions_reads(
        flow: Callable[..., FlowTest]) -> None:
    # a second workflow with a score of the same name: its points are not the first's
    run = flow(FLOW + "workflow x {\n  score heat {\n    on click +1\n  }\n  stage only { }\n}\n")
    _journeys(run)
    with run.database.reading() as connection:
        first = [m for page in states.stage_pages(connection, "w", "first", page=2)
                 for m in page]
        [third] = [m for page in states.stage_pages(connection, "w", "third") for m in page]
    assert [(m.external_id, m.attributes, m.totals, m.tags) for m in first] == [
        ("ann", {"plan": "basic"}, {"heat": Decimal(15)}, set()),
        ("bo", {"plan": "pro"}, {"heat": Decimal(5)}, set()),
        ("cy", {}, {}, set())]  # pages of 2: the page boundary is crossed
    assert [m.stage_entered_at for m in first] == [T0, T0 + timedelta(hours=1),
                                                  T0 + timedelta(hours=2)]
    assert first[0].last_event_at == T0 + timedelta(hours=2, minutes=30)
    assert first[2].last_event_at == T0 + timedelta(hours=2)
    assert first[2].total("w", "heat") == 0  # no points yet: none stored
    assert (third.external_id, third.tags, third.last_event_at) == (
        "eve", {"vip"}, T0 + timedelta(hours=2))


def test_waiting_as_json_and_for_one_stage(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _journeys(run)
    code, out, err = _waiting(database_url, "w", "--stage", "first", "--json")
    assert (code, err) == (0, "")
    [stage] = json.loads(out)["stages"]
    assert stage["subscribers"] == 3
    assert stage["transitions"][0] == {
        "transition": 'go to second when heat >= 10 and subscriber.plan == "pro"',
        "rule": "w.flow:9", "kind": "when", "holds": 0, "comparisons": [
            {"condition": "heat >= 10", "reads": "heat", "holds": 1, "would_move": 1},
            {"condition": 'subscriber.plan == "pro"', "reads": "subscriber.plan",
             "holds": 1, "would_move": 1}]}
    assert stage["transitions"][3] == {
        "transition": "go to third after 5 days", "rule": "w.flow:12", "kind": "after",
        "earliest": "2026-01-10T09:00:00Z", "latest": "2026-01-10T11:00:00Z"}
    assert stage["spreads"] == {
        "heat": {"median": 5, "p90": 15, "highest": 15},
        "subscriber.plan": {"values": [{"value": "basic", "count": 1},
                                       {"value": "pro", "count": 1}], "missing": 1}}


def test_a_transition_an_edit_made_hold_and_a_stage_it_removed(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _journeys(run)
    edited = (FLOW.replace('heat >= 10 and subscriber.plan == "pro"', "heat >= 10")
              .replace("stage third {\n    go to first on click\n  }", "")
              .replace("go to third", "go to second"))
    Path("w.flow").write_text(edited + MESSAGES, encoding="utf-8")
    code, out, _ = _waiting(database_url)
    assert code == 0
    assert ("    go to second when heat >= 10  (w.flow:9): holds for 1 (33.3%) (they move at "
            "their next event or due time)\n      heat >= 10: holds for 1 (33.3%)\n") in out
    assert out.endswith("  stage third (not in the workflow files): 1 subscriber\n"
                        "    they stay until moved (`nurture move`) or they exit\n")
    run.reload("w.flow")  # as the service does when the files change
    run.event("ann", "click", page="/home")  # her next event moves her, as the report said
    assert run.stage("ann") == "second"


def test_attributes_of_numbers_and_words_in_json(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    """Values of every kind, numbers that are not whole among them, print as JSON."""
    run = flow(FLOW)
    for who, plan in (("ann", 7.5), ("bo", "pro"), ("cy", 7.5), ("dee", [1])):
        run.event(who, "subscribed", channels=["push"], attributes={"plan": plan})
    code, out, _ = _waiting(database_url, "--stage", "first", "--json")
    assert code == 0
    [stage] = json.loads(out)["stages"]
    assert stage["spreads"]["subscriber.plan"] == {"values": [
        {"value": 7.5, "count": 2}, {"value": "pro", "count": 1}, {"value": [1], "count": 1}]}


def test_unknown_workflows_and_stages_are_refused_with_a_suggestion(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _journeys(run)
    assert _waiting(database_url, "ww") == (
        2, "", "nurture: no workflow 'ww' in .; did you mean 'w'?\n")
    assert _waiting(database_url, "--stage", "frist") == (
        2, "", "nurture: workflow 'w' has no stage 'frist'; did you mean 'first'?\n")
    Path("w.flow").write_text("workflow w {", encoding="utf-8")
    code, out, _ = _waiting(database_url)
    assert code == 1
    assert out.startswith("w.flow:1:")


def _condition(text: str) -> m.Condition:
    flow = f"workflow w {{\n  stage s {{\n    go to s when {text}\n  }}\n}}\n"
    catalog = load_text(flow, "c.flow").catalog
    assert catalog is not None
    transition = catalog.workflows[0].stages[0].transitions[0]
    assert isinstance(transition, m.GoWhen)
    return transition.condition


def test_holds_if_forces_one_test_and_reads_the_others() -> None:
    condition = _condition("(a > 1 and b > 1) or not c > 1")
    a, b, c = leaves(condition)
    values = {"a": Decimal(0), "b": Decimal(2), "c": Decimal(2)}

    def lookup(reference: m.Reference) -> object:
        return values.get(reference.name, MISSING)

    assert [holds_if(condition, leaf, lookup, ()) for leaf in (a, b, c)] == [True, False, False]
    values["c"] = Decimal(0)  # `not c > 1` holds now; forcing c makes it fail, a and b hold it
    assert [holds_if(condition, leaf, lookup, ()) for leaf in (a, b, c)] == [True, True, False]


def test_a_spread_of_numbers_and_one_of_words() -> None:
    numbers = Spread("heat")
    for value in (Decimal("-2.5"), 7, 1, MISSING, 3.5, 10):
        numbers.add(value)
    assert numbers.summary() == ("lowest -2.5, median 3.5, 90th percentile 10, highest 10, "
                                 "missing 1")
    words = Spread("subscriber.role")
    for value in ["cto"] * 4 + ["cfo"] * 3 + ["dev"] * 2 + ["pm", "qa", 5]:
        words.add(value)
    assert words.summary() == '"cto" 4, "cfo" 3, "dev" 2, 3 other values 3'


def test_a_spread_counts_values_and_keeps_none_of_them() -> None:
    """A stage of many subscribers holds few distinct scores: the spread counts them."""
    spread = Spread("heat")
    for value in [Decimal(10)] * 49_999 + [Decimal("2.5")] * 50_000 + [Decimal(100)]:
        spread.add(value)
    assert len(spread.numbers) == 3
    assert spread.digest() == {"median": Decimal("6.25"), "p90": 10, "highest": 100}
    mixed = Spread("subscriber.size")  # numbers and words: every value counted
    for value in (50, 50, "large", 7.5, True):
        mixed.add(value)
    endless = Spread("subscriber.size")  # only Python can hand the fixture such a float
    for value in (float("inf"), 1):
        endless.add(value)
    assert endless.summary() == "1 1, inf 1"
    assert mixed.summary() == '50 2, "large" 1, 7.5 1, 1 other values 1'
    assert [raw for _, raw, _ in mixed.digest()["values"]] == [50, "large", Decimal("7.5"),
                                                               True]
