"""The dispatcher: claims due dispatches, sends them, records what came of each.

One claim takes a batch and leases it; pushes and webhooks go out concurrently (a fixed pool
of senders per channel, as many as the channel's concurrency), e-mails over one SMTP
connection in a worker thread. Outcomes
are written in groups as the answers arrive, so a dispatcher killed mid-batch repeats at most
the sends whose answer it had not yet written (bounded by the senders' concurrency and one
group); everything else is either recorded or still leased and comes back when the lease ends.
A push sent twice carries the same `Topic`, so the push service keeps one.

Several dispatchers share one outbox (PostgreSQL): a claim is a random token written on its
rows. While a batch is in hand its lease is renewed every third of the lease, so a slow batch
is never taken over under a live dispatcher; a send starts only while the claim still holds
its row with time to spare, and outcomes are written only to rows the claim still holds. A
dispatcher that dies stops renewing, and its rows return to the pool when the lease ends.

Retries: 429, 5xx, timeouts and lost connections (SMTP 4xx too) are tried again after an
exponential backoff with jitter (30 s, 1 min, 2 min, … up to 6 h), never before the peer's
`Retry-After`; after 10 attempts the dispatch fails. A push or e-mail not delivered before it
expires (a push's TTL, the late limit: `NURTURE_LATE_LIMIT` after its decision) is dropped
rather than sent stale; a push carries what is left of its TTL. 404/410 remove the
subscription; other answers are final.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from html import unescape
from typing import Any
from urllib.parse import urlsplit

from channels.base import Outcome
from channels.email import EmailJob, SmtpSender, address_refused
from channels.endpoints import PushEndpointPolicy, WebhookAddressPolicy
from channels.tokens import Signer
from channels.webhook import WebhookJob, WebhookSender, default_body
from channels.webpush import PushJob, WebPushSender, payload, topic
from dsl.templates import UNSUBSCRIBE_URL
from engine.clock import Clock, SystemClock
from engine.config import ConfigError, Settings
from engine.events import Event
from engine.kept_keys import refuse_lost_keys
from engine.store import outbox
from engine.store.bulk import BatchWriter
from engine.store.database import Database, DatabaseUnavailable
from engine.store.outbox import Claimed, Recorded
from engine.store.push_subscriptions import HANDED_OVER
from engine.timing import after_quiet_hours, parse_quiet

log = logging.getLogger("nurture.dispatcher")
LINK = re.compile(r"""(<(?:a|area|v:[a-z]+)\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""",
                  re.IGNORECASE)
"""A web link of an e-mail's HTML (`<a>`, `<area>`, and the VML shapes of Outlook's
"bulletproof" buttons, `<v:roundrect href=…>`), in either quotes (hand-written HTML uses
both). Not the `href` of a `<link>`: a stylesheet or web font that a mail client loads as it
shows the message (MJML's output links Google Fonts) would be a click at every opening."""

FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=6)
MAX_ATTEMPTS = 10
QUIET_GRACE = timedelta(minutes=5)
"""A send that comes this late into its quiet hours still goes (decided at 20:59, sent at
21:00:30); later than that, it waits for their end."""


@dataclass(slots=True)
class DispatchStats:
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    by_channel: dict[tuple[str, str], int] = field(default_factory=dict)
    """(channel, outcome) -> how many."""

    def count(self, channel: str, status: str) -> None:
        self.outcomes[status] = self.outcomes.get(status, 0) + 1
        key = (channel, status)
        self.by_channel[key] = self.by_channel.get(key, 0) + 1

    def add(self, other: DispatchStats) -> None:
        self.claimed += other.claimed
        for (channel, status), count in other.by_channel.items():
            self.outcomes[status] = self.outcomes.get(status, 0) + count
            self.by_channel[(channel, status)] = self.by_channel.get((channel, status), 0) + count


