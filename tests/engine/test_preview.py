"""`nurture preview`: a message rendered for one subscriber, as a send would render it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from dsl.loader import load_paths
from engine.cli import main
from engine.clock import VirtualClock
from engine.events import parse_event
from engine.processor import Engine
from engine.store import push_subscriptions
from engine.store.database import open_database
from tests.channels.peers import PushService, SmtpServer, WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = str(ROOT / "workflows")
FLOW = """\
workflow w {
  score fit { when role == "cto" +10 }
  stage a {
    on enter: send push hi with code = "A1"
    on enter: send email hi
  }
}
message hi push { title "Hi {{ subscriber.first_name }}, {{ code }} ({{ scores.fit }})" }
message hi email { subject "Hi" text "Hi {{ subscriber.nickname }}" }
message hi push lang "de" { title "Hallo {{ subscriber.first_name }}" }
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["preview", *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_variant_for_the_subscribers_locale_with_their_attributes() -> None:
    code, out, _ = run(WORKFLOWS, "--message", "welcome", "--attribute", "first_name=Anna",
                       "--attribute", "locale=pl-PL")
    assert code == 0
    assert out.splitlines() == [
        "message welcome push lang pl (sent by workflow 'jewelry', stage 'awareness')",
        "title: Cześć Anna!",
        "body: Dziękujemy za subskrypcję. Zobacz nasze bestsellery.",
        "url: https://shop.example/pl/bestsellery",
        "ttl: 2419200",
        "urgency: normal"]


def test_scores_tags_and_with_values(tmp_path: Path) -> None:
    (tmp_path / "w.flow").write_text(FLOW, encoding="utf-8")
    code, out, _ = run(str(tmp_path / "w.flow"), "--message", "hi", "--channel", "push",
                       "--attribute", "first_name=Ann", "--score", "fit=10", "--json")
    assert (code, json.loads(out)) == (0, {"title": "Hi Ann, A1 (10)", "ttl": 2419200,
                                           "urgency": "normal"})
    code, out, _ = run(str(tmp_path / "w.flow"), "--message", "hi", "--channel", "push",
                       "--attribute", "first_name=Ann", "--with", "code=B2", "--json")
    assert json.loads(out)["title"] == "Hi Ann, B2 (0)"
    code, out, _ = run(str(tmp_path / "w.flow"), "--message", "hi", "--channel", "push",
                       "--attribute", "first_name=Jörg", "--attribute", "locale=de-CH", "--json")
    assert json.loads(out)["title"] == "Hallo Jörg"


def test_what_keeps_a_message_from_showing_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "w.flow").write_text(FLOW, encoding="utf-8")
    flow = str(tmp_path / "w.flow")
    cases = [
        (["--message", "hii"], "nurture: no message 'hii'; did you mean 'hi'?"),
        (["--message", "hi"], "nurture: message 'hi' is there for email and push: choose one "
                              "with --channel"),
        (["--message", "hi", "--channel", "webhook"],
         "nurture: message 'hi' has no webhook variant (it has email, push)"),
        (["--message", "hi", "--channel", "email"],
         "nurture: message 'hi' (email) does not render for this subscriber: text: "
         "subscriber.nickname is undefined; a default avoids this: {{ subscriber.nickname | "
         "default('…') }} (a send would be skipped as render_error)"),
        (["--message", "hi", "--channel", "push", "--attribute", "first_name=A",
          "--score", "fitt=1"], "nurture: no score 'fitt' in workflow 'w'; did you mean 'fit'?"),
    ]
    for args, said in cases:
        code, out, err = run(flow, *args)
        assert (code, out, err.strip()) == (1, "", said), args


