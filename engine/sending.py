"""Deciding a send (SPEC §1.5a, §2): send now, postpone, or skip with a reason.

A send is checked when it is due: consent, then an address, then the message variant and its
rendering; the first failure is the reason it is skipped (recorded, never retried). A send that
passes goes out at the earliest instant outside quiet hours that fits every frequency cap of its
channel. If it has to wait, it waits as due work tied to its stage step, and is checked and
rendered again when it goes out: consent may have been withdrawn meanwhile, and the message
shows the subscriber as they are then. Webhooks go to the business: no consent, quiet hours or
caps apply to them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from channels.base import Rendered
from channels.render import choose_variant, render_message
from channels.webpush import fits, payload
from dsl import model as m
from dsl.errors import RenderError
from dsl.model import PUSH_PLAINTEXT_LIMIT
from dsl.templates import UNSUBSCRIBE_URL
from dsl.zones import time_zone
from engine.events import bounced, is_email_address
from engine.moment import Moment
from engine.plan import Plan, WorkflowPlan
from engine.scoring import score_values
from engine.state import DeliveryRow, DispatchRow, Due, Enrolment, SubscriberState
from engine.timing import quiet_text, send_time


@dataclass(frozen=True, slots=True)
class SendStep:
    """Which stage step (and which occurrence of it) a send belongs to."""

    enrolment: Enrolment
    stage: m.Stage
    index: int
    """Where the step is in the stage now."""
    number: int
    """Its number in the stage as the subscriber entered it (they differ after an edit moved
    the step): deliveries and postponed sends are filed under it."""
    occurrence: int
    nominal_at: datetime

    @property
    def action(self) -> m.Send:
        return self.stage.steps[self.index].action

    @property
    def rule(self) -> str:
        return self.stage.steps[self.index].span.rule_ref


@dataclass(frozen=True, slots=True)
class SendOptions:
    push_needs_subscription: bool = True
    """Outside the simulator a push needs a live browser subscription (SPEC §2)."""
    outbox: bool = True
    """Write the recipients of each send to the outbox for the dispatcher."""
    late_limit: timedelta | None = None
    """The service's `NURTURE_LATE_LIMIT`: a push or e-mail reached later than this after
    its time is skipped as `late`, and the outbox drops one not sent within it of its
    decision. None (the simulator, tests): time is virtual, nothing is late."""


def decide_send(plan: Plan, workflow: WorkflowPlan, moment: Moment, step: SendStep,
                waiting: Due | None, options: SendOptions) -> bool:
    """Send, skip or postpone one send at `moment`; True when `waiting` was put back to wait.

    A new send is checked in the order of SPEC §1.5a (consent, address, then rendering) and
    only then held back by quiet hours or caps; one that was held back (`waiting`) is
    checked for consent and address again, and rendered only once it can go: a cap can hold
    back many sends of one subscriber, each woken at every opening of the window."""
    state = moment.state
    action = step.action
    channel = action.channel
    if channel != "webhook":
        reason = missing_consent_or_address(state, channel, options.push_needs_subscription)
        if reason is not None:
            detail = (f"{state.attributes.get('email')} bounced" if reason == "no_address"
                      and channel == "email" and bounced(state.attributes) else None)
            _skip(moment, workflow, step, reason, detail)
            return False
        if waiting is not None:  # held back before: rendered only once it can go
            when = _send_time(moment, workflow, channel)
            if when > moment.at:
                return _postpone(state, workflow, step, when, waiting)
    variant = choose_variant(plan.variants.get((action.message, channel), ()),
                             state.attributes.get("locale"))
    if variant is None:
        _skip(moment, workflow, step, "no_variant",
              f"no variant of '{action.message}' for locale "
              f"{state.attributes.get('locale')!r} and none without 'lang'")
        return False
    try:
        rendered = render_message(variant, _variables(workflow, state, step))
    except RenderError as problem:
        _skip(moment, workflow, step, "render_error", problem.message)
        return False
    if channel == "push" and not push_fits(rendered.fields):
        _skip(moment, workflow, step, "payload_too_large",
              f"the rendered push is over {PUSH_PLAINTEXT_LIMIT} bytes as JSON")
        return False
    if channel != "webhook":
        late = _lateness(moment, options.late_limit)
        if late is not None:
            _skip(moment, workflow, step, "late", late)
            return False
        if waiting is None:
            when = _send_time(moment, workflow, channel)
            if when > moment.at:
                return _postpone(state, workflow, step, when, waiting)
        bisect.insort(state.sent.setdefault(channel, []), moment.at)
    _send(moment, workflow, step, rendered, options)
    return False


def _lateness(moment: Moment, limit: timedelta | None) -> str | None:
    """Why a send reached this late is not sent, or None when it is in time: a message
    about a visit of last week (an outage, an import of past events) would arrive stale, and
    all of a journey's missed messages would arrive at once."""
    if limit is None or moment.now is None or moment.now - moment.at <= limit:
        return None
    return (f"due {_span(moment.now - moment.at)} ago, more than the late limit of "
            f"{_span(limit)} (NURTURE_LATE_LIMIT)")


