"""Web push in a real headless Chromium: the demo page, sw.js, a notification, a click.

`pushManager.subscribe()` cannot succeed without the browser vendor's push service (no
internet here), so a test key pair stands in for the browser's subscription. Everything else
is the real path: nurture's dispatcher encrypts and sends to the local push service, which
decrypts; that payload is delivered to the page's service worker through the DevTools protocol
(`ServiceWorker.deliverPushMessage`); sw.js shows the notification; a click on it reports
`push_click` to the API, and the engine scores it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from channels.endpoints import PushEndpointPolicy
from channels.webhook import WebhookSender
from channels.webpush import WebPushSender
from engine.api import create_app
from engine.api.auth import subscriber_token
from engine.clock import SystemClock
from engine.dispatcher import Dispatcher, Links
from engine.service import Service
from tests.channels.peers import PushService
from tests.service.conftest import AUTH, LiveServer, build_runtime, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason="needs Chromium (Debian package `chromium`; .ci/run installs it)"),
]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[LiveServer, PushService, Any]]:
    push = PushService(tls=None)
    runtime = build_runtime(tmp_path, push_allow_hosts=(f"127.0.0.1:{push.port}",))
    runtime.clock = SystemClock()
    runtime._engine.clock = runtime.clock
    dispatcher = Dispatcher(
        runtime.database, Links(runtime.signer, "http://127.0.0.1"), clock=runtime.clock,
        push=WebPushSender(runtime.vapid, "mailto:ops@shop.example",
                           PushEndpointPolicy.from_hosts([f"127.0.0.1:{push.port}"]),
                           SystemClock().now),
        webhook=WebhookSender(b"x" * 32))
    service = Service(runtime, dispatcher, tick_seconds=0.1, dispatch_seconds=0.1)
    server = LiveServer(create_app(runtime, scheduler=service))
    yield server, push, runtime
    server.stop()
    push.stop()
    runtime.database.dispose()


class Workers:
    """Chromium's service workers seen through DevTools: their registrations and versions,
    and pushes delivered to one as the vendor's push service would deliver them."""

    def __init__(self, context: Any, page: Any) -> None:
        self.page = page
        self.cdp = context.new_cdp_session(page)
        self.registrations: list[dict[str, Any]] = []
        self.versions: list[dict[str, Any]] = []
        self.cdp.on("ServiceWorker.workerRegistrationUpdated",
                    lambda event: self.registrations.extend(event["registrations"]))
        self.cdp.on("ServiceWorker.workerVersionUpdated",
                    lambda event: self.versions.extend(event["versions"]))
        self.cdp.send("ServiceWorker.enable")

    def push(self, origin: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """Deliver `payload` to the active worker of `origin`; the notifications shown."""
        registration = wait_for(lambda: [r for r in self.registrations
                                         if r["scopeURL"].startswith(origin)],
                                what="the service worker registration")[0]
        wait_for(lambda: any(v["registrationId"] == registration["registrationId"]
                             and v["status"] == "activated" for v in self.versions),
                 what="the activated service worker")
        for _ in range(4):  # (once, under the full suite's load, a delivery came to nothing)
            self.cdp.send("ServiceWorker.deliverPushMessage", {
                "origin": origin, "registrationId": registration["registrationId"],
                "data": json.dumps(payload)})
            with contextlib.suppress(AssertionError):
                shown: list[dict[str, Any]] = wait_for(lambda: self.page.evaluate(
                    "navigator.serviceWorker.ready.then(r => r.getNotifications())"
                    ".then(ns => ns.map(n => ({title: n.title, body: n.body, "
                    "data: n.data})))"), timeout=8, what="the notification")
                return shown
        raise AssertionError("no notification after four deliveries")


def test_a_push_reaches_the_service_worker_and_its_click_is_scored(site) -> None:
    from playwright.sync_api import sync_playwright

    server, push, _ = site
    base = f"http://localhost:{server.port}"  # a secure context for service workers
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = browser.new_context()
            context.grant_permissions(["notifications"], origin=base)
            page = context.new_page()
            workers = Workers(context, page)
            page.goto(f"{base}/?subscriber=ann")
            page.wait_for_function("document.body.dataset.worker === 'ready'")
            page.evaluate("navigator.serviceWorker.ready")
            assert page.evaluate("typeof nurture.subscribe") == "function"  # nurture.js loaded
            worker = context.service_workers[0] if context.service_workers else \
                context.wait_for_event("serviceworker")
            assert worker.url == f"{base}/sw.js"

            # the browser's subscription (test keys), registered with the page's own token
            token = page.evaluate("identity.token")
            browser_keys = push.browser("chromium")
            answer = httpx.post(f"{server.url}/v1/subscribers/ann/push-subscriptions",
                                headers={"X-Nurture-Token": token},
                                json={"endpoint": push.endpoint("chromium"), "keys": {
                                    "p256dh": browser_keys.p256dh,
                                    "auth": browser_keys.auth_secret}})
            assert answer.status_code == 201, answer.text
            httpx.post(f"{server.url}/v1/events", headers=AUTH, json={"events": [
                {"subscriber": "ann", "type": "subscribed", "properties": {"channels": ["push"]}},
                {"subscriber": "ann", "type": "page_view",
                 "properties": {"url": "https://shop.example/diamonds"}}]})
            [payload] = wait_for(lambda: push.payloads("chromium"), what="the push")
            assert push.problems == []

            shown = workers.push(base, payload)
            assert shown == [{"title": "10% off", "body": "Just for you",
                              "data": {"url": "https://shop.example/offer",
                                       "token": payload["token"]}}]

            worker.evaluate("""async () => {
                const [notification] = await self.registration.getNotifications();
                self.dispatchEvent(new NotificationEvent('notificationclick', {notification}));
            }""")
            exported = wait_for(lambda: _clicked(server), what="the push_click event")
            assert exported["scores"]["shop"]["engagement"]["total"] == 35
            assert {"push_received", "push_click"} <= {e["type"] for e in exported["events"]}
        finally:
            browser.close()


def _clicked(server: LiveServer) -> dict[str, Any] | None:
    exported = httpx.get(f"{server.url}/v1/subscribers/ann", headers=AUTH).json()
    return exported if any(e["type"] == "push_click" for e in exported["events"]) else None


def test_a_rotated_subscription_is_registered_again_by_the_service_worker(site) -> None:
    server, push, _ = site
    fresh = push.browser("rotated")
    with _demo_page(server, "zoe") as (context, page):
        # subscribe() hands the worker zoe's identity, then fails offline at
        # pushManager.subscribe (no vendor push service here)
        outcome = page.evaluate("nurture.subscribe(identity).then(r => r.status,"
                                " e => 'failed: ' + e)")
        assert outcome.startswith("failed")
        worker = context.service_workers[0]
        wait_for(lambda: worker.evaluate(
            "caches.open('nurture').then(c => c.match('https://nurture.invalid/identity'))"
            ".then(r => !!r)"), what="the stored identity")
        worker.evaluate("""([endpoint, p256dh, auth]) => {
            const event = new ExtendableEvent('pushsubscriptionchange');
            Object.defineProperty(event, 'newSubscription', {value: {
                toJSON: () => ({endpoint, keys: {p256dh, auth}})}});
            self.dispatchEvent(event);
        }""", [push.endpoint("rotated"), fresh.p256dh, fresh.auth_secret])
        exported = wait_for(lambda: _registered(server, "zoe"), what="the new subscription")
        assert [s["endpoint"] for s in exported["push_subscriptions"]] == [
            push.endpoint("rotated")]


RENEWAL = """async ([replaced, oldEndpoint, newEndpoint, p256dh, auth]) => {
    const bytes = (text) => Uint8Array.from(
        atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - text.length % 4) % 4)),
        (c) => c.charCodeAt(0));
    const calls = [];
    const made = (endpoint, key) => ({
        endpoint, options: {applicationServerKey: key.buffer},
        unsubscribe: async () => { calls.push('unsubscribe ' + endpoint); return true; },
        toJSON: () => ({endpoint, keys: {p256dh, auth}})});
    let held = made(oldEndpoint, bytes(replaced));
    PushManager.prototype.getSubscription = async function () { return held; };
    PushManager.prototype.subscribe = async function (options) {
        calls.push('subscribe');
        held = made(newEndpoint, new Uint8Array(options.applicationServerKey));
        return held;
    };
    const first = await nurture.refresh(identity);
    const second = await nurture.refresh(identity);
    const key = new Uint8Array(held.options.applicationServerKey);
    const answer = await fetch('/v1/push/public-key');
    const server = bytes((await answer.json()).public_key);
    const sameKey = key.length === server.length && key.every((b, i) => b === server[i]);
    return {calls, first: first.status, second: second.status, sameKey};
}"""
"""A browser holding a subscription made for a replaced VAPID key, `refresh` run twice."""


def test_a_subscription_made_for_a_replaced_vapid_key_is_made_again(site) -> None:
    """The browser holds a subscription made for another VAPID key (the server's key was
    replaced): push services would refuse every message. `refresh` drops it, subscribes
    with the server's key, and swaps the registrations. (`pushManager` stands in for the
    vendor's push service, which this machine cannot reach.)"""
    from channels.vapid import VapidKey

    server, push, _ = site
    old, new = push.browser("old"), push.browser("new")
    registered = httpx.post(f"{server.url}/v1/subscribers/zoe/push-subscriptions", headers=AUTH,
                            json={"endpoint": push.endpoint("old"),
                                  "keys": {"p256dh": old.p256dh, "auth": old.auth_secret}})
    assert registered.status_code == 201
    result = _on_demo_page(server, "zoe", RENEWAL, [
        VapidKey.generate().public_key, push.endpoint("old"), push.endpoint("new"),
        new.p256dh, new.auth_secret])
    assert result == {"calls": [f"unsubscribe {push.endpoint('old')}", "subscribe"],
                      "first": "renewed", "second": "current", "sameKey": True}
    exported = httpx.get(f"{server.url}/v1/subscribers/zoe", headers=AUTH).json()
    assert [(s["endpoint"], s["removed_at"] is None) for s in exported["push_subscriptions"]] == [
        (push.endpoint("old"), False), (push.endpoint("new"), True)]


def _registered(server: LiveServer, subscriber: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{server.url}/v1/subscribers/{subscriber}", headers=AUTH)
    if answer.status_code != 200:
        return None
    exported = answer.json()
    return exported if exported["push_subscriptions"] else None


@contextlib.contextmanager
def _demo_page(server: LiveServer, subscriber: str) -> Iterator[tuple[Any, Any]]:
    """The demo page of `subscriber` in a fresh Chromium allowed to notify, once the page's
    service worker is ready: (the browser context, the page)."""
    from playwright.sync_api import sync_playwright

    base = f"http://localhost:{server.port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            context = browser.new_context()
            context.grant_permissions(["notifications"], origin=base)
            page = context.new_page()
            page.goto(f"{base}/?subscriber={subscriber}")
            page.wait_for_function("document.body.dataset.worker === 'ready'")
            yield context, page
        finally:
            browser.close()


def _on_demo_page(server: LiveServer, subscriber: str, script: str, argument: Any) -> Any:
    """Run `script` (a function of `argument`) on the demo page, and give its result."""
    with _demo_page(server, subscriber) as (_, page):
        return page.evaluate(script, argument)


def test_an_unsubscribe_link_followed_on_a_phone(site) -> None:
    """The page as a phone shows it, under its content policy: styled for the width of the
    screen, and its button withdraws the consent (the form may post to its own origin)."""
    from playwright.sync_api import sync_playwright

    server, _, runtime = site
    httpx.post(f"{server.url}/v1/events", headers=AUTH, json={
        "subscriber": "ann", "type": "subscribed",
        "properties": {"channels": ["push", "email"], "email": "ann@example.com"}})
    token = runtime.signer.sign("unsubscribe", '{"s":"ann","c":"email"}')
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844},
                                    device_scale_factor=3, is_mobile=True, has_touch=True)
            refused: list[str] = []
            page.on("console", lambda message: refused.append(message.text)
                    if "Content Security Policy" in message.text else None)
            page.goto(f"{server.url}/v1/unsubscribe?token={token}")
            assert page.text_content("p") == "Stop e-mails from us?"
            # laid out for the phone's width, not for a desktop's 980 pixels scaled down
            assert page.evaluate("document.documentElement.clientWidth") == 390
            assert page.evaluate("getComputedStyle(document.querySelector('button'))"
                                 ".minHeight") == "44px"  # the inline style was applied
            page.click("button")
            page.wait_for_selector("text=You will not get these messages any more.")
            assert refused == []
        finally:
            browser.close()
    body = httpx.get(f"{server.url}/v1/subscribers/ann", headers=AUTH).json()
    assert body["consent"] == {"push": True, "email": False}


