"""What the channels exchange with the engine: a rendered message and the channel protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


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
    """A decided send handed to a channel: who gets it, and the delivery it belongs to."""

    delivery_key: str
    subscriber: str
    workflow: str
    rendered: Rendered
    address: str | None = None


class Channel(Protocol):
    """Something that takes decided sends; the real ones (push, e-mail, webhook) send them."""

    def deliver(self, outgoing: Outgoing) -> None: ...