def test_a_stored_subscriber_as_the_database_has_them(tmp_path: Path) -> None:
    """`--subscriber ann --db …`: her attributes, scores and tags; flags change them."""
    from dsl.loader import load_paths
    from engine.clock import VirtualClock
    from engine.events import parse_event
    from engine.processor import Engine
    from engine.store.database import open_database

    url = f"sqlite:///{tmp_path / 'n.db'}"
    catalog = load_paths([WORKFLOWS]).catalog
    assert catalog is not None
    database = open_database(url)
    clock = VirtualClock(datetime(2026, 3, 2, 9, tzinfo=UTC))
    Engine(catalog, database, clock=clock).ingest([parse_event(raw, seq) for seq, raw in (
        (1, {"subscriber": "ann", "type": "subscribed", "at": "2026-03-02T09:00:00Z",
             "properties": {"channels": ["email"], "email": "ann@example.com",
                            "attributes": {"first_name": "Ann"}}}),
        (2, {"subscriber": "ann", "type": "page_view", "at": "2026-03-02T09:00:00Z",
             "properties": {"url": "/diamonds"}}))])
    database.dispose()
    code, out, _ = run(WORKFLOWS, "--message", "newsletter", "--subscriber", "ann", "--db", url,
                       "--json")
    assert code == 0
    html = json.loads(out)["html"]
    assert "<p>Hello Ann,</p>" in html and "You liked our diamonds" in html  # her tag
    code, out, _ = run(WORKFLOWS, "--message", "sales_alert", "--subscriber", "ann", "--db",
                       url, "--json")
    assert json.loads(json.loads(out)["body"]) == {"lead": "ann", "score": 30}
    code, out, _ = run(WORKFLOWS, "--message", "sales_alert", "--subscriber", "ann", "--db",
                       url, "--score", "engagement=80", "--json")
    assert json.loads(json.loads(out)["body"])["score"] == 80
    code, _, err = run(WORKFLOWS, "--message", "newsletter", "--subscriber", "an", "--db", url)
    assert (code, err.strip()) == (
        2, "nurture: no subscriber 'an' in the database; did you mean 'ann'?")


NEWS = (
    "workflow w {\n"
    "  stage a { on enter: send email news }\n"
    "}\n"
    "message news email {\n"
    '  subject "News for {{ subscriber.first_name }}"\n'
    '  html "<p>Hi {{ subscriber.first_name }}: <a href=\\"https://shop.example/new\\">new</a>'
    ' <a href=\\"{{ unsubscribe_url }}\\">stop</a></p>"\n'
    "}\n"
    'message ping webhook { url "https://crm.example/hook" }\n')


def _relay(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env of the repository's
    monkeypatch.setenv("NURTURE_SMTP_URL", url)
    monkeypatch.setenv("NURTURE_EMAIL_FROM", "Shop <news@shop.example>")
    monkeypatch.setenv("NURTURE_PUBLIC_URL", "https://nurture.shop.example")
    flow = tmp_path / "w.flow"
    flow.write_text(NEWS, encoding="utf-8")
    return flow


def test_an_email_is_sent_as_a_test_to_the_address_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_server: SmtpServer) -> None:
    flow = _relay(monkeypatch, tmp_path, f"smtp://127.0.0.1:{smtp_server.port}?starttls=no")
    code, out, err = run(str(flow), "--message", "news", "--attribute", "first_name=Ann",
                         "--send-to", "me@shop.example")
    assert code == 0, err
    assert out.splitlines()[:2] == ["message news email (sent by workflow 'w', stage 'a')",
                                    "subject: News for Ann"]
    assert err == (f"sent to me@shop.example through 127.0.0.1:{smtp_server.port} as a test "
                   "(250 accepted by the relay)\n")
    [message] = smtp_server.messages
    assert smtp_server.envelopes == [("news@shop.example", ["me@shop.example"])]
    assert (message["To"], message["Subject"]) == ("me@shop.example", "News for Ann")
    inert = "https://nurture.shop.example/v1/unsubscribe"  # no token: unsubscribes nobody
    assert message["List-Unsubscribe"] == f"<{inert}>"
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert html.strip() == (
        '<p>Hi Ann: <a href="https://shop.example/new">new</a> '
        f'<a href="{inert}">stop</a></p>')  # not tracked, no pixel
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.startswith("Hi Ann: new")
    run(str(flow), "--message", "news", "--send-to", "me@shop.example",
        "--attribute", "first_name=Bo")
    assert len({m["Message-ID"] for m in smtp_server.messages}) == 2  # each test shown


