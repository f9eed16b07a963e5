"""Web push from a workflow to a local push service that verifies VAPID and decrypts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from channels.tokens import Signer
from engine.store import push_subscriptions
from engine.store.push_subscriptions import HANDED_OVER
from engine.store.states import PUSH_SUBSCRIPTIONS, SUBSCRIBERS
from tests.channels.conftest import SECRET, T0
from tests.channels.peers import PushService

WELCOME_PL = {"title": "Cześć Anna!",
              "body": "Dziękujemy za subskrypcję. Zobacz nasze bestsellery.",
              "url": "https://shop.example/pl/bestsellery", "icon": None}


def test_a_workflow_push_arrives_decrypted_on_every_browser(shop_factory,
                                                            push_service: PushService) -> None:
    shop = shop_factory()
    for browser in ("laptop", "phone", "tablet"):
        shop.subscribe_browser("anna", push_service, browser)
    shop.event("anna", "subscribed", channels=["push"],
               attributes={"first_name": "Anna", "locale": "pl-PL"})
    shop.advance(minutes=10)
    stats = shop.dispatch()
    assert push_service.problems == []
    assert stats.outcomes == {"delivered": 3}
    for browser in ("laptop", "phone", "tablet"):
        [received] = push_service.payloads(browser)
        assert {k: received[k] for k in WELCOME_PL} == WELCOME_PL
        assert Signer(SECRET).verify("push", received["token"]) == "1.1"
    headers = push_service.received[0].headers
    assert headers["TTL"] == str(4 * 7 * 86400)
    assert headers["Urgency"] == "normal"
    assert len(headers["Topic"]) == 24
    assert {r.headers["Topic"] for r in push_service.received} == {headers["Topic"]}


def test_transport_settings_come_from_the_message(shop_factory,
                                                  push_service: PushService) -> None:
    shop = shop_factory()
    shop.subscribe_browser("anna", push_service, "laptop")
    shop.event("anna", "subscribed", channels=["push"])
    shop.event("anna", "page_view", url="/diamonds")
    shop.event("anna", "attributes", industry="retail")
    shop.event("anna", "page_view", url="/diamonds")  # selection: the discount push
    shop.dispatch()
    [received] = push_service.received
    assert received.payload["title"] == "10% off, just for you"
    assert received.headers["TTL"] == str(2 * 86400)
    assert received.headers["Urgency"] == "high"


def test_410_removes_the_subscription_and_nothing_more_goes_to_it(
        shop_factory, push_service: PushService) -> None:
    shop = shop_factory()
    shop.subscribe_browser("anna", push_service, "laptop")
    shop.subscribe_browser("anna", push_service, "old-phone")
    push_service.always("old-phone", 410)
    shop.event("anna", "subscribed", channels=["push"])
    shop.advance(minutes=10)
    shop.dispatch()
    assert sorted((d["status"], d["last_status"]) for d in shop.dispatches("anna")) == [
        ("delivered", 201), ("gone", 410)]
    with shop.database.transaction() as connection:
        removed = connection.exec_driver_sql(
            "SELECT endpoint, removed_reason FROM push_subscriptions WHERE removed_at "
            "IS NOT NULL").all()
    assert [endpoint.rsplit("/", 1)[1] for endpoint, _ in removed] == ["old-phone"]
    assert "404/410" in removed[0][1]
    shop.advance(days=3)  # the first bestsellers drip
    shop.dispatch()
    assert push_service.requests["old-phone"] == 1
    assert [p["title"] for p in push_service.payloads("laptop")] == [
        "Hi there!", "Our bestsellers this week"]


def test_429_is_retried_no_earlier_than_retry_after(shop_factory,
                                                    push_service: PushService) -> None:
    shop = shop_factory()
    shop.subscribe_browser("anna", push_service, "laptop")
    push_service.answer("laptop", 429, {"Retry-After": "120"})
    shop.event("anna", "subscribed", channels=["push"])
    shop.advance(minutes=10)
    assert shop.dispatch().outcomes == {"queued": 1}
    [row] = shop.dispatches("anna")
    assert (row["status"], row["last_status"]) == ("queued", 429)
    sent_at = T0 + timedelta(minutes=10)
    shop.clock.advance_to(sent_at + timedelta(seconds=119))
    assert shop.dispatch().claimed == 0
    shop.clock.advance_to(sent_at + timedelta(seconds=120))
    assert shop.dispatch().outcomes == {"delivered": 1}
    assert push_service.requests["laptop"] == 2
    assert len(push_service.payloads("laptop")) == 1
    assert shop.dispatches("anna")[0]["attempts"] == 2


def test_5xx_backs_off_exponentially_with_jitter(shop_factory,
                                                 push_service: PushService) -> None:
    shop = shop_factory()
    shop.subscribe_browser("anna", push_service, "laptop")
    push_service.always("laptop", 503)
    shop.event("anna", "subscribed", channels=["push"])
    shop.advance(minutes=10)
    waits = []
    for _ in range(4):
        before = shop.clock.now()
        shop.dispatch()
        [row] = shop.dispatches("anna")
        waits.append((row["due_at"] - before).total_seconds())
        shop.clock.advance_to(row["due_at"])
    for wait, base in zip(waits, (30, 60, 120, 240), strict=True):
        assert 0.8 * base <= wait <= 1.2 * base


def test_413_is_final(shop_factory, push_service: PushService) -> None:
    shop = shop_factory()
    shop.subscribe_browser("anna", push_service, "laptop")
    push_service.always("laptop", 413)
    shop.event("anna", "subscribed", channels=["push"])
    shop.advance(minutes=10)
    shop.dispatch()
    shop.advance(hours=1)
    shop.dispatch()
    assert [(d["status"], d["attempts"]) for d in shop.dispatches("anna")] == [("failed", 1)]
    assert push_service.requests["laptop"] == 1


def test_a_send_that_raises_is_retried_later_and_the_batch_goes_on(
        shop_factory, push_service: PushService, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception in one send (here, forced) must not stop the batch: its other pushes are
    delivered and recorded, and this one waits for its next attempt like a temporary failure."""
    import engine.dispatcher

    real = engine.dispatcher.payload

    def payload(fields: dict[str, object], tag: str, token: str) -> bytes:
        if Signer(SECRET).verify("push", token).startswith("2."):  # bob's delivery
            raise RuntimeError("forced")
        return real(fields, tag, token)

    monkeypatch.setattr(engine.dispatcher, "payload", payload)
    shop = shop_factory()
    for who in ("anna", "bob", "cid"):
        shop.subscribe_browser(who, push_service, who)
        shop.event(who, "subscribed", channels=["push"])
    shop.advance(minutes=10)
    assert shop.dispatch().outcomes == {"delivered": 2, "queued": 1}
    [bob] = shop.dispatches("bob")
    assert (bob["status"], bob["attempts"]) == ("queued", 1)
    assert bob["last_error"] == "internal error: RuntimeError: forced"
    assert bob["due_at"] >= shop.clock.now() + timedelta(seconds=24)  # 30 s, -20% at most
    assert sorted(push_service.requests) == ["anna", "cid"]
    monkeypatch.setattr(engine.dispatcher, "payload", real)
    shop.clock.advance_to(bob["due_at"])
    assert shop.dispatch().outcomes == {"delivered": 1}
    assert push_service.requests["bob"] == 1