def _span(span: timedelta) -> str:
    """A duration as an operator reads it: `3 days 4 hours`, `90 minutes`."""
    minutes = int(span.total_seconds() // 60)
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    parts = [(days, "day"), (hours, "hour")] if days else [(hours, "hour"), (minutes, "minute")]
    shown = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n]
    return " ".join(shown) or "under a minute"


def _send_time(moment: Moment, workflow: WorkflowPlan, channel: str) -> datetime:
    """The earliest instant from now outside quiet hours that fits the channel's caps."""
    state = moment.state
    return send_time(moment.at, workflow.quiet, subscriber_zone(state, workflow),
                     state.sent.get(channel, ()), workflow.caps.get(channel, ()))


def missing_consent_or_address(state: SubscriberState, channel: str,
                               push_needs_subscription: bool) -> str | None:
    """Why a push or an e-mail would be skipped before rendering (SPEC §1.5a), or None."""
    if not state.consents.get(channel, False):
        return "no_consent"
    if channel == "email":
        if not is_email_address(state.attributes.get("email")) or bounced(state.attributes):
            return "no_address"  # none, none that can be used, or one that bounced hard
    elif channel == "push" and push_needs_subscription and not state.push_subscriptions:
        return "no_address"
    return None


def _variables(workflow: WorkflowPlan, state: SubscriberState, step: SendStep) -> dict[str, Any]:
    return message_variables(step.action.channel, state.external_id, state.attributes,
                             score_values(workflow, state), step.enrolment.stage, state.tags,
                             workflow.name, step.action.params)