@dataclass(frozen=True, slots=True)
class Links:
    signer: Signer
    public_url: str

    def click_token(self, claimed: Claimed) -> str:
        return self.signer.sign("push", claimed.delivery_key)

    def click_url(self, claimed: Claimed, url: str) -> str:
        token = self.signer.sign("click", json.dumps({"d": claimed.delivery_key, "u": url},
                                                     separators=(",", ":")))
        return f"{self.public_url.rstrip('/')}/v1/t/c/{token}"

    def open_url(self, claimed: Claimed) -> str:
        token = self.signer.sign("open", claimed.delivery_key)
        return f"{self.public_url.rstrip('/')}/v1/t/o/{token}.gif"

    def tracked_html(self, claimed: Claimed, html: str | None) -> str | None:
        """Links of the HTML part go through click tracking (but the unsubscribe link: a
        click on it is no sign of interest); an open pixel is added."""
        if html is None:
            return None

        def tracked_link(found: re.Match[str]) -> str:
            if found[3] == UNSUBSCRIBE_URL:
                return found[0]
            return f'{found[1]}"{self.click_url(claimed, unescape(found[3]))}"'

        tracked = LINK.sub(tracked_link, html)
        pixel = (f'<img src="{self.open_url(claimed)}" width="1" height="1" alt="" '
                 'style="display:none">')
        closing = tracked.lower().rfind("</body>")
        if closing < 0:
            return tracked + pixel
        return tracked[:closing] + pixel + tracked[closing:]

    def message_id(self, claimed: Claimed) -> str:
        """`SUBSCRIBER.DELIVERY.TAG`, the tag a keyed hash of the delivery: numbers alone
        start again at 1.1 in every new database (a reinstall, staging beside production,
        two shops on one domain), and a mail service that sees a `Message-ID` again may
        take the new e-mail for one it has (Gmail does not show it twice). Keyed, it differs
        between installations and stays the same for every attempt to send one e-mail."""
        tag = self.signer.fingerprint("message-id", claimed.delivery_key)[:16]
        return f"{claimed.delivery_key}.{tag}"

    def unsubscribe_url(self, claimed: Claimed) -> str:
        token = self.signer.sign("unsubscribe", json.dumps(
            {"s": claimed.subscriber, "c": claimed.channel}, separators=(",", ":")))
        return f"{self.public_url.rstrip('/')}/v1/unsubscribe?token={token}"


@dataclass(slots=True)
class Lease:
    """One claim on a batch of dispatches."""

    token: str
    until: datetime
    margin: timedelta
    """No send starts later than this before the lease ends."""
    start_by: datetime = field(init=False)
    held: set[int] = field(default_factory=set)
    """Rows the claim still holds (a renewal drops those another claim took over)."""
    unsent: set[int] = field(default_factory=set)
    """Rows not started because the lease was running out."""

    def __post_init__(self) -> None:
        self.start_by = self.until - self.margin

    def extend(self, until: datetime, held: set[int]) -> None:
        self.until, self.start_by, self.held = until, until - self.margin, held


