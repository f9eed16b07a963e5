"""Where a subscriber stands and what comes next (`nurture status`, and the test fixture's
`status`): transitions judged as the engine judges them, and the work planned, with when."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main
from engine.testing import FlowTest
from tests.engine.conftest import MESSAGES

ROOT = Path(__file__).resolve().parents[2]

FLOW = """
workflow w {
  entry on subscribed
  timezone "Europe/Warsaw"
  quiet hours 21:00 to 08:00
  score heat {
    on click +5
    decay 50% every 7 days
  }
  stage first {
    on enter: send push hello
    every 1 day, 3 times: send push drip
    after 2 days unless click: send push nudge
    go to second when heat >= 10 and subscriber.plan == "pro"
    go to third when has tag "vip" or heat >= 100
    go to second on click where page == "/pricing"
    go to third after 5 days
    go to second when idle for 3 days
  }
  stage second { }
  stage third { }
}
"""

def _ann(run: FlowTest) -> None:
    run.event("ann", "subscribed", channels=["push"], attributes={"plan": "basic"})
    run.add_push_subscription("ann", "https://push.example/ann")  # the service's pushes go
    run.advance_to("2026-01-05T10:00:00Z")
    run.event("ann", "click", page="/home")


ANN_STATUS = """\
ann (as the engine left them at 2026-01-05 10:00:00 UTC)
  workflow w: stage first since 2026-01-05 09:00:00 UTC (enrolled 2026-01-05 09:00:00 UTC)
    scores: heat 5
    transitions, in the order they are tried:
      go to second when heat >= 10 and subscriber.plan == "pro"  (w.flow:14): does not hold
        heat >= 10: no (heat is 5)
        subscriber.plan == "pro": no (subscriber.plan is "basic")
      go to third when has tag "vip" or heat >= 100  (w.flow:15): does not hold
        has tag "vip": no (has no tag "vip")
        heat >= 100: no (heat is 5)
      go to second on click where page == "/pricing"  (w.flow:16): waits for a 'click' event
      go to third after 5 days  (w.flow:17): at 2026-01-10 09:00:00 UTC
      go to second when idle for 3 days  (w.flow:18): at 2026-01-08 10:00:00 UTC, unless an \
event comes before
    planned:
      2026-01-06 09:00:00 UTC (10:00 Europe/Warsaw)  send push drip (every 1 day, 1st of 3)  \
(w.flow:12)
      2026-01-07 09:00:00 UTC (10:00 Europe/Warsaw)  send push nudge: not sent, as a 'click' \
event came since entering the stage  (w.flow:13)
      2026-01-08 10:00:00 UTC (11:00 Europe/Warsaw)  go to second, unless an event comes \
before  (w.flow:18)
      2026-01-10 09:00:00 UTC (10:00 Europe/Warsaw)  go to third  (w.flow:17)
      2026-01-12 10:00:00 UTC (11:00 Europe/Warsaw)  decay of heat
