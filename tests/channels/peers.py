"""Real protocol peers on loopback for the channel tests (and the push benchmark).

- `PushService`: a Web Push service. It checks the headers, verifies the VAPID JWT (ES256
  signature with the `k=` key, `aud` = its own origin, `exp` in the next 24 hours, a
  `mailto:`/`https:` `sub`), decrypts the body with `http_ece` using the test browser's private
  key and auth secret, and records the JSON the service worker would get. Per subscription it
  answers what the test scripts (201 by default; 410, 429 with Retry-After, 500, 413...).
- `SmtpServer`: aiosmtpd, keeping every message parsed as MIME.
- `WebhookReceiver`: an HTTP endpoint that verifies the HMAC signature of each request.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import hashlib
import hmac
import json
import os
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """A browser's push subscription: the keys the browser keeps and what it registers."""

    name: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def new(cls, name: str) -> Browser:
        return cls(name, ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @property
    def p256dh(self) -> str:
        return b64(self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))

    @property
    def auth_secret(self) -> str:
        return b64(self.auth)


@dataclass
class Received:
    browser: str
    payload: dict[str, Any]
    headers: dict[str, str]
    at: float
    """When the request arrived (`time.time()`)."""
    sender: str = ""
    """The VAPID `sub` of the application server that sent it."""


