"""The HTTP API (SPEC §4): ingestion, export, erase, keys, tokens, and their refusals."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from engine.api import create_app
from tests.channels.peers import Browser
from tests.service.conftest import AUTH, T0, Api, build_runtime

SUBSCRIBED = {"subscriber": "ann", "type": "subscribed", "id": "e1",
              "properties": {"channels": ["push", "email"], "email": "ann@example.com",
                             "attributes": {"first_name": "Ann"}}}


def test_one_event_and_a_batch_are_accepted(api: Api) -> None:
    answer = api.post_events(SUBSCRIBED)
    assert answer.status_code == 200
    assert answer.json() == {"accepted": 1, "duplicates": [], "erased": 0, "warnings": []}
    answer = api.post_events({"events": [
        {"subscriber": "ann", "type": "page_view", "id": "e2",
         "properties": {"url": "https://shop.example/diamonds"}},
        {"subscriber": "bob", "type": "page_view", "at": "2026-03-02T08:00:00Z"},
    ]})
    assert answer.json() == {"accepted": 2, "duplicates": [], "erased": 0, "warnings": []}
    assert api.count("events") == 3


def test_the_same_event_id_is_stored_once(api: Api) -> None:
    api.post_events(SUBSCRIBED)
    answer = api.post_events({"events": [SUBSCRIBED, SUBSCRIBED]})
    assert answer.json() == {"accepted": 0, "duplicates": ["e1", "e1"], "erased": 0, "warnings": []}
    assert api.count("events") == 1


def test_a_bad_event_names_its_index_and_field_and_nothing_is_stored(api: Api) -> None:
    answer = api.post_events({"events": [
        SUBSCRIBED,
        {"subscriber": "bob", "type": "page view"},
        {"subscriber": "cid", "type": "subscribed", "properties": {"channels": ["sms"]}},
        {"subscriber": "dan", "type": "click", "at": "2026-03-02T10:00:00"},
    ]})
    assert answer.status_code == 422
    body = answer.json()
    assert [(e["event"], e["field"]) for e in body["errors"]] == [
        (1, "type"), (2, "properties.channels[0]"), (3, "at")]
    assert "nothing was stored" in body["detail"]
    assert api.count("events") == 0 and api.count("subscribers") == 0


@pytest.mark.parametrize(("body", "field"), [
    ([1, 2], "event"),
    ({"events": "many"}, "events"),
    ({"subscriber": "a", "type": "x", "at": "2030-01-01T00:00:00Z"}, "at"),
    ({"subscriber": "a", "type": "x", "extra": 1}, "extra"),
    ({"subscriber": "a", "type": "attributes", "properties": {"timezone": "Europe/Warsow"}},
     "properties.timezone"),
])
def test_malformed_bodies_are_422_naming_the_field(api: Api, body: Any, field: str) -> None:
    answer = api.post_events(body)
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == field


def test_a_body_sent_from_a_file_with_a_byte_order_mark_is_read(api: Api) -> None:
    # `curl --data-binary @events.json` of a file some Windows tools saved
    answer = api.client.post("/v1/events", headers={**AUTH, "Content-Type": "application/json"},
                             content=b"\xef\xbb\xbf" + json.dumps(SUBSCRIBED).encode())
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1


@pytest.mark.parametrize(("body", "detail"), [
    # a name sent in Latin-1 on the second line of pretty-printed JSON
    (b'{"subscriber": "b", "type": "attributes",\n "properties": {"first_name": "Ma\xb3gosia"}}',
     "body: not UTF-8 text (byte 0xb3) at line 2, column 34: send JSON in UTF-8"),
    (json.dumps(SUBSCRIBED).encode("utf-16"), "body: UTF-16 text, not UTF-8: send JSON in UTF-8"),
], ids=["latin-1", "utf-16"])
def test_a_body_not_in_utf8_says_where(api: Api, body: bytes, detail: str) -> None:
    """Before, the parser's own message: "str is not valid UTF-8: surrogates not allowed:
    line 1 column 1 (char 0)", wherever the byte was."""
    answer = api.client.post("/v1/events", headers={**AUTH, "Content-Type": "application/json"},
                             content=body)
    assert answer.status_code == 422
    assert answer.json()["detail"] == detail
    assert answer.json()["errors"] == [{"field": "body", "message": "not UTF-8"}]


def test_not_json_and_too_many_events(api: Api) -> None:
    answer = api.client.post("/v1/events", content=b"{nope", headers=AUTH)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "body"
    answer = api.post_events({"events": [SUBSCRIBED] * 1001})
    assert answer.status_code == 413


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": "Basic dGVzdA=="}])
def test_write_calls_need_the_api_key(api: Api, headers: dict[str, str]) -> None:
    assert api.post_events(SUBSCRIBED, headers=headers).status_code == 401
    assert api.client.get("/v1/subscribers/ann", headers=headers).status_code == 401
    assert api.client.delete("/v1/subscribers/ann", headers=headers).status_code == 401
    assert api.client.post("/v1/subscribers/ann/token", headers=headers).status_code == 401
    assert api.count("events") == 0


def test_a_key_is_replaced_without_refusing_the_site(tmp_path: Path) -> None:
    """`NURTURE_API_KEY=new,old` while the site moves to the new key; then `new` alone."""
    from engine.api import create_app
    from engine.config import ConfigError
    from tests.service.conftest import build_runtime

    old, new = "old-key-0123456789abcdef", "new-key-0123456789abcdef"
    for step, (keys, taken) in enumerate(((f"{new}, {old}", {old: 200, new: 200, "x": 401}),
                                          (new, {old: 401, new: 200}))):
        (tmp_path / str(step)).mkdir()
        runtime = build_runtime(tmp_path / str(step), api_key=keys)
        try:
            with TestClient(create_app(runtime)) as client:
                assert {key: client.post("/v1/events", json=SUBSCRIBED, headers={
                    "Authorization": f"Bearer {key}"}).status_code for key in taken} == taken
        finally:
            runtime.database.dispose()
    (tmp_path / "short").mkdir()
    with pytest.raises(ConfigError, match="at least 16 characters for each key"):
        build_runtime(tmp_path / "short", api_key=f"{new},short")