class Dispatcher:
    def __init__(self, database: Database, links: Links, *, clock: Clock | None = None,
                 push: WebPushSender | None = None, email: SmtpSender | None = None,
                 webhook: WebhookSender | None = None, batch_size: int = 500,
                 lease: timedelta = timedelta(minutes=2), group: int = 16,
                 rng: random.Random | None = None,
                 on_bounce: Callable[[list[Event]], object] | None = None) -> None:
        """`on_bounce` takes the `email_bounced` events of e-mails whose address the mail
        server refused (the service hands them to the engine, as the tracking API does
        clicks), so that workflows can score them or end the enrolment."""
        self.database = database
        self.writer = BatchWriter(database.engine.dialect)
        self.links = links
        self.clock: Clock = clock or SystemClock()
        self.push, self.email, self.webhook = push, email, webhook
        self.batch_size = batch_size
        self.lease = lease
        self.group = group
        self.rng = rng or random.Random()
        self.on_bounce = on_bounce
        self.on_database_failure: Callable[[DatabaseUnavailable], object] | None = None
        """Told of a failing database met in the middle of a batch (the service's `Outage`:
        one line a minute, not a traceback each time); without it, the failure is logged."""

    async def dispatch_once(self) -> DispatchStats:
        """Claim one batch of due dispatches and see each to an outcome."""
        now = self.clock.now()
        channels = [name for name, sender in (("push", self.push), ("email", self.email),
                                              ("webhook", self.webhook)) if sender is not None]
        lease = Lease(secrets.token_hex(16), now + self.lease, self.lease / 3)
        with self.database.transaction() as connection:
            claimed = outbox.claim(connection, now, lease.until, self.batch_size, channels,
                                   lease.token)
        stats = DispatchStats(len(claimed))
        if not claimed:
            return stats
        lease.held.update(item.id for item in claimed)
        renewing = asyncio.create_task(self._renew(lease))
        try:
            await self._see_through(claimed, lease, now, stats)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        if lease.unsent:  # the lease could not be renewed: give back what did not start
            with contextlib.suppress(Exception), self.database.transaction() as connection:
                outbox.release(connection, sorted(lease.unsent), lease.token,
                               self.clock.now())
        return stats

    async def _see_through(self, claimed: list[Claimed], lease: Lease, now: datetime,
                           stats: DispatchStats) -> None:
        """Send the batch: per channel a fixed pool of senders (the channel's concurrency)
        takes the next dispatch in turn; outcomes are written in groups as they come."""
        buffer: list[tuple[Claimed, Outcome]] = []
        queues: dict[str, list[Claimed]] = {}
        emails: list[Claimed] = []
        waiting: list[tuple[int, datetime]] = []
        for item in claimed:
            settled = self._settled_without_sending(item, now)
            quiet_until = _quiet_until(item, now) if settled is None else None
            if settled is not None:
                buffer.append((item, settled))
            elif quiet_until is not None:
                waiting.append((item.id, quiet_until))
                stats.count(item.channel, "deferred")
            elif item.channel == "email":
                emails.append(item)
            else:
                queues.setdefault(item.channel, []).append(item)

        if waiting:
            with self.database.transaction() as connection:
                outbox.defer(connection, waiting, lease.token)
            lease.held.difference_update(dispatch_id for dispatch_id, _ in waiting)

        def collect(results: list[tuple[Claimed, Outcome]]) -> None:
            nonlocal buffer
            buffer.extend(results)
            if len(buffer) >= self.group:
                self._record(buffer, stats, lease)
                buffer = []

        async def sender(pending: Iterator[Claimed]) -> None:
            # The lease is checked when a sender is free, just before the request: a dispatch
            # still waiting while the claim loses its row is never started.
            for item in pending:
                if self._may_start(item, lease):
                    collect(await self._send_guarded(item))

        async def emailer() -> None:
            collect(await self._send_emails(emails, lease))

        work: list[Awaitable[None]] = []
        for channel, items in queues.items():
            pending = iter(items)  # shared: each sender takes the next one
            work.extend(sender(pending)
                        for _ in range(min(len(items), self._concurrency(channel))))
        if emails:
            work.append(emailer())
        await asyncio.gather(*work)
        self._record(buffer, stats, lease)

    async def _renew(self, lease: Lease) -> None:
        """Keep the claim's rows while the batch is in hand (cancelled when it is done)."""
        every = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            until = self.clock.now() + self.lease
            try:
                with self.database.transaction() as connection:
                    kept = outbox.renew(connection, sorted(lease.held), lease.token, until)
            except DatabaseUnavailable as problem:
                self._database_failed(problem, "could not renew the lease of a batch")
                continue
            except Exception:
                log.exception("could not renew the lease of a batch of dispatches")
                continue
            lost = lease.held - kept
            if lost:
                log.warning("%d dispatches of this batch were taken over by another "
                            "dispatcher; they are not sent from here", len(lost))
            lease.extend(until, kept)

    async def run(self, stop: asyncio.Event, idle: float = 1.0) -> None:
        """Dispatch until `stop` is set; a batch in hand is always finished first."""
        while not stop.is_set():
            stats = await self.dispatch_once()
            if stats.claimed == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle)

    async def drain(self, stop: Callable[[], bool] | None = None) -> DispatchStats:
        """Dispatch until nothing is due, or `stop` says so between batches."""
        total = DispatchStats()
        while stop is None or not stop():
            stats = await self.dispatch_once()
            if stats.claimed == 0:
                return total
            total.add(stats)
        return total

    async def close(self) -> None:
        for sender in (self.push, self.webhook):
            if sender is not None:
                await sender.close()

    # ------------------------------------------------------------ sending

    def _settled_without_sending(self, item: Claimed, now: datetime) -> Outcome | None:
        if item.channel == "push" and (item.subscription_removed or item.endpoint is None):
            return Outcome("gone", None, "the subscription was removed")
        if item.channel == "push" and item.subscription_handed_over:
            return Outcome("gone", None, HANDED_OVER)
        if item.expires_at is not None and now > item.expires_at:
            return Outcome("failed", None, "expired: not sent before "
                           f"{item.expires_at:%Y-%m-%dT%H:%M:%SZ} (a push's TTL, or the late "
                           "limit, NURTURE_LATE_LIMIT, after its decision)")
        return None

    def _may_start(self, item: Claimed, lease: Lease) -> bool:
        """Whether a send may start: the claim holds the row, with time to spare."""
        if item.id not in lease.held:
            return False
        if self.clock.now() >= lease.start_by:
            lease.unsent.add(item.id)
            return False
        return True

    def _concurrency(self, channel: str) -> int:
        sender = self.push if channel == "push" else self.webhook
        assert sender is not None
        return max(1, sender.concurrency)

    async def _send_guarded(self, item: Claimed) -> list[tuple[Claimed, Outcome]]:
        """A send that raises (a bug, or an input nobody foresaw) is recorded and tried again
        later like a temporary failure, up to the attempts' limit; it must not stop the
        batch, whose other outcomes would then go unrecorded and be sent a second time."""
        try:
            return await self._send_now(item)
        except Exception as problem:
            log.exception("dispatch %d could not be sent", item.id)
            return [(item, Outcome("retry", None, f"internal error: {type(problem).__name__}: "
                                                  f"{problem}"[:300]))]

    async def _send_now(self, item: Claimed) -> list[tuple[Claimed, Outcome]]:
        if item.channel == "push":
            assert self.push is not None and item.endpoint and item.p256dh and item.auth
            content = item.content
            tag = topic(content.get("topic"), item.delivery_key)
            job = PushJob(item.delivery_key, item.endpoint, item.p256dh, item.auth,
                          payload(content, tag, self.links.click_token(item)),
                          _ttl_left(content, item.decided_at, self.clock.now()),
                          str(content.get("urgency") or "normal"), tag)
            return [(item, await self.push.send(job, self.clock.now()))]
        assert self.webhook is not None and item.address
        body = item.content.get("body") or default_body(item.subscriber, item.workflow,
                                                        item.message)
        outcome = await self.webhook.send(
            WebhookJob(item.delivery_key, item.address, body.encode()), self.clock.now())
        return [(item, outcome)]

    def _email_job(self, item: Claimed) -> EmailJob:
        """The e-mail as it goes: tracked links, and the recipient's signed unsubscribe link
        wherever a template wrote `{{ unsubscribe_url }}`."""
        unsubscribe = self.links.unsubscribe_url(item)

        def linked(field: str | None) -> str | None:
            return None if field is None else field.replace(UNSUBSCRIBE_URL, unsubscribe)

        return EmailJob(item.delivery_key, item.address or "",
                        linked(item.content.get("subject")) or "",
                        linked(item.content.get("text")),
                        linked(self.links.tracked_html(item, item.content.get("html"))),
                        unsubscribe, self.links.message_id(item))

    async def _send_emails(self, items: list[Claimed],
                           lease: Lease) -> list[tuple[Claimed, Outcome]]:
        assert self.email is not None
        jobs = [self._email_job(item) for item in items]
        by_key = {item.delivery_key: item for item in items}
        outcomes = await asyncio.to_thread(
            self.email.send_all, jobs, lambda job: self._may_start(by_key[job.key], lease))
        return [(item, outcome) for item, outcome in zip(items, outcomes, strict=True)
                if outcome is not None]

    # ------------------------------------------------------------ outcomes

    def _record(self, results: list[tuple[Claimed, Outcome]], stats: DispatchStats,
                lease: Lease) -> None:
        if not results:
            return
        now = self.clock.now()
        rows = [self._recorded(item, outcome, now) for item, outcome in results]
        channels = [item.channel for item, _ in results]
        gone = [item.push_subscription_id for item, outcome in results
                if outcome.kind == "gone" and item.push_subscription_id is not None
                and not item.subscription_handed_over]  # (live: another subscriber's now)
        with self.database.transaction() as connection:
            outbox.record(connection, self.writer, rows, lease.token)
            outbox.remove_subscriptions(connection, gone, now, "the push service answered "
                                        "404/410: the subscription is gone")
        for channel, row in zip(channels, rows, strict=True):
            stats.count(channel, row.status)
        self._report_bounces(results, now)

    def _report_bounces(self, results: list[tuple[Claimed, Outcome]], now: datetime) -> None:
        if self.on_bounce is None:
            return
        bounced = [Event(item.subscriber, "email_bounced", now, {
                       "workflow": item.workflow, "message": item.message,
                       "delivery": item.delivery_key, "address": item.address,
                       "status": outcome.status, "reason": outcome.detail[:200]},
                       f"email_bounced:{item.delivery_key}")  # once, whatever repeats it
                   for item, outcome in results
                   if item.channel == "email" and address_refused(outcome)]
        if not bounced:
            return
        try:
            self.on_bounce(bounced)
        except DatabaseUnavailable as problem:  # (the sends are recorded, as below)
            self._database_failed(problem, f"{len(bounced)} e-mail bounce(s) could not be "
                                           "recorded as events")
        except Exception:  # the sends are recorded: a failed report must not undo that
            log.exception("%d e-mail bounce(s) could not be recorded as events", len(bounced))

    def _database_failed(self, problem: DatabaseUnavailable, what: str) -> None:
        if self.on_database_failure is not None:
            self.on_database_failure(problem)
        else:
            log.error("%s: %s", what, problem)

    def _recorded(self, item: Claimed, outcome: Outcome, now: datetime) -> Recorded:
        detail = outcome.detail[:500] or None  # (the column holds 500)
        if outcome.kind == "delivered":
            return Recorded(item.id, "delivered", None, outcome.status, detail, now)
        if outcome.kind in ("gone", "failed"):
            status = "expired" if detail and detail.startswith("expired") else outcome.kind
            return Recorded(item.id, status, None, outcome.status, detail, now)
        if item.attempts >= MAX_ATTEMPTS:
            return Recorded(item.id, "failed", None, outcome.status,
                            f"gave up after {item.attempts} attempts: {detail}"[:500], now)
        again = retry_at(item.attempts, now, outcome.not_before, self.rng)
        if item.expires_at is not None and again > item.expires_at:
            return Recorded(item.id, "expired", None, outcome.status,
                            f"it expires (TTL or late limit) before the next attempt: "
                            f"{detail}"[:500], now)
        return Recorded(item.id, "queued", again, outcome.status, detail, None)