class _Server:
    """An aiohttp application served from a background thread with its own event loop."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self._runner: web.AppRunner | None = None

    def start(self, app: web.Application) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(app), self.loop).result(10)

    async def _start(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"


class PushService(_Server):
    def __init__(self, tls: ssl.SSLContext | None = None, *, verify: bool = True) -> None:
        super().__init__(tls)
        self.verify = verify
        self.browsers: dict[str, Browser] = {}
        self.received: list[Received] = []
        self.answers: dict[str, list[tuple[int, dict[str, str]]]] = defaultdict(list)
        self.default_answer: dict[str, tuple[int, dict[str, str]]] = {}
        self.problems: list[str] = []
        self.requests: dict[str, int] = defaultdict(int)
        self.delay = 0.0
        """Seconds to wait before answering (to have sends in flight)."""
        app = web.Application(client_max_size=8192)
        app.router.add_post("/push/{name}", self.handle)
        self.start(app)

    def browser(self, name: str) -> Browser:
        self.browsers[name] = Browser.new(name)
        return self.browsers[name]

    def endpoint(self, name: str) -> str:
        return f"{self.origin}/push/{name}"

    def answer(self, name: str, status: int, headers: dict[str, str] | None = None,
               times: int = 1) -> None:
        """Answer the next `times` requests for this browser with `status`."""
        self.answers[name].extend([(status, headers or {})] * times)

    def always(self, name: str, status: int, headers: dict[str, str] | None = None) -> None:
        self.default_answer[name] = (status, headers or {})

    def payloads(self, name: str | None = None) -> list[dict[str, Any]]:
        return [r.payload for r in self.received if name is None or r.browser == name]

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        arrived = time.time()  # before the work below, which lags on a loaded machine
        self.requests[name] += 1
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        browser = self.browsers.get(name)
        if browser is None:
            return web.Response(status=404, text="no such subscription")
        sender = ""
        if self.verify:
            problem = self._check(request, body, browser)
            if problem:
                self.problems.append(f"{name}: {problem}")
                return web.Response(status=400, text=problem)
            sender = _claims(request.headers["Authorization"]).get("sub", "")
        queued = self.answers.get(name)
        status, headers = queued.pop(0) if queued else self.default_answer.get(name, (201, {}))
        if status in (200, 201, 202) and self.verify:
            plain = http_ece.decrypt(body, private_key=browser.private_key,
                                     auth_secret=browser.auth, version="aes128gcm")
            self.received.append(Received(name, json.loads(plain), dict(request.headers),
                                          arrived, sender))
        elif status in (200, 201, 202):
            self.received.append(Received(name, {}, {}, arrived))
        return web.Response(status=status, headers=headers, text="")

    def _check(self, request: web.Request, body: bytes, browser: Browser) -> str | None:
        headers = request.headers
        for required in ("TTL", "Content-Encoding", "Authorization", "Urgency", "Topic"):
            if required not in headers:
                return f"missing {required}"
        if headers["Content-Encoding"] != "aes128gcm":
            return "not aes128gcm"
        if len(body) > 4096:
            return "body over 4096 bytes"
        scheme, _, credentials = headers["Authorization"].partition(" ")
        if scheme != "vapid":
            return "Authorization is not vapid"
        parts = dict(p.split("=", 1) for p in credentials.split(","))
        return _verify_jwt(parts.get("t", ""), parts.get("k", ""), self.origin)


def _claims(authorization: str) -> dict[str, Any]:
    credentials = authorization.partition(" ")[2]
    token = dict(p.split("=", 1) for p in credentials.split(",")).get("t", "")
    claims: dict[str, Any] = json.loads(unb64(token.split(".")[1]))
    return claims


def _verify_jwt(token: str, key: str, audience: str) -> str | None:
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(key))
        raw = unb64(signature_b64)
        signature = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                         int.from_bytes(raw[32:], "big"))
        public.verify(signature, f"{header_b64}.{claims_b64}".encode(),
                      ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        return "VAPID signature does not verify"
    header = json.loads(unb64(header_b64))
    claims = json.loads(unb64(claims_b64))
    if header.get("alg") != "ES256":
        return "VAPID alg is not ES256"
    if claims.get("aud") != audience:
        return f"VAPID aud {claims.get('aud')!r} is not {audience!r}"
    remaining = claims.get("exp", 0) - time.time()
    if not 0 < remaining <= 24 * 3600:
        return "VAPID exp is not within the next 24 hours"
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        return "VAPID sub is not a mailto: or https: contact"
    return None


class WebhookReceiver(_Server):
    def __init__(self, secret: bytes) -> None:
        super().__init__()
        self.secret = secret
        self.received: list[tuple[dict[str, str], bytes, bool]] = []
        self.answers: list[int] = []
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.start(app)

    @property
    def url(self) -> str:
        return f"{self.origin}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers.get("X-Nurture-Timestamp", "")
        expected = "sha256=" + hmac.new(self.secret, stamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        # as the README tells receivers: either signature (the second is there while the
        # sender keeps the secret it replaced) made with the receiver's secret
        valid = any(hmac.compare_digest(expected, request.headers.get(header, ""))
                    for header in ("X-Nurture-Signature", "X-Nurture-Signature-Previous"))
        self.received.append((dict(request.headers), body, valid))
        status = self.answers.pop(0) if self.answers else (200 if valid else 401)
        return web.Response(status=status, text="ok")


@dataclass
class SmtpServer:
    """aiosmtpd on loopback; `messages` holds what it accepted, parsed."""

    handler_answer: Callable[[str], str | None] | None = None
    messages: list[EmailMessage] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    """The messages as they came over the wire."""
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    def start(self, tls: ssl.SSLContext | None = None, require_starttls: bool = False,
              users: dict[str, str] | None = None, smtputf8: bool = True) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        server = self

        class Handler:
            async def handle_RCPT(self, smtp: Any, session: Any, envelope: Any, address: str,
                                  options: Any) -> str:
                refusal = server.handler_answer(address) if server.handler_answer else None
                if refusal:
                    return refusal
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
                message = email.message_from_bytes(envelope.original_content,
                                                   policy=email.policy.default)
                server.messages.append(message)  # type: ignore[arg-type]
                server.raw.append(envelope.original_content)
                server.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                return "250 Message accepted"

        def authenticate(smtp: Any, session: Any, envelope: Any, mechanism: str,
                         data: Any) -> Any:
            ok = isinstance(data, LoginPassword) and users is not None and \
                users.get(data.login.decode()) == data.password.decode()
            # handled=False: aiosmtpd answers a refusal itself (535); its default, True,
            # leaves the client waiting for an answer that the handler never gives
            return AuthResult(success=ok, handled=False)

        options: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
        if users is not None:
            options.update(authenticator=authenticate, auth_require_tls=tls is not None)
        class AnyFreePort(Controller):  # type: ignore[misc]
            """Binds port 0, so that no other test process takes the port between its choice
            and the bind; the port the system gave is read before aiosmtpd first connects."""

            def _trigger_server(self) -> None:
                assert self.server is not None
                self.port = self.server.sockets[0].getsockname()[1]
                super()._trigger_server()

        self.controller = AnyFreePort(Handler(), hostname="127.0.0.1", port=0, tls_context=tls,
                                      require_starttls=require_starttls, **options)
        self.controller.start()

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def stop(self) -> None:
        self.controller.stop()