def test_an_export_gives_the_latest_of_long_lists_and_their_full_lengths(api: Api) -> None:
    api.post_events(SUBSCRIBED)
    api.post_events({"events": [
        {"subscriber": "ann", "type": "page_view", "id": f"v{n}",
         "properties": {"url": f"/diamonds/{n}"}} for n in range(5)]})
    latest = api.client.get("/v1/subscribers/ann?limit=2", headers=AUTH).json()
    assert [e["id"] for e in latest["events"]] == ["v3", "v4"]
    assert latest["events_total"] == 6
    engagement = latest["scores"]["shop"]["engagement"]
    assert [line["event_id"] for line in engagement["ledger"]] == ["v3", "v4"]
    assert (engagement["ledger_total"], engagement["total"]) == (5, 150)
    assert [m["message"] for m in latest["messages"]] == ["welcome", "offer"]
    assert latest["messages_total"] == 2
    everything = api.client.get("/v1/subscribers/ann?limit=0", headers=AUTH).json()
    assert [e["id"] for e in everything["events"]] == ["e1", "v0", "v1", "v2", "v3", "v4"]
    assert len(everything["scores"]["shop"]["engagement"]["ledger"]) == 5
    default = api.client.get("/v1/subscribers/ann", headers=AUTH).json()
    assert default == everything  # fewer than the default 1,000 of anything
    refused = api.client.get("/v1/subscribers/ann?limit=-1", headers=AUTH)
    assert refused.status_code == 422 and "limit" in refused.text


def test_an_export_and_a_metrics_scrape_do_not_wait_for_the_writer(api: Api) -> None:
    """Reads are snapshots: on SQLite they used to queue behind writes (and hold the next
    ones up), so a big export or a scrape stalled ingestion for as long as it took."""
    api.post_events(SUBSCRIBED)
    holding, release = threading.Event(), threading.Event()

    def write() -> None:
        with api.runtime.database.transaction():
            holding.set()
            release.wait(60)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert holding.wait(10)
        with ThreadPoolExecutor(2) as pool:
            export = pool.submit(api.client.get, "/v1/subscribers/ann", headers=AUTH)
            scrape = pool.submit(api.client.get, "/metrics")
            # were they waiting for the writer, they would still wait when this gives up
            answers = export.result(timeout=30), scrape.result(timeout=30)
    finally:
        release.set()
        writer.join(10)
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["consent"] == {"push": True, "email": True}
    assert "nurture_due_backlog" in answers[1].text


def test_export_shows_the_whole_subscriber(api: Api) -> None:
    api.post_events(SUBSCRIBED)
    api.post_events({"subscriber": "ann", "type": "page_view", "id": "e2",
                     "properties": {"url": "/diamonds"}})
    body = api.client.get("/v1/subscribers/ann", headers=AUTH).json()
    assert body["attributes"] == {"first_name": "Ann", "email": "ann@example.com"}
    assert body["consent"] == {"push": True, "email": True}
    assert [c["source"] for c in body["consents"]] == ["subscribed#e1", "subscribed#e1"]
    assert body["tags"] == ["diamonds"]
    assert [s["stage"] for s in body["enrolments"][0]["stages"]] == ["browsing", "hot"]
    engagement = body["scores"]["shop"]["engagement"]
    assert engagement["total"] == 30
    assert [(line["rule"], line["event_id"]) for line in engagement["ledger"]] == [
        (f"{api.folder}/workflows/shop.flow:4", "e2")]
    assert [(m["message"], m["status"]) for m in body["messages"]] == [
        ("welcome", "sent"), ("offer", "skipped")]  # no browser registered yet
    assert [e["type"] for e in body["events"]] == ["subscribed", "page_view"]
    assert api.client.get("/v1/subscribers/nobody", headers=AUTH).status_code == 404


def register(api: Api, subscriber: str, browser: Browser, endpoint: str,
             headers: dict[str, str]) -> Any:
    return api.client.post(f"/v1/subscribers/{quote(subscriber, safe='')}/push-subscriptions",
                           headers=headers,
                           json={"endpoint": endpoint, "expirationTime": None,
                                 "keys": {"p256dh": browser.p256dh,
                                          "auth": browser.auth_secret}})


def test_a_browser_registers_with_the_token_of_its_subscriber_only(api: Api) -> None:
    token = api.client.post("/v1/subscribers/ann/token", headers=AUTH).json()["token"]
    browser = Browser.new("laptop")
    endpoint = "http://127.0.0.1:9/push/laptop"
    assert register(api, "ann", browser, endpoint, {"X-Nurture-Token": token}).status_code == 201
    for headers in ({"X-Nurture-Token": token[:-3] + "AAA"}, {}):
        assert register(api, "ann", browser, endpoint, headers).status_code == 401
    # ann's token cannot attach a browser to bob
    assert register(api, "bob", browser, endpoint, {"X-Nurture-Token": token}).status_code == 401
    assert register(api, "bob", browser, endpoint, AUTH).status_code == 201  # the site's server
    assert api.count("push_subscriptions") == 1  # re-registering an endpoint moves it


