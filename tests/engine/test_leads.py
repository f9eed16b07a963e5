"""Who the leads are (`nurture leads`): a workflow's subscribers, highest score first."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main
from engine.testing import FlowTest

FLOW = """
workflow w {
  exit on unsubscribed
  score heat {
    on click +5
    on like +2.5
    on decline -5
  }
  score fit {
    when plan == "pro" +10
  }
  tag "vip" on buy
  stage first {
    go to second on buy
  }
  stage second { }
}

workflow x {
  score heat {
    on click -100
  }
  stage only { }
}
"""


def _journeys(run: FlowTest) -> None:
    """heat: ann 15, eve 10, bo and hal 7.5 (a tie), cy 2.5, gus none (0), dee -5; fay has
    the most but left. Each subscribes a minute after the one before."""
    for who in ("ann", "bo", "cy", "dee", "eve", "fay", "gus", "hal"):
        attributes = {"plan": "pro"} if who == "ann" else {"plan": "basic"}
        run.event(who, "subscribed", channels=["email"], email=f"{who}@example.com",
                  attributes=attributes)
        run.advance(minutes=1)
    for who, kind in [("ann", "click")] * 3 + [("bo", "click"), ("bo", "like"),
                                              ("cy", "like"), ("dee", "decline")] \
            + [("eve", "click")] * 2 + [("fay", "click")] * 4 + [("hal", "like")] * 3:
        run.event(who, kind)
    run.advance(minutes=1)
    run.event("eve", "buy")
    run.event("fay", "unsubscribed")


def _leads(url: str, *arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["leads", *arguments, "--db", url, "--workflows", "."])
    return result.exit_code, result.stdout, result.stderr


EXPECTED = """\
workflow w: 7 in it; all of them, highest heat first
  subscriber  stage   in the stage since       heat  fit  tags  email            plan
  ann         first   2026-01-05 09:00:00 UTC    15   10  -     ann@example.com  pro
  eve         second  2026-01-05 09:09:00 UTC    10    0  vip   eve@example.com  basic
  bo          first   2026-01-05 09:01:00 UTC   7.5    0  -     bo@example.com   basic
  hal         first   2026-01-05 09:07:00 UTC   7.5    0  -     hal@example.com  basic
  cy          first   2026-01-05 09:02:00 UTC   2.5    0  -     cy@example.com   basic
  gus         first   2026-01-05 09:06:00 UTC     0    0  -     gus@example.com  basic
  dee         first   2026-01-05 09:03:00 UTC    -5    0  -     dee@example.com  basic
