"""Signed links that come back: push clicks and receipts, e-mail clicks and opens, unsubscribe."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from dsl.model import BUILT_IN_EVENTS
from engine.api import create_app, tracking
from engine.cli import main
from tests.service.conftest import AUTH, T0, Api, build_runtime
from tests.service.test_api import SUBSCRIBED


def setup_delivery(api: Api) -> str:
    """Ann subscribes: her welcome e-mail is delivery 1."""
    api.post_events(SUBSCRIBED)
    return f"{api.key('ann')}.1"


def events_of(api: Api, kind: str) -> list[dict[str, object]]:
    body = api.client.get("/v1/subscribers/ann", headers=AUTH).json()
    return [e for e in body["events"] if e["type"] == kind]


def test_a_push_click_report_is_scored_once(api: Api) -> None:
    reference = setup_delivery(api)
    token = api.runtime.signer.sign("push", reference)
    for _ in range(3):  # the service worker retries, the user clicks twice: one click
        assert api.client.post("/v1/track/push-click", json={"token": token}).status_code == 204
    [click] = events_of(api, "push_click")
    assert click["properties"] == {"workflow": "shop", "message": "welcome",
                                   "delivery": reference}
    body = api.client.get("/v1/subscribers/ann", headers=AUTH).json()
    assert body["scores"]["shop"]["engagement"]["total"] == 5
    assert api.client.post("/v1/track/push-received", json={"token": token}).status_code == 204
    assert len(events_of(api, "push_received")) == 1


def test_forged_or_altered_tokens_are_refused(api: Api) -> None:
    reference = setup_delivery(api)
    token = api.runtime.signer.sign("push", reference)
    other_purpose = api.runtime.signer.sign("open", reference)
    for bad in (token[:-2] + "xx", "x" + token[1:], "nodot", other_purpose):
        answer = api.client.post("/v1/track/push-click", json={"token": bad})
        assert answer.status_code == 403, bad
        assert answer.json()["errors"][0]["field"] == "token"
    assert events_of(api, "push_click") == []


def test_the_click_redirect_goes_only_to_the_signed_url(api: Api) -> None:
    reference = setup_delivery(api)
    claims = {"d": reference, "u": "https://shop.example/new?utm=1"}
    token = api.runtime.signer.sign("click", json.dumps(claims, separators=(",", ":")))
    answer = api.client.get(f"/v1/t/c/{token}", follow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://shop.example/new?utm=1"
    [click] = events_of(api, "email_click")
    assert click["properties"]["url"] == "https://shop.example/new?utm=1"
    # the same payload signed by someone else, or a URL swapped in: refused, no redirect
    body = token.split(".")[0]
    evil = api.runtime.signer.sign("click", json.dumps({**claims, "u": "https://evil.example"},
                                                       separators=(",", ":"))).split(".")[0]
    for bad in (f"{evil}.{token.split('.')[1]}", f"{body}.AAAA"):
        answer = api.client.get(f"/v1/t/c/{bad}", follow_redirects=False)
        assert answer.status_code == 403
        assert "location" not in answer.headers


def test_the_open_pixel(api: Api) -> None:
    token = api.runtime.signer.sign("open", setup_delivery(api))
    for _ in range(2):
        answer = api.client.get(f"/v1/t/o/{token}.gif")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
        assert answer.content.startswith(b"GIF89a")
    assert len(events_of(api, "email_open")) == 1
    assert api.client.get("/v1/t/o/AAAA.AAAA.gif").status_code == 403


def test_unsubscribe_a_page_with_a_button_then_one_click(api: Api) -> None:
    api.post_events(SUBSCRIBED)
    token = api.runtime.signer.sign("unsubscribe", '{"s":"ann","c":"email"}')
    page = api.client.get("/v1/unsubscribe", params={"token": token})
    assert page.status_code == 200 and "<form method=\"post\">" in page.text
    assert "<p>Stop e-mails from us?</p>" in page.text
    # drawn for a phone's width (most such links are followed on one), in a stated language
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in page.text
    assert "<html lang='en'>" in page.text
    # nothing to run or load, and no site may frame the button to have it clicked
    assert page.headers["content-security-policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'")
    assert page.headers["x-frame-options"] == "DENY"
    assert events_of(api, "unsubscribed") == []  # a GET (a mail scanner) changes nothing
    answer = api.client.post("/v1/unsubscribe", params={"token": token},
                             content=b"List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    body = api.client.get("/v1/subscribers/ann", headers=AUTH).json()
    assert body["consent"] == {"push": True, "email": False}
    assert api.client.post("/v1/unsubscribe", params={"token": token + "x"}).status_code == 403
    # a link cut short or altered, followed by a person: a page in their language, not JSON
    unsubscribed = events_of(api, "unsubscribed")
    for params, status in (({"token": token[:-9]}, 403), ({}, 400)):
        broken = api.client.get("/v1/unsubscribe", params=params,
                                headers={"Accept-Language": "pl-PL,pl;q=0.9,en;q=0.5"})
        assert broken.status_code == status
        assert broken.headers["content-type"].startswith("text/html")
        assert "<html lang='pl'>" in broken.text
        assert ("<h1>Nieprawidłowy link</h1><p>Ten link do wypisania się jest niepełny lub "
                "został zmieniony. Otwórz go ponownie z wiadomości, w całości.</p>"
                ) in broken.text
        assert broken.headers["x-frame-options"] == "DENY"
    assert events_of(api, "unsubscribed") == unsubscribed  # nothing more
    # Opened again (or after the mail client's one-click): it says it is done, no button.
    # The push link still asks: that channel was not left.
    again = api.client.get("/v1/unsubscribe", params={"token": token})
    assert "<h1>Unsubscribed</h1><p>You will not get these messages any more.</p>" in again.text
    assert "<form" not in again.text
    push = api.runtime.signer.sign("unsubscribe", '{"s":"ann","c":"push"}')
    assert "<p>Stop notifications from us?</p>" in api.client.get(
        "/v1/unsubscribe", params={"token": push}).text
    # Subscribing again to e-mail makes the link ask again.
    api.post_events({**SUBSCRIBED, "id": "again", "properties": {"channels": ["email"]}})
    assert "<p>Stop e-mails from us?</p>" in api.client.get(
        "/v1/unsubscribe", params={"token": token}).text


def test_an_unsubscribe_link_of_an_erased_subscriber_does_not_bring_them_back(
        api: Api) -> None:
    """An e-mail sent before the erasure still holds the link; following it must not make
    a new record under the person's id (it would hold their id, perhaps their address)."""
    api.post_events(SUBSCRIBED)
    token = api.runtime.signer.sign("unsubscribe", '{"s":"ann","c":"email"}')
    assert api.client.delete("/v1/subscribers/ann", headers=AUTH).status_code == 204
    api.clock.advance_to(T0 + timedelta(days=3))
    answer = api.client.post("/v1/unsubscribe", params={"token": token})
    assert answer.status_code == 200 and "Unsubscribed" in answer.text
    assert api.client.get("/v1/subscribers/ann", headers=AUTH).status_code == 404
    assert api.count("subscribers") == 0 and api.count("events") == 0


