"""The service as it runs: HTTP in, scheduler and dispatcher in the background, pushes out.

These tests use the real clock: the scheduler's jobs run in their own threads on real time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from channels.endpoints import PushEndpointPolicy
from channels.webhook import WebhookSender
from channels.webpush import WebPushSender
from engine.api import create_app
from engine.clock import SystemClock, VirtualClock
from engine.dispatcher import Dispatcher, Links
from engine.events import parse_event
from engine.runtime import Runtime
from engine.service import Service
from engine.store import queries
from engine.store.database import DatabaseUnavailable
from engine.store.states import EVENTS
from tests.channels.peers import PushService
from tests.service.conftest import AUTH, FLOW, T0, LiveServer, build_runtime, wait_for


@pytest.fixture
def live(tmp_path: Path, ca_file: str, push_service: PushService,
         database_url: str) -> Iterator[tuple[Runtime, Service, LiveServer]]:
    runtime = build_runtime(tmp_path, db=database_url, push_allow_hosts=("127.0.0.1",))
    runtime.clock = SystemClock()
    runtime._engine.clock = runtime.clock  # real time for everything
    dispatcher = Dispatcher(
        runtime.database, Links(runtime.signer, "http://127.0.0.1"), clock=runtime.clock,
        push=WebPushSender(runtime.vapid, "mailto:ops@shop.example",
                           PushEndpointPolicy.from_hosts(["127.0.0.1"]), SystemClock().now,
                           ca_file=ca_file),
        webhook=WebhookSender(b"x" * 32))
    service = Service(runtime, dispatcher, tick_seconds=0.1, dispatch_seconds=0.1,
                      watch_seconds=0.2)
    server = LiveServer(create_app(runtime, scheduler=service))
    yield runtime, service, server
    server.stop()
    runtime.database.dispose()


def test_the_full_loop_without_a_browser(live, push_service: PushService) -> None:
    _, _, server = live
    with httpx.Client(base_url=server.url, timeout=10) as http:
        token = http.post("/v1/subscribers/ann/token", headers=AUTH).json()["token"]
        browser = push_service.browser("laptop")
        answer = http.post("/v1/subscribers/ann/push-subscriptions",
                           headers={"X-Nurture-Token": token},
                           json={"endpoint": push_service.endpoint("laptop"),
                                 "keys": {"p256dh": browser.p256dh,
                                          "auth": browser.auth_secret}})
        assert answer.status_code == 201, answer.text
        events = {"events": [
            {"subscriber": "ann", "type": "subscribed", "properties": {"channels": ["push"]}},
            {"subscriber": "ann", "type": "page_view",
             "properties": {"url": "https://shop.example/diamonds"}}]}
        assert http.post("/v1/events", headers=AUTH, json=events).json()["accepted"] == 2
        # the scheduler's dispatcher sends the `hot` stage's push; the push service decrypts it
        [payload] = wait_for(lambda: push_service.payloads("laptop"), what="the push")
        assert push_service.problems == []
        assert (payload["title"], payload["body"], payload["url"]) == (
            "10% off", "Just for you", "https://shop.example/offer")
        # the service worker would report the click with the payload's token
        assert http.post("/v1/track/push-click",
                         json={"token": payload["token"]}).status_code == 204
        exported = http.get("/v1/subscribers/ann", headers=AUTH).json()
        assert exported["scores"]["shop"]["engagement"]["total"] == 35
        assert [m["dispatches"][0]["status"] for m in exported["messages"]
                if m["channel"] == "push"] == ["delivered"]
        assert "push_click" in [e["type"] for e in exported["events"]]
        assert http.delete("/v1/subscribers/ann", headers=AUTH).status_code == 204
        assert http.get("/v1/subscribers/ann", headers=AUTH).status_code == 404
        metrics = http.get("/metrics").text
        assert 'nurture_sends_total{channel="push",outcome="delivered"} 1.0' in metrics
        assert http.get("/healthz").json()["scheduler"] == "running"


def test_an_edit_that_removes_a_stage_with_subscribers_in_it_is_reported(live, caplog) -> None:
    """Before step keys, every event of such a subscriber failed (500): the engine looked
    up the transitions of a stage that was gone."""
    runtime, _, server = live
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/v1/events", headers=AUTH, json={
            "subscriber": "zoe", "type": "subscribed",
            "properties": {"channels": ["email"]}}).status_code == 200
        flow = Path(runtime.settings.workflows) / "shop.flow"
        flow.write_text(FLOW.replace("stage browsing {", "stage looking {"), encoding="utf-8")
        wait_for(lambda: "1 subscriber(s) are in stage 'browsing' of workflow 'shop', which "
                         "the workflows no longer declare" in caplog.text, what="the warning")
        answer = http.post("/v1/events", headers=AUTH, json={
            "subscriber": "zoe", "type": "page_view", "properties": {"url": "/diamonds"}})
        assert answer.status_code == 200, answer.text
        exported = http.get("/v1/subscribers/zoe", headers=AUTH).json()
    assert exported["scores"]["shop"]["engagement"]["total"] == 30
    assert [e["stage"] for e in exported["enrolments"]] == ["browsing"]
    flow.write_text(FLOW.replace("workflow shop {", "workflow store {"), encoding="utf-8")
    wait_for(lambda: "1 subscriber(s) are enrolled in workflow 'shop', which is not loaded"
             in caplog.text, what="the second warning")


def test_ingesting_while_the_scheduler_runs_loses_no_event(live) -> None:
    runtime, _, server = live
    posted: list[int] = []

    def client(number: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for batch in range(10):
                events = [{"subscriber": f"s{number}-{i % 7}", "type": "page_view",
                           "id": f"{number}-{batch}-{i}",
                           "properties": {"url": "https://shop.example/diamonds"}}
                          for i in range(20)]
                answer = http.post("/v1/events", headers=AUTH, json={"events": events})
                assert answer.status_code == 200, answer.text
                posted.append(answer.json()["accepted"])

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sum(posted) == 6 * 10 * 20
    with runtime.database.transaction() as connection:
        stored = connection.exec_driver_sql("SELECT COUNT(*) FROM events").scalar_one()
        ledger = connection.exec_driver_sql("SELECT COUNT(*) FROM ledger").scalar_one()
    assert stored == 1200 and ledger == 1200  # every one stored and scored once


def test_a_broken_edit_is_refused_and_a_good_one_reloaded(live, caplog) -> None:
    runtime, _, server = live
    flow = Path(runtime.settings.workflows) / "shop.flow"
    flow.write_text(FLOW.replace("go to hot when", "go to hott when"), encoding="utf-8")
    wait_for(lambda: not runtime.files_changed(), what="the watch job")
    assert "unknown stage 'hott'" in caplog.text
    assert runtime.catalog.workflow("shop").stage("browsing")  # the last good version runs
    flow.write_text(FLOW.replace("+30", "+60"), encoding="utf-8")
    wait_for(lambda: "+60" not in caplog.text and any(
        r.points == 60 for s in runtime.catalog.workflow("shop").scores
        for r in s.event_rules), what="the reload")
    with httpx.Client(base_url=server.url) as http:
        http.post("/v1/events", headers=AUTH, json={
            "subscriber": "zoe", "type": "page_view", "properties": {"url": "/diamonds"}})
        exported = http.get("/v1/subscribers/zoe", headers=AUTH).json()
    assert exported["scores"]["shop"]["engagement"]["total"] == 60


def test_the_service_hands_bounces_to_its_engine(live: tuple[Runtime, Service, LiveServer]) -> None:
    """The dispatcher of `serve` and `worker` records refused addresses as events (see
    tests/channels/test_email_webhook.py), through the runtime that ingests the API's."""
    runtime, service, _ = live
    assert service.dispatcher.on_bounce == runtime.ingest
    # and a database that fails in the middle of a batch to the service's outage report
    assert service.dispatcher.on_database_failure is not None
    service.dispatcher.on_database_failure(DatabaseUnavailable("the database failed: gone"))
    assert runtime.outage.failing