class ShopSite:
    """The shop's own web site, on another origin than the API: its page loads nurture.js
    from the API, and its `/sw.js` is the README's one line importing the API's. With
    `copies`, as a site whose content security policy allows only its own scripts: both
    files are copies served by the shop, and the script tag names the API (`data-api`)."""

    def __init__(self, api: str, copies: bool = False) -> None:
        import http.server
        import threading

        static = Path(__file__).resolve().parents[2] / "engine" / "api" / "static"
        tag = (f'<script src="/nurture.js" data-api="{api}/"></script>' if copies
               else f'<script src="{api}/nurture.js"></script>')
        page = f"<!doctype html><html><body>{tag}</body></html>".encode()
        worker = (static / "sw.js").read_bytes() if copies \
            else f'importScripts("{api}/sw.js");\n'.encode()
        script = (static / "nurture.js").read_bytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, kind = (worker, "text/javascript") if self.path.startswith("/sw.js") \
                    else (script, "text/javascript") if self.path.endswith("/nurture.js") \
                    else (page, "text/html")
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("copies", [False, True], ids=["from-the-api", "copies"])
def test_a_shop_on_its_own_origin_registers_receives_and_reports_a_click(site,
                                                                        copies: bool) -> None:
    """As sites deploy it: the shop at one origin, the API at another. nurture.js registers
    the shop's service worker (which imports the API's, or is a copy of it) and the
    browser's subscription, and the worker reports the receipt and the click to the API:
    every call crosses origins, so CORS (a preflight for each JSON POST) is on the path."""
    from playwright.sync_api import sync_playwright

    server, push, runtime = site
    api = f"http://127.0.0.1:{server.port}"
    shop = ShopSite(api, copies)
    base = f"http://localhost:{shop.port}"  # another origin; a secure context
    token, _ = subscriber_token(runtime, "ann")
    keys = push.browser("shop")
    subscription = {"endpoint": push.endpoint("shop"),
                    "keys": {"p256dh": keys.p256dh, "auth": keys.auth_secret}}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=ARGS)
            try:
                context = browser.new_context()
                context.grant_permissions(["notifications"], origin=base)
                page = context.new_page()
                workers = Workers(context, page)
                page.goto(f"{base}/")
                identity = {"subscriber": "ann", "token": token}
                # no subscription in this browser yet (no vendor push service here): the
                # worker is registered and the public key read, across origins
                assert page.evaluate("o => nurture.refresh(o).then(r => r.status)",
                                     identity) == "none"
                worker = context.service_workers[0]
                assert worker.url == f"{base}/sw.js?api={quote(api, safe='')}"
                registered = page.evaluate(
                    "([s, o]) => nurture.register(s, o.subscriber, o.token)",
                    [subscription, identity])
                assert registered["subscriber"] == "ann"

                httpx.post(f"{server.url}/v1/events", headers=AUTH, json={"events": [
                    {"subscriber": "ann", "type": "subscribed",
                     "properties": {"channels": ["push"]}},
                    {"subscriber": "ann", "type": "page_view",
                     "properties": {"url": "https://shop.example/diamonds"}}]})
                [payload] = wait_for(lambda: push.payloads("shop"), what="the push")
                assert [n["title"] for n in workers.push(base, payload)] == ["10% off"]
                worker.evaluate("""async () => {
                    const [notification] = await self.registration.getNotifications();
                    self.dispatchEvent(new NotificationEvent('notificationclick',
                                                             {notification}));
                }""")
                exported = wait_for(lambda: _clicked(server), what="the push_click event")
            finally:
                browser.close()
    finally:
        shop.stop()
    assert exported["scores"]["shop"]["engagement"]["total"] == 35
    assert {"push_received", "push_click"} <= {e["type"] for e in exported["events"]}