def message_variables(channel: str, subscriber: str, attributes: Mapping[str, Any],
                      scores: Mapping[str, Any], stage: str, tags: Iterable[str],
                      workflow: str,
                      params: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """What a message's templates see (SPEC §1.7), for a send and for `nurture preview`."""
    variables: dict[str, Any] = {
        # an attribute set to null is not known: undefined, as a missing one (SPEC §1.5a),
        # so that `| default('friend')` gives the fallback rather than "None"
        "subscriber": {**{name: value for name, value in attributes.items()
                          if value is not None}, "id": subscriber},
        "scores": scores,
        "stage": stage,
        "tags": sorted(tags),
        "workflow": workflow,
    }
    variables.update(params)  # (a step's `with` values are pairs: no dict made for them)
    if channel == "email":  # the dispatcher signs the real link in its place
        variables["unsubscribe_url"] = UNSUBSCRIBE_URL
    return variables


def _postpone(state: SubscriberState, workflow: WorkflowPlan, step: SendStep, when: datetime,
              waiting: Due | None) -> bool:
    if waiting is not None:
        waiting.due_at = when
        waiting.dirty = True
        state.schedule(waiting)
        return True
    state.schedule(Due("send", when, workflow.name, step.enrolment, step.enrolment.stage_seq,
                       step.number, step.occurrence, step.nominal_at, state.new_order(),
                       workflow.step_keys[step.stage.name].keys[step.index]))
    return False


def _send(moment: Moment, workflow: WorkflowPlan, step: SendStep, rendered: Rendered,
          options: SendOptions) -> None:
    fields = dict(rendered.fields)
    delivery = _deliver(moment, workflow, step, "sent", None, fields, rendered.lang)
    if options.outbox:
        quiet = None
        if workflow.quiet is not None and rendered.channel != "webhook":
            quiet = quiet_text(workflow.quiet, subscriber_zone(moment.state, workflow))
        delivery.dispatches = _recipients(moment, rendered, quiet, options.late_limit)
    if moment.state.recording:
        shown: dict[str, Any] = {"channel": rendered.channel, "message": rendered.message,
                                 "lang": rendered.lang}
        for name in RECORDED_FIELDS[rendered.channel]:
            shown[name] = fields.get(name)
        moment.record(workflow.name, "send", shown)


RECORDED_FIELDS = {"push": ("title", "body", "url"), "email": ("subject",),
                   "webhook": ("url",)}
"""The rendered fields a `send` record shows (SPEC §3.1)."""


def _skip(moment: Moment, workflow: WorkflowPlan, step: SendStep, reason: str,
          detail: str | None = None) -> None:
    content = {"error": detail} if detail else {}
    _deliver(moment, workflow, step, "skipped", reason, content, None)
    moment.record(workflow.name, "skip", {"channel": step.action.channel,
                                          "message": step.action.message, "reason": reason},
                  note=detail)


def _deliver(moment: Moment, workflow: WorkflowPlan, step: SendStep, status: str,
             reason: str | None, content: dict[str, Any], lang: str | None) -> DeliveryRow:
    action = step.action
    state = moment.state
    state.delivery_count += 1
    row = DeliveryRow(
        state.delivery_count, step.enrolment, workflow.name, step.stage.name,
        step.enrolment.stage_seq, step.number, step.occurrence, step.rule, action.channel,
        action.message, lang, status, reason, content, step.nominal_at, moment.at)
    state.changes.deliveries.append(row)
    return row


def _recipients(moment: Moment, rendered: Rendered, quiet: str | None,
                late_limit: timedelta | None) -> list[DispatchRow]:
    """Where the outbox sends a decided message: every live subscription of a push, the
    address of an e-mail, the URL of a webhook; a push or an e-mail not sent by the end of
    the late limit (a push: or of its TTL, if sooner) is dropped then."""
    state = moment.state
    fields = rendered.fields
    last = moment.at + late_limit if late_limit is not None else None
    if rendered.channel == "push":
        expires = moment.at + timedelta(seconds=int(fields.get("ttl") or 0))
        if last is not None:
            expires = min(expires, last)
        return [DispatchRow("push", key, None, expires, quiet)
                for key in state.push_subscriptions]
    if rendered.channel == "email":
        return [DispatchRow("email", None, str(state.attributes.get("email")), last, quiet)]
    return [DispatchRow("webhook", None, str(fields.get("url")), None)]


PLACEHOLDER_TOKEN = "t" * 96
"""At least as long as any click token, so that a push that fits here fits when sent."""


def push_fits(fields: Mapping[str, Any]) -> bool:
    return fits(payload(fields, "x" * 32, PLACEHOLDER_TOKEN))


def subscriber_zone(state: SubscriberState, workflow: WorkflowPlan) -> ZoneInfo:
    """The subscriber's `timezone` attribute when it names a zone, else the workflow's (events
    with a zone that is none are refused, but rows stored before that rule may hold one)."""
    name = state.attributes.get("timezone")
    zone = time_zone(name) if isinstance(name, str) else None
    return zone or workflow.zone