def test_a_subscriber_token_runs_out_after_30_days(api: Api) -> None:
    """Tokens sit in pages that proxies, CDNs and browsers keep: one found later must not let
    a stranger's browser receive the subscriber's pushes."""
    answer = api.client.post("/v1/subscribers/ann/token", headers=AUTH).json()
    assert answer["expires_at"] == "2026-04-01T09:00:00Z"  # T0 + 30 days
    browser = Browser.new("laptop")
    endpoint = "http://127.0.0.1:9/push/laptop"
    headers = {"X-Nurture-Token": answer["token"]}
    api.clock.advance_to(T0 + timedelta(days=30) - timedelta(seconds=1))
    assert register(api, "ann", browser, endpoint, headers).status_code == 201
    api.clock.advance_to(T0 + timedelta(days=30))
    late = register(api, "ann", browser, endpoint, headers)
    assert late.status_code == 401
    assert late.json()["errors"] == [{"field": "X-Nurture-Token", "message": (
        "expired: the site gets a new one with POST /v1/subscribers/{id}/token")}]
    # a token of the first format (the id alone, signed) is not one that runs out: refused
    unending = api.runtime.signer.sign("subscriber", "ann")
    assert register(api, "ann", browser, endpoint,
                    {"X-Nurture-Token": unending}).status_code == 401


@pytest.mark.parametrize(("keys", "field"), [
    ({"p256dh": "BAAA", "auth": "AAAAAAAAAAAAAAAAAAAAAA"}, "keys.p256dh"),
    ({"p256dh": "B" + "A" * 86, "auth": "AAAAAAAAAAAAAAAAAAAAAA"}, "keys.p256dh"),
    ({"p256dh": None, "auth": "AAAAAAAAAAAAAAAAAAAAAA"}, "keys.p256dh"),
    ({"auth": "AAAA"}, "keys.p256dh"),
])
def test_push_keys_are_validated(api: Api, keys: dict[str, Any], field: str) -> None:
    answer = api.client.post("/v1/subscribers/ann/push-subscriptions", headers=AUTH,
                             json={"endpoint": "http://127.0.0.1:9/p", "keys": keys})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == field


@pytest.mark.parametrize(("body", "detail", "message"), [
    (b'{"endpoint": "http://127.0.0.1:9/p", keys: {}}',
     "body: not JSON (Expecting property name enclosed in double quotes: character 37)",
     "not JSON"),
    (b'{"endpoint": "http://127.0.0.1:9/\xb3", "keys": {}}',
     "body: not UTF-8 text: send JSON in UTF-8", "not UTF-8"),
], ids=["not-json", "not-utf-8"])
def test_a_registration_that_is_not_json_names_the_body(api: Api, body: bytes, detail: str,
                                                        message: str) -> None:
    """FastAPI's own answers were the field "1" (the character where JSON broke off) and a
    400 naming no field."""
    answer = api.client.post("/v1/subscribers/ann/push-subscriptions", content=body,
                             headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json() == {"detail": detail,
                             "errors": [{"field": "body", "message": message}]}


def test_an_auth_secret_must_be_16_bytes(api: Api) -> None:
    browser = Browser.new("b")
    answer = api.client.post("/v1/subscribers/ann/push-subscriptions", headers=AUTH, json={
        "endpoint": "http://127.0.0.1:9/p", "keys": {"p256dh": browser.p256dh, "auth": "AAAA"}})
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"field": "keys.auth",
                                        "message": "must be 16 bytes, got 3"}]


def test_erase_removes_the_person_and_keeps_anonymous_counts(api: Api) -> None:
    api.post_events(SUBSCRIBED)
    register(api, "ann", Browser.new("laptop"), "http://127.0.0.1:9/push/laptop", AUTH)
    api.post_events({"subscriber": "ann", "type": "page_view", "properties": {"url": "/d"}})
    assert api.client.delete("/v1/subscribers/ann", headers=AUTH).status_code == 204
    assert api.client.get("/v1/subscribers/ann", headers=AUTH).status_code == 404
    for table in ("subscribers", "events", "consents", "push_subscriptions", "deliveries",
                  "dispatches", "ledger", "enrolments", "schedule"):
        assert api.count(table) == 0, table
    with api.runtime.database.transaction() as connection:
        assert connection.exec_driver_sql(
            "SELECT events, deliveries, push_subscriptions FROM erasures").all() == [(2, 1, 1)]
    assert api.client.delete("/v1/subscribers/ann", headers=AUTH).status_code == 404


def test_events_replayed_after_an_erasure_do_not_bring_the_person_back(api: Api) -> None:
    """A client's retry queue or a re-run import sends an erased subscriber's events again:
    those dated before the erasure are refused, however they are batched; what happens
    after it (a new sign-up) is a new subscriber."""
    api.post_events(SUBSCRIBED)
    api.post_events({"subscriber": "ann", "type": "page_view", "properties": {"url": "/d"}})
    api.clock.advance_to(api.clock.now() + timedelta(hours=1))
    assert api.client.delete("/v1/subscribers/ann", headers=AUTH).status_code == 204
    replay = {"events": [dict(SUBSCRIBED, at="2026-03-02T09:00:00Z"),
                         {"subscriber": "ann", "type": "page_view", "at": "2026-03-02T09:00:00Z"},
                         {"subscriber": "bob", "type": "page_view"}]}
    assert api.post_events(replay).json() == {"accepted": 1, "duplicates": [], "erased": 2,
                                              "warnings": []}
    assert api.client.get("/v1/subscribers/ann", headers=AUTH).status_code == 404
    with api.runtime.database.transaction() as connection:
        kept = connection.exec_driver_sql("SELECT subscriber FROM erasures").scalar_one()
    assert len(kept) == 64 and "ann" not in kept  # a keyed hash, not the id
    api.clock.advance_to(api.clock.now() + timedelta(minutes=1))
    again = {"subscriber": "ann", "type": "subscribed", "id": "e9",
             "properties": {"channels": ["email"], "email": "ann@example.com"}}
    assert api.post_events(again).json()["accepted"] == 1  # after the erasure: a new person
    body = api.client.get("/v1/subscribers/ann", headers=AUTH).json()
    assert [e["id"] for e in body["events"]] == ["e9"]
    assert body["attributes"] == {"email": "ann@example.com"}


