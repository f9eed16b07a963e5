"""The immutable model of loaded workflows and messages: what the engine consumes.

Every node carries the `Span` it came from, so that the engine can name the rule behind a
score change (`FILE:LINE`) and every later diagnostic can point at the user's text. Nothing here
knows about Lark: the parser turns its tree into these dataclasses and the tree is dropped.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import time, timedelta
from decimal import Decimal
from typing import Literal, TypeAlias

Number: TypeAlias = int | Decimal
"""Numbers keep their written form: `10` stays an int, `12.5` is an exact Decimal."""

Value: TypeAlias = str | int | Decimal | bool
"""A literal in a condition or a `with` assignment."""

ChannelName: TypeAlias = Literal["push", "email", "webhook"]
CHANNELS: tuple[ChannelName, ...] = ("push", "email", "webhook")


@dataclass(frozen=True, slots=True)
class Span:
    """Where something was written: 1-based line and column in a file."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"

    @property
    def rule_ref(self) -> str:
        """`FILE:LINE`, the form the simulator uses to name a rule."""
        return f"{self.path}:{self.line}"


# ---------------------------------------------------------------- durations and periods

UNIT_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400, "week": 604800}
PERIOD_SECONDS: dict[str, int] = {"hour": 3600, "day": 86400, "week": 604800}
_WORDS = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(minute|hour|day|week)s?\s*", re.IGNORECASE)


def span_in_words(text: str) -> timedelta | None:
    """A duration written as in the language (`30 minutes`, `2 days`, `1.5 hours`) where an
    operator gives one outside it (a setting, a command's option); None if it is not one."""
    found = _WORDS.fullmatch(text)
    if found is None:
        return None
    return timedelta(seconds=float(found[1]) * UNIT_SECONDS[found[2].lower()])


@dataclass(frozen=True, slots=True)
class Duration:
    """Exact elapsed time (a day is 24 hours, also across a daylight-saving change)."""

    amount: Number
    unit: str  # singular: minute, hour, day, week

    @property
    def seconds(self) -> Decimal:
        return _seconds(self.amount, self.unit)

    @property
    def delta(self) -> timedelta:
        return _delta(self.amount, self.unit)

    def __str__(self) -> str:
        plural = "" if self.amount == 1 else "s"
        return f"{self.amount} {self.unit}{plural}"


def _seconds(amount: Number, unit: str) -> Decimal:
    return Decimal(amount) * UNIT_SECONDS[unit]


@functools.lru_cache(maxsize=1024)
def _delta(amount: Number, unit: str) -> timedelta:
    """A duration as a timedelta, computed once: the engine asks for it at every step (keyed
    by the fields, since hashing the dataclass itself runs Python code and costs twice as
    much)."""
    return timedelta(seconds=float(_seconds(amount, unit)))


@dataclass(frozen=True, slots=True)
class Cap:
    """`N per PERIOD`: at most N within any rolling window of the period's length."""

    count: Number
    period: str  # hour, day, week
    span: Span

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=PERIOD_SECONDS[self.period])

    def __str__(self) -> str:
        return f"{self.count} per {self.period}"


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class Reference:
    """A name in a condition: `url`, `engagement`, or `subscriber.role`.

    `scope` is "subscriber" when written with the `subscriber.` prefix, else "plain": what a
    plain name means depends on where the condition stands (SPEC §1.6).
    """

    scope: Literal["plain", "subscriber"]
    name: str
    span: Span

    def __str__(self) -> str:
        return self.name if self.scope == "plain" else f"subscriber.{self.name}"


@dataclass(frozen=True, slots=True)
class Comparison:
    left: Reference
    operator: Literal["==", "!=", "<", "<=", ">", ">="]
    right: Value
    span: Span


@dataclass(frozen=True, slots=True)
class Membership:
    left: Reference
    options: tuple[Value, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class TextMatch:
    left: Reference
    operator: Literal["contains", "startswith"]
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class HasTag:
    tag: str
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    operand: Condition
    span: Span


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Condition, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Condition, ...]
    span: Span


