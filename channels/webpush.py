"""Web Push (RFC 8030/8291/8292): payload, encryption, VAPID, and the pooled, bounded sender.

The only module that imports pywebpush, for its encoder (aes128gcm with a fresh ephemeral key
per message). Everything else that makes sending fast is here: one VAPID header per push-service
origin (see `channels.vapid`), and libcurl underneath (`channels.curl`): keep-alive connections
reused per host, a bound on requests in flight, a finite timeout, no redirects, and a check at
connection time that only lets it connect to addresses the endpoint policy accepts.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
from pywebpush import WebPusher

from channels.base import Outcome
from channels.curl import CurlClient, TransferError
from channels.endpoints import MAX_ENDPOINT, EndpointError, PushEndpointPolicy
from channels.vapid import VapidKey
from dsl.model import PUSH_PLAINTEXT_LIMIT

PAYLOAD_FIELDS = ("title", "body", "url", "icon")
URGENCY = {"very_low": "very-low", "low": "low", "normal": "normal", "high": "high"}
TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")


def payload(fields: Mapping[str, Any], tag: str, token: str) -> bytes:
    """The JSON the service worker receives (SPEC §4): title, body, url, icon, tag, token."""
    document = {name: fields.get(name) for name in PAYLOAD_FIELDS}
    document["tag"] = tag
    document["token"] = token
    return orjson.dumps(document)  # compact UTF-8, as the size check counts it


def fits(data: bytes) -> bool:
    return len(data) <= PUSH_PLAINTEXT_LIMIT


def topic(rendered_topic: str | None, delivery_key: str) -> str:
    """A valid `Topic` header: the message's own if it is one, else a 24-character hash.

    Every push carries a topic, so a push sent twice (after a crash) collapses into one at the
    push service; 24 characters avoid lengths some services refuse (≡ 1 mod 4)."""
    if rendered_topic and TOPIC.match(rendered_topic) and len(rendered_topic) % 4 != 1:
        return rendered_topic
    seed = rendered_topic or delivery_key
    return base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest())[:24].decode()


@dataclass(frozen=True, slots=True)
class PushJob:
    key: str
    endpoint: str
    p256dh: str
    auth: str
    data: bytes
    ttl: int
    urgency: str
    topic: str


class WebPushSender:
    """Sends push jobs; one instance per dispatcher (it owns sessions per origin)."""

    def __init__(self, vapid: VapidKey, subject: str, policy: PushEndpointPolicy,
                 wall_clock: Callable[[], datetime], *, concurrency: int = 64,
                 timeout: float = 10.0, ca_file: str | None = None) -> None:
        """`wall_clock` dates the VAPID signature: push services check `exp` against real
        time, whatever clock the dispatcher runs on. `ca_file` replaces the system's CA
        bundle (tests and benchmarks trust a throw-away CA)."""
        self.vapid = vapid
        self.wall_clock = wall_clock
        self.subject = subject
        self.policy = policy
        self.concurrency = concurrency
        self.http = CurlClient(concurrency=concurrency, timeout=timeout, ca_file=ca_file,
                               address_check=self._refused_address)
        self._origins: dict[str, str] = {}
        """Origin -> "" if the policy accepts it, else why not."""

    def _refused_address(self, host: str, port: int, address: str) -> str | None:
        """Checked by libcurl's connection step for every address it is about to use."""
        try:
            self.policy.check_address(host, port, address)
        except EndpointError as problem:
            return str(problem)
        return None

    def _checked_origin(self, endpoint: str) -> str:
        """The endpoint's origin once the policy accepts it (checked once per origin)."""
        if len(endpoint) > MAX_ENDPOINT:
            raise EndpointError(f"longer than {MAX_ENDPOINT} characters")
        scheme, _, rest = endpoint.partition("://")
        origin = f"{scheme}://{rest.split('/', 1)[0]}"
        verdict = self._origins.get(origin)
        if verdict is None:
            try:
                host, port = self.policy.check_url(endpoint)
                if _is_ip(host):
                    self.policy.check_address(host, port, host)
                verdict = ""
            except EndpointError as problem:
                verdict = str(problem)
            self._origins[origin] = verdict
        if verdict:
            raise EndpointError(verdict)
        return origin

    async def send(self, job: PushJob, now: datetime | None = None) -> Outcome:
        try:
            origin = self._checked_origin(job.endpoint)
        except EndpointError as problem:
            return Outcome("failed", None, f"endpoint refused: {problem}")
        moment = now or datetime.now(UTC)
        try:
            encoded = WebPusher({"endpoint": job.endpoint,
                                 "keys": {"p256dh": job.p256dh, "auth": job.auth}}).encode(job.data)
        except Exception as problem:  # pywebpush raises plain exceptions for bad keys
            return Outcome("failed", None, f"cannot encrypt for this subscription: {problem}")
        headers = [
            f"TTL: {job.ttl}", f"Urgency: {URGENCY.get(job.urgency, 'normal')}",
            f"Topic: {job.topic}", "Content-Encoding: aes128gcm",
            "Content-Type: application/octet-stream", "Expect:",
            "Authorization: " + self.vapid.authorization(origin, self.subject,
                                                         self.wall_clock()),
        ]
        try:
            response = await self.http.post(job.endpoint, encoded["body"], headers)
        except TransferError as problem:
            if problem.refused:
                return Outcome("failed", None, f"endpoint refused: {problem.refused}")
            if problem.permanent:
                return Outcome("failed", None, str(problem)[:300])
            return Outcome("retry", None, f"{'timeout' if problem.timed_out else 'transfer'}"
                                          f": {problem}"[:300])
        retry_after = (str(response.retry_after) if response.retry_after > 0 else None)
        return classify(response.status, retry_after,
                        response.body.decode("utf-8", "replace"), moment)

    async def close(self) -> None:
        await self.http.close()


def classify(status: int, retry_after: str | None, text: str, now: datetime) -> Outcome:
    """A push service's answer, as RFC 8030 and the services' documentation define it."""
    detail = text.strip()[:300]
    if status in (201, 202) or 200 <= status < 300:
        return Outcome("delivered", status, detail)
    if status in (404, 410):
        return Outcome("gone", status, detail or "the subscription is gone")
    if status == 429 or status >= 500:
        return Outcome("retry", status, detail, parse_retry_after(retry_after, now))
    if status in (401, 403) and "BadJwtToken" in detail:  # Apple's word for it
        detail += (" (the push service refused the VAPID token: NURTURE_VAPID_SUBJECT must be "
                   "a real mailto: or https: contact, and the key the one the browser "
                   "subscribed with)")
    return Outcome("failed", status, detail)


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """`Retry-After` as seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when, now)


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host.strip("[]"))
    except OSError:
        return False
    return True