SHARED = """async ([endpoint, p256dh, auth, anna, bob]) => {
    const held = {endpoint, options: {},  // (the browser does not say which key)
                  unsubscribe: async () => true, toJSON: () => ({endpoint, keys: {p256dh, auth}})};
    PushManager.prototype.getSubscription = async function () { return held; };
    const statuses = [];
    for (const identity of [anna, anna, bob, bob, anna]) {
        statuses.push((await nurture.refresh(identity)).status);
    }
    return statuses;
}"""
"""One browser, whose page `refresh`es for whoever is logged in: Anna, then Bob, then Anna."""


def test_a_shared_browser_follows_whoever_is_logged_in(site) -> None:
    """A family computer: Anna logs in, then Bob on the same browser. The page's `refresh`
    registers the browser's subscription for the one logged in, so Anna's pushes (her name,
    her basket) stop going to the browser Bob now uses; a page load with the same person
    again sends nothing."""
    server, push, runtime = site
    shared = push.browser("shared")
    identities = [{"subscriber": who, "token": subscriber_token(runtime, who)[0]}
                  for who in ("anna", "bob")]
    statuses = _on_demo_page(server, "anna", SHARED, [
        push.endpoint("shared"), shared.p256dh, shared.auth_secret, *identities])
    assert statuses == ["registered", "current", "registered", "current", "registered"]
    live = {who: [s["endpoint"] for s in httpx.get(f"{server.url}/v1/subscribers/{who}",
                                                   headers=AUTH).json()["push_subscriptions"]
                  if s["removed_at"] is None] for who in ("anna", "bob")}
    assert live == {"anna": [push.endpoint("shared")], "bob": []}