QUIET = """
workflow welcome {
  timezone "Europe/Warsaw"
  quiet hours 21:00 to 08:00
  stage first { after 10 minutes: send push welcome }
}
message welcome push { title "Hi {{ subscriber.id }}!" }
"""
EVENING = datetime(2026, 3, 2, 19, 40, tzinfo=UTC)  # 20:40 in Warsaw (winter time, UTC+1)


def test_a_push_that_comes_late_into_quiet_hours_waits_for_their_end(
        shop_factory, push_service: PushService) -> None:
    """Decided at 20:50 (outside quiet hours), but the dispatcher gets to it only at 21:10
    (it was down, or behind, or the push service said 429): it waits for 08:00."""
    shop = shop_factory(QUIET, start=EVENING)
    shop.subscribe_browser("anna", push_service, "laptop")
    shop.event("anna", "subscribed", channels=["push"])
    shop.advance(minutes=10)  # 20:50: decided, queued
    shop.clock.advance_to(EVENING + timedelta(minutes=30))  # 21:10
    assert shop.dispatch().outcomes == {"deferred": 1}
    [row] = shop.dispatches("anna")
    morning = datetime(2026, 3, 3, 7, tzinfo=UTC)  # 08:00 in Warsaw
    assert (row["status"], row["due_at"], row["attempts"], row["quiet"]) == (
        "queued", morning, 0, "21:00-08:00 Europe/Warsaw")
    assert push_service.payloads("laptop") == []
    shop.clock.advance_to(morning - timedelta(seconds=1))
    assert shop.dispatch().claimed == 0
    shop.clock.advance_to(morning)
    assert shop.dispatch().outcomes == {"delivered": 1}
    assert [p["title"] for p in push_service.payloads("laptop")] == ["Hi anna!"]
    assert shop.dispatches("anna")[0]["attempts"] == 1


def test_a_push_a_few_minutes_into_quiet_hours_still_goes(
        shop_factory, push_service: PushService) -> None:
    shop = shop_factory(QUIET, start=EVENING)
    shop.subscribe_browser("anna", push_service, "laptop")
    shop.event("anna", "subscribed", channels=["push"])
    shop.advance(minutes=10)
    shop.clock.advance_to(EVENING + timedelta(minutes=24))  # 21:04: within the 5-minute grace
    assert shop.dispatch().outcomes == {"delivered": 1}