def test_a_test_email_that_does_not_go_says_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = SmtpServer(handler_answer=lambda to: "550 5.1.1 no such user"
                        if to.startswith("nobody@") else None)
    server.start(users={"shop": "right"})
    try:
        flow = _relay(monkeypatch, tmp_path, f"smtp://shop:wrong@127.0.0.1:{server.port}")
        code, _, err = run(str(flow), "--message", "news", "--attribute", "first_name=Ann",
                           "--send-to", "me@shop.example")
        assert code == 1
        assert err.startswith(f"nurture: the test e-mail to me@shop.example was not sent; "
                              f"127.0.0.1:{server.port} could not be reached or failed: "
                              "SMTPAuthenticationError: (535")
        monkeypatch.setenv("NURTURE_SMTP_URL", f"smtp://shop:right@127.0.0.1:{server.port}")
        code, _, err = run(str(flow), "--message", "news", "--attribute", "first_name=Ann",
                           "--send-to", "nobody@shop.example")
        assert (code, err) == (1, "nurture: the test e-mail to nobody@shop.example was not "
                                  f"sent; 127.0.0.1:{server.port} refused it: 550 5.1.1 no "
                                  "such user\n")
        assert server.messages == []
        code, _, err = run(str(flow), "--message", "ping", "--send-to", "me@shop.example")
        assert code == 2  # a webhook goes to a URL
        assert "'me@shop.example' is not an http(s) URL (the message is a webhook)" in err
        code, _, err = run(str(flow), "--message", "news", "--attribute", "first_name=Ann",
                           "--send-to", "me")
        assert code == 2 and "'me' is not an e-mail address (the message is an e-mail)" in err
        monkeypatch.delenv("NURTURE_SMTP_URL")
        code, _, err = run(str(flow), "--message", "news", "--attribute", "first_name=Ann",
                           "--send-to", "me@shop.example")
        assert (code, err) == (2, "nurture: --send-to needs NURTURE_SMTP_URL, the relay to "
                                  "send through\n")
        assert server.messages == []
    finally:
        server.stop()


OFFER = """\
workflow w {
  stage a { on enter: send push offer with percent = 10 }
}
message offer push {
  title "{{ percent }}% off for {{ subscriber.first_name | default('you') }}"
  body "Today only"
  url "https://shop.example/offer"
  ttl 2 days
  urgency high
}
"""


