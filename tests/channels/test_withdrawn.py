"""A message waiting in the outbox is cancelled when consent is withdrawn, the subscriber
exits (SPEC §1.3: "pending messages are cancelled"; §2: sends need consent) or leaves the
stage that sent it (§1.5a: a postponed send stays tied to its stage step), and an e-mail goes
to the address the subscriber has changed to meanwhile.

Normally the dispatcher sends within a second of the decision; a message can wait for hours
when it comes late into quiet hours (it waits for their end) or when the peer asks to retry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.channels.peers import SmtpServer

FLOW = """
workflow w {
  exit on left
  timezone "Europe/Warsaw"
  quiet hours 21:00 to 08:00
  tag "vip" on moved where vip == true
  stage first {
    after 10 minutes: send email hello
    go to second on moved
  }
  stage second {
    on enter: send email passing
    go to third when has tag "vip"
  }
  stage third { }
}
message hello email { subject "Hello" text "Hello" }
message passing email { subject "Passing" text "Passing" }
"""
EVENING = datetime(2026, 3, 2, 19, 40, tzinfo=UTC)  # 20:40 in Warsaw
MORNING = datetime(2026, 3, 3, 7, tzinfo=UTC)  # 08:00 in Warsaw


@pytest.mark.parametrize(("event", "properties", "why"), [
    ("unsubscribed", {"channels": ["email"]},
     "consent for email was withdrawn before it was sent"),
    ("unsubscribed", {}, "consent for email was withdrawn before it was sent"),
    ("left", {}, "the subscriber left workflow w before it was sent"),
    ("moved", {}, "the subscriber left stage first before it was sent"),
])
def test_a_message_waiting_for_the_end_of_quiet_hours_is_cancelled(
        shop_factory, smtp_server: SmtpServer, event: str, properties: dict[str, object],
        why: str) -> None:
    shop = shop_factory(FLOW, smtp=smtp_server, start=EVENING)
    shop.event("anna", "subscribed", channels=["email"], email="anna@example.com")
    shop.advance(minutes=10)  # 20:50: decided, queued
    shop.clock.advance_to(EVENING + timedelta(minutes=30))  # 21:10: it waits for 08:00
    assert shop.dispatch().outcomes == {"deferred": 1}
    shop.clock.advance_to(EVENING + timedelta(hours=2))
    shop.event("anna", event, **properties)
    [row] = shop.dispatches("anna")
    assert (row["status"], row["due_at"], row["finished_at"], row["last_error"]) == (
        "cancelled", None, EVENING + timedelta(hours=2), why)
    shop.clock.advance_to(MORNING)
    assert shop.dispatch().claimed == 0
    assert smtp_server.messages == []


def test_a_withdrawal_in_the_same_batch_cancels_what_was_decided_before_it(
        shop_factory, smtp_server: SmtpServer) -> None:
    shop = shop_factory(FLOW, smtp=smtp_server)
    now = shop.clock.now()
    shop.import_events(
        (now - timedelta(minutes=20), "anna", "subscribed",
         {"channels": ["email"], "email": "anna@example.com"}),
        (now - timedelta(minutes=5), "anna", "unsubscribed", {}),
        (now - timedelta(minutes=20), "bob", "subscribed",
         {"channels": ["email"], "email": "bob@example.com"}))
    assert [d["status"] for d in shop.deliveries("anna")] == ["sent"]  # decided at -10 min
    assert [(r["status"], r["last_error"]) for r in shop.dispatches("anna")] == [
        ("cancelled", "consent for email was withdrawn before it was sent")]
    assert shop.dispatch().outcomes == {"delivered": 1}
    assert [m["To"] for m in smtp_server.messages] == ["bob@example.com"]


EVERY = """
workflow w {
  stage first { every 30 minutes, 3 times: send email hello }
}
message hello email { subject "Hello" text "Hello" }
"""


def test_only_what_was_queued_before_the_withdrawal_is_cancelled(
        shop_factory, smtp_server: SmtpServer) -> None:
    shop = shop_factory(EVERY, smtp=smtp_server)
    shop.event("anna", "subscribed", channels=["email"], email="anna@example.com")
    shop.advance(minutes=30)  # the first: queued
    shop.advance(minutes=10)
    shop.event("anna", "unsubscribed")
    shop.advance(minutes=10)
    shop.event("anna", "subscribed", channels=["email"])
    shop.advance(minutes=10)  # the second: consent again
    assert [r["status"] for r in shop.dispatches("anna")] == ["cancelled", "queued"]
    assert shop.dispatch().outcomes == {"delivered": 1}
    assert len(smtp_server.messages) == 1


def test_a_waiting_e_mail_goes_to_the_address_the_subscriber_changed_to(
        shop_factory, smtp_server: SmtpServer) -> None:
    shop = shop_factory(FLOW, smtp=smtp_server, start=EVENING)
    shop.event("anna", "subscribed", channels=["email"], email="anna@old.example")
    shop.advance(minutes=10)  # 20:50: decided for anna@old.example, queued
    shop.clock.advance_to(EVENING + timedelta(minutes=30))
    assert shop.dispatch().outcomes == {"deferred": 1}  # waits for 08:00
    shop.event("anna", "attributes", email="anna@new.example")
    shop.clock.advance_to(MORNING)
    assert shop.dispatch().outcomes == {"delivered": 1}
    assert [to for _, to in smtp_server.envelopes] == [["anna@new.example"]]


def test_a_waiting_e_mail_is_cancelled_when_the_address_is_removed(
        shop_factory, smtp_server: SmtpServer) -> None:
    shop = shop_factory(FLOW, smtp=smtp_server)
    now = shop.clock.now()
    shop.import_events(  # decided at -10 min, the address changed at -5 min: one batch
        (now - timedelta(minutes=20), "anna", "subscribed",
         {"channels": ["email"], "email": "anna@old.example"}),
        (now - timedelta(minutes=5), "anna", "attributes", {"email": "anna@new.example"}),
        (now - timedelta(minutes=20), "bob", "subscribed",
         {"channels": ["email"], "email": "bob@old.example"}))
    assert [r["address"] for r in shop.dispatches("anna")] == ["anna@new.example"]
    shop.event("bob", "attributes", email=None)
    assert [(r["status"], r["last_error"]) for r in shop.dispatches("bob")] == [
        ("cancelled", "the e-mail address was removed before it was sent")]
    assert shop.dispatch().outcomes == {"delivered": 1}
    assert [to for _, to in smtp_server.envelopes] == [["anna@new.example"]]


def test_a_stage_passed_through_in_one_evaluation_keeps_what_it_sent_then(
        shop_factory, smtp_server: SmtpServer) -> None:
    """`second`'s e-mail is decided at the instant its stage is left, in the same evaluation
    (the timeline says it went then): it is sent."""
    shop = shop_factory(FLOW, smtp=smtp_server)  # 10:00 in Warsaw: no quiet hours
    shop.event("bob", "subscribed", channels=["email"], email="bob@example.com")
    shop.event("bob", "moved", vip=True)  # first → second (its e-mail) → third
    assert [(d["stage"], d["message"], d["status"]) for d in shop.deliveries("bob")] == [
        ("second", "passing", "sent")]
    assert [r["status"] for r in shop.dispatches("bob")] == ["queued"]
    assert shop.dispatch().outcomes == {"delivered": 1}
    assert [m["Subject"] for m in smtp_server.messages] == ["Passing"]


def test_many_subscribers_leaving_their_stage_in_one_batch_each_lose_only_their_own(
        shop_factory, smtp_server: SmtpServer) -> None:
    shop = shop_factory(FLOW, smtp=smtp_server, start=EVENING)
    people = ["anna", "bob", "chen", "dara"]
    shop.event_of_each(people, "subscribed", channels=["email"], email="x@example.com")
    shop.advance(minutes=10)  # 20:50: four e-mails decided, queued
    shop.clock.advance_to(EVENING + timedelta(minutes=30))
    assert shop.dispatch().outcomes == {"deferred": 4}  # they wait for 08:00
    shop.event_of_each(people[:3], "moved")  # one batch, three stages left
    assert [[r["status"] for r in shop.dispatches(who)] for who in people] == [
        ["cancelled"], ["cancelled"], ["cancelled"], ["queued"]]
    shop.clock.advance_to(MORNING)
    assert shop.dispatch().outcomes == {"delivered": 1}