"""


def _status(url: str, *arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["status", *arguments, "--db", url, "--workflows", "."])
    return result.exit_code, result.stdout, result.stderr


def test_status_says_why_a_subscriber_has_not_moved_and_what_comes_next(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _ann(run)
    assert _status(database_url, "ann") == (0, ANN_STATUS, "")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"$ nurture status ann\n{ANN_STATUS}```" in readme, "README's example is out of date"

    shown = run.status("ann")  # the same, for a team's own tests
    [enrolment] = shown.enrolments
    assert (enrolment.stage, enrolment.scores) == ("first", {"heat": 5})
    assert [t.verdict for t in enrolment.transitions][:2] == ["does not hold"] * 2
    assert enrolment.planned[0].what == "send push drip (every 1 day, 1st of 3)"

    run.event("ann", "attributes", plan="pro")
    run.event("ann", "click", page="/home")
    assert run.stage("ann") == "second"
    [enrolment] = run.status("ann").enrolments
    assert (enrolment.stage, enrolment.transitions, enrolment.planned[-1].what) == (
        "second", (), "decay of heat")


def test_a_send_held_back_by_quiet_hours_is_planned_for_their_end(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW, start="2026-01-05T20:55:00Z")  # 21:55 in Warsaw
    run.event("bo", "subscribed", channels=["push"])
    assert run.sent("bo") == []
    code, out, _ = _status(database_url, "bo", "--json")
    assert code == 0
    document = json.loads(out)
    planned = document["enrolments"][0]["planned"]
    assert planned[0] == {
        "at": "2026-01-06T07:00:00Z", "local": "2026-01-06T08:00:00+01:00", "rule": "w.flow:11",
        "what": "send push hello, held back since 2026-01-05 20:55:00 UTC by quiet hours; "
                "as things stand it would be skipped: no_address"}  # no browser of bo's
    assert document["processed_until"] == "2026-01-05T20:55:00Z"
    assert document["enrolments"][0]["transitions"][0]["checks"][1] == {
        "condition": 'subscriber.plan == "pro"', "holds": False,
        "read": "subscriber.plan is missing"}


def test_subscribers_in_no_workflow_and_ids_not_stored(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    run.event("cy", "click", page="/home")  # scored, but never subscribed
    _ann(run)
    code, out, _ = _status(database_url, "cy", "ann", "cy")
    assert code == 0
    assert out.startswith("cy (as the engine left them at 2026-01-05 09:00:00 UTC)\n"
                          "  in no workflow\nann (")
    assert out.count("cy (") == 1
    code, _, err = _status(database_url, "an")
    assert code == 2
    assert err == "nurture: no subscriber 'an' in the database; did you mean 'ann'?\n"


def test_a_stage_an_edit_removed(flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _ann(run)
    edited = FLOW.replace("stage first {", "stage opening {").replace(
        "second when idle", "opening when idle")
    Path("w.flow").write_text(edited + MESSAGES, encoding="utf-8")
    code, out, _ = _status(database_url, "ann")
    assert code == 0
    assert ("  workflow w: stage first (not in the workflow files) since 2026-01-05 09:00:00 UTC"
            in out)
    assert "planned:\n      2026-01-12 10:00:00 UTC (11:00 Europe/Warsaw)  decay of heat\n" in out


def test_a_send_held_back_by_a_cap_says_so(flow: Callable[..., FlowTest]) -> None:
    run = flow("""
workflow w {
  entry on subscribed
  limit push to 1 per day
  stage first {
    on enter: send push hello
    after 1 hour: send push nudge
  }
}
""")
    run.event("dee", "subscribed", channels=["push"])
    run.advance(hours=2)
    [enrolment] = run.status("dee").enrolments
    [planned] = enrolment.planned
    assert (planned.at.isoformat(), planned.what) == (
        "2026-01-06T09:00:00+00:00",
        "send push nudge, held back since 2026-01-05 10:00:00 UTC by a cap on push")
    assert planned.local == planned.at  # the workflow's zone is UTC


def test_a_long_queue_of_held_back_sends_is_cut_short_in_the_text(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow("""
workflow w {
  entry on subscribed
  limit push to 1 per day
  stage first {
    every 1 hour: send push drip
  }
}
""")
    run.event("eve", "subscribed", channels=["push"])
    run.add_push_subscription("eve", "https://push.example/eve")
    run.advance(days=2)  # 48 drips due, one a day can go: the rest wait in line
    planned = run.status("eve").enrolments[0].planned
    assert len(planned) > 40
    code, out, _ = _status(database_url, "eve")
    assert code == 0
    lines = out.splitlines()
    assert lines[-1] == f"      … and {len(planned) - 20:,} more (--json lists them)"
    assert len([line for line in lines if "send push drip" in line]) == 20
    document = json.loads(_status(database_url, "eve", "--json")[1])
    assert len(document["enrolments"][0]["planned"]) == len(planned)
