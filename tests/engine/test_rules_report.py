"""Whether a workflow's rules meet real traffic (`nurture rules`): event types that never
arrive, rules that never fire, and where the points come from."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main
from engine.testing import FlowTest
from tests.engine.conftest import MESSAGES

FLOW = """
workflow w {
  entry on subscribed
  exit on unsubscribed
  score heat {
    on click where page contains "/pricing" +5
    on click where page contains "/dimonds" +30
    on form_sumbit +10
    on buy +2.5 max 4 per day
    decay 50% every 7 days
  }
  score fit {
    when plan == "pro" +10
    when plan == "free" -5
  }
  tag "buyer" on buy
  tag "pricing_fan" on click where page contains "/pricng"
  stage first {
    go to second on form_submit
  }
  stage second { }
}
"""

EXPECTED = """\
workflow w, all time

  event         received  named on line
  subscribed           2  3
  unsubscribed         0  4              none arrived
  click                4  6, 7, 17
  form_sumbit          0  8              none arrived; did you mean 'form_submit' (1 arrived)?
  buy                  2  9, 16
  form_submit          1  19

  score heat                                   line  changes  subscribers  points
  on click where page contains "/pricing" +5      6        3            2     +15
  on click where page contains "/dimonds" +30     7        0            0       0  never fired
  on form_sumbit +10                              8        0            0       0  never fired
  on buy +2.5 max 4 per day                       9        2            1      +4
  decay 50% every 7 days                         10        2            2    -9.5

  score fit               line  changes  subscribers  points
  when plan == "pro" +10    13        3            2     +10
  when plan == "free" -5    14        0            0       0  never held

  tag rule                                                  line  tagged
  tag "buyer" on buy                                          16       1
  tag "pricing_fan" on click where page contains "/pricng"    17       0  nobody tagged
"""


def _traffic(run: FlowTest) -> None:
    """The site's pages are under /diamonds, not /dimonds; its form event is form_submit."""
    run.event("ann", "subscribed", channels=["push"], attributes={"plan": "pro"})
    run.event("bo", "subscribed", channels=["push"], attributes={"plan": "pro"})
    for page in ("/pricing", "/pricing", "/diamonds"):
        run.event("ann", "click", page=page)
    run.event("bo", "click", page="/pricing")
    run.event("ann", "form_submit")
    run.event("ann", "buy")
    run.event("ann", "buy")  # the day's max leaves 1.5 of its 2.5
    run.event("bo", "attributes", plan="team")  # fit: +10 for pro, then -10
    run.advance(days=8)  # a decay step: ann's 14 to 7 and bo's 5 to 2.5


def _rules(url: str, *arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["rules", *arguments, "--db", url, "--workflows", "."])
    return result.exit_code, result.stdout, result.stderr


def test_rules_that_never_meet_traffic_show_and_the_points_add_up(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _traffic(run)
    assert run.score("ann", "heat") == 7 and run.score("bo", "heat") == 2.5
    assert _rules(database_url) == (0, EXPECTED, "")
    code, out, _ = _rules(database_url, "--json")
    assert code == 0
    document = json.loads(out)
    assert document["events"][3] == {"event": "form_sumbit", "received": 0, "lines": [8],
                                     "meant": "form_submit"}
    assert document["rules"][4] == {"score": "heat", "rule": "decay 50% every 7 days",
                                    "line": 10, "kind": "decay", "changes": 2,
                                    "subscribers": 2, "points": "-9.5"}
    assert document["elsewhere"] == []
    # the ledger's sums are the scores: every point is accounted for
    heat = sum(float(rule["points"]) for rule in document["rules"] if rule["score"] == "heat")
    assert heat == 7 + 2.5


def test_since_counts_what_came_after(flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _traffic(run)
    run.event("bo", "click", page="/pricing")
    code, out, _ = _rules(database_url, "--since", "1 hour", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["since"] == "2026-01-13T08:00:00Z"
    assert [e["received"] for e in document["events"]] == [0, 0, 1, 0, 0, 0]
    assert document["tags"][0] == {"tag": "buyer", "rule": 'tag "buyer" on buy', "line": 16,
                                   "subscribers": 0}  # ann was tagged before then
    assert [(r["line"], r["changes"], r["points"]) for r in document["rules"]
            if r["changes"]] == [(6, 1, 5)]


def test_entries_of_rules_an_edit_moved_are_not_put_on_other_rules(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _traffic(run)
    # a rule inserted above: every later rule is a line further down, and the ledger's
    # `w.flow:6` (+5 each) is now the line of `on click … +1`
    edited = FLOW.replace('    on click where page contains "/pricing" +5\n',
                          '    on click where page contains "/sale" +1\n'
                          '    on click where page contains "/pricing" +5\n')
    Path("w.flow").write_text(edited + MESSAGES, encoding="utf-8")
    code, out, _ = _rules(database_url)
    assert code == 0
    assert ('  on click where page contains "/sale" +1         6        0            0       0  '
            "never fired\n") in out
    assert out.endswith(
        "  recorded for lines that hold no such rule now (an edit moved or removed it; --since "
        "the edit counts the rules as they are):\n"
        "  rule       score  changes  subscribers  points\n"
        "  w.flow:13  fit          3            2     +10\n"
        "  w.flow:6   heat         3            2     +15\n"
        "  w.flow:9   heat         2            1      +4\n"
        "  w.flow:10  heat         2            2    -9.5\n")


def test_an_unknown_workflow_is_refused(flow: Callable[..., FlowTest],
                                        database_url: str) -> None:
    flow(FLOW)
    assert _rules(database_url, "ww") == (
        2, "", "nurture: no workflow 'ww' in .; did you mean 'w'?\n")


def test_a_simulation_of_the_recorded_events_gives_the_same_report(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    """`nurture simulate --rules` over what `nurture events` exported: the same counts as
    `nurture rules` reads from the database (so an edit can be judged on real traffic
    before it goes live)."""
    run = flow(FLOW)
    _traffic(run)
    exported = CliRunner().invoke(main, ["events", "--db", database_url])
    assert exported.exit_code == 0
    Path("recorded.jsonl").write_text(exported.stdout, encoding="utf-8")
    simulated = CliRunner().invoke(main, [
        "simulate", "w.flow", "--events", "recorded.jsonl", "--rules",
        "--until", "2026-01-13T09:00:00Z"])
    assert simulated.exit_code == 0, simulated.output
    assert simulated.stdout == EXPECTED.replace("workflow w, all time",
                                                "workflow w, in the simulation")
    as_json = CliRunner().invoke(main, [
        "simulate", "w.flow", "--events", "recorded.jsonl", "--rules", "--json",
        "--until", "2026-01-13T09:00:00Z"])
    assert json.loads(as_json.stdout)["rules"][4]["points"] == "-9.5"  # exact decimals
    both = CliRunner().invoke(main, [
        "simulate", "w.flow", "--events", "recorded.jsonl", "--rules", "--funnel",
        "--until", "2026-01-13T09:00:00Z"])
    assert both.stdout.startswith("workflow w: 2 in it at the end")
    assert both.stdout.endswith(simulated.stdout)
    refused = CliRunner().invoke(main, [
        "simulate", "w.flow", "--events", "recorded.jsonl", "--rules", "--from", "2026-01-06"])
    assert refused.exit_code == 2
    assert "--rules counts the whole simulation; leave out --from" in refused.output