def test_the_public_key_health_metrics_and_schema(api: Api) -> None:
    answer = api.client.get("/v1/push/public-key")
    assert answer.headers["Cache-Control"] == "public, max-age=3600"  # read on page loads
    key = answer.json()["public_key"]
    assert key == api.runtime.vapid.public_key and len(key) == 87
    assert api.client.get("/healthz").json() == {"status": "ok", "workflows": 1,
                                                 "database": "ok"}
    api.post_events(SUBSCRIBED)
    metrics = api.client.get("/metrics").text
    assert "nurture_events_ingested_total 1.0" in metrics
    assert "nurture_due_work_put_off_total 0.0" in metrics  # one to alert on
    assert 'nurture_due_backlog{kind="outbox"} 1.0' in metrics  # the welcome e-mail
    schema = api.client.get("/openapi.json").json()
    assert {"/v1/events", "/v1/subscribers/{subscriber_id}", "/v1/push/public-key",
            "/v1/subscribers/{subscriber_id}/push-subscriptions"} <= set(schema["paths"])


LATE_FLOW = """\
workflow shop {
  stage browsing {
    on enter: send email welcome
    after 10 minutes: send email welcome
  }
}
message welcome email { subject "Welcome" text "Hello" }
"""


def _gauges(api: Api, name: str) -> dict[str, float]:
    """`name{kind="…"} value` lines of /metrics, by kind."""
    found: dict[str, float] = {}
    for line in api.client.get("/metrics").text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('kind="')[1].split('"')[0]] = float(value)
    return found


def test_metrics_say_how_long_the_oldest_due_work_has_waited(tmp_path: Path,
                                                              database_url: str) -> None:
    runtime = build_runtime(tmp_path, LATE_FLOW, db=database_url)
    with TestClient(create_app(runtime)) as client:
        api = Api(client, runtime, runtime.clock, tmp_path)  # type: ignore[arg-type]
        api.post_events(SUBSCRIBED)  # at T0: the welcome e-mail queued, the second due at 09:10
        assert _gauges(api, "nurture_due_backlog") == {"schedule": 0, "outbox": 1}
        assert _gauges(api, "nurture_due_lag_seconds") == {"schedule": 0, "outbox": 0}

        api.clock.advance_to(T0 + timedelta(minutes=25))  # no tick, no dispatch: both wait
        assert _gauges(api, "nurture_due_backlog") == {"schedule": 1, "outbox": 1}
        assert _gauges(api, "nurture_due_lag_seconds") == {"schedule": 15 * 60,
                                                           "outbox": 25 * 60}

        runtime.engine.tick()  # the second e-mail is decided at 09:25 and queued, due now
        assert _gauges(api, "nurture_due_backlog") == {"schedule": 0, "outbox": 2}
        assert _gauges(api, "nurture_due_lag_seconds") == {"schedule": 0, "outbox": 25 * 60}
    runtime.database.dispose()


def test_a_send_put_off_by_quiet_hours_is_late_only_after_they_end(tmp_path: Path,
                                                                   database_url: str) -> None:
    flow = LATE_FLOW.replace("workflow shop {", "workflow shop {\n  quiet hours 21:00 to 08:00")
    runtime = build_runtime(tmp_path, flow, db=database_url)
    runtime.clock.advance_to(T0 + timedelta(hours=13))  # 22:00 UTC: the welcome waits for 08:00
    with TestClient(create_app(runtime)) as client:
        api = Api(client, runtime, runtime.clock, tmp_path)  # type: ignore[arg-type]
        api.post_events(SUBSCRIBED)
        api.clock.advance_to(T0 + timedelta(hours=13, minutes=30))
        runtime.engine.tick()  # the step of 22:10 puts its e-mail off to 08:00 too
        api.clock.advance_to(T0 + timedelta(hours=22))  # 07:00: not due yet
        assert _gauges(api, "nurture_due_lag_seconds") == {"schedule": 0, "outbox": 0}
        api.clock.advance_to(T0 + timedelta(hours=23, minutes=30))  # 08:30, no tick
        assert _gauges(api, "nurture_due_backlog") == {"schedule": 2, "outbox": 0}
        assert _gauges(api, "nurture_due_lag_seconds") == {"schedule": 30 * 60, "outbox": 0}
    runtime.database.dispose()


def test_ssrf_endpoints_are_refused(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from engine.api import create_app
    from tests.service.conftest import build_runtime

    real = socket.getaddrinfo

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "push.internal.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    runtime = build_runtime(tmp_path, push_allow_hosts=())
    browser = Browser.new("b")
    with TestClient(create_app(runtime)) as client:
        for endpoint in ("http://127.0.0.1/push", "https://127.0.0.1/push",
                         "https://169.254.169.254/latest/meta-data",
                         "https://push.internal.example/send/1", "https://[::1]/p",
                         "https://user@fcm.googleapis.com/x", "https://[2001:db8::1/p",
                         "https://fcm.googleapis.com:99999/x"):
            answer = client.post("/v1/subscribers/ann/push-subscriptions", headers=AUTH,
                                 json={"endpoint": endpoint, "keys": {
                                     "p256dh": browser.p256dh, "auth": browser.auth_secret}})
            assert answer.status_code == 422, endpoint
            assert answer.json()["errors"][0]["field"] == "endpoint"
    runtime.database.dispose()


def test_an_event_with_properties_over_64_kib_is_refused(api: Api) -> None:
    big = {"subscriber": "ann", "type": "page_view", "properties": {"notes": "x" * 70_000}}
    answer = api.post_events({"events": [SUBSCRIBED, big]})
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"event": 1, "field": "properties",
                                        "message": "larger than 65,536 bytes as JSON"}]
    assert api.count("events") == 0