def test_with_a_retention_period_the_service_prunes_once_a_day(
        tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    runtime = build_runtime(tmp_path, db=database_url, retention=timedelta(days=30))
    try:
        runtime.ingest([parse_event({"subscriber": "ann", "type": "page_view",
                                     "properties": {"url": "/diamonds"}}, seq,
                                    default_at=runtime.clock.now()) for seq in (1, 2)])
        service = Service(runtime, Dispatcher(runtime.database,
                                              Links(runtime.signer, "http://127.0.0.1")))
        service.start()
        try:
            job = service.scheduler.get_job("prune")
            assert job is not None and job.trigger.interval == timedelta(days=1)
        finally:
            service.stop()
        service.prune()  # stopped: does nothing (a prune stops between windows when asked)
        service = Service(runtime, service.dispatcher)  # the job as it runs
        clock = runtime.clock
        assert isinstance(clock, VirtualClock)
        with caplog.at_level(logging.INFO, logger="nurture.service"):
            clock.advance_to(T0 + timedelta(days=30))
            service.prune()  # exactly 30 days old: kept
            clock.advance_to(T0 + timedelta(days=30, seconds=1))
            service.prune()
        service.stop()  # (its event loop)
        logged = [r.__dict__ for r in caplog.records if r.getMessage() == "pruned"]
        assert [(r["events"], r["messages"], r["ledger"], r["before"]) for r in logged] == [
            (0, 0, 0, "2026-03-02T09:00:00Z"), (2, 0, 1, "2026-03-02T09:00:01Z")]
        with runtime.database.reading() as connection:
            assert queries.subscriber_key(connection, "ann") is not None  # they stay
            assert connection.execute(select(func.count()).select_from(EVENTS)).scalar() == 0
        exposed = runtime.metrics.exposition().decode()
        assert 'nurture_pruned_total{kind="events"} 2.0' in exposed
        assert 'nurture_pruned_total{kind="ledger"} 1.0' in exposed
        assert 'nurture_pruned_total{kind="messages"} 0.0' in exposed
        assert 'nurture_pruned_total{kind="browsers"} 0.0' in exposed
    finally:
        runtime.database.dispose()


def test_without_a_retention_period_nothing_is_pruned(tmp_path: Path) -> None:
    runtime = build_runtime(tmp_path)
    try:
        service = Service(runtime, Dispatcher(runtime.database,
                                              Links(runtime.signer, "http://127.0.0.1")))
        service.start()
        try:
            assert service.scheduler.get_job("prune") is None
        finally:
            service.stop()
    finally:
        runtime.database.dispose()


def test_a_long_tick_is_one_warning_not_one_a_second(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A tick held up (a backup holding the database, a huge batch) makes APScheduler skip
    its next runs, as wanted; the log says so once per overrun, not at every interval."""
    runtime = build_runtime(tmp_path)
    held = threading.Event()
    ticks: list[float] = []
    engine_tick = runtime.engine.tick

    def slow_tick(stop: Any = None) -> Any:
        ticks.append(time.monotonic())
        if len(ticks) in (1, 3):  # two overruns, with a quick tick between them
            held.wait(1.0)
        return engine_tick(stop)

    runtime.engine.tick = slow_tick  # type: ignore[method-assign]
    service = Service(runtime, Dispatcher(runtime.database,
                                          Links(runtime.signer, "http://127.0.0.1")),
                      tick_seconds=0.2, dispatch_seconds=10, watch_seconds=10)
    try:
        with caplog.at_level(logging.WARNING, logger="apscheduler.scheduler"):
            service.start()
            wait_for(lambda: len(ticks) >= 4, timeout=10, what="four ticks")
            service.stop()
    finally:
        runtime.database.dispose()
    skipped = [r for r in caplog.records if "maximum number of running instances" in r.msg]
    assert len(skipped) == 2, [r.getMessage() for r in skipped]
    assert all(r.args and r.args[0].id == "tick" for r in skipped)  # type: ignore[index]


def test_a_keys_folder_that_cannot_be_written_is_a_warning_not_a_failed_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from engine.config import Settings

    def refused(self: Settings) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Settings, "keep_for_erasures", refused)
    with caplog.at_level(logging.WARNING, logger="nurture.runtime"):
        runtime = build_runtime(tmp_path)
    runtime.database.dispose()
    assert any("could not copy the earlier signing secrets" in r.getMessage()
               for r in caplog.records)


def test_a_full_disk_is_an_error_line_not_a_traceback_at_every_tick(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SQLite's own "database or disk is full" (`PRAGMA max_page_count`): the tick and the
    API keep failing until there is room, losing nothing; the operator reads one line about
    it (not APScheduler's traceback every ten seconds, nor a line per refused request), a
    metric counts each failure, and one line says when it is over."""
    from fastapi.testclient import TestClient

    from tests.engine.test_disk_full import Room

    flow = FLOW.replace("on enter: send email welcome", "after 1 hour: send email welcome")
    runtime = build_runtime(tmp_path, flow=flow)
    service = Service(runtime, Dispatcher(runtime.database,
                                          Links(runtime.signer, "http://127.0.0.1")))
    try:
        runtime.ingest([parse_event({"subscriber": f"s{n}", "type": "subscribed", "properties": {
            "channels": ["email"], "email": f"s{n}@example.com"}}, n, default_at=T0)
            for n in range(300)])
        assert isinstance(runtime.clock, VirtualClock)
        runtime.clock.advance_to(T0 + timedelta(hours=2))  # every welcome is due
        room = Room(runtime.database)
        with runtime.database.transaction() as connection:
            room.limit(int(connection.exec_driver_sql("PRAGMA page_count").scalar_one()))
        with pytest.raises(DatabaseUnavailable, match="database or disk is full"):
            runtime.engine.tick()  # the set-up works: a tick needs room it does not get

        late = {"events": [{"subscriber": f"late{n}", "type": "subscribed", "id": f"late-{n}",
                            "properties": {"channels": ["email"], "email": f"l{n}@example.com"}}
                           for n in range(100)]}
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                service.tick()  # the scheduler's job: it must not raise
            with TestClient(create_app(runtime)) as client:
                refused = client.post("/v1/events", headers=AUTH, json=late)
                assert refused.status_code == 503
                told = [r for r in caplog.records if r.name == "nurture.database"]
                assert [(r.levelno, r.exc_info) for r in told] == [(logging.ERROR, None)]
                assert "database or disk is full (at the scheduler's tick)" in told[0].message
                exposed = client.get("/metrics").text
                assert 'nurture_database_failures_total{where="tick"} 3.0' in exposed
                assert 'nurture_database_failures_total{where="api"} 1.0' in exposed
                with runtime.database.transaction() as connection:
                    assert connection.exec_driver_sql(
                        "SELECT count(*) FROM deliveries").scalar_one() == 0

                room.limit(None)  # the operator made room, and a minute went by
                runtime.outage.clock = lambda: time.monotonic() + 61
                service.tick()
                assert client.post("/v1/events", headers=AUTH, json=late).json()[
                    "accepted"] == 100
        told = [r for r in caplog.records if r.name == "nurture.database"]
        assert [(r.levelno, r.getMessage().split(",")[0]) for r in told[1:]] == [
            (logging.WARNING, "the database works again")]
        assert "4 failure(s)" in told[1].getMessage()
        assert not [r for r in caplog.records if r.exc_info is not None]
        with runtime.database.transaction() as connection:
            assert connection.exec_driver_sql(
                "SELECT count(*) FROM deliveries").scalar_one() == 300  # every welcome
    finally:
        service.stop()
        runtime.database.dispose()


def test_a_reload_while_the_database_fails_is_in_force_and_said_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """After swapping in an edit, a reload looks for subscribers left in removed stages; a
    database that fails then does not undo the edit, nor make every later look at the files
    load them again."""
    runtime = build_runtime(tmp_path)
    try:
        def down(*_args: Any) -> Any:
            raise DatabaseUnavailable("the database failed: connection refused")

        monkeypatch.setattr(queries, "stranded", down)
        flow = Path(runtime.settings.workflows) / "shop.flow"
        flow.write_text(FLOW.replace("+30", "+60"), encoding="utf-8")
        assert runtime.files_changed()
        with caplog.at_level(logging.INFO, logger="nurture.runtime"):
            runtime.reload()
        assert any(r.points == 60 for s in runtime.catalog.workflow("shop").scores
                   for r in s.event_rules)
        assert not runtime.files_changed()  # seen: the watch job does not reload again
        assert ("workflows reloaded, but who is left in a removed stage could not be looked "
                "up: the database failed: connection refused") in caplog.text
    finally:
        runtime.database.dispose()


def test_the_engine_keeps_as_many_states_as_the_setting_says(tmp_path: Path) -> None:
    """`NURTURE_STATE_CACHE` bounds the memory a long-running service keeps (about 9 KiB a
    subscriber for the example shop), also after a reload builds a new engine."""
    runtime = build_runtime(tmp_path, state_cache=2)
    joined = [parse_event({"subscriber": who, "type": "subscribed", "at": "2026-03-02T09:00:00Z",
                           "properties": {"channels": ["push"]}}, seq)
              for seq, who in enumerate(["ann", "bob", "cy"])]
    runtime.ingest(joined)
    assert runtime.engine.cache.capacity == 2 and len(runtime.engine.cache) == 2
    (tmp_path / "workflows" / "shop.flow").write_text(FLOW + "\n", encoding="utf-8")
    before = runtime.engine
    runtime.reload()
    assert runtime.engine is not before and runtime.engine.cache.capacity == 2
    runtime.database.dispose()
