"""E-mail to a real SMTP server (aiosmtpd) and webhooks to a receiver that checks signatures."""

from __future__ import annotations

import gc
import json
import logging
import re
import ssl
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from channels.email import EmailJob, SmtpSender
from channels.tokens import Signer
from dsl.templates import UNSUBSCRIBE_URL
from engine.store import queries, subscribers
from engine.store.database import DatabaseUnavailable, open_database
from tests.channels.conftest import SECRET
from tests.channels.peers import SmtpServer, WebhookReceiver


def reach_interest(shop) -> None:
    shop.event("anna", "subscribed", channels=["email"], email="anna@example.com",
               attributes={"first_name": "Anna"})
    shop.event("anna", "page_view", url="/diamonds")
    shop.advance(days=7)  # the weekly newsletter of the interest stage


def test_an_email_arrives_with_both_parts_and_one_click_unsubscribe(
        shop_factory, smtp_server: SmtpServer) -> None:
    shop = shop_factory(smtp=smtp_server)
    reach_interest(shop)
    assert shop.dispatch().outcomes == {"delivered": 1}
    [message] = smtp_server.messages
    assert smtp_server.envelopes == [("news@shop.example", ["anna@example.com"])]
    assert message["Subject"] == "News from our workshop"
    assert message["To"] == "anna@example.com"
    assert message["From"] == "Shop <news@shop.example>"
    # subscriber 1's delivery 1, and a keyed tag: a new database numbers from 1.1 again, and
    # Gmail does not show an e-mail whose Message-ID it has seen
    tag = Signer(SECRET).fingerprint("message-id", "1.1")[:16]
    assert message["Message-ID"] == f"<1.1.{tag}@shop.example>"
    assert tag != Signer(b"another installation's").fingerprint("message-id", "1.1")[:16]
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert text.get_content().strip() == "Our new pieces: https://shop.example/new"
    assert "<h1>" in html.get_content() or "<" in html.get_content()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = message["List-Unsubscribe"].strip("<>")
    assert link.startswith("https://nurture.example/v1/unsubscribe?token=")
    # on the wire as RFC 2369 writes it: mail clients read `<URL>`, not RFC 2047 encoded words
    # (the header is longer than a folded line, and has no space to fold at)
    [raw] = smtp_server.raw
    assert f"\r\nList-Unsubscribe: <{link}>\r\n".encode() in raw
    token = parse_qs(urlsplit(link).query)["token"][0]
    assert json.loads(Signer(SECRET).verify("unsubscribe", token)) == {"s": "anna", "c": "email"}
    # the newsletter's `{{ unsubscribe_url }}`: the same signed link, not click-tracked; the
    # shop's own link is
    links = re.findall(r'href="([^"]+)"', html.get_content())
    assert links[-1] == link
    assert [urlsplit(u).path.startswith("/v1/t/c/") for u in links] == [True, False]
    assert UNSUBSCRIBE_URL not in message.as_string()


def test_an_address_the_mail_server_refuses_is_an_email_bounced_event(
        shop_factory, smtp_server: SmtpServer) -> None:
    """`550 5.1.1` (no such mailbox) is a hard bounce: the subscriber gets an `email_bounced`
    event, which workflows score or exit on (`b2b_lead_scoring.flow` takes 10 points); a
    `550 5.7.1` (refused as spam) says nothing about the address and makes none."""
    answers = {"anna@example.com": "550 5.1.1 No such mailbox",
               "bob@example.com": "550 5.7.1 Message refused as spam"}
    smtp_server.handler_answer = answers.get
    shop = shop_factory(flow="""\
workflow w {
  exit on email_bounced
  score quality { on email_bounced -10 }
  stage a { on enter: send email letter }
}
message letter email { subject "News" text "Hello" }
""", smtp=smtp_server)
    shop.dispatcher.on_bounce = shop.engine.ingest  # as the service wires it
    for who in ("anna", "bob"):
        shop.event(who, "subscribed", channels=["email"], email=f"{who}@example.com")
    assert shop.dispatch().outcomes == {"failed": 2}
    smtp_server.handler_answer = None
    with shop.database.transaction() as connection:
        anna, bob = (queries.subscriber_key(connection, who) for who in ("anna", "bob"))
        assert anna is not None and bob is not None
        assert queries.scores(connection, anna) == {("w", "quality"): -10}
        assert queries.scores(connection, bob) == {}
        assert [e["ended_at"] is not None for e in queries.enrolments(connection, anna)] == [
            True]
        exported = subscribers.export(connection, "anna", None)
    assert exported is not None
    bounce = exported["events"][-1]
    assert (bounce["type"], bounce["id"]) == ("email_bounced", f"email_bounced:{anna}.1")
    assert bounce["properties"] == {
        "workflow": "w", "message": "letter", "delivery": f"{anna}.1",
        "address": "anna@example.com", "status": 550, "reason": "5.1.1 No such mailbox"}