def test_a_body_over_the_limit_is_413_before_it_is_read(api: Api) -> None:
    """Ingestion takes up to 8 MiB (1,000 events); every other call 64 KiB. A declared length
    over the limit is refused at once; a body in chunks as soon as it passes the limit."""
    events = {"events": [{"subscriber": f"s{i}", "type": "page_view",
                          "properties": {"notes": "x" * 9_000}} for i in range(1000)]}
    answer = api.post_events(events)
    assert answer.status_code == 413
    too_large = "larger than 8,388,608 bytes"
    assert answer.json() == {"detail": f"body: {too_large}",
                             "errors": [{"field": "body", "message": too_large}]}
    assert api.count("events") == 0

    def chunks() -> Any:
        for _ in range(5):
            yield b"x" * 16_384

    answer = api.client.post("/v1/unsubscribe?token=t", content=chunks())  # no Content-Length
    assert answer.status_code == 413
    assert answer.json()["errors"] == [{"field": "body", "message": "larger than 65,536 bytes"}]
    answer = api.client.post("/v1/unsubscribe?token=t", content=b"List-Unsubscribe=One-Click")
    assert answer.status_code == 403  # small enough: read, then the token is checked


def test_the_server_answers_413_without_waiting_for_the_rest_of_the_body(
        tmp_path: Any) -> None:
    """On a real server: a client that keeps sending gets its answer once it passes the limit,
    and nothing waits for (or stores) the rest."""
    from engine.api import create_app
    from tests.service.conftest import LiveServer, build_runtime

    runtime = build_runtime(tmp_path)
    server = LiveServer(create_app(runtime))
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(b"POST /v1/unsubscribe?token=t HTTP/1.1\r\nHost: x\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n")
            for _ in range(8):  # 128 KiB of a body that never ends
                client.sendall(b"4000\r\n" + b"x" * 0x4000 + b"\r\n")
            answer = client.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413 ")
    finally:
        server.stop()
        runtime.database.dispose()


