"""A previewed message sent as a test (`nurture preview --send-to`), to see it on real
devices before anybody gets it: an e-mail to an address, a push to the browsers of a
subscriber who consented to push, a webhook to a receiver's URL.

What a real send needs is checked first (`prepare`: the relay's setting, the address, the
subscriber's consent and browsers, the VAPID key), so that nothing is printed or sent when
something is missing; then `send` sends and says, for each peer, what it answered. What goes
out is what `engine.preview` builds: the message as a send renders it, without what belongs
to a real send (tracked links, a token to report back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from channels.base import Outcome
from channels.email import SmtpSender
from channels.endpoints import PushEndpointPolicy, WebhookAddressPolicy
from channels.webhook import WebhookSender
from channels.webpush import PushJob, WebPushSender
from dsl.diagnostics import did_you_mean
from engine.clock import SystemClock
from engine.config import ConfigError, Settings
from engine.events import is_email_address
from engine.preview import Preview, email_for_test, pushes_for_test, webhook_for_test
from engine.store import push_subscriptions, queries
from engine.store.database import open_database


class NotSendable(ValueError):
    """What a test send lacks (the command line's or the settings'); nothing was sent."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One peer's answer to a test, as a line to show."""

    delivered: bool
    text: str


Send = Callable[[], list[Answer]]


def prepare(shown: Preview, to: str, settings: Settings) -> Send:
    """The test of `shown` to `to` (an address, a subscriber id or a URL, by the message's
    channel), checked; `NotSendable` says what is missing."""
    channel = shown.variant.channel
    if channel == "email":
        if not is_email_address(to):
            raise NotSendable(f"--send-to: {to!r} is not an e-mail address (the message is "
                              "an e-mail)")
        if not settings.smtp_url:
            raise NotSendable("--send-to needs NURTURE_SMTP_URL, the relay to send through")
        return lambda: [_email(shown, to, settings)]
    if channel == "push":
        return _pushes(shown, to, settings)
    parts = urlsplit(to)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotSendable(f"--send-to: {to!r} is not an http(s) URL (the message is a "
                          "webhook)")
    return lambda: [_webhook(shown, to, settings)]


def _email(shown: Preview, to: str, settings: Settings) -> Answer:
    assert settings.smtp_url is not None
    relay = SmtpSender(settings.smtp_url, settings.email_from, timeout=20)
    [outcome] = relay.send_all([email_for_test(shown, to, settings.public_url)])
    where = f"{relay.relay.host}:{relay.relay.port}"
    if outcome.kind == "delivered":
        return Answer(True, f"sent to {to} through {where} as a test ({outcome.status} "
                            f"{outcome.detail})")
    reason = (f"{where} refused it: {outcome.status} {outcome.detail}"
              if outcome.status is not None else f"{where} could not be reached or failed: "
                                                 f"{outcome.detail}")
    return Answer(False, f"the test e-mail to {to} was not sent; {reason}")


def _pushes(shown: Preview, subscriber: str, settings: Settings) -> Send:
    """A test push goes only where a real one could: to a subscriber who consented to push,
    at each of their live browsers (the marketer's own, subscribed on the site)."""
    database = open_database(settings.db, existing=True)
    try:
        with database.reading() as connection:
            key = queries.subscriber_key(connection, subscriber)
            if key is None:
                meant = did_you_mean(subscriber, queries.ids_like(connection, subscriber))
                raise NotSendable(f"no subscriber {subscriber!r} in the database{meant}")
            consented = queries.consent_now(queries.consents(connection, key)).get("push")
            browsers = push_subscriptions.live(connection, key)
    finally:
        database.dispose()
    if not consented:
        raise NotSendable(f"{subscriber} has not consented to push: a test goes only where "
                          "a send could")
    if not browsers:
        raise NotSendable(f"{subscriber} has no live browser to push to (subscribe one on "
                          "the site first)")
    try:
        vapid = settings.vapid_key()
    except ConfigError as problem:
        raise NotSendable(str(problem)) from None
    jobs = pushes_for_test(shown, browsers)

    async def send_all() -> list[Outcome]:
        sender = WebPushSender(vapid, settings.vapid_subject,
                               PushEndpointPolicy.from_hosts(settings.push_allow_hosts),
                               SystemClock().now)
        try:
            return [await sender.send(job) for job in jobs]
        finally:
            await sender.close()

    def send() -> list[Answer]:
        return [_pushed(subscriber, job, outcome)
                for job, outcome in zip(jobs, asyncio.run(send_all()), strict=True)]

    return send


def _answered(peer: str, outcome: Outcome) -> str:
    """`the push service answered 410: …`, or why nothing answered (`refused: …`)."""
    if outcome.status is None:
        return outcome.detail
    return f"the {peer} answered {outcome.status}{': ' + outcome.detail if outcome.detail else ''}"


def _pushed(subscriber: str, job: PushJob, outcome: Outcome) -> Answer:
    said = _answered("push service", outcome)
    browser = f"{subscriber}'s browser at {_origin(job.endpoint)}"
    if outcome.kind == "delivered":
        return Answer(True, f"pushed to {browser} as a test ({said})")
    return Answer(False, f"the test push to {browser} was not sent: {said}")


def _webhook(shown: Preview, url: str, settings: Settings) -> Answer:
    earlier = settings.earlier_secrets()
    job = webhook_for_test(shown, url)

    async def send() -> Any:
        sender = WebhookSender(settings.signing_secret(create=True),
                               previous=earlier[0] if earlier else None,
                               policy=WebhookAddressPolicy.from_hosts(
                                   settings.webhook_allow_hosts))
        try:
            return await sender.send(job)
        finally:
            await sender.close()

    outcome = asyncio.run(send())
    said = _answered("receiver", outcome)
    if outcome.kind == "delivered":
        return Answer(True, f"posted to {url} as a test ({said})")
    return Answer(False, f"the test webhook to {url} was not sent: {said}")


def _origin(endpoint: str) -> str:
    """A push endpoint's service, without the browser's own path (a capability)."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"