def test_a_bounce_the_failing_database_cannot_record_is_told_once_not_a_traceback(
        shop_factory, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    """The send is recorded as failed all the same; the database's failure goes to the
    service's outage report (here a list), not to the log as a traceback."""
    smtp_server.handler_answer = {"anna@example.com": "550 5.1.1 No such mailbox"}.get
    shop = shop_factory(flow="""\
workflow w { stage a { on enter: send email letter } }
message letter email { subject "News" text "Hello" }
""", smtp=smtp_server)

    def down(_events: object) -> None:
        raise DatabaseUnavailable("the database failed: database or disk is full")

    told: list[str] = []
    shop.dispatcher.on_bounce = down
    shop.dispatcher.on_database_failure = lambda problem: told.append(str(problem))
    shop.event("anna", "subscribed", channels=["email"], email="anna@example.com")
    with caplog.at_level(logging.INFO):
        assert shop.dispatch().outcomes == {"failed": 1}
    assert told == ["the database failed: database or disk is full"]
    assert not [r for r in caplog.records if r.exc_info is not None]


def test_a_bounced_address_gets_nothing_more_from_any_workflow_until_it_changes(
        shop_factory, smtp_server: SmtpServer) -> None:
    """After a hard bounce, e-mails still queued for the address are cancelled and later
    ones are skipped (`no_address`), in every workflow, without the workflow saying so; a new
    address is mailed again. The bounce comes from a site's mail service (an event without
    an address: the current one) or from nurture's dispatcher (a real SMTP server refusing)."""
    shop = shop_factory(flow="""\
workflow a { stage s { on enter: send email letter } }
workflow b { stage s { every 1 day: send email drip } }
message letter email { subject "Letter" text "Hello" }
message drip email { subject "Drip" text "Hello again" }
""", smtp=smtp_server)
    shop.dispatcher.on_bounce = shop.engine.ingest  # as the service wires it
    shop.event("anna", "subscribed", channels=["email"], email="anna@example.com")
    shop.event("anna", "email_bounced")  # from the site's mail service, before we sent
    assert shop.dispatch().outcomes == {}
    assert [d["status"] for d in shop.dispatches("anna")] == ["cancelled"]
    assert shop.dispatches("anna")[0]["last_error"] == "the address bounced before it was sent"
    shop.advance(days=1)
    assert [(d["message"], d["status"], d["content"]) for d in shop.deliveries("anna")][1:] == [
        ("drip", "skipped", {"error": "anna@example.com bounced"})]
    shop.event("anna", "attributes", email="anna@example.net")  # a new address
    smtp_server.handler_answer = {"anna@example.net": "550 5.1.1 No such mailbox"}.get
    shop.advance(days=1)
    assert shop.dispatch().outcomes == {"failed": 1}  # the server refuses it: bounced too
    smtp_server.handler_answer = None
    shop.advance(days=1)
    assert shop.dispatch().outcomes == {}
    assert [(d["message"], d["status"], d["reason"]) for d in shop.deliveries("anna")] == [
        ("letter", "sent", None), ("drip", "skipped", "no_address"), ("drip", "sent", None),
        ("drip", "skipped", "no_address")]
    assert smtp_server.messages == []


def test_the_unsubscribe_link_of_a_plain_text_e_mail(shop_factory,
                                                     smtp_server: SmtpServer) -> None:
    shop = shop_factory(flow="""\
workflow w { stage a { on enter: send email letter } }
message letter email {
  subject "News"
  text "Our news.\\n\\nNo more of these: {{ unsubscribe_url }}"
}
""", smtp=smtp_server)
    shop.event("anna", "subscribed", channels=["email"], email="anna@example.com")
    assert shop.dispatch().outcomes == {"delivered": 1}
    [message] = smtp_server.messages
    link = message["List-Unsubscribe"].strip("<>")
    assert message.get_content().strip().splitlines() == [
        "Our news.", "", f"No more of these: {link}"]


def test_an_html_only_e_mail_carries_a_text_part_made_from_it(shop_factory,
                                                              smtp_server: SmtpServer) -> None:
    html = ('<h1>New rings</h1><p>See <a href=\\"https://shop.example/new\\">them</a>.</p>'
            '<p><a href=\\"{{ unsubscribe_url }}\\">Unsubscribe</a></p>')
    shop = shop_factory(flow=f"""\
workflow w {{ stage a {{ on enter: send email letter }} }}
message letter email {{
  subject "News"
  html "{html}"
}}
""", smtp=smtp_server)
    shop.event("anna", "subscribed", channels=["email"], email="anna@example.com")
    assert shop.dispatch().outcomes == {"delivered": 1}
    [message] = smtp_server.messages
    assert message.get_content_type() == "multipart/alternative"
    text, part = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and part is not None
    tracked, unsubscribe = re.findall(r'href="([^"]+)"', part.get_content())
    assert urlsplit(tracked).path.startswith("/v1/t/c/")  # the text's link is tracked too
    assert text.get_content().splitlines() == [
        "New rings", "", f"See them ({tracked}).", "", f"Unsubscribe ({unsubscribe})"]


def test_a_permanent_smtp_refusal_fails_a_temporary_one_is_retried(
        shop_factory, smtp_server: SmtpServer) -> None:
    answers = {"anna@example.com": "550 5.1.1 No such mailbox",
               "bob@example.com": "451 4.3.0 Try again later"}
    smtp_server.handler_answer = answers.get
    shop = shop_factory(smtp=smtp_server)
    for who in ("anna", "bob"):
        shop.event(who, "subscribed", channels=["email"], email=f"{who}@example.com")
        shop.event(who, "page_view", url="/diamonds")
    shop.advance(days=7)
    shop.dispatch()
    assert [(d["status"], d["last_status"]) for d in shop.dispatches("anna")] == [
        ("failed", 550)]
    assert [(d["status"], d["last_status"]) for d in shop.dispatches("bob")] == [
        ("queued", 451)]
    smtp_server.handler_answer = None
    shop.clock.advance_to(shop.dispatches("bob")[0]["due_at"])
    shop.dispatch()
    assert [d["status"] for d in shop.dispatches("bob")] == ["delivered"]
    assert [m["To"] for m in smtp_server.messages] == ["bob@example.com"]


def test_starttls_and_authentication(ca, server_tls: ssl.SSLContext,
                                     client_tls: ssl.SSLContext) -> None:
    server = SmtpServer()
    server.start(tls=server_tls, require_starttls=True, users={"shop": "s3cret pass"})
    try:
        job = EmailJob("9.9", "anna@example.com", "Hello", "text", None,
                       "https://nurture.example/u")
        good = SmtpSender(f"smtp://shop:s3cret%20pass@127.0.0.1:{server.port}"
                          "?starttls=require", "news@shop.example", tls=client_tls)
        assert [o.kind for o in good.send_all([job])] == ["delivered"]
        wrong = SmtpSender(f"smtp://shop:nope@127.0.0.1:{server.port}?starttls=require",
                           "news@shop.example", tls=client_tls)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            [refused] = wrong.send_all([job])
            gc.collect()
        assert [w for w in caught if w.category is ResourceWarning] == []  # the socket closed
        assert refused.kind == "retry"  # our setup, not the mail: tried again later
        assert refused.detail.startswith("SMTPAuthenticationError: (535, ")
        assert len(server.messages) == 1
    finally:
        server.stop()


def test_one_e_mail_that_cannot_be_written_fails_alone(smtp_server: SmtpServer) -> None:
    """An address no header can carry (stored before addresses were checked as they are now)
    fails that e-mail for good; the rest of the batch goes out, and a subject the template
    broke over lines goes out on one line (a value cannot add headers)."""
    sender = SmtpSender(f"smtp://127.0.0.1:{smtp_server.port}?starttls=no", "news@shop.example")
    jobs = [EmailJob("1.1", "anna@example.com", "Hello", "text", None, "https://n.example/u"),
            EmailJob("2.1", "bob@example.com\r\nBcc: eve@example.com", "Hello", "text", None,
                     "https://n.example/u"),
            EmailJob("3.1", "cid@example.com", "Hello Cid\r\nBcc: eve@example.com", "text",
                     None, "https://n.example/u")]
    outcomes = sender.send_all(jobs)
    assert [o.kind for o in outcomes] == ["delivered", "failed", "delivered"]
    assert outcomes[1].detail.startswith("cannot write this e-mail: ")
    assert [to for _, to in smtp_server.envelopes] == [["anna@example.com"], ["cid@example.com"]]
    assert smtp_server.messages[1]["Subject"] == "Hello Cid Bcc: eve@example.com"
    assert smtp_server.messages[1]["Bcc"] is None


def test_an_international_address_a_relay_cannot_take_fails_at_once() -> None:
    """`zoë@example.com` needs SMTPUTF8; a relay without it will not have it in an hour, so
    the e-mail fails instead of being retried for hours (each time on a new connection)."""
    server = SmtpServer()
    server.start(smtputf8=False)
    try:
        sender = SmtpSender(f"smtp://127.0.0.1:{server.port}?starttls=no", "news@shop.example")
        outcomes = sender.send_all([
            EmailJob("1.1", "zoë@example.com", "Hello", "text", None, "https://n.example/u"),
            EmailJob("2.1", "anna@example.com", "Hello", "text", None, "https://n.example/u")])
        assert [(o.kind, o.detail) for o in outcomes] == [
            ("failed", "the relay does not take addresses beyond ASCII (it offers no SMTPUTF8)"),
            ("delivered", "accepted by the relay")]
        assert server.envelopes == [("news@shop.example", ["anna@example.com"])]
    finally:
        server.stop()


def test_an_e_mail_whose_send_raises_is_retried_and_the_batch_goes_on(
        smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import channels.email

    real = channels.email.build_message

    def build(job: EmailJob, sender: str) -> Any:
        if job.key == "2.1":
            raise RuntimeError("forced")
        return real(job, sender)

    monkeypatch.setattr(channels.email, "build_message", build)
    sender = SmtpSender(f"smtp://127.0.0.1:{smtp_server.port}?starttls=no", "news@shop.example")
    jobs = [EmailJob(f"{n}.1", f"{who}@example.com", "Hello", "text", None, "https://n.example/u")
            for n, who in ((1, "anna"), (2, "bob"), (3, "cid"))]
    outcomes = sender.send_all(jobs)
    assert [(o.kind, o.detail) for o in outcomes][1] == ("retry", "RuntimeError: forced")
    assert [o.kind for o in outcomes] == ["delivered", "retry", "delivered"]
    assert [to for _, to in smtp_server.envelopes] == [["anna@example.com"], ["cid@example.com"]]


@pytest.mark.parametrize("url", ["http://relay.example", "smtp://", "smtp://h?starttls=maybe"])
def test_a_bad_smtp_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="NURTURE_SMTP_URL"):
        SmtpSender(url, "news@shop.example")


HOOK = """\
workflow crm {
  score engagement { on purchase +50 }
  stage lead { go to hot when engagement >= 50 }
  stage hot { on enter: send webhook hand_off }
}
message hand_off webhook {
  url "URL"
  body "{\\"lead\\": \\"{{ subscriber.id }}\\", \\"score\\": {{ scores.engagement }}}"
}
"""


def test_a_webhook_arrives_signed_and_a_5xx_is_retried(
        shop_factory, webhook_receiver: WebhookReceiver) -> None:
    shop = shop_factory(HOOK.replace("URL", webhook_receiver.url))
    webhook_receiver.answers = [503]
    shop.event("anna", "subscribed", channels=[])
    shop.event("anna", "purchase")
    assert shop.dispatch().outcomes == {"queued": 1}
    shop.clock.advance_to(shop.dispatches("anna")[0]["due_at"])
    assert shop.dispatch().outcomes == {"delivered": 1}
    assert [valid for _, _, valid in webhook_receiver.received] == [True, True]
    headers, body, _ = webhook_receiver.received[1]
    assert json.loads(body) == {"lead": "anna", "score": 50}
    assert headers["X-Nurture-Delivery"] == "1.1"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "nurture-webhook/1"  # named in the receiver's log


def test_a_webhook_with_a_bad_signature_is_refused_by_the_receiver(
        shop_factory, webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.secret = b"another-secret-entirely-000000000"
    shop = shop_factory(HOOK.replace("URL", webhook_receiver.url))
    shop.event("anna", "subscribed", channels=[])
    shop.event("anna", "purchase")
    shop.dispatch()
    assert [valid for _, _, valid in webhook_receiver.received] == [False]
    assert [(d["status"], d["last_status"]) for d in shop.dispatches("anna")] == [
        ("failed", 401)]


def test_the_unsubscribe_link_withdraws_email_consent(shop_factory,
                                                      smtp_server: SmtpServer) -> None:
    from engine.links import unsubscribe_event

    shop = shop_factory(smtp=smtp_server)
    reach_interest(shop)
    shop.dispatch()
    link = smtp_server.messages[0]["List-Unsubscribe"].strip("<>")
    token = parse_qs(urlsplit(link).query)["token"][0]
    shop.engine.ingest([unsubscribe_event(Signer(SECRET), token, shop.clock.now())])
    shop.advance(days=7)  # the next newsletter
    with shop.database.transaction() as connection:
        from engine.store import queries
        key = queries.subscriber_key(connection, "anna")
        assert key is not None
        history = queries.consents(connection, key)
        assert [(c["channel"], c["granted"]) for c in history][-1] == ("email", False)
        assert [d.status for d in queries.deliveries(connection, key)] == ["sent"]
        assert queries.stages(connection, key) == {}  # jewelry: exit on unsubscribed
    with pytest.raises(Exception, match="signature"):
        unsubscribe_event(Signer(SECRET), token[:-2] + "xx", shop.clock.now())


def test_a_delivery_traces_back_to_its_step_and_the_score_that_caused_it(
        shop_factory, webhook_receiver: WebhookReceiver) -> None:
    from engine.store import queries

    shop = shop_factory(HOOK.replace("URL", webhook_receiver.url))
    shop.event("anna", "subscribed", channels=[])
    shop.event("anna", "purchase")
    with shop.database.transaction() as connection:
        key = queries.subscriber_key(connection, "anna")
        assert key is not None
        trace = queries.trace_delivery(connection, key, 1)
    assert trace is not None
    assert (trace["workflow"], trace["stage"], trace["message"]) == ("crm", "hot", "hand_off")
    assert trace["step"].endswith("w.flow:4")
    assert trace["entered_by"].endswith("w.flow:3")  # go to hot when engagement >= 50
    assert trace["scores_at_entry"]["engagement"]["total"] == 50
    assert trace["scores_at_entry"]["engagement"]["changed_by"].endswith("w.flow:2")
    assert trace["scores_at_entry"]["engagement"]["event"] == "purchase"


def test_every_web_link_of_the_html_is_click_tracked_in_either_quotes_and_no_stylesheet(
) -> None:
    from datetime import UTC, datetime

    from engine.dispatcher import Links
    from engine.store.outbox import Claimed

    links = Links(Signer(SECRET), "https://nurture.example")
    claimed = Claimed(7, 3, "anna", 2, "email", 0, "anna@example.com", None, "w", "m", {},
                      None, None, None, None, False, False, None,
                      datetime(2026, 3, 2, tzinfo=UTC))
    fonts = "https://fonts.googleapis.com/css?family=Ubuntu:300,400"
    html = (f'<head><link href="{fonts}" rel="stylesheet" type="text/css"></head>'
            '<a href="https://shop.example/a">a</a> '
            '<a HREF = \'https://shop.example/b?x=1&amp;y=2\'>b</a> '
            '<a class="button"\n   href="https://shop.example/c">c</a> '
            '<map><area shape="rect" coords="0,0,9,9" href="https://shop.example/d"></map> '
            '<!--[if mso]><v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" '
            'href="https://shop.example/e" arcsize="10%"><w:anchorlock/></v:roundrect>'
            '<![endif]--> '
            '<a href="mailto:help@shop.example">mail</a> <a href="#top">top</a>')
    tracked = links.tracked_html(claimed, html)
    assert tracked is not None
    targets = re.findall(r'href\s*=\s*"https://nurture\.example/v1/t/c/([^"]+)"', tracked,
                         re.IGNORECASE)
    assert [json.loads(Signer(SECRET).verify("click", t))["u"] for t in targets] == [
        "https://shop.example/a", "https://shop.example/b?x=1&y=2", "https://shop.example/c",
        "https://shop.example/d", "https://shop.example/e"]
    assert 'href="mailto:help@shop.example"' in tracked and 'href="#top"' in tracked
    # a stylesheet or web font the mail client loads on opening is no click
    assert f'<link href="{fonts}" rel="stylesheet"' in tracked
    assert '<a class="button"\n   href="https://nurture.example/v1/t/c/' in tracked


@pytest.mark.parametrize(("public_url", "warned"), [
    ("http://localhost:8000", True),  # the default
    ("http://127.0.0.1:8000", True),
    ("http://[::1]:8000", True),
    ("https://nurture.shop.example", False),
    ("http://10.0.0.5:8000", False),  # a private address: some recipients may reach it
])
def test_e_mail_links_only_this_machine_can_open_are_warned_of(
        tmp_path: Any, caplog: pytest.LogCaptureFixture, public_url: str, warned: bool) -> None:
    """Every e-mail carries an unsubscribe link: pointing at localhost, nobody could use it."""
    from engine.config import Settings
    from tests.channels.conftest import warnings_at_start

    settings = Settings(db=f"sqlite:///{tmp_path / 'd.db'}", smtp_url="smtp://127.0.0.1:2525",
                        public_url=public_url, secret="s" * 32,
                        vapid_key_file=tmp_path / "no-such-key.pem")
    lines = [line for line in warnings_at_start(settings, caplog) if "unsubscribe" in line]
    assert lines == ([f"e-mails' unsubscribe and tracking links will point at {public_url}, "
                      "which only this machine can open: recipients could not unsubscribe. "
                      "Set NURTURE_PUBLIC_URL to the address the service is reached at"]
                     if warned else [])


def test_a_receiver_still_on_the_replaced_secret_accepts_webhooks_during_a_rotation() -> None:
    import asyncio

    from channels.endpoints import WebhookAddressPolicy
    from channels.webhook import WebhookJob, WebhookSender

    old, new = b"o" * 32, b"n" * 32
    receiver = WebhookReceiver(old)
    port = urlsplit(receiver.url).port
    policy = WebhookAddressPolicy.from_hosts([f"127.0.0.1:{port}"])

    async def send(previous: bytes | None) -> Any:
        sender = WebhookSender(new, policy=policy, previous=previous)
        try:
            return await sender.send(WebhookJob("1.1", receiver.url, b'{"lead": "ann"}'))
        finally:
            await sender.close()

    try:
        during, after = asyncio.run(send(old)), asyncio.run(send(None))
    finally:
        receiver.stop()
    assert [during.kind, after.kind] == ["delivered", "failed"]  # 401 once it is retired
    assert [valid for _, _, valid in receiver.received] == [True, False]
    assert "X-Nurture-Signature-Previous" not in receiver.received[1][0]


def test_the_operators_dispatcher_signs_with_the_replaced_secret_while_it_is_kept(
        tmp_path: Path) -> None:
    from engine.config import Settings
    from engine.dispatcher import from_settings

    def webhook_secrets(**options: Any) -> tuple[bytes, bytes | None]:
        settings = Settings(db=f"sqlite:///{tmp_path / 'd.db'}", secret="the-new-long-secret",
                            vapid_key_file=tmp_path / "vapid.pem", **options)
        database = open_database(settings.db)
        try:
            webhook = from_settings(settings, database).webhook
        finally:
            database.dispose()
        assert webhook is not None
        return webhook.secret, webhook.previous

    assert webhook_secrets() == (b"the-new-long-secret", None)
    assert webhook_secrets(previous_secrets=("the-old-long-secret", "older-long-secret")) == (
        b"the-new-long-secret", b"the-old-long-secret")


def test_a_webhook_does_not_reach_this_machine_or_the_cloud_metadata(
        webhook_receiver: WebhookReceiver) -> None:
    """A template may take a webhook's host from a subscriber's data, and the answer is kept
    where the marketer reads it: loopback and link-local addresses are refused (written as
    addresses, or as names that resolve to them) unless the operator allows the host."""
    import asyncio

    from channels.endpoints import WebhookAddressPolicy
    from channels.webhook import WebhookJob, WebhookSender

    port = urlsplit(webhook_receiver.url).port

    async def send(url: str, allowed: tuple[str, ...] = ()) -> Any:
        sender = WebhookSender(SECRET, policy=WebhookAddressPolicy.from_hosts(allowed))
        try:
            return await sender.send(WebhookJob("1.1", url, b"{}"))
        finally:
            await sender.close()

    async def run() -> list[Any]:
        return [await send(f"http://127.0.0.1:{port}/hook"),
                await send(f"http://localhost:{port}/hook"),  # a name: refused at resolving
                await send("http://169.254.169.254/latest/meta-data/"),
                await send(f"http://[::ffff:127.0.0.1]:{port}/hook"),
                await send(f"http://localhost:{port}/hook", allowed=(f"localhost:{port}",))]

    *refused, allowed = asyncio.run(run())
    assert [(o.kind, o.status) for o in refused] == [("failed", None)] * 4
    assert refused[0].detail == (
        "refused: 127.0.0.1, an address of this machine or its cloud (loopback, link-local), "
        "which webhooks may not reach; allow the host with NURTURE_WEBHOOK_ALLOW_HOSTS if it "
        "is meant")
    assert refused[1].detail.startswith("refused: localhost resolves to 127.0.0.1, an address")
    assert "169.254.169.254, an address" in refused[2].detail
    assert (allowed.kind, allowed.status) == ("delivered", 200)
    assert len(webhook_receiver.received) == 1  # only the allowed one arrived
    # a CRM inside the company stays reachable: private networks are not refused
    assert WebhookAddressPolicy().refusal("crm.internal", 443, "10.0.0.5") is None


@pytest.mark.parametrize(("sender", "warned"), [
    ("nurture <nurture@localhost>", True),  # the default
    ("Shop <news@shop.invalid>", True),
    ("Shop <news@shop.com>", False),
])
def test_e_mail_from_a_domain_no_server_accepts_is_warned_of(
        tmp_path: Any, caplog: pytest.LogCaptureFixture, sender: str, warned: bool) -> None:
    from engine.config import Settings
    from tests.channels.conftest import warnings_at_start

    settings = Settings(db=f"sqlite:///{tmp_path / 'd.db'}", smtp_url="smtp://127.0.0.1:2525",
                        public_url="https://nurture.shop.com", email_from=sender,
                        secret="s" * 32, vapid_key_file=tmp_path / "no-such-key.pem")
    lines = [line for line in warnings_at_start(settings, caplog) if "come from" in line]
    assert lines == ([f"e-mails will come from {sender}, a local or reserved domain that "
                      "receiving servers refuse or file as spam; set NURTURE_EMAIL_FROM to an "
                      "address of the shop's own domain"] if warned else [])