def test_a_push_is_sent_as_a_test_to_each_browser_of_a_subscriber_who_consented(
        tmp_path: Path, database_url: str, push_service: PushService, ca_file: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # real time: the push sender's timers run on asyncio's clock, which freezegun would stop
    monkeypatch.chdir(tmp_path)
    Path("w.flow").write_text(OFFER, encoding="utf-8")
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # the local push service's throw-away CA
    monkeypatch.setenv("NURTURE_PUSH_ALLOW_HOSTS", "127.0.0.1")
    monkeypatch.setenv("NURTURE_VAPID_SUBJECT", "mailto:ops@shop.example")
    assert CliRunner().invoke(main, ["keys"]).exit_code == 0
    catalog = load_paths(["w.flow"]).catalog
    assert catalog is not None
    database = open_database(database_url)
    now = datetime.now(UTC)
    joined = [
        {"subscriber": "me", "type": "subscribed",
         "properties": {"channels": ["push"], "attributes": {"first_name": "Ann"}}},
        {"subscriber": "mail_only", "type": "subscribed",
         "properties": {"channels": ["email"], "email": "m@example.com"}},
        {"subscriber": "no_browser", "type": "subscribed", "properties": {"channels": ["push"]}}]
    Engine(catalog, database, clock=VirtualClock(now)).ingest(
        [parse_event(raw, seq, now) for seq, raw in enumerate(joined)])
    with database.transaction() as connection:
        for who, name in (("me", "phone"), ("me", "laptop"), ("mail_only", "tablet")):
            browser = push_service.browser(name)
            push_subscriptions.add(connection, who, push_service.endpoint(name),
                                   browser.p256dh, browser.auth_secret, now)
    database.dispose()
    code, out, err = run("w.flow", "--message", "offer", "--subscriber", "me", "--db",
                         database_url, "--send-to", "me")
    assert code == 0, err
    assert out.splitlines()[1] == "title: 10% off for Ann"
    assert err.splitlines() == [
        f"pushed to me's browser at {push_service.origin} as a test (the push service "
        "answered 201)"] * 2
    assert [(r.browser, r.payload["title"], r.payload["url"], r.payload["token"],
             r.headers["TTL"], r.headers["Urgency"], r.sender) for r in push_service.received
            ] == [(name, "10% off for Ann", "https://shop.example/offer", "", "172800",
                   "high", "mailto:ops@shop.example") for name in ("phone", "laptop")]
    push_service.answer("laptop", 410)  # the browser unsubscribed
    code, _, err = run("w.flow", "--message", "offer", "--db", database_url, "--send-to", "me")
    assert code == 1
    assert err.splitlines()[1].startswith(
        f"nurture: the test push to me's browser at {push_service.origin} was not sent: the "
        "push service answered 410")
    for who, said in (("mail_only", "mail_only has not consented to push: a test goes only "
                                    "where a send could"),
                      ("no_browser", "no_browser has no live browser to push to (subscribe "
                                     "one on the site first)")):
        code, _, err = run("w.flow", "--message", "offer", "--db", database_url,
                           "--send-to", who)
        assert (code, err) == (2, f"nurture: {said}\n")
    assert len(push_service.received) == 3  # the phone, once more


def test_a_webhook_is_posted_as_a_test_signed_and_marked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "a-secret-of-32-characters-or-so!"
    receiver = WebhookReceiver(secret.encode())
    try:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("NURTURE_SECRET", secret)
        monkeypatch.setenv("NURTURE_WEBHOOK_ALLOW_HOSTS", "127.0.0.1")
        Path("w.flow").write_text(
            'workflow w {\n  stage a {\n    on enter: send webhook lead\n'
            '    on enter: send webhook plain\n  }\n}\n'
            'message lead webhook {\n  url "https://crm.example/hook"\n'
            '  body "{\\"lead\\": \\"{{ subscriber.id }}\\", \\"role\\": '
            '\\"{{ subscriber.role }}\\"}"\n}\n'
            'message plain webhook { url "https://crm.example/other" }\n', encoding="utf-8")
        code, out, err = run("w.flow", "--message", "lead", "--attribute", "role=cto",
                             "--send-to", receiver.url)
        assert code == 0, err
        assert 'body: {"lead": "preview", "role": "cto"}' in out.splitlines()
        assert err == f"posted to {receiver.url} as a test (the receiver answered 200: ok)\n"
        code, _, err = run("w.flow", "--message", "plain", "--send-to", receiver.url)
        assert code == 0, err
        [(lead, lead_body, lead_valid), (plain, plain_body, plain_valid)] = receiver.received
        assert json.loads(lead_body) == {"lead": "preview", "role": "cto"}
        assert json.loads(plain_body) == {"subscriber": "preview", "workflow": "w",
                                          "message": "plain"}  # as a send without a body
        assert lead_valid and plain_valid  # signed with the service's secret
        assert lead["X-Nurture-Test"] == plain["X-Nurture-Test"] == "1"
        assert lead["X-Nurture-Delivery"] != plain["X-Nurture-Delivery"]
        receiver.answers.append(422)
        code, _, err = run("w.flow", "--message", "plain", "--send-to", receiver.url)
        assert (code, err) == (1, f"nurture: the test webhook to {receiver.url} was not sent: "
                                  "the receiver answered 422: ok\n")
        code, _, err = run("w.flow", "--message", "plain", "--send-to", "crm.example/hook")
        assert code == 2 and "is not an http(s) URL (the message is a webhook)" in err
        monkeypatch.delenv("NURTURE_WEBHOOK_ALLOW_HOSTS")  # this machine: refused, as sends
        code, _, err = run("w.flow", "--message", "plain", "--send-to", receiver.url)
        assert code == 1 and "was not sent: refused: " in err
        assert len(receiver.received) == 3
    finally:
        receiver.stop()
