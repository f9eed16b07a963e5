"""Nothing stale goes out: pushes and e-mails later than the late limit are dropped.

An import of past events (or a client's retry queue after an outage) replays a journey; the
engine decides each step at its own instant, and without a limit every newsletter of the
months replayed would leave at once. Webhooks go to the business and are not limited.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.channels.conftest import T0
from tests.channels.peers import PushService, SmtpServer, WebhookReceiver

DAY = timedelta(days=1)


def test_events_imported_from_the_past_send_nothing_stale(
        shop_factory, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    shop = shop_factory(smtp=smtp_server, late_limit=DAY)
    joined = T0 - timedelta(days=90)
    shop.import_events(
        (joined, "anna", "subscribed", {"channels": ["email"], "email": "anna@example.com"}),
        (joined + timedelta(hours=1), "anna", "page_view", {"url": "/diamonds"}))
    interest = joined + timedelta(hours=1)  # the weekly newsletter counts from here
    rows = [(d["message"], d["status"], d["reason"], d["decided_at"])
            for d in shop.deliveries("anna")]
    assert rows == [("welcome", "skipped", "no_consent", joined + timedelta(minutes=10))] + [
        ("newsletter", "skipped", "late", interest + timedelta(weeks=k)) for k in range(1, 13)]
    assert shop.deliveries("anna")[-1]["content"] == {
        "error": "due 5 days 23 hours ago, more than the late limit of 1 day "
                 "(NURTURE_LATE_LIMIT)"}
    assert shop.dispatch().claimed == 0
    assert smtp_server.messages == []
    assert [r.getMessage() for r in caplog.records if r.name == "nurture.engine"] == [
        "12 push(es) and e-mail(s) were due more than the late limit ago and were not sent "
        "(skipped as late)"]
    shop.advance(days=1, hours=1)  # the 13th newsletter falls due now: on time, it goes
    assert shop.deliveries("anna")[-1]["decided_at"] == interest + timedelta(weeks=13)
    assert shop.dispatch().outcomes == {"delivered": 1}
    assert [m["Subject"] for m in smtp_server.messages] == ["News from our workshop"]


HELLO = """
workflow w {
  stage first { after 10 minutes: send push hi }
}
message hi push { title "Hi {{ subscriber.id }}" }
"""


def test_exactly_the_limit_late_still_goes_with_what_is_left_of_its_ttl(
        shop_factory, push_service: PushService) -> None:
    shop = shop_factory(HELLO, late_limit=DAY)
    for who in ("anna", "bob"):
        shop.subscribe_browser(who, push_service, who)
    shop.import_events(
        (T0 - DAY - timedelta(minutes=10), "anna", "subscribed", {"channels": ["push"]}),
        (T0 - DAY - timedelta(minutes=10, seconds=1), "bob", "subscribed",
         {"channels": ["push"]}))
    assert [(d["status"], d["reason"]) for d in shop.deliveries("anna")] == [("sent", None)]
    assert [(d["status"], d["reason"]) for d in shop.deliveries("bob")] == [("skipped", "late")]
    assert shop.dispatch().outcomes == {"delivered": 1}
    [received] = push_service.received
    assert received.payload["title"] == "Hi anna"
    assert received.headers["TTL"] == str(27 * 86400)  # 4 weeks from the decision, a day ago


BOTH = """
workflow w {
  stage first {
    on enter: send push hi
    on enter: send email hello
    on enter: send webhook crm
  }
}
message hi push { title "Hi" }
message hello email { subject "Hello" text "Hello" }
message crm webhook { url "URL" }
"""


def test_what_the_dispatcher_cannot_send_within_the_limit_expires(
        shop_factory, smtp_server: SmtpServer, push_service: PushService,
        webhook_receiver: WebhookReceiver) -> None:
    """Decided on time, but the dispatcher was down for longer than the limit."""
    shop = shop_factory(BOTH.replace("URL", webhook_receiver.url), smtp=smtp_server,
                        late_limit=DAY)
    shop.subscribe_browser("anna", push_service, "laptop")
    shop.event("anna", "subscribed", channels=["push", "email"], email="anna@example.com")
    assert [d["status"] for d in shop.deliveries("anna")] == ["sent", "sent", "sent"]
    shop.clock.advance_to(T0 + DAY + timedelta(seconds=1))
    assert shop.dispatch().outcomes == {"expired": 2, "delivered": 1}
    rows = {d["channel"]: d for d in shop.dispatches("anna")}
    for channel in ("push", "email"):
        assert rows[channel]["status"] == "expired"
        assert rows[channel]["expires_at"] == T0 + DAY
        assert str(rows[channel]["last_error"]).startswith(
            "expired: not sent before 2026-03-03T09:00:00Z")
    assert rows["webhook"]["status"] == "delivered"  # the business still hears of it
    assert push_service.received == [] and smtp_server.messages == []
    assert [valid for _, _, valid in webhook_receiver.received] == [True]


def test_webhooks_are_never_late(shop_factory, webhook_receiver: WebhookReceiver) -> None:
    shop = shop_factory(BOTH.replace("URL", webhook_receiver.url), late_limit=DAY)
    shop.import_events((T0 - timedelta(days=30), "anna", "subscribed",
                        {"channels": ["push", "email"], "email": "anna@example.com"}))
    assert [(d["channel"], d["status"], d["reason"]) for d in shop.deliveries("anna")] == [
        ("push", "skipped", "no_address"), ("email", "skipped", "late"),
        ("webhook", "sent", None)]
