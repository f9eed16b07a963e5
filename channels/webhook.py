"""Webhooks: the rendered JSON body POSTed to the business's URL, signed.

Headers: `X-Nurture-Timestamp` (Unix seconds), `X-Nurture-Signature` (`sha256=` and the hex
HMAC-SHA256 of `TIMESTAMP.BODY` with the webhook secret) and `X-Nurture-Delivery` (the same for
every retry of one delivery, so a receiver can drop repeats). A receiver checks the signature
and refuses old timestamps. 2xx is delivered; 429, 5xx and timeouts are retried; redirects are
not followed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from channels.base import Outcome
from channels.tokens import webhook_signature
from channels.webpush import parse_retry_after


@dataclass(frozen=True, slots=True)
class WebhookJob:
    key: str
    url: str
    body: bytes


class WebhookSender:
    def __init__(self, secret: bytes, *, concurrency: int = 16, timeout: float = 10.0,
                 ssl: Any = True) -> None:
        self.secret = secret
        self.concurrency = concurrency
        self.limit = asyncio.Semaphore(concurrency)
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.ssl = ssl
        self._session: aiohttp.ClientSession | None = None

    async def send(self, job: WebhookJob, now: datetime | None = None) -> Outcome:
        moment = now or datetime.now(UTC)
        stamp = int(moment.timestamp())
        headers = {"Content-Type": "application/json", "X-Nurture-Delivery": job.key,
                   "X-Nurture-Timestamp": str(stamp),
                   "X-Nurture-Signature": webhook_signature(self.secret, stamp, job.body)}
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, trust_env=False,
                connector=aiohttp.TCPConnector(ssl=self.ssl))
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
            except (TimeoutError, aiohttp.ClientError, OSError) as problem:
                return Outcome("retry", None, f"{type(problem).__name__}: {problem}"[:300])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