def test_a_request_stored_in_part_before_an_error_says_so(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.processor import PartlyIngested

    def ingest(events: Any) -> Any:
        raise PartlyIngested("1 event(s) were stored before: the disk is full")

    monkeypatch.setattr(api.runtime, "ingest", ingest)
    answer = api.post_events(SUBSCRIBED)
    assert answer.status_code == 500
    assert answer.json() == {
        "detail": "some of the events were stored before an error (1 event(s) were stored "
                  "before: the disk is full); sending them again stores again those without "
                  "an `id`",
        "errors": [{"field": "events", "message": "partly stored"}]}


def test_a_database_that_goes_away_is_a_503_to_retry_and_the_retry_is_stored(
        tmp_path: Path) -> None:
    """PostgreSQL refusing connections (a restart, a failover): the API answers 503 with
    Retry-After instead of a bare 500, stores nothing, and the same request sent again once
    the server is back is stored."""
    from sqlalchemy import create_engine, make_url, text

    from engine.api import create_app
    from tests.databases import PG, SKIP_PG
    from tests.service.conftest import build_runtime

    if PG is None:
        pytest.skip(SKIP_PG)
    name = f"nurture_down_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        runtime = build_runtime(tmp_path, db=make_url(PG).set(database=name)
                                .render_as_string(hide_password=False))
        with TestClient(create_app(runtime)) as client:
            def post() -> Any:
                return client.post("/v1/events", headers=AUTH, json=SUBSCRIBED)

            with admin.connect() as connection:  # the server stops taking connections
                connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                connection.execute(text("SELECT pg_terminate_backend(pid) FROM "
                                        f"pg_stat_activity WHERE datname = '{name}'"))
            refused = post()
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"] == "5"
            assert refused.json()["errors"] == [{"field": "database", "message": "unavailable"}]
            assert "nothing of this request was stored" in refused.json()["detail"]
            with admin.connect() as connection:
                connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            assert post().json() == {"accepted": 1, "duplicates": [], "erased": 0, "warnings": []}
            assert client.get("/v1/subscribers/ann", headers=AUTH).json()["events_total"] == 1
        runtime.database.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_writers_that_keep_the_database_busy_through_every_retry_are_a_503(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A race lost five times over (`Conflict` out of the engine's retries): transient, so
    503 and Retry-After, like a database that failed. (The conflict itself is raised here by
    hand: making SQLite stay locked through five 30-second waits would take minutes.)"""
    from engine.store.database import Conflict

    def busy(events: Any) -> Any:
        raise Conflict("database is locked")

    monkeypatch.setattr(api.runtime, "ingest", busy)
    answer = api.post_events(SUBSCRIBED)
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "1")
    assert answer.json()["errors"] == [{"field": "database", "message": "busy"}]


def test_events_sent_again_after_an_outage_send_nothing_more_than_a_day_late(api: Api) -> None:
    """The service's default late limit (NURTURE_LATE_LIMIT, 1 day): a client's queue of
    events from before an outage is stored and scored, but what is over a day late is not
    sent."""
    assert api.runtime.settings.late_limit == timedelta(days=1)
    for who, age in (("ann", timedelta(days=2)), ("bob", timedelta(hours=2))):
        api.post_events({"subscriber": who, "type": "subscribed", "id": f"{who}-1",
                         "at": (T0 - age).isoformat(),
                         "properties": {"channels": ["email"], "email": f"{who}@example.com"}})
    for who, status, reason in (("ann", "skipped", "late"), ("bob", "sent", None)):
        body = api.client.get(f"/v1/subscribers/{who}", headers=AUTH).json()
        assert [(m["message"], m["status"], m["reason"]) for m in body["messages"]] == [
            ("welcome", status, reason)]
        assert [e["type"] for e in body["events"]] == ["subscribed"]


@pytest.mark.parametrize("subscriber", ["shop/123", "dGVzdA+/x==", "a b", "ü", "shop/timeline",
                                        "shop/status"])
def test_any_subscriber_id_can_be_read_registered_and_erased(api: Api, subscriber: str) -> None:
    """Ids are the site's own: a tenant path or a base64 id has slashes (sent as %2F), and
    one may even end in `/timeline` or `/status` (the paths of those calls once decoded)."""
    path = "/v1/subscribers/" + quote(subscriber, safe="")
    api.post_events({"subscriber": subscriber, "type": "subscribed",
                     "properties": {"channels": ["email"], "email": "ann@example.com"}})
    assert api.client.get(path, headers=AUTH).json()["id"] == subscriber
    assert api.client.get(path + "?limit=0", headers=AUTH).json()["id"] == subscriber
    timeline = api.client.get(path + "/timeline", headers=AUTH).json()
    assert timeline["subscriber"] == subscriber and timeline["records"]
    status = api.client.get(path + "/status", headers=AUTH).json()
    assert status["subscriber"] == subscriber and status["enrolments"][0]["stage"] == "browsing"
    token = api.client.post(path + "/token", headers=AUTH).json()["token"]
    browser = Browser.new("laptop")
    assert register(api, subscriber, browser, "http://127.0.0.1:9/push/1",
                    {"X-Nurture-Token": token}).status_code == 201
    assert api.client.delete(path, headers=AUTH).status_code == 204
    assert api.client.get(path, headers=AUTH).status_code == 404


def test_the_funnel_of_a_workflow(api: Api) -> None:
    api.post_events({"events": [
        {"subscriber": "ann", "type": "subscribed", "at": "2026-03-02T08:00:00Z",
         "properties": {"channels": ["email"], "email": "ann@example.com"}},
        {"subscriber": "ann", "type": "page_view", "at": "2026-03-02T08:30:00Z",
         "properties": {"url": "/diamonds"}},
        {"subscriber": "bob", "type": "subscribed", "at": "2026-03-02T08:45:00Z",
         "properties": {"channels": ["push"]}}]})
    answer = api.client.get("/v1/workflows/shop/funnel", headers=AUTH)
    assert answer.status_code == 200
    report = answer.json()
    assert [(s["stage"], s["in_stage"], s["entered"]) for s in report["stages"]] == [
        ("browsing", 1, 2), ("hot", 1, 1)]
    assert [(m["stage"], m["message"], m["sent"], m["skipped"], m["dispatches"])
            for m in report["messages"]] == [
        # ann left `browsing` at 08:30 with her welcome still in the outbox (no dispatcher
        # runs here): it went with the stage (SPEC §1.5a)
        ("browsing", "welcome", 1, {"no_consent": 1}, {"cancelled": 1}),
        ("hot", "offer", 0, {"no_consent": 1}, {})]
    since = api.client.get("/v1/workflows/shop/funnel", params={"since": "20 minutes"},
                           headers=AUTH).json()  # the clock reads 09:00
    assert (since["since"], since["enrolled"]) == ("2026-03-02T08:40:00Z", 1)
    assert api.client.get("/v1/workflows/shop/funnel").status_code == 401
    missing = api.client.get("/v1/workflows/nope/funnel", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "workflow"
    typo = api.client.get("/v1/workflows/shopp/funnel", headers=AUTH)
    assert typo.status_code == 404
    assert typo.json()["detail"] == "workflow: no workflow 'shopp'; did you mean 'shop'?"
    bad = api.client.get("/v1/workflows/shop/funnel", params={"since": "soon"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "since"


def test_what_the_subscribers_of_a_workflow_wait_for(api: Api) -> None:
    """`GET /v1/workflows/{name}/waiting`: `nurture waiting --json` over HTTP."""
    api.post_events({"events": [
        {"subscriber": who, "type": "subscribed", "at": "2026-03-02T08:00:00Z",
         "properties": {"channels": ["email"], "email": f"{who}@example.com"}}
        for who in ("ann", "bob", "cy")] + [
        {"subscriber": "ann", "type": "email_click", "at": "2026-03-02T08:30:00Z"},
        {"subscriber": "bob", "type": "page_view", "at": "2026-03-02T08:30:00Z",
         "properties": {"url": "/diamonds"}}]})
    answer = api.client.get("/v1/workflows/shop/waiting", headers=AUTH)
    assert answer.status_code == 200
    report = answer.json()
    assert [(s["stage"], s["subscribers"]) for s in report["stages"]] == [
        ("browsing", 2), ("hot", 1)]
    assert report["stages"][0]["transitions"] == [{
        "transition": "go to hot when engagement >= 30",
        "rule": f"{api.folder}/workflows/shop.flow:12", "kind": "when", "holds": 0,
        "comparisons": [{"condition": "engagement >= 30", "reads": "engagement", "holds": 0,
                         "would_move": 2}]}]
    assert report["stages"][0]["spreads"] == {
        "engagement": {"median": 1, "p90": 2, "highest": 2}}
    hot = api.client.get("/v1/workflows/shop/waiting", params={"stage": "hot"}, headers=AUTH)
    assert [s["stage"] for s in hot.json()["stages"]] == ["hot"]
    assert api.client.get("/v1/workflows/shop/waiting").status_code == 401
    typo = api.client.get("/v1/workflows/shop/waiting", params={"stage": "hott"},
                          headers=AUTH)
    assert typo.status_code == 404
    assert typo.json()["detail"] == (
        "stage: workflow 'shop' has no stage 'hott'; did you mean 'hot'?")
    missing = api.client.get("/v1/workflows/shopp/waiting", headers=AUTH)
    assert missing.json()["detail"] == "workflow: no workflow 'shopp'; did you mean 'shop'?"


def test_whether_the_rules_of_a_workflow_meet_traffic(api: Api) -> None:
    """`GET /v1/workflows/{name}/rules`: `nurture rules --json` over HTTP."""
    api.post_events({"events": [
        {"subscriber": "ann", "type": "subscribed", "at": "2026-03-02T08:00:00Z",
         "properties": {"channels": ["email"], "email": "ann@example.com"}},
        {"subscriber": "ann", "type": "page_view", "at": "2026-03-02T08:30:00Z",
         "properties": {"url": "/diamonds"}},
        {"subscriber": "ann", "type": "email_opn", "at": "2026-03-02T08:40:00Z"}]})
    answer = api.client.get("/v1/workflows/shop/rules", headers=AUTH)
    assert answer.status_code == 200
    report = answer.json()
    assert report["events"][2:4] == [
        {"event": "page_view", "received": 1, "lines": [4, 9], "meant": None},
        {"event": "push_click", "received": 0, "lines": [5], "meant": None}]
    assert report["rules"][0] == {
        "score": "engagement", "rule": 'on page_view where url contains "/diamonds" +30',
        "line": 4, "kind": "event", "changes": 1, "subscribers": 1, "points": 30}
    later = api.client.get("/v1/workflows/shop/rules", params={"since": "20 minutes"},
                           headers=AUTH).json()  # the clock reads 09:00
    assert (later["since"], later["rules"][0]["changes"]) == ("2026-03-02T08:40:00Z", 0)
    assert api.client.get("/v1/workflows/shop/rules").status_code == 401
    typo = api.client.get("/v1/workflows/shopp/rules", headers=AUTH)
    assert (typo.status_code, typo.json()["detail"]) == (
        404, "workflow: no workflow 'shopp'; did you mean 'shop'?")
    bad = api.client.get("/v1/workflows/shop/rules", params={"since": "soon"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "since"


def test_the_leads_of_a_workflow_a_page_at_a_time(api: Api) -> None:
    """`GET /v1/workflows/{name}/leads`: `nurture leads --json`, paged."""
    api.post_events({"events": [
        {"subscriber": who, "type": "subscribed", "at": "2026-03-02T08:00:00Z",
         "properties": {"channels": ["email"], "email": f"{who}@example.com",
                        "attributes": {"company": who.upper()}}}
        for who in ("ann", "bob", "cy")] + [
        {"subscriber": "ann", "type": "email_click", "at": "2026-03-02T08:30:00Z"},
        {"subscriber": "bob", "type": "email_open", "at": "2026-03-02T08:30:00Z"},
        {"subscriber": "cy", "type": "page_view", "at": "2026-03-02T08:40:00Z",
         "properties": {"url": "/diamonds"}}]})
    answer = api.client.get("/v1/workflows/shop/leads",
                            params={"limit": 2, "attribute": ["company", "email"]},
                            headers=AUTH)
    assert answer.status_code == 200
    assert answer.json() == {
        "workflow": "shop", "stages": [], "by": "engagement", "since": None, "total": 3,
        "offset": 0,
        "leads": [
            {"subscriber": "cy", "workflow": "shop", "stage": "hot",
             "stage_entered_at": "2026-03-02T08:40:00Z", "scores": {"engagement": 30},
             "tags": ["diamonds"], "attributes": {"company": "CY",
                                                  "email": "cy@example.com"}},
            {"subscriber": "ann", "workflow": "shop", "stage": "browsing",
             "stage_entered_at": "2026-03-02T08:00:00Z", "scores": {"engagement": 2},
             "tags": [], "attributes": {"company": "ANN", "email": "ann@example.com"}}]}
    rest = api.client.get("/v1/workflows/shop/leads", params={"limit": 2, "offset": 2},
                          headers=AUTH).json()
    assert [(lead["subscriber"], lead["attributes"]) for lead in rest["leads"]] == [
        ("bob", {})]  # no attribute asked for, none given
    recent = api.client.get("/v1/workflows/shop/leads", params={"since": "25 minutes"},
                            headers=AUTH).json()  # the clock reads 09:00: since 08:35
    assert (recent["since"], recent["total"], [lead["subscriber"] for lead in recent["leads"]]
            ) == ("2026-03-02T08:35:00Z", 1, ["cy"])  # who entered `hot` at 08:40
    assert api.client.get("/v1/workflows/shop/leads", params={"since": "soon"},
                          headers=AUTH).json()["errors"][0]["field"] == "since"
    browsing = api.client.get("/v1/workflows/shop/leads", params={"stage": "browsing"},
                              headers=AUTH).json()
    assert (browsing["total"], [lead["subscriber"] for lead in browsing["leads"]]) == (
        2, ["ann", "bob"])
    assert api.client.get("/v1/workflows/shop/leads").status_code == 401
    for params, status, field in [({"by": "engagment"}, 422, "by"),
                                  ({"stage": "hott"}, 404, "stage"),
                                  ({"limit": 0}, 422, "query.limit"),
                                  ({"limit": 1001}, 422, "query.limit"),
                                  ({"offset": -1}, 422, "query.offset")]:
        refused = api.client.get("/v1/workflows/shop/leads", params=params, headers=AUTH)
        assert refused.status_code == status, params
        assert refused.json()["errors"][0]["field"] == field
    assert api.client.get("/v1/workflows/shop/leads", params={"by": "engagment"},
                          headers=AUTH).json()["detail"] == (
        "by: workflow 'shop' has no score 'engagment'; did you mean 'engagement'?")
    missing = api.client.get("/v1/workflows/shopp/leads", headers=AUTH)
    assert (missing.status_code, missing.json()["detail"]) == (
        404, "workflow: no workflow 'shopp'; did you mean 'shop'?")


def test_the_subscribers_with_an_email_address(api: Api) -> None:
    """`GET /v1/subscribers?email=`: for a person's request about their data."""
    api.post_events(SUBSCRIBED)  # ann@example.com
    found = api.client.get("/v1/subscribers", params={"email": "ANN@example.com"},
                           headers=AUTH)
    assert found.json() == {"email": "ANN@example.com", "subscribers": ["ann"]}
    assert api.client.get("/v1/subscribers", params={"email": "bo@example.com"},
                          headers=AUTH).json()["subscribers"] == []
    assert api.client.get("/v1/subscribers", params={"email": "ann@example.com"}
                          ).status_code == 401
    missing = api.client.get("/v1/subscribers", headers=AUTH)
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "query.email"


def test_the_timeline_of_a_subscriber(api: Api) -> None:
    """`GET /v1/subscribers/{id}/timeline`: the simulator's records, read from the database
    (ids with slashes included); `latest` keeps the last records and says it did."""
    who = "shop/123"
    path = "/v1/subscribers/" + quote(who, safe="") + "/timeline"
    api.post_events({"events": [
        {"subscriber": who, "type": "subscribed", "at": "2026-03-02T08:00:00Z",
         "properties": {"channels": ["email"], "email": "ann@example.com"}},
        {"subscriber": who, "type": "page_view", "at": "2026-03-02T08:30:00Z",
         "properties": {"url": "/diamonds"}}]})
    answer = api.client.get(path, headers=AUTH)
    assert answer.status_code == 200
    body = answer.json()
    assert body["subscriber"] == who and body["truncated"] is False
    rule = f"{api.folder}/workflows/shop.flow:4"
    assert [{k: v for k, v in r.items() if k not in ("subscriber", "workflow")}
            for r in body["records"]] == [
        {"at": "2026-03-02T08:00:00Z", "kind": "enter", "stage": "browsing"},
        {"at": "2026-03-02T08:00:00Z", "kind": "send", "channel": "email",
         "message": "welcome", "lang": None, "subject": "Welcome",
         # no dispatcher runs here; ann left the stage before it was sent (SPEC §1.5a)
         "dispatches": [{"status": "cancelled", "finished_at": "2026-03-02T09:00:00Z",
                         "error": "the subscriber left stage browsing before it was sent"}]},
        {"at": "2026-03-02T08:30:00Z", "kind": "score", "score": "engagement", "delta": 30,
         "total": 30, "rule": rule},
        {"at": "2026-03-02T08:30:00Z", "kind": "tag", "tag": "diamonds"},
        {"at": "2026-03-02T08:30:00Z", "kind": "enter", "stage": "hot"},
        {"at": "2026-03-02T08:30:00Z", "kind": "skip", "channel": "push", "message": "offer",
         "reason": "no_consent"}]
    last = api.client.get(path, params={"latest": 2}, headers=AUTH).json()
    assert last["truncated"] is True
    assert [r["kind"] for r in last["records"]] == ["enter", "skip"]
    recent = api.client.get(path, params={"since": "40 minutes"}, headers=AUTH).json()
    assert [r["kind"] for r in recent["records"]] == ["score", "tag", "enter", "skip"]
    assert api.client.get(path).status_code == 401
    missing = api.client.get("/v1/subscribers/nobody/timeline", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "subscriber_id"
    bad = api.client.get(path, params={"since": "soon"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "since"


def test_the_status_of_a_subscriber(api: Api) -> None:
    """`GET /v1/subscribers/{id}/status`: what `nurture status --json` prints."""
    who = "shop/123"
    path = "/v1/subscribers/" + quote(who, safe="") + "/status"
    api.post_events({"events": [
        {"subscriber": who, "type": "subscribed", "at": "2026-03-02T08:00:00Z",
         "properties": {"channels": ["email"], "email": "ann@example.com"}},
        {"subscriber": who, "type": "page_view", "at": "2026-03-02T08:30:00Z",
         "properties": {"url": "/pricing"}}]})
    answer = api.client.get(path, headers=AUTH)
    assert answer.status_code == 200
    rule = f"{api.folder}/workflows/shop.flow:12"
    assert answer.json() == {
        "subscriber": who, "processed_until": "2026-03-02T08:30:00Z", "tags": [],
        "enrolments": [{
            "workflow": "shop", "stage": "browsing", "declared": True,
            "since": "2026-03-02T08:00:00Z", "enrolled_at": "2026-03-02T08:00:00Z",
            "scores": {"engagement": 0},
            "transitions": [{
                "transition": "go to hot when engagement >= 30", "rule": rule,
                "verdict": "does not hold",
                "checks": [{"condition": "engagement >= 30", "holds": False,
                            "read": "engagement is 0"}]}],
            "planned": []}],
        "not_loaded": []}
    assert api.client.get(path).status_code == 401
    missing = api.client.get("/v1/subscribers/nobody/status", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "subscriber_id"


def test_a_type_nearly_spelling_one_the_workflows_name_is_pointed_out_once(
        api: Api, caplog: pytest.LogCaptureFixture) -> None:
    # the site's typo: taken (any name is), but its developer and the operator learn why
    # nothing happens
    assert api.post_events(SUBSCRIBED).json()["warnings"] == []
    for _ in range(2):  # the site's developer reads it in the answer, every time
        answer = api.post_events({"events": [
            {"subscriber": "ann", "type": "cart_viewed"},
            {"subscriber": "ann", "type": "page_veiw", "properties": {"url": "/diamonds"}}]})
        assert answer.json()["accepted"] == 2
        assert answer.json()["warnings"] == [{
            "event": 1, "field": "type",
            "message": "no workflow names event 'page_veiw'; did you mean 'page_view'? (taken "
                       "as it is: it changes nothing until a workflow names it)"}]
    warned = [r.getMessage() for r in caplog.records if r.name == "nurture.runtime"]
    assert warned == ["events of type 'page_veiw' arrive, and no workflow names that type; "
                      "did you mean 'page_view'? (said once until the workflows are reloaded)"]
    assert api.count("events") == 5


def test_events_from_the_future_or_outside_the_years_are_refused(api: Api) -> None:
    # the API's clock is T0 (2026-03-02T09:00Z): a client whose clock runs ahead would
    # reorder the journey, a placeholder year would put timers outside Python's calendar
    answer = api.post_events({"events": [
        {**SUBSCRIBED, "at": "2026-03-02T09:05:00Z"},  # five minutes ahead: taken
        {"subscriber": "ann", "type": "page_view", "at": "2026-03-02T09:05:01Z"},
        {"subscriber": "ann", "type": "page_view", "at": "0001-01-01T00:00:00Z"}]})
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"event": 1, "field": "at", "message": "more than 5 minutes in the future"},
        {"event": 2, "field": "at",
         "message": "'0001-01-01T00:00:00Z' is outside the years 1970 to 2999"}]
    assert api.count("events") == 0
