"""Which sends came back: the funnel report counts, per message, the e-mails opened and
clicked and the pushes shown and clicked, from the events the tracking links bring back.

End to end with real peers: the e-mails go through a real SMTP server (aiosmtpd), and the
links followed are the ones in the HTML it received; the push is decrypted by a local push
service and reported with the token inside it, as the service worker does.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from channels.email import SmtpSender
from channels.endpoints import PushEndpointPolicy
from channels.webpush import WebPushSender
from engine.api import create_app
from engine.cli import main
from engine.clock import SystemClock
from engine.dispatcher import Dispatcher, Links
from engine.runtime import Runtime
from engine.store import queries
from tests.channels.peers import PushService, SmtpServer
from tests.service.conftest import AUTH, build_runtime


def _drain(dispatcher: Dispatcher) -> dict[str, int]:
    async def run() -> dict[str, int]:
        try:
            return (await dispatcher.drain()).outcomes
        finally:
            await dispatcher.close()
    return asyncio.run(run())


@pytest.fixture
def shop(tmp_path: Path, database_url: str, ca_file: str, smtp_server: SmtpServer
         ) -> Iterator[tuple[Runtime, TestClient, Dispatcher]]:
    runtime = build_runtime(tmp_path, db=database_url)
    dispatcher = Dispatcher(
        runtime.database, Links(runtime.signer, "http://testserver"), clock=runtime.clock,
        push=WebPushSender(runtime.vapid, "mailto:ops@shop.example",
                           PushEndpointPolicy.from_hosts(["127.0.0.1"]), SystemClock().now,
                           ca_file=ca_file),
        email=SmtpSender(f"smtp://127.0.0.1:{smtp_server.port}?starttls=no",
                         "Shop <news@shop.example>"))
    with TestClient(create_app(runtime)) as client:
        yield runtime, client, dispatcher
    runtime.database.dispose()


def _key(runtime: Runtime, subscriber: str) -> int:
    with runtime.database.reading() as connection:
        found = queries.subscriber_key(connection, subscriber)
    assert found is not None
    return found


def _links(message: object) -> tuple[str, str]:
    """The open pixel and the tracked link of an e-mail as the SMTP server received it."""
    html = message.get_body(("html",)).get_content()  # type: ignore[attr-defined]
    [pixel] = re.findall(r'<img src="([^"]+)"', html)
    [link] = re.findall(r'<a href="([^"]+)"', html)
    return urlsplit(unescape(pixel)).path, urlsplit(unescape(link)).path


def test_the_funnel_counts_sends_opened_shown_and_clicked(
        shop: tuple[Runtime, TestClient, Dispatcher], smtp_server: SmtpServer,
        push_service: PushService, tmp_path: Path, database_url: str) -> None:
    runtime, client, dispatcher = shop
    browser = push_service.browser("ann-phone")
    assert client.post("/v1/subscribers/ann/push-subscriptions", headers=AUTH, json={
        "endpoint": push_service.endpoint("ann-phone"),
        "keys": {"p256dh": browser.p256dh, "auth": browser.auth_secret}}).status_code == 201
    assert client.post("/v1/events", headers=AUTH, json={"events": [
        {"subscriber": who, "type": "subscribed",
         "properties": {"channels": ["email", "push"], "email": f"{who}@example.com"}}
        for who in ("ann", "bob", "cy", "dee")]}).status_code == 200
    assert _drain(dispatcher) == {"delivered": 4}  # the welcome e-mails
    received = {message["To"]: _links(message) for message in smtp_server.messages}
    ann_pixel, ann_link = received["ann@example.com"]
    bob_pixel, _ = received["bob@example.com"]
    for path in (ann_pixel, ann_pixel, bob_pixel):  # ann's mail client shows it twice
        assert client.get(path).status_code == 200
    for _ in range(2):  # she clicks twice: one send clicked
        answer = client.get(ann_link, follow_redirects=False)
        assert (answer.status_code, answer.headers["location"]) == (
            302, "https://shop.example/new")
    # ann's click is worth 2 points; a diamonds page takes her to `hot` and its push
    client.post("/v1/events", headers=AUTH, json={
        "subscriber": "ann", "type": "page_view", "properties": {"url": "/diamonds"}})
    assert _drain(dispatcher) == {"delivered": 1}
    [payload] = push_service.payloads("ann-phone")
    for report in ("push-received", "push-click"):  # what the service worker sends
        assert client.post(f"/v1/track/{report}",
                           json={"token": payload["token"]}).status_code == 204

    # a site's own events with a stray `delivery`: not a send of cy's, so nothing counts
    ann_key = _key(runtime, "ann")
    strays = client.post("/v1/events", headers=AUTH, json={"events": [
        {"subscriber": "cy", "type": "email_open", "properties": {"delivery": stray}}
        for stray in ("nonsense", "1.x", f"{ann_key}.1", "123456789012345678901234.1", "", 7,
                      None, [1])]})
    assert strays.json()["accepted"] == 8

    report = client.get("/v1/workflows/shop/funnel", headers=AUTH).json()
    assert [(m["message"], m["sent"], m["dispatches"], m["responses"])
            for m in report["messages"]] == [
        ("welcome", 4, {"delivered": 4}, {"email_open": 2, "email_click": 1}),
        ("offer", 1, {"delivered": 1}, {"push_received": 1, "push_click": 1})]
    result = CliRunner().invoke(main, ["funnel", "--db", database_url,
                                       "--workflows", str(tmp_path / "workflows")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-3:] == [
        "  stage     message  channel  sent  delivered  pending  not delivered  skipped  "
        "came back",
        "  browsing  welcome  email       4          4        0  -              -        "
        "opened 2 (50%), clicked 1 (25%)",
        "  hot       offer    push        1          1        0  -              -        "
        "shown 1 (100%), clicked 1 (100%)"]


def test_the_funnel_counts_the_emails_that_bounced(
        shop: tuple[Runtime, TestClient, Dispatcher], smtp_server: SmtpServer,
        tmp_path: Path, database_url: str) -> None:
    """An address the relay refuses (a hard bounce) is an `email_bounced` event naming its
    send, which the report counts as bounced, as a share of the sends (the later e-mails to
    that address are `no_address` skips: tests/channels/test_email_webhook.py)."""
    runtime, client, dispatcher = shop
    dispatcher.on_bounce = runtime.ingest  # as `nurture serve` and `worker` do
    smtp_server.handler_answer = (
        lambda to: "550 5.1.1 no such mailbox" if to.startswith("eve@") else None)
    assert client.post("/v1/events", headers=AUTH, json={"events": [
        {"subscriber": who, "type": "subscribed",
         "properties": {"channels": ["email"], "email": f"{who}@example.com"}}
        for who in ("ann", "bob", "cy", "eve")]}).status_code == 200
    assert _drain(dispatcher) == {"delivered": 3, "failed": 1}
    report = client.get("/v1/workflows/shop/funnel", headers=AUTH).json()
    [welcome] = report["messages"]
    assert (welcome["sent"], welcome["dispatches"], welcome["responses"]) == (
        4, {"delivered": 3, "failed": 1}, {"email_bounced": 1})
    result = CliRunner().invoke(main, ["funnel", "--db", database_url,
                                       "--workflows", str(tmp_path / "workflows")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "  browsing  welcome  email       4          3        0  failed 1       -        "
        "bounced 1 (25% of sent)")
