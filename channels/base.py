"""What the channels exchange with the engine and the dispatcher."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message variant rendered for one subscriber: exactly what will be sent.

    `fields` holds the rendered templates (`title`, `body`, … ; None where the message has no
    such field) and, for push, the transport settings `ttl` (seconds) and `urgency`.
    """

    channel: str
    message: str
    lang: str | None
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A decided send handed to an in-process channel (the simulator's, tests')."""

    delivery_key: str
    subscriber: str
    workflow: str
    rendered: Rendered
    address: str | None = None


class Channel(Protocol):
    """Something that takes decided sends in process (a recording channel)."""

    def deliver(self, outgoing: Outgoing) -> None: ...


OutcomeKind = Literal["delivered", "retry", "gone", "failed"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a send attempt came to.

    `retry`: try again, not before `not_before` if the peer said so (Retry-After);
    `gone`: the address no longer exists (a push subscription the service dropped);
    `failed`: will never succeed as it is (too large, refused, bad request).
    """

    kind: OutcomeKind
    status: int | None = None
    """The peer's status code (HTTP or SMTP), if it answered."""
    detail: str = ""
    not_before: datetime | None = None

    @property
    def final(self) -> bool:
        return self.kind != "retry"