def _ttl_left(content: dict[str, Any], decided_at: datetime, now: datetime) -> int:
    """The push's `TTL` header: what is left of its `ttl` since the decision (a push sent
    late, after retries or a backlog, must not live longer than the marketer asked)."""
    ttl = int(content.get("ttl") or 0)
    return max(0, ttl - int((now - decided_at).total_seconds()))


def from_settings(settings: Settings, database: Database, clock: Clock | None = None,
                  ssl: Any = True) -> Dispatcher:
    """The dispatcher an operator runs: every channel that is configured.

    Push needs the VAPID key, e-mail needs `NURTURE_SMTP_URL`; webhooks always work. A
    channel that is not configured is not claimed: its dispatches wait for a worker that has
    it (or for the configuration).
    """
    clock = clock or SystemClock()
    refuse_lost_keys(settings, database, vapid=False)  # without one, push is off
    secret = settings.signing_secret(create=True)
    push = None
    try:
        push = WebPushSender(settings.vapid_key(), settings.vapid_subject,
                             PushEndpointPolicy.from_hosts(settings.push_allow_hosts),
                             SystemClock().now)
    except ConfigError as problem:
        log.warning("web push is off: %s", problem)
    if not settings.smtp_url:
        log.warning("e-mail is off: NURTURE_SMTP_URL is not set")
    _warn_of_development_settings(settings, push=push is not None,
                                  email=bool(settings.smtp_url))
    email = SmtpSender(settings.smtp_url, settings.email_from) if settings.smtp_url else None
    earlier = settings.earlier_secrets()
    return Dispatcher(database, Links(Signer(secret), settings.public_url), clock=clock,
                      push=push, email=email, webhook=WebhookSender(
                          secret, ssl=ssl, previous=earlier[0] if earlier else None,
                          policy=WebhookAddressPolicy.from_hosts(settings.webhook_allow_hosts)))