TURNED_OFF = """async ([endpoint, p256dh, auth, anna]) => {
    const calls = [];
    let held = {endpoint, options: {}, toJSON: () => ({endpoint, keys: {p256dh, auth}}),
                unsubscribe: async () => { calls.push('unsubscribe'); held = null; return true; }};
    PushManager.prototype.getSubscription = async function () { return held; };
    const statuses = [(await nurture.refresh(anna)).status];
    statuses.push((await nurture.unsubscribe(anna)).status);
    statuses.push((await nurture.refresh(anna)).status, (await nurture.unsubscribe(anna)).status);
    return {statuses, calls, stored: localStorage.getItem('nurture.endpoint')};
}"""


def test_a_site_turns_a_browsers_pushes_off(site) -> None:
    """`nurture.unsubscribe` (a settings page's switch, a log-out): the browser's subscription
    is dropped there and at nurture, so no push for the subscriber comes to it any more."""
    server, push, runtime = site
    browser_keys = push.browser("phone")
    anna = {"subscriber": "anna", "token": subscriber_token(runtime, "anna")[0]}
    result = _on_demo_page(server, "anna", TURNED_OFF, [
        push.endpoint("phone"), browser_keys.p256dh, browser_keys.auth_secret, anna])
    assert result == {"statuses": ["registered", "unsubscribed", "none", "none"],
                      "calls": ["unsubscribe"], "stored": None}
    exported = httpx.get(f"{server.url}/v1/subscribers/anna", headers=AUTH).json()
    assert [(s["endpoint"], s["removed_at"] is not None)
            for s in exported["push_subscriptions"]] == [(push.endpoint("phone"), True)]


