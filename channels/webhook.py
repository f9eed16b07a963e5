"""Webhooks: the rendered JSON body POSTed to the business's URL, signed.

Headers: `X-Nurture-Timestamp` (Unix seconds), `X-Nurture-Signature` (`sha256=` and the hex
HMAC-SHA256 of `TIMESTAMP.BODY` with the webhook secret) and `X-Nurture-Delivery` (the same for
every retry of one delivery, so a receiver can drop repeats); a test sent by hand (`nurture
preview --send-to`) also has `X-Nurture-Test: 1`. A receiver checks the signature and refuses
old timestamps. 2xx is delivered; 429, 5xx and timeouts are retried; redirects are
not followed. This machine's own addresses and the cloud's metadata address are not reached
(`channels.endpoints.WebhookAddressPolicy`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from channels.base import Outcome
from channels.endpoints import WebhookAddressPolicy
from channels.tokens import webhook_signature
from channels.webpush import parse_retry_after


@dataclass(frozen=True, slots=True)
class WebhookJob:
    key: str
    url: str
    body: bytes
    test: bool = False
    """Sent by hand to try the receiver (`X-Nurture-Test: 1`), for no subscriber's step."""


def default_body(subscriber: str, workflow: str, message: str) -> str:
    """What a webhook message without a `body` posts: who, from which workflow, which
    message."""
    return json.dumps({"subscriber": subscriber, "workflow": workflow, "message": message})


class RefusedAddress(OSError):
    """Every address a webhook's host resolves to is one webhooks may not reach."""


class GuardedResolver(AbstractResolver):
    """Resolves names as aiohttp does, keeping only the addresses the policy lets webhooks
    reach: checked at every connection, so a name that later resolves to 127.0.0.1 or to
    the cloud's metadata address is refused too."""

    def __init__(self, policy: WebhookAddressPolicy) -> None:
        self.policy = policy
        self.inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        refusals = [self.policy.refusal(host, port, entry["host"]) for entry in found]
        kept = [entry for entry, refusal in zip(found, refusals, strict=True) if refusal is None]
        if not kept:
            raise RefusedAddress(next((r for r in refusals if r), f"{host}: no address"))
        return kept

    async def close(self) -> None:
        await self.inner.close()


USER_AGENT = "nurture-webhook/1"
"""How a receiver's log names us (aiohttp's own says only `Python/3.11 aiohttp/…`)."""


class WebhookSender:
    def __init__(self, secret: bytes, *, concurrency: int = 16, timeout: float = 10.0,
                 ssl: Any = True, policy: WebhookAddressPolicy | None = None,
                 previous: bytes | None = None) -> None:
        """`previous`: the secret the current one replaced (`nurture keys --rotate-secret`),
        while it is kept: each webhook is signed with it too, in
        `X-Nurture-Signature-Previous`, so that a receiver still configured with it keeps
        accepting webhooks until its configuration is updated."""
        self.secret = secret
        self.previous = previous
        self.policy = policy or WebhookAddressPolicy()
        self.concurrency = concurrency
        self.limit = asyncio.Semaphore(concurrency)
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.ssl = ssl
        self._session: aiohttp.ClientSession | None = None

    async def send(self, job: WebhookJob, now: datetime | None = None) -> Outcome:
        moment = now or datetime.now(UTC)
        stamp = int(moment.timestamp())
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "X-Nurture-Delivery": job.key,
                   "X-Nurture-Timestamp": str(stamp),
                   "X-Nurture-Signature": webhook_signature(self.secret, stamp, job.body)}
        if job.test:
            headers["X-Nurture-Test"] = "1"
        if self.previous is not None:
            headers["X-Nurture-Signature-Previous"] = webhook_signature(self.previous, stamp,
                                                                        job.body)
        refused = self._refused_literal(job.url)
        if refused is not None:
            return Outcome("failed", None, f"refused: {refused}")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, trust_env=False,
                connector=aiohttp.TCPConnector(ssl=self.ssl,
                                               resolver=GuardedResolver(self.policy)))
        async with self.limit:
            try:
                async with self._session.post(job.url, data=job.body, headers=headers,
                                              allow_redirects=False) as response:
                    text = (await response.content.read(2048)).decode("utf-8", "replace")
                    status = response.status
                    if 200 <= status < 300:
                        return Outcome("delivered", status, text[:300])
                    if status == 429 or status >= 500:
                        return Outcome("retry", status, text[:300], parse_retry_after(
                            response.headers.get("Retry-After"), moment))
                    if 300 <= status < 400:
                        where = response.headers.get("Location", "?")
                        return Outcome("failed", status, f"redirected to {where}: use that URL")
                    return Outcome("failed", status, text[:300])
            except aiohttp.ClientConnectorError as problem:
                if isinstance(problem.os_error, RefusedAddress):
                    return Outcome("failed", None, f"refused: {problem.os_error}"[:300])
                return Outcome("retry", None, f"{type(problem).__name__}: {problem}"[:300])
            except (TimeoutError, aiohttp.ClientError, OSError) as problem:
                return Outcome("retry", None, f"{type(problem).__name__}: {problem}"[:300])

    def _refused_literal(self, url: str) -> str | None:
        """An address written in the URL itself is not resolved (aiohttp connects to it
        as it is): it is checked here."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            ipaddress.ip_address(host)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None
        return self.policy.refusal(host, port, host)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