"""


def test_leads_come_highest_score_first_with_their_stage_scores_tags_and_attributes(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _journeys(run)
    # numbers compared as numbers (as text, "7.5" would come before "15"), a tie by id, no
    # points as 0, the other workflow's points (-100 a click) not counted, the one who left
    # not listed
    assert _leads(database_url, "w", "--limit", "0", "--attribute", "email",
                  "--attribute", "plan") == (0, EXPECTED, "")
    code, out, _ = _leads(database_url, "w", "--limit", "2")
    assert code == 0
    assert out.splitlines() == [
        "workflow w: 7 in it; the first 2, highest heat first",
        "  subscriber  stage   in the stage since       heat  fit  tags",
        "  ann         first   2026-01-05 09:00:00 UTC    15   10  -",
        "  eve         second  2026-01-05 09:09:00 UTC    10    0  vip"]
    assert [lead.subscriber for lead in run.leads("w", by="fit", limit=3)] == [
        "ann", "bo", "cy"]  # fit: ann 10, the others 0, by id
    assert [lead.subscriber for lead in run.leads("x")] == [  # x has no exit: fay is in it
        "cy", "dee", "gus", "hal", "bo", "eve", "ann", "fay"]  # 0, -100, -200, -300, -400
    [eve] = run.leads("w", stage="second")
    assert (eve.subscriber, eve.scores, eve.tags) == (
        "eve", {"heat": Decimal(10), "fit": Decimal(0)}, ("vip",))


def test_leads_as_json_lines_and_in_some_stages(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _journeys(run)
    code, out, err = _leads(database_url, "w", "--stage", "first", "--stage", "second",
                            "--limit", "3", "--attribute", "email", "--attribute", "phone",
                            "--json")
    assert (code, err) == (0, "")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"subscriber": "ann", "workflow": "w", "stage": "first",
         "stage_entered_at": "2026-01-05T09:00:00Z", "scores": {"heat": 15, "fit": 10},
         "tags": [], "attributes": {"email": "ann@example.com"}},
        {"subscriber": "eve", "workflow": "w", "stage": "second",
         "stage_entered_at": "2026-01-05T09:09:00Z", "scores": {"heat": 10, "fit": 0},
         "tags": ["vip"], "attributes": {"email": "eve@example.com"}},
        {"subscriber": "bo", "workflow": "w", "stage": "first",
         "stage_entered_at": "2026-01-05T09:01:00Z", "scores": {"heat": "7.5", "fit": 0},
         "tags": [], "attributes": {"email": "bo@example.com"}}]
    code, out, _ = _leads(database_url, "w", "--stage", "second")
    assert out == ("workflow w: 1 in second; all of them, highest heat first\n"
                   "  subscriber  stage   in the stage since       heat  fit  tags\n"
                   "  eve         second  2026-01-05 09:09:00 UTC    10    0  vip\n")


def test_a_workflow_without_scores_lists_the_latest_to_enter_first_and_nobody_is_said(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow("workflow w {\n  stage first { }\n  stage second { }\n}\n")
    for who in ("ann", "bo"):
        run.event(who, "subscribed", channels=["email"])
        run.advance(minutes=5)
    assert _leads(database_url, "w") == (0, (
        "workflow w: 2 in it; all of them, the latest to enter their stage first\n"
        "  subscriber  stage  in the stage since       tags\n"
        "  bo          first  2026-01-05 09:05:00 UTC  -\n"
        "  ann         first  2026-01-05 09:00:00 UTC  -\n"), "")
    assert _leads(database_url, "w", "--stage", "second") == (
        0, "workflow w: nobody in second\n", "")


def test_a_misspelt_score_stage_or_workflow_is_refused_with_the_name_meant(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _journeys(run)
    assert _leads(database_url, "w", "--by", "haet") == (
        2, "", "nurture: workflow 'w' has no score 'haet'; did you mean 'heat'?\n")
    assert _leads(database_url, "w", "--stage", "secnd") == (
        2, "", "nurture: workflow 'w' has no stage 'secnd'; did you mean 'second'?\n")
    code, _, err = _leads(database_url, "ww")
    assert code == 2 and "did you mean 'w'?" in err


def test_leads_as_csv_for_a_spreadsheet_with_formulas_defused(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _journeys(run)
    run.event("ann", "attributes", first_name='=HYPERLINK("https://evil.example","Ann")')
    run.event("eve", "attributes", first_name="Eve, Jr.", vip=True)
    code, out, err = _leads(database_url, "w", "--limit", "3", "--attribute", "first_name",
                            "--attribute", "vip", "--csv")
    assert (code, err) == (0, "")
    assert out.split("\n") == [
        "subscriber,stage,stage_entered_at,heat,fit,tags,first_name,vip",
        "ann,first,2026-01-05T09:00:00Z,15,10,,"
        "\"'=HYPERLINK(\"\"https://evil.example\"\",\"\"Ann\"\")\",",
        'eve,second,2026-01-05T09:09:00Z,10,0,vip,"Eve, Jr.",true',
        "bo,first,2026-01-05T09:01:00Z,7.5,0,,,",
        ""]
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[1][6] == "'=HYPERLINK(\"https://evil.example\",\"Ann\")"  # shown as text
    code, _, err = _leads(database_url, "w", "--csv", "--json")
    assert code == 2 and "--json and --csv: choose one" in err


def test_the_new_leads_since_a_time(flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _journeys(run)  # entered their stage: ann 09:00 ... hal 09:07, eve (second) 09:09
    code, out, err = _leads(database_url, "w", "--since", "2026-01-05T09:05:00Z")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "workflow w: 3 in it who entered their stage since 2026-01-05 09:05:00 UTC; all of "
        "them, highest heat first",
        "  subscriber  stage   in the stage since       heat  fit  tags",
        "  eve         second  2026-01-05 09:09:00 UTC    10    0  vip",
        "  hal         first   2026-01-05 09:07:00 UTC   7.5    0  -",
        "  gus         first   2026-01-05 09:06:00 UTC     0    0  -"]
    code, _, err = _leads(database_url, "w", "--since", "soon")
    assert code == 2 and "--since" in err


def test_a_stage_an_edit_removed_still_lists_who_is_in_it(
        flow: Callable[..., FlowTest], database_url: str) -> None:
    run = flow(FLOW)
    _journeys(run)
    edited = Path("w.flow").read_text(encoding="utf-8").replace(
        "    go to second on buy\n", "").replace("  stage second { }\n", "")
    Path("w.flow").write_text(edited, encoding="utf-8")
    code, out, err = _leads(database_url, "w", "--stage", "second")
    assert (code, err) == (0, "")
    assert out.splitlines()[2].split()[:2] == ["eve", "second"]
    code, _, err = _leads(database_url, "w", "--stage", "secnd")
    assert code == 2 and "did you mean 'second'?" in err  # found among the stages in use