def test_nurture_js_finds_the_api_where_it_came_from(site) -> None:
    """The API is where nurture.js came from, path included (a reverse proxy serving nurture
    under `/nurture` on the shop's origin), unless the tag names it (`data-api`) or the page
    does (`window.NURTURE_API`, for a site that bundles the file into its own script)."""
    from playwright.sync_api import sync_playwright

    server, _, _ = site
    api = f"http://127.0.0.1:{server.port}"
    shop = ShopSite(api)
    base = f"http://localhost:{shop.port}"
    tags = {"/": f'<script src="{api}/nurture.js"></script>',
            "/nurture": f'<script src="{base}/nurture/nurture.js"></script>',
            "/named": f'<script src="{base}/js/nurture.js" data-api="{api}/"></script>'}
    found = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{base}/")
                source = (Path(__file__).resolve().parents[2] / "engine" / "api" / "static"
                          / "nurture.js").read_text(encoding="utf-8")
                found["bundled"] = page.evaluate("""([source, api]) => {
                    delete window.nurture;
                    window.NURTURE_API = api;  // a site's bundle, with the file inside it
                    const script = document.createElement('script');
                    script.textContent = source;
                    document.body.appendChild(script);
                    delete window.NURTURE_API;
                    return window.nurture.api;
                }""", [source, api])
                for name, tag in tags.items():
                    found[name] = page.evaluate("""async (tag) => {
                        delete window.nurture;
                        const holder = document.createElement('div');
                        holder.innerHTML = tag;
                        const script = document.createElement('script');
                        for (const a of holder.firstChild.attributes) {
                            script.setAttribute(a.name, a.value);
                        }
                        await new Promise((ok, fail) => {
                            script.onload = ok; script.onerror = fail;
                            document.body.appendChild(script);
                        });
                        return window.nurture.api;
                    }""", tag)
            finally:
                browser.close()
    finally:
        shop.stop()
    assert found == {"bundled": api, "/": api, "/nurture": f"{base}/nurture", "/named": api}