SHARED = """
workflow w {
  stage first {
    on enter: send push hi
    after 10 minutes: send push later
  }
}
message hi push { title "Hi {{ subscriber.id }}" }
message later push { title "Still there, {{ subscriber.id }}?" }
"""


def register_again(shop, push_service: PushService, browser: str, subscriber: str) -> None:
    """The same browser (endpoint and keys) registered for another subscriber: a shared
    computer, where someone else logs in to the shop."""
    keys = push_service.browsers[browser]
    with shop.database.transaction() as connection:
        push_subscriptions.add(connection, subscriber, push_service.endpoint(browser),
                               keys.p256dh, keys.auth_secret, shop.clock.now())


def test_a_browser_registered_for_someone_else_gets_none_of_the_first_ones_pushes(
        shop_factory, push_service: PushService) -> None:
    shop = shop_factory(SHARED)
    shop.subscribe_browser("anna", push_service, "shared")
    shop.event("anna", "subscribed", channels=["push"])  # "Hi anna" decided, not yet sent
    register_again(shop, push_service, "shared", "bob")  # bob logs in on that computer
    [anna_hi] = shop.dispatches("anna")
    assert (anna_hi["status"], anna_hi["last_error"]) == (
        "gone", "the browser was registered to another subscriber before it was sent")
    shop.event("bob", "subscribed", channels=["push"])
    shop.advance(minutes=10)  # anna's "Still there?" falls due: she has no browser now
    assert shop.dispatch().outcomes == {"delivered": 2}
    assert sorted(p["title"] for p in push_service.payloads("shared")) == [
        "Hi bob", "Still there, bob?"]  # (sent concurrently: in either order)
    assert [(d["message"], d["status"], d["reason"]) for d in shop.deliveries("anna")] == [
        ("hi", "sent", None), ("later", "skipped", "no_address")]


def test_a_push_claimed_after_its_browser_changed_hands_is_not_sent(
        shop_factory, push_service: PushService) -> None:
    """The dispatcher's own check, for a send decided while the browser changed hands."""
    shop = shop_factory(SHARED)
    shop.subscribe_browser("anna", push_service, "shared")
    shop.subscribe_browser("bob", push_service, "bobs")
    shop.event("anna", "subscribed", channels=["push"])
    with shop.database.transaction() as connection:  # as if registered for bob meanwhile
        connection.execute(update(PUSH_SUBSCRIPTIONS).where(
            PUSH_SUBSCRIPTIONS.c.endpoint == push_service.endpoint("shared")).values(
            subscriber_id=select(SUBSCRIBERS.c.id).where(
                SUBSCRIBERS.c.external_id == "bob").scalar_subquery()))
    assert shop.dispatch().outcomes == {"gone": 1}
    assert push_service.received == []
    [anna_hi] = shop.dispatches("anna")
    assert anna_hi["last_error"] == HANDED_OVER
    with shop.database.transaction() as connection:  # bob's browser stays live
        removed = connection.execute(select(PUSH_SUBSCRIPTIONS.c.removed_at).where(
            PUSH_SUBSCRIPTIONS.c.endpoint == push_service.endpoint("shared"))).scalar_one()
    assert removed is None


@pytest.mark.parametrize(("subject", "warned"), [
    ("mailto:nurture@localhost", True),  # the default
    ("https://localhost:8000", True),
    ("mailto:ops@shop.invalid", True),
    ("mailto:ops@shop.com", False),
    ("https://shop.com/contact", False),
])
def test_a_vapid_contact_apple_refuses_is_warned_of(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, subject: str, warned: bool) -> None:
    """Apple's push service answers 403 BadJwtToken to a token whose contact is at a local or
    reserved name (the others accept it): every push to Safari and iPhones would fail."""
    from engine.config import Settings
    from tests.channels.conftest import warnings_at_start

    settings = Settings(db=f"sqlite:///{tmp_path / 'd.db'}", secret="s" * 32,
                        vapid_key_file=tmp_path / "vapid.pem", vapid_subject=subject)
    settings.vapid_key(create=True)
    lines = [line for line in warnings_at_start(settings, caplog) if "VAPID" in line]
    assert lines == ([f"NURTURE_VAPID_SUBJECT is {subject}: Apple's push service refuses a "
                      "VAPID contact at a local or reserved name (403 BadJwtToken), so pushes "
                      "to Safari and iPhones would fail; set a real mailto: or https: contact"]
                     if warned else [])


def test_apples_refusal_of_the_vapid_token_says_what_to_check() -> None:
    from channels.webpush import classify

    outcome = classify(403, None, '{"reason":"BadJwtToken"}', T0)
    assert (outcome.kind, outcome.status) == ("failed", 403)
    assert outcome.detail == (
        '{"reason":"BadJwtToken"} (the push service refused the VAPID token: '
        "NURTURE_VAPID_SUBJECT must be a real mailto: or https: contact, and the key the one "
        "the browser subscribed with)")
    assert classify(403, None, "forbidden", T0).detail == "forbidden"
