"""`nurture preview`: a message as one subscriber would get it, before anybody does.

`nurture check` renders every message with sample data, but says nothing when it works; a
marketer wants to read the greeting with a Polish name, see the German variant picked for
`de-CH`, or the subject a VIP gets. The message is rendered exactly as a send renders it (the
same variant choice, variables, sandbox and address checks), for attributes, scores and tags
given on the command line, in the workflow and stage that send it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from channels.email import EmailJob
from channels.render import choose_variant, render_message
from channels.webhook import WebhookJob, default_body
from channels.webpush import PushJob, payload, topic
from dsl import model as m
from dsl.diagnostics import did_you_mean
from dsl.errors import RenderError
from dsl.templates import UNSUBSCRIBE_URL
from engine.sending import message_variables


class PreviewError(ValueError):
    """What keeps the message from being shown; the text says what to do."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A subscriber as the database has them (`--subscriber ID`): what the flags add to."""

    id: str
    attributes: dict[str, Any]
    scores: dict[tuple[str, str], Decimal]
    """(workflow, score) → total."""
    tags: set[str]


@dataclass(frozen=True, slots=True)
class Preview:
    variant: m.Message
    sender: tuple[str, str] | None
    """`(workflow, stage)` of the first step that sends the message, if one does."""
    fields: dict[str, Any]
    subscriber: str = "preview"
    """Whose it is: the stored subscriber's id, else `preview` (as the templates saw it)."""


def parse_assignment(text: str) -> tuple[str, Any]:
    """`KEY=VALUE`, the value read as JSON when it is JSON (`vip=true`, `amount=1200`,
    `locale="pl"`) and as text otherwise (`first_name=Anna`)."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise PreviewError(f"'{text}' is not KEY=VALUE")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def preview(catalog: m.Catalog, name: str, channel: str | None = None,
            attributes: Mapping[str, Any] | None = None,
            scores: Mapping[str, Decimal | int] | None = None, tags: Sequence[str] = (),
            params: Mapping[str, Any] | None = None, stored: Stored | None = None) -> Preview:
    """The message `name` rendered for a subscriber: `stored` (from the database) if given,
    with `attributes`, `scores` and `tags` over theirs."""
    attributes = {**(stored.attributes if stored else {}), **(attributes or {})}
    tags = sorted({*(stored.tags if stored else ()), *tags})
    channels = sorted({message.channel for message in catalog.messages if message.name == name})
    if not channels:
        known = sorted({message.name for message in catalog.messages})
        raise PreviewError(f"no message '{name}'{did_you_mean(name, known)}")
    if channel is None:
        if len(channels) > 1:
            raise PreviewError(f"message '{name}' is there for {' and '.join(channels)}: "
                               "choose one with --channel")
        channel = channels[0]
    elif channel not in channels:
        raise PreviewError(f"message '{name}' has no {channel} variant (it has "
                           f"{', '.join(channels)})")
    variant = choose_variant(catalog.variants(name, channel), attributes.get("locale"))
    if variant is None:
        langs = ", ".join(sorted(v.lang or "" for v in catalog.variants(name, channel)))
        raise PreviewError(f"no variant of message '{name}' for locale "
                           f"{attributes.get('locale')!r} (it has lang {langs}, and none "
                           "without lang): a subscriber with it is skipped as no_variant")
    sender = _first_sender(catalog, name, channel)
    workflow = sender[0] if sender else None
    given = dict(sender[2].params) if sender else {}
    declared = [score.name for score in workflow.scores] if workflow else []
    unknown = sorted(set(scores or {}) - set(declared))
    if unknown:
        raise PreviewError(f"no score '{unknown[0]}' in workflow "
                           f"'{workflow.name if workflow else '-'}'"
                           f"{did_you_mean(unknown[0], declared)}")
    kept = {score: total for (owner, score), total in (stored.scores if stored else {}).items()
            if workflow is not None and owner == workflow.name}
    totals = {**kept, **{score: Decimal(str(value)) for score, value in (scores or {}).items()}}
    variables = message_variables(
        channel, stored.id if stored else "preview", attributes,
        {score: totals.get(score, Decimal(0)) for score in declared},
        sender[1] if sender else "preview", tags, workflow.name if workflow else "preview",
        {**given, **(params or {})})
    try:
        rendered = render_message(variant, variables)
    except RenderError as problem:
        raise PreviewError(f"message '{name}' ({channel}) does not render for this "
                           f"subscriber: {problem.message} (a send would be skipped as "
                           "render_error)") from None
    return Preview(variant, (sender[0].name, sender[1]) if sender else None,
                   {key: value for key, value in rendered.fields.items() if value is not None},
                   stored.id if stored else "preview")


def _first_sender(catalog: m.Catalog, name: str,
                  channel: str) -> tuple[m.Workflow, str, m.Send] | None:
    for workflow in catalog.workflows:
        for stage, send in workflow.sends():
            if send.message == name and send.channel == channel:
                return workflow, stage.name, send
    return None


def email_for_test(shown: Preview, to: str, public_url: str) -> EmailJob:
    """The previewed e-mail as a test to `to` (`nurture preview --send-to`), to see it in
    real mail clients before anybody gets it. It is the e-mail a send makes, but for what
    belongs to a real send: its links are not tracked and it has no open pixel (there is no
    send to count them for), and its unsubscribe link opens the unsubscribe page without a
    token, which unsubscribes nobody. A new Message-ID each time, so that a mail service
    shows every test rather than taking a second one for the first."""
    inert = f"{public_url.rstrip('/')}/v1/unsubscribe"

    def linked(field: str) -> str | None:
        value = shown.fields.get(field)
        return None if value is None else str(value).replace(UNSUBSCRIBE_URL, inert)

    return EmailJob(_test_key(), to, linked("subject") or "", linked("text"), linked("html"), inert)


def pushes_for_test(shown: Preview, browsers: Sequence[tuple[str, str, str]]) -> list[PushJob]:
    """The previewed push as a test to each browser (`endpoint`, `p256dh`, `auth`): what a
    send pushes, but with no token, so that the service worker reports neither its showing
    nor a click (there is no send to count them for)."""
    jobs = []
    for endpoint, p256dh, auth in browsers:
        key = _test_key()
        tag = topic(shown.fields.get("topic"), key)
        jobs.append(PushJob(key, endpoint, p256dh, auth, payload(shown.fields, tag, ""),
                            int(shown.fields.get("ttl") or 0),
                            str(shown.fields.get("urgency") or "normal"), tag))
    return jobs


def webhook_for_test(shown: Preview, url: str) -> WebhookJob:
    """The previewed webhook as a test to `url`: its body as a send renders it (or, with
    none, what the dispatcher sends then), signed as every webhook is, and marked
    `X-Nurture-Test: 1` with a delivery key of its own, so that the receiver can tell it
    from a lead."""
    body = shown.fields.get("body")
    if body is None:  # as a send without a body
        body = default_body(shown.subscriber, shown.sender[0] if shown.sender else "preview",
                            shown.variant.name)
    return WebhookJob(_test_key(), url, str(body).encode(), test=True)


def _test_key() -> str:
    """A test's own delivery key (Message-ID, push topic): a mail service or a browser
    shows every test rather than taking one for another."""
    return f"test.{uuid.uuid4().hex}"