def _warn_of_development_settings(settings: Settings, push: bool, email: bool) -> None:
    """Defaults that suit a first start on a laptop and fail the people messages go to in
    production: said once, at start, for the channels that are on."""
    if push and _unreachable_contact(settings.vapid_subject):
        log.warning("NURTURE_VAPID_SUBJECT is %s: Apple's push service refuses a VAPID "
                    "contact at a local or reserved name (403 BadJwtToken), so pushes to "
                    "Safari and iPhones would fail; set a real mailto: or https: contact",
                    settings.vapid_subject, extra={"vapid_subject": settings.vapid_subject})
    if email and _only_this_machine(settings.public_url):
        log.warning("e-mails' unsubscribe and tracking links will point at %s, which only "
                    "this machine can open: recipients could not unsubscribe. Set "
                    "NURTURE_PUBLIC_URL to the address the service is reached at",
                    settings.public_url, extra={"public_url": settings.public_url})
    if email and _unreachable_contact(f"mailto:{parseaddr(settings.email_from)[1]}"):
        log.warning("e-mails will come from %s, a local or reserved domain that receiving "
                    "servers refuse or file as spam; set NURTURE_EMAIL_FROM to an address "
                    "of the shop's own domain", settings.email_from,
                    extra={"email_from": settings.email_from})


