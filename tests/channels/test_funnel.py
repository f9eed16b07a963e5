"""The funnel report (`nurture funnel`, `GET /v1/workflows/{name}/funnel`) counts what the
engine and the dispatcher did: who is in each stage, who came and left, and what became of
each message, down to the outbox's outcomes (a real SMTP server and push service here)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner

from dsl.loader import load_text
from engine.cli import main
from engine.funnel import as_json, as_text, parse_since
from engine.store import funnel
from tests.channels.conftest import T0
from tests.channels.peers import PushService, SmtpServer
from tests.databases import url_of

FLOW = """
workflow w {
  exit on left
  stage first {
    on enter: send email hello
    on enter: send push ping
    go to second on moved
  }
  stage second { }
  stage third { }
}
message hello email { subject "Hello" text "Hello" }
message ping push { title "Ping" }
"""


def test_the_funnel_counts_stages_entries_exits_and_what_became_of_each_message(
        shop_factory, smtp_server: SmtpServer, push_service: PushService,
        tmp_path: Path) -> None:
    shop = shop_factory(FLOW, smtp=smtp_server)
    shop.subscribe_browser("anna", push_service, "anna-phone")
    shop.event("anna", "subscribed", channels=["email", "push"], email="anna@example.com")
    shop.event("bob", "subscribed", channels=["email"])  # no address: the e-mail is skipped
    shop.event("carol", "subscribed", channels=["email"], email="carol@example.com")
    shop.event("carol", "left")  # before the outbox sent her e-mail: cancelled
    assert shop.dispatch().outcomes == {"delivered": 2}
    shop.clock.advance_to(T0 + timedelta(hours=3))
    shop.event("anna", "moved")
    workflow = load_text(FLOW, "w.flow").catalog.workflow("w")  # type: ignore[union-attr]
    with shop.database.reading() as connection:
        counts = funnel.funnel(connection, "w", None)
    assert as_json(counts, workflow) == {
        "workflow": "w", "loaded": True, "since": None, "active": 2, "enrolled": 3, "exited": 1,
        "exits": {"left": 1},
        "stages": [{"stage": "first", "in_stage": 1, "entered": 3, "moved_on": 1,
                    "median_stay_seconds": 3 * 3600, "declared": True},
                   {"stage": "second", "in_stage": 1, "entered": 1, "moved_on": 0,
                    "median_stay_seconds": None, "declared": True},
                   {"stage": "third", "in_stage": 0, "entered": 0, "moved_on": 0,
                    "median_stay_seconds": None, "declared": True}],
        "moves": [{"from": "first", "to": "second", "moved": 1,
                   "median_stay_seconds": 3 * 3600}],
        "messages": [
            {"stage": "first", "message": "hello", "channel": "email", "sent": 2,
             "skipped": {"no_address": 1}, "dispatches": {"delivered": 1, "cancelled": 1},
             "responses": {}},
            {"stage": "first", "message": "ping", "channel": "push", "sent": 1,
             "skipped": {"no_consent": 2}, "dispatches": {"delivered": 1}, "responses": {}}]}
    assert as_text(counts, workflow).splitlines() == [
        "workflow w: 2 in it now; all time: 3 enrolled, 1 exited (left 1)",
        "",
        "  stage   in it now  entered  moved on  median stay",
        "  first           1        3   1 (33%)          3 h",
        "  second          1        1         0            -",
        "  third           0        0         0            -",
        "",
        "  stage  message  channel  sent  delivered  pending  not delivered  skipped",
        "  first  hello    email       2          1        0  cancelled 1    no_address 1",
        "  first  ping     push        1          1        0  -              no_consent 2",
    ]
    # Two days later one more subscribes: a report since yesterday counts only what is new
    # (who is in a stage is always now).
    shop.clock.advance_to(T0 + timedelta(days=2))
    shop.event("dave", "subscribed", channels=["push"])
    since = parse_since("1 day", shop.clock.now())
    assert since == T0 + timedelta(days=1)
    with shop.database.reading() as connection:
        recent = as_json(funnel.funnel(connection, "w", since), workflow)
    assert (recent["active"], recent["enrolled"], recent["exited"]) == (3, 1, 0)
    assert [(s["stage"], s["in_stage"], s["entered"]) for s in recent["stages"]] == [
        ("first", 2, 1), ("second", 1, 0), ("third", 0, 0)]
    assert [(m["message"], m["sent"], m["skipped"]) for m in recent["messages"]] == [
        ("hello", 0, {"no_consent": 1}), ("ping", 0, {"no_address": 1})]
    # An edit that removed stage `second` while anna is in it: the report still shows her.
    edited = load_text(FLOW.replace("  stage second { }\n", "").replace(
        "go to second on moved", ""), "w.flow").catalog.workflow("w")  # type: ignore[union-attr]
    removed = "  second  (not in the workflow files)          1        1         0            -"
    assert removed in as_text(counts, edited).splitlines()
    assert [(s["stage"], s["declared"]) for s in as_json(counts, edited)["stages"]] == [
        ("first", True), ("third", True), ("second", False)]
    unloaded = as_json(counts, None)  # gone from the files, people still in it
    assert unloaded["loaded"] is False
    assert [(s["stage"], s["declared"]) for s in unloaded["stages"]] == [
        ("first", None), ("second", None)]
    # The command line reads the same database.
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "w.flow").write_text(FLOW, encoding="utf-8")
    result = CliRunner().invoke(main, ["funnel", "--db", url_of(shop.database),
                                       "--workflows", str(tmp_path / "flows"), "--json"])
    assert result.exit_code == 0, result.output
    assert '"enrolled": 4' in result.output and '"in_stage": 2' in result.output
    result = CliRunner().invoke(main, ["funnel", "nope", "--db", url_of(shop.database),
                                       "--workflows", str(tmp_path / "flows")])
    assert result.exit_code == 2
    assert "no workflow 'nope'" in result.output
    result = CliRunner().invoke(main, ["funnel", "ww", "--db", url_of(shop.database),
                                       "--workflows", str(tmp_path / "flows")])
    assert (result.exit_code, result.output) == (2, (
        f"nurture: no workflow 'ww' in {tmp_path / 'flows'} and nobody enrolled in it; did you "
        "mean 'w'?\n"))


def test_a_report_on_a_database_that_is_not_there_says_so_and_makes_none(
        tmp_path: Path) -> None:
    missing = tmp_path / "nurtur.db"  # a typo
    result = CliRunner().invoke(main, ["funnel", "--db", f"sqlite:///{missing}",
                                       "--workflows", str(tmp_path)])
    assert result.exit_code == 2
    assert "there is no such file" in result.output
    assert not missing.exists()


def test_where_people_went_is_shown_when_a_stage_leads_to_several() -> None:
    counts = funnel.FunnelCounts("w", None, in_stage={"second": 2, "third": 1},
                                 entered={"first": 4, "second": 2, "third": 1})
    counts.moves = {("first", "second"): [60.0, 7200.0], ("first", "third"): [3 * 86400.0]}
    workflow = load_text(FLOW, "w.flow").catalog.workflow("w")  # type: ignore[union-attr]
    assert as_text(counts, workflow).splitlines()[2:10] == [
        "  stage   in it now  entered  moved on  median stay",
        "  first           0        4   3 (75%)          2 h",
        "  second          2        2         0            -",
        "  third           1        1         0            -",
        "",
        "  from   to      moved  median stay",
        "  first  second      2       60 min",
        "  first  third       1       3 days"]
    counts.moves = {("first", "second"): [60.0]}  # one way out of each stage: no second table
    assert "  from   to      moved  median stay" not in as_text(counts, workflow)
