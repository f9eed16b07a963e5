"""A subscriber's real timeline (`nurture timeline`, `GET /v1/subscribers/{id}/timeline`):
what the engine decided, in the simulator's words, and what the outbox did with each send (a
real SMTP server and push service here)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner

from engine.cli import main
from tests.channels.conftest import T0
from tests.channels.peers import PushService, SmtpServer
from tests.databases import url_of

FLOW = """\
workflow w {
  exit on left
  score heat { on click +5 }
  stage first {
    on enter: send email hello
    on enter: send push ping
    go to second when heat >= 5
  }
  stage second { after 1 hour: send push later }
}
message hello email { subject "Hello {{ subscriber.first_name | default('there') }}" text "Hi" }
message ping push { title "Ping" body "One" }
message later push { title "Later" }
"""


def timeline(shop_database: str, folder: Path, *arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["timeline", *arguments, "--db", shop_database,
                                       "--workflows", str(folder)])
    return result.exit_code, result.output


def test_a_timeline_says_what_happened_and_what_became_of_each_send(
        shop_factory, smtp_server: SmtpServer, push_service: PushService,
        tmp_path: Path) -> None:
    shop = shop_factory(FLOW, smtp=smtp_server)
    shop.subscribe_browser("anna", push_service, "anna-phone")
    shop.subscribe_browser("anna", push_service, "anna-laptop")
    push_service.always("anna-laptop", 410)  # the browser unsubscribed
    shop.event("anna", "subscribed", channels=["email", "push"], email="anna@example.com",
               attributes={"first_name": "Anna"})
    shop.event("carol", "subscribed", channels=["email"], email="carol@example.com")
    shop.event("carol", "left")  # before the outbox sent her e-mail: cancelled
    assert shop.dispatch().outcomes == {"delivered": 2, "gone": 1}
    shop.clock.advance_to(T0 + timedelta(minutes=5))
    shop.event("anna", "click")
    url = url_of(shop.database)
    rule = f"{tmp_path / 'w.flow'}:3"  # as the workflow files were given
    code, out = timeline(url, tmp_path, "anna", "carol")
    assert code == 0, out
    assert out.splitlines() == [
        "time (UTC)           subscriber  workflow  what",
        "2026-03-02 09:00:00  anna        w         enter first",
        "2026-03-02 09:00:00  anna        w         send email hello: Hello Anna  -> delivered",
        "2026-03-02 09:00:00  anna        w         send push ping: Ping | One  "
        "-> delivered, gone (the subscription is gone)",
        "2026-03-02 09:00:00  carol       w         enter first",
        "2026-03-02 09:00:00  carol       w         send email hello: Hello there  -> cancelled "
        "(the subscriber left workflow w before it was sent)",
        "2026-03-02 09:00:00  carol       w         skip push ping: no_consent",
        "2026-03-02 09:00:00  carol       w         exit (left)",
        f"2026-03-02 09:05:00  anna        w         score heat +5 = 5  ({rule})",
        "2026-03-02 09:05:00  anna        w         enter second",
    ]
    # An hour later the push is decided and waits in the outbox; JSON lines are the
    # simulator's records, a send with its dispatches.
    shop.advance(hours=1)
    code, out = timeline(url, tmp_path, "anna", "--json", "--since", "2026-03-02T09:05:00Z")
    assert code == 0, out
    assert [json.loads(line) for line in out.splitlines()] == [
        {"at": "2026-03-02T09:05:00Z", "subscriber": "anna", "workflow": "w", "kind": "score",
         "score": "heat", "delta": 5, "total": 5, "rule": rule},
        {"at": "2026-03-02T09:05:00Z", "subscriber": "anna", "workflow": "w", "kind": "enter",
         "stage": "second"},
        {"at": "2026-03-02T10:05:00Z", "subscriber": "anna", "workflow": "w", "kind": "send",
         "channel": "push", "message": "later", "lang": None, "title": "Later", "body": None,
         "url": None, "dispatches": [{"status": "queued", "finished_at": None,
                                      "error": None}]},
    ]
    code, out = timeline(url, tmp_path, "anna", "--latest", "1")
    assert out.splitlines()[1:] == [
        "2026-03-02 10:05:00  anna        w         send push later: Later  -> queued"]
    code, out = timeline(url, tmp_path, "anna", "bob")
    assert code == 2 and "no subscriber 'bob'" in out