RESERVED_NAMES = ("localhost", "invalid", "test", "example", "local", "internal")
"""Top-level names that are nobody's on the internet (RFC 2606, 6761, 6762)."""


def _unreachable_contact(subject: str) -> bool:
    """A VAPID `sub` whose host is local or reserved (`mailto:nurture@localhost`, the default;
    `https://localhost`): Apple's push service refuses the token, the others accept it."""
    scheme, _, rest = subject.partition(":")
    host = rest.rpartition("@")[2] if scheme.lower() == "mailto" else urlsplit(subject).hostname
    host = (host or "").rstrip(".").lower()
    return _only_this_machine(f"http://{host}/") or host.rsplit(".", 1)[-1] in RESERVED_NAMES


def _only_this_machine(url: str) -> bool:
    """A link base that no recipient can reach: localhost, a loopback address."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _quiet_until(item: Claimed, now: datetime) -> datetime | None:
    """When a send that came late into the quiet hours of its decision may go (their end);
    None if it may go now. The engine decides sends outside quiet hours; a dispatch can still
    come late (retries after 429s and timeouts, a dispatcher that was down or behind)."""
    if item.quiet is None:
        return None
    try:
        window, zone = parse_quiet(item.quiet)
    except (ValueError, LookupError):  # (ZoneInfoNotFoundError is a KeyError)
        return None
    end = after_quiet_hours(now - QUIET_GRACE, window, zone)
    return end if end > now else None


def retry_at(attempts: int, now: datetime, not_before: datetime | None,
             rng: random.Random) -> datetime:
    """Exponential backoff with ±20% jitter, never before the peer's Retry-After."""
    base = min(FIRST_RETRY * (1 << min(max(attempts - 1, 0), 20)), LONGEST_RETRY)
    delay = base * rng.uniform(0.8, 1.2)
    again = now + delay
    return max(again, not_before) if not_before is not None else again