Condition: TypeAlias = Comparison | Membership | TextMatch | HasTag | Not | And | Or


# ---------------------------------------------------------------- workflow statements


@dataclass(frozen=True, slots=True)
class Trigger:
    """`entry on EVENT [where COND]`, `exit on …`: an event type and an optional filter."""

    event: str
    where: Condition | None
    span: Span
    event_span: Span | None = field(default=None, compare=False)
    """Where the event's name is written (for diagnostics; not part of what the rule is)."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Local wall-clock window in which sends wait; `start > end` crosses midnight."""

    start: time
    end: time
    span: Span


@dataclass(frozen=True, slots=True)
class Limit:
    channel: ChannelName
    caps: tuple[Cap, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class EventRule:
    """`on EVENT [where COND] ±N [max M per PERIOD]`."""

    event: str
    where: Condition | None
    points: Number
    max: Cap | None
    span: Span
    event_span: Span | None = field(default=None, compare=False)
    """Where the event's name is written (for diagnostics; not part of what the rule is)."""


@dataclass(frozen=True, slots=True)
class FitRule:
    """`when COND ±N`: holds on subscriber attributes, re-evaluated when they change."""

    condition: Condition
    points: Number
    span: Span


@dataclass(frozen=True, slots=True)
class Decay:
    """`decay P% every D`: each event contribution loses P% per full D of age."""

    percent: Number
    every: Duration
    span: Span


@dataclass(frozen=True, slots=True)
class Score:
    name: str
    event_rules: tuple[EventRule, ...]
    fit_rules: tuple[FitRule, ...]
    decay: Decay | None
    span: Span


@dataclass(frozen=True, slots=True)
class TagRule:
    tag: str
    event: str
    where: Condition | None
    span: Span
    event_span: Span | None = field(default=None, compare=False)
    """Where the event's name is written (for diagnostics; not part of what the rule is)."""


# ---------------------------------------------------------------- stages


@dataclass(frozen=True, slots=True)
class Send:
    """`send CHANNEL MESSAGE [with KEY = VALUE, …]`."""

    channel: ChannelName
    message: str
    params: tuple[tuple[str, Value], ...]
    span: Span
    message_span: Span


@dataclass(frozen=True, slots=True)
class OnEnter:
    action: Send
    span: Span


@dataclass(frozen=True, slots=True)
class After:
    delay: Duration
    unless: str | None
    action: Send
    span: Span
    unless_span: Span | None = field(default=None, compare=False)
    """Where the `unless` event's name is written (for diagnostics)."""


@dataclass(frozen=True, slots=True)
class Every:
    """Runs at entry + k·interval for k = 1…times (nominal times; postponements don't shift)."""

    interval: Duration
    times: int | None
    action: Send
    span: Span


Step: TypeAlias = OnEnter | After | Every


@dataclass(frozen=True, slots=True)
class GoWhen:
    target: str
    target_span: Span
    condition: Condition
    span: Span


@dataclass(frozen=True, slots=True)
class GoOn:
    target: str
    target_span: Span
    event: str
    where: Condition | None
    span: Span
    event_span: Span | None = field(default=None, compare=False)
    """Where the event's name is written (for diagnostics; not part of what the rule is)."""


@dataclass(frozen=True, slots=True)
class GoAfter:
    target: str
    target_span: Span
    delay: Duration
    span: Span


@dataclass(frozen=True, slots=True)
class GoIdle:
    target: str
    target_span: Span
    idle: Duration
    span: Span


Transition: TypeAlias = GoWhen | GoOn | GoAfter | GoIdle


@dataclass(frozen=True, slots=True)
class Stage:
    """A funnel stage. Steps and transitions each keep their written order (SPEC §1.5a)."""

    name: str
    steps: tuple[Step, ...]
    transitions: tuple[Transition, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    entries: tuple[Trigger, ...]
    exits: tuple[Trigger, ...]
    start: str
    start_span: Span
    timezone: str
    timezone_span: Span
    quiet_hours: QuietHours | None
    limits: tuple[Limit, ...]
    scores: tuple[Score, ...]
    tags: tuple[TagRule, ...]
    stages: tuple[Stage, ...]
    span: Span

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def score(self, name: str) -> Score | None:
        for score in self.scores:
            if score.name == name:
                return score
        return None

    def limit(self, channel: str) -> Limit | None:
        for limit in self.limits:
            if limit.channel == channel:
                return limit
        return None

    def sends(self) -> tuple[tuple[Stage, Send], ...]:
        """Every `send` of the workflow with the stage it belongs to."""
        return tuple((stage, step.action) for stage in self.stages for step in stage.steps)


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Template:
    """A message field: Jinja2 source and where it came from.

    `file` is the resolved path of a `file "…"` body, None for an inline string; `span` is
    where the field was written in the `.flow` file.
    """

    source: str
    span: Span
    file: str | None = None

    @property
    def is_static(self) -> bool:
        """True when the text has no Jinja2 syntax at all, so rendering is the identity."""
        return "{{" not in self.source and "{%" not in self.source and "{#" not in self.source


URGENCIES: tuple[str, ...] = ("very_low", "low", "normal", "high")
BUILT_IN_EVENTS: tuple[str, ...] = ("subscribed", "unsubscribed", "attributes", "push_click",
                                    "push_received", "email_click", "email_open",
                                    "email_bounced")
"""Event types that nurture gives a meaning to (SPEC §2) or records itself (clicks, opens
and push receipts reported to the tracking API, addresses the mail server refused): a name
one letter off is most likely a typo that would never match."""
DEFAULT_PUSH_TTL = Duration(4, "week")
PUSH_PLAINTEXT_LIMIT = 3993
"""Bytes of payload a push can carry: a 4,096-byte aes128gcm record less its header (86),
padding delimiter (1) and tag (16) — RFC 8291, RFC 8188."""


@dataclass(frozen=True, slots=True)
class PushContent:
    title: Template
    body: Template | None = None
    url: Template | None = None
    icon: Template | None = None
    ttl: Duration = DEFAULT_PUSH_TTL
    urgency: str = "normal"
    topic: Template | None = None


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: Template
    html: Template | None = None
    text: Template | None = None


@dataclass(frozen=True, slots=True)
class WebhookContent:
    url: Template
    body: Template | None = None


MessageContent: TypeAlias = PushContent | EmailContent | WebhookContent


@dataclass(frozen=True, slots=True)
class Message:
    """One variant of a message: (name, channel, lang) is unique across loaded files."""

    name: str
    channel: ChannelName
    lang: str | None
    content: MessageContent
    span: Span

    def templates(self) -> tuple[tuple[str, Template], ...]:
        """The message's Jinja2 fields as (field name, template), in a stable order."""
        names = {
            "push": ("title", "body", "url", "icon", "topic"),
            "email": ("subject", "html", "text"),
            "webhook": ("url", "body"),
        }[self.channel]
        found = ((name, getattr(self.content, name)) for name in names)
        return tuple((name, tpl) for name, tpl in found if tpl is not None)


# ---------------------------------------------------------------- the catalog


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything loaded together: workflows and messages from one or more files."""

    workflows: tuple[Workflow, ...] = ()
    messages: tuple[Message, ...] = ()
    files: tuple[str, ...] = field(default=())

    def workflow(self, name: str) -> Workflow:
        for workflow in self.workflows:
            if workflow.name == name:
                return workflow
        raise KeyError(name)

    def variants(self, name: str, channel: str) -> tuple[Message, ...]:
        """All language variants of a message on a channel."""
        return tuple(m for m in self.messages if m.name == name and m.channel == channel)
