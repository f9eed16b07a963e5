"""Retention (`nurture prune`, NURTURE_RETENTION): events and messages older than the period
go, with their outbox rows, and so do browser subscriptions removed before it; scores stay
explained, consents and tags stay, and nothing the outbox still has to send is touched. On
SQLite and PostgreSQL, with a real SMTP server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Table, func, select

from engine.cli import main
from engine.config import ConfigError, load_settings
from engine.store import push_subscriptions, queries, retention
from engine.store.database import open_database
from engine.store.states import (
    CONSENTS,
    DELIVERIES,
    DISPATCHES,
    EVENTS,
    LEDGER,
    PUSH_SUBSCRIPTIONS,
    TAGS,
)
from engine.store.timeline import happenings
from tests.channels.conftest import T0, Shop
from tests.channels.peers import PushService, SmtpServer

FLOW = """
workflow w {
  score interest { on page_view +5 }
  tag "seen" on page_view
  stage first {
    on enter: send email hello
    go to second on moved
  }
  stage second { on enter: send email again }
}
message hello email { subject "Hello {{ subscriber.first_name | default('you') }}" text "Hi" }
message again email { subject "Again" text "Hi again" }
"""


def _count(shop: Shop, table: Table) -> int:
    with shop.database.reading() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def _rows(shop: Shop, table: Table, subscriber: str) -> list[dict[str, object]]:
    with shop.database.reading() as connection:
        key = queries.subscriber_key(connection, subscriber)
        rows = connection.execute(select(table).where(table.c.subscriber_id == key)
                                  .order_by(*table.primary_key.columns)).mappings().all()
    return [dict(row) for row in rows]


def test_old_events_and_finished_messages_go_and_the_rest_stays_explained(
        shop_factory, smtp_server: SmtpServer, push_service: PushService) -> None:
    shop = shop_factory(FLOW, smtp=smtp_server)
    shop.event("ann", "subscribed", channels=["email"], email="ann@example.com",
               attributes={"first_name": "Ann"})
    shop.event("ann", "page_view", url="https://shop.example/")
    assert shop.dispatch().outcomes == {"delivered": 1}
    shop.event("bob", "subscribed", channels=["email"], email="bob@example.com")  # queued
    shop.subscribe_browser("ann", push_service, "old-phone")
    shop.subscribe_browser("ann", push_service, "laptop")
    with shop.database.transaction() as connection:  # the push service said it was gone
        push_subscriptions.remove(connection, push_service.endpoint("old-phone"),
                                  shop.clock.now(), "gone")
    shop.advance(days=40)
    shop.subscribe_browser("ann", push_service, "new-phone")
    with shop.database.transaction() as connection:  # removed lately: kept
        push_subscriptions.remove(connection, push_service.endpoint("new-phone"),
                                  shop.clock.now(), "gone")
    shop.event("ann", "page_view", url="https://shop.example/rings")
    shop.event("ann", "moved")  # `again` is queued, and new
    before = shop.clock.now() - timedelta(days=30)

    assert retention.count(shop.database, before) == retention.Pruned(3, 1, 1, 1)
    pruned = retention.prune(shop.database, before, window=2)  # several windows
    assert pruned == retention.Pruned(events=3, messages=1, held=1, browsers=1)
    assert [(s["endpoint"], s["removed_at"] is None) for s in _rows(
        shop, PUSH_SUBSCRIPTIONS, "ann")] == [(push_service.endpoint("laptop"), True),
                                              (push_service.endpoint("new-phone"), False)]

    assert [e["type"] for e in _rows(shop, EVENTS, "ann")] == ["page_view", "moved"]
    assert _rows(shop, EVENTS, "bob") == []
    [again] = _rows(shop, DELIVERIES, "ann")
    assert again["message"] == "again"
    assert [(d["delivery_seq"], d["status"]) for d in _rows(shop, DISPATCHES, "ann")] == [
        (again["seq"], "queued")]
    assert [d["message"] for d in _rows(shop, DELIVERIES, "bob")] == ["hello"]  # not sent yet
    assert [d["status"] for d in _rows(shop, DISPATCHES, "bob")] == ["queued"]
    # The score is still explained by its ledger, rule by rule; the pruned event's entry
    # keeps its rule and time and loses only the pointer to the event.
    ledger = _rows(shop, LEDGER, "ann")
    assert [(e["kind"], e["delta"], e["total"], Path(str(e["rule"])).name,
             e["event_seq"] is None) for e in ledger] == [
        ("carried", Decimal(5), Decimal(5), "earlier changes, pruned", True),
        ("event", Decimal(5), Decimal(10), "w.flow:3", False)]
    assert [(c["channel"], c["granted"], c["event_seq"]) for c in _rows(shop, CONSENTS, "ann")
            ] == [("email", True, None)]
    assert [(t["tag"], t["event_seq"]) for t in _rows(shop, TAGS, "ann")] == [("seen", None)]
    # The timeline still reads (the pruned send is gone from it; entries and scores stay).
    with shop.database.reading() as connection:
        key = queries.subscriber_key(connection, "ann")
        assert key is not None
        kinds = sorted(h.kind for h in happenings(connection, key))
    assert kinds == ["enter", "enter", "score", "score", "send", "tag"]

    # Nothing more to do until the outbox finishes with bob's e-mail; then it goes too.
    assert retention.prune(shop.database, before) == retention.Pruned(0, 0, 1)
    shop.dispatch()
    assert _rows(shop, DISPATCHES, "bob")[0]["status"] != "queued"
    assert retention.prune(shop.database, before) == retention.Pruned(0, 1, 0)
    assert _rows(shop, DELIVERIES, "bob") == _rows(shop, DISPATCHES, "bob") == []
    # The engine goes on as before: the kept subscribers are scored and sent to.
    shop.event("ann", "page_view", url="https://shop.example/")
    assert _rows(shop, LEDGER, "ann")[-1]["total"] == Decimal(15)
    assert _count(shop, EVENTS) == 3


SCORED = """
workflow w {
  score interest {
    on page_view +10
    decay 50% every 30 days
  }
  score fit { when subscriber.role == "cto" +20 }
  stage only { }
}
"""


def _ledger(shop: Shop, subscriber: str) -> list[tuple[object, ...]]:
    return [(e["score"], e["kind"], e["delta"], e["total"], e["at"])
            for e in _rows(shop, LEDGER, subscriber)]


def _adds_up(shop: Shop, subscriber: str) -> dict[tuple[str, str], Decimal]:
    """Each score's total, after checking that its ledger's deltas sum to it."""
    with shop.database.reading() as connection:
        key = queries.subscriber_key(connection, subscriber)
        assert key is not None
        totals = queries.scores(connection, key)
    sums: dict[tuple[str, str], Decimal] = {}
    for entry in _rows(shop, LEDGER, subscriber):
        score = (str(entry["workflow"]), str(entry["score"]))
        sums[score] = sums.get(score, Decimal(0)) + Decimal(str(entry["delta"]))
    assert sums == {score: Decimal(str(total)) for score, total in totals.items()}
    return sums


def test_old_score_changes_merge_into_one_entry_per_score_that_still_adds_up(
        shop_factory, tmp_path: Path, database_url: str) -> None:
    """The ledger's detail (which rule matched, when) is a trail of what the person did: past
    the period each score keeps one `carried` entry with the sum of the old changes, and the
    ledger still adds up to every score, also after decay and fit changes, over two prunes
    (the second merges the first's entry with what has grown old since)."""
    shop = shop_factory(SCORED)
    days = [T0 + timedelta(days=d) for d in range(200)]
    shop.event("ann", "attributes", role="cto")  # fit +20 at T0
    shop.event("bob", "page_view")
    for day in (1, 2):
        shop.clock.advance_to(days[day])
        shop.event("ann", "page_view")
        shop.event("bob", "page_view")
    shop.advance(days=38)  # decay of a half at T0+30, +31 and +32 days; now T0+40
    shop.event("ann", "page_view")
    interest = [("interest", "event", Decimal(10), Decimal(10), days[1]),
                ("interest", "event", Decimal(10), Decimal(20), days[2]),
                ("interest", "decay", Decimal(-5), Decimal(15), days[31]),
                ("interest", "decay", Decimal(-5), Decimal(10), days[32]),
                ("interest", "event", Decimal(10), Decimal(20), days[40])]
    assert _ledger(shop, "ann") == [("fit", "fit", Decimal(20), Decimal(20), T0), *interest]
    before = days[10]
    assert retention.count(shop.database, before).ledger == 3  # ann's 2 and bob's 3 merge
    assert retention.prune(shop.database, before, window=2).ledger == 3

    assert _ledger(shop, "ann") == [("fit", "carried", Decimal(20), Decimal(20), T0),
                                    ("interest", "carried", Decimal(20), Decimal(20), days[2]),
                                    *interest[2:]]
    assert [(e["rule"], e["event_seq"], e["rule_key"]) for e in _rows(shop, LEDGER, "ann")][
        :2] == [(retention.CARRIED_RULE, None, None)] * 2
    assert _adds_up(shop, "ann") == {("w", "fit"): 20, ("w", "interest"): 20}
    assert _adds_up(shop, "bob") == {("w", "interest"): 15}
    assert retention.prune(shop.database, before) == retention.Pruned()  # nothing more

    # Later: the carried entry takes in what has grown old since, and stays one entry.
    shop.advance(days=80)  # now T0+120; decays go on
    shop.event("ann", "page_view")
    before = shop.clock.now() - timedelta(days=30)
    # The tick that caught up wrote decay entries out of time order (old ones after recent
    # ones): the walk stops at a window with nothing old, so this run merges only part of
    # them, and the count says exactly that much; the next run takes the rest.
    expected = retention.count(shop.database, before, window=3).ledger
    assert 0 < expected < retention.count(shop.database, before, window=100).ledger
    assert retention.prune(shop.database, before, window=3).ledger == expected
    assert retention.count(shop.database, before, window=3).ledger == 0
    assert retention.prune(shop.database, before, window=100).ledger > 0
    ledger = _rows(shop, LEDGER, "ann")
    assert [(e["score"], e["kind"]) for e in ledger if e["at"] < before] == [
        ("fit", "carried"), ("interest", "carried")]
    assert [e["kind"] for e in ledger if e["at"] >= before] == ["decay"] * 3 + ["event"]
    totals = _adds_up(shop, "ann")
    assert totals[("w", "fit")] == 20
    _adds_up(shop, "bob")

    # The engine goes on scoring on top, and the timeline shows the merged entry.
    shop.event("ann", "page_view")
    assert _adds_up(shop, "ann")[("w", "interest")] == totals[("w", "interest")] + 10
    result = CliRunner().invoke(main, ["timeline", "ann", "--db", database_url,
                                       "--workflows", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "score interest" in result.output
    assert "(earlier changes, pruned)" in result.output


def test_two_workers_pruning_at_once_merge_each_entry_once(shop_factory,
                                                            database_url: str) -> None:
    """Workers each run the daily prune: their walks overlap, and an entry merged by one must
    not be counted again by the other (the ledger would no longer add up)."""
    shop = shop_factory(SCORED)
    people = [f"p{n}" for n in range(12)]
    for _ in range(8):
        shop.event_of_each(people, "page_view")
        shop.clock.advance_to(shop.clock.now() + timedelta(hours=1))
    shop.clock.advance_to(shop.clock.now() + timedelta(days=25))  # before any decay
    before = shop.clock.now()
    shop.clock.advance_to(before + timedelta(days=30))
    assert _count(shop, LEDGER) == 96
    workers = [open_database(database_url) for _ in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            merged = sum(p.ledger for p in pool.map(
                lambda database: retention.prune(database, before, window=5), workers))
    finally:
        for database in workers:
            database.dispose()
    assert merged == 96 - 12
    assert _count(shop, LEDGER) == 12
    for person in people:
        assert _adds_up(shop, person) == {("w", "interest"): 80}


def test_a_prune_stops_between_windows_when_asked(shop_factory) -> None:
    """A service shutting down does not wait for a first run over years of data: the prune
    stops after the window in hand, and the next run takes the rest."""
    shop = shop_factory(FLOW)
    for who in ("ann", "bob", "cy"):
        shop.event(who, "page_view", url="https://shop.example/")
    shop.advance(days=40)
    before = shop.clock.now() - timedelta(days=30)
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 2  # after two windows of events

    assert retention.prune(shop.database, before, window=1, stop=stop) == retention.Pruned(2)
    assert retention.prune(shop.database, before, window=1) == retention.Pruned(1)


def test_nothing_old_enough_leaves_everything(shop_factory, smtp_server: SmtpServer) -> None:
    shop = shop_factory(FLOW, smtp=smtp_server)
    shop.event("ann", "subscribed", channels=["email"], email="ann@example.com")
    shop.dispatch()
    assert retention.prune(shop.database, T0) == retention.Pruned(0, 0, 0)
    assert (_count(shop, EVENTS), _count(shop, DELIVERIES), _count(shop, DISPATCHES)) == (1, 1, 1)


def test_the_command_prunes_counts_and_refuses_a_period_too_short(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NURTURE_DB", database_url)
    monkeypatch.delenv("NURTURE_RETENTION", raising=False)
    open_database(database_url).dispose()
    runner = CliRunner()
    result = runner.invoke(main, ["prune", "--older-than", "400 days", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert ("would remove 0 event(s), 0 message(s), 0 removed browser subscription(s) and 0 "
            "score ledger entries (merged) from before ") in result.output
    result = runner.invoke(main, ["prune", "--older-than", "26 weeks"])
    assert result.exit_code == 0, result.output
    assert "removed 0 event(s), 0 message(s), 0 removed" in result.output
    result = runner.invoke(main, ["prune", "--older-than", "7 days"])
    assert result.exit_code == 2
    assert "--older-than" in result.output and "at least 30 days" in result.output
    result = runner.invoke(main, ["prune", "--older-than", "a year"])
    assert result.exit_code == 2 and "'400 days'" in result.output
    result = runner.invoke(main, ["prune"])
    assert result.exit_code == 2 and "--older-than" in result.output
    monkeypatch.setenv("NURTURE_RETENTION", "90 days")
    result = runner.invoke(main, ["prune", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would remove 0 event(s)" in result.output


def test_the_retention_setting() -> None:
    assert load_settings({}, dotenv=None).retention is None
    assert load_settings({"NURTURE_RETENTION": "400 days"}, dotenv=None).retention == \
        timedelta(days=400)
    assert load_settings({"NURTURE_RETENTION": "off"}, dotenv=None).retention is None
    with pytest.raises(ConfigError, match="NURTURE_RETENTION: at least 30 days"):
        load_settings({"NURTURE_RETENTION": "2 weeks"}, dotenv=None)
    with pytest.raises(ConfigError, match="NURTURE_RETENTION: a duration"):
        load_settings({"NURTURE_RETENTION": "forever"}, dotenv=None)