def test_the_checker_knows_every_event_the_tracking_records() -> None:
    """`nurture check` warns of a name one letter off these (`push_clik`): the list it
    compares with must hold every type the tracking API records."""
    source = Path(tracking.__file__).read_text(encoding="utf-8")
    recorded = set(re.findall(r'_record, runtime, "(\w+)"', source))
    assert recorded == {"push_click", "push_received", "email_click", "email_open"}
    assert recorded <= set(BUILT_IN_EVENTS)


def test_a_rotated_secret_keeps_links_and_erasures_made_with_the_one_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A leaked secret is replaced with `nurture keys --rotate-secret`: links in the e-mails
    already sent still unsubscribe, an erased id stays erased, and only the new secret signs.
    Retiring the old secret ends its links; the erasures made under it stay (the secret is
    kept in `secret.erasures` for them alone)."""
    runtime = build_runtime(tmp_path)
    with TestClient(create_app(runtime)) as client:
        client.post("/v1/events", json=SUBSCRIBED, headers=AUTH)
        client.post("/v1/events", headers=AUTH, json={
            "subscriber": "bob", "type": "subscribed", "properties": {"channels": ["email"]}})
        assert client.delete("/v1/subscribers/bob", headers=AUTH).status_code == 204
    old_link = runtime.signer.sign("unsubscribe", '{"s":"ann","c":"email"}')
    runtime.database.dispose()

    monkeypatch.setenv("NURTURE_SECRET_FILE", str(tmp_path / "keys" / "secret"))
    result = CliRunner().invoke(main, ["keys", "--rotate-secret"])
    assert result.exit_code == 0, result.output
    assert "the one before is kept in" in result.stderr
    kept = tmp_path / "keys" / "secret.previous"
    assert kept.stat().st_mode & 0o777 == 0o600

    rotated = build_runtime(tmp_path)
    assert rotated.signer.sign("unsubscribe", '{"s":"ann","c":"email"}') != old_link
    with TestClient(create_app(rotated)) as client:
        answer = client.post("/v1/unsubscribe", params={"token": old_link})
        assert answer.status_code == 200 and "Unsubscribed" in answer.text
        assert client.get("/v1/subscribers/ann", headers=AUTH).json()["consent"] == {
            "push": True, "email": False}
        late = client.post("/v1/events", headers=AUTH, json={  # a replay of bob's past
            "subscriber": "bob", "type": "page_view", "at": "2026-03-02T08:00:00Z"})
        assert late.json()["erased"] == 1
    rotated.database.dispose()

    kept.write_text("")  # the old secret retired: its links end, its erasures stay
    retired = build_runtime(tmp_path)
    with TestClient(create_app(retired)) as client:
        assert client.post("/v1/unsubscribe", params={"token": old_link}).status_code == 403
        late = client.post("/v1/events", headers=AUTH, json={
            "subscriber": "bob", "type": "page_view", "at": "2026-03-02T08:00:00Z"})
        assert late.json()["erased"] == 1
    retired.database.dispose()

    (tmp_path / "keys" / "secret.erasures").unlink()  # lost with it: bob would come back
    forgotten = build_runtime(tmp_path)
    with TestClient(create_app(forgotten)) as client:
        late = client.post("/v1/events", headers=AUTH, json={
            "subscriber": "bob", "type": "page_view", "at": "2026-03-02T08:00:00Z"})
        assert late.json()["erased"] == 0
    forgotten.database.dispose()


def test_the_unsubscribe_page_speaks_the_subscribers_language(api: Api) -> None:
    """Ann's `locale` says Polish; a subscriber without one is answered in the browser's
    language, and one the page does not speak in English."""
    api.post_events({"events": [
        {**SUBSCRIBED, "properties": {**SUBSCRIBED["properties"],
                                      "attributes": {"locale": "pl-PL"}}},
        {"subscriber": "bob", "type": "subscribed", "id": "e2",
         "properties": {"channels": ["push"]}}]})
    ann = api.runtime.signer.sign("unsubscribe", '{"s":"ann","c":"email"}')
    page = api.client.get("/v1/unsubscribe", params={"token": ann},
                          headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert "<html lang='pl'>" in page.text
    assert "<h1>Wypisz się</h1><p>Nie chcesz już dostawać od nas e-maili?</p>" in page.text
    assert "<button type=\"submit\">Wypisz mnie</button>" in page.text
    done = api.client.post("/v1/unsubscribe", params={"token": ann})
    assert "<h1>Wypisano</h1><p>Nie będziesz już dostawać tych wiadomości.</p>" in done.text
    bob = api.runtime.signer.sign("unsubscribe", '{"s":"bob","c":"push"}')
    page = api.client.get("/v1/unsubscribe", params={"token": bob},
                          headers={"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.5"})
    assert "<html lang='fr'>" in page.text
    assert "<p>Ne plus recevoir nos notifications\u00a0?</p>" in page.text
    page = api.client.get("/v1/unsubscribe", params={"token": bob},
                          headers={"Accept-Language": "ja-JP"})
    assert "<html lang='en'>" in page.text and "<p>Stop notifications from us?</p>" in page.text
