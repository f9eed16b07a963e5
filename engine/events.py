"""Events in (SPEC §2): validated into `Event`s, with errors that name the field at fault.

Everything that feeds the engine (the simulator's JSON lines, the HTTP API, the test fixture)
goes through `parse_event`, so a bad event is refused the same way everywhere, before anything
is stored.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from dsl.zones import zone_problem

NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
CONSENT_CHANNELS = ("push", "email")
FIELDS = ("subscriber", "type", "at", "properties", "id")
MAX_ID = 200
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
"""Instants the engine takes. Outside them lies nothing a shop's events could mean (a
year-0001 placeholder of an export, a `9999-12-31` "never"), and the engine's arithmetic,
timers of up to 100 years and rolling windows, stays within Python's years 1 to 9999."""


@dataclass(frozen=True, slots=True)
class Event:
    subscriber: str
    type: str
    at: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None
    """The idempotency key (the event's `id`)."""
    seq: int = 0
    """Arrival order: events at the same instant keep it (SPEC §1.5a)."""


class EventError(ValueError):
    """An event that cannot be accepted; `field` is the dotted path of the offending value
    (`key`: the field's name is the offence, not its value)."""

    def __init__(self, field_path: str, message: str, *, key: bool = False) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field = field_path
        self.message = message
        self.key = key


def parse_event(raw: Any, seq: int = 0, default_at: datetime | None = None) -> Event:
    """Validate one event object. `default_at` stands in for a missing `at` (else required)."""
    if not isinstance(raw, dict | Mapping):  # (a dict is checked without the ABC)
        raise EventError("event", f"expected a JSON object, got {_kind(raw)}")
    unknown = [key for key in raw if key not in FIELDS]
    if unknown:
        raise EventError(str(unknown[0]), "unknown field; an event has "
                                          + ", ".join(repr(f) for f in FIELDS), key=True)
    subscriber = _identifier(raw, "subscriber", required=True)
    assert subscriber is not None
    kind = raw.get("type")
    if not isinstance(kind, str) or not NAME.match(kind) or len(kind) > 100:
        raise EventError("type", "required: a name such as 'page_view' (lower-case letters, "
                                 f"digits and '_'), got {_show(kind)}")
    at = parse_instant(raw.get("at"), "at") if "at" in raw or default_at is None else default_at
    properties = raw.get("properties", {})
    if not isinstance(properties, dict | Mapping):
        raise EventError("properties", f"expected a JSON object, got {_kind(properties)}")
    _check_reserved(kind, properties)
    _check_text(properties, "properties")
    return Event(sys.intern(subscriber), sys.intern(kind), at, dict(properties),
                 _identifier(raw, "id"), seq)


def parse_instant(value: Any, field_path: str, *, date_only_ok: bool = False) -> datetime:
    """An ISO-8601 instant with a time zone (`Z` or an offset), as aware UTC."""
    if not isinstance(value, str):
        raise EventError(field_path, "required: an ISO-8601 time such as "
                                     f"'2026-03-02T09:00:00Z', got {_show(value)}")
    text = value.strip()
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise EventError(field_path, f"{value!r} is not an ISO-8601 time such as "
                                     "'2026-03-02T09:00:00Z'") from None
    if instant.tzinfo is None:
        if not (date_only_ok and _is_date(text)):
            raise EventError(field_path, f"{value!r} has no time zone; add 'Z' for UTC or an "
                                         "offset such as '+01:00'")
        instant = instant.replace(tzinfo=UTC)
    if not EARLIEST.year <= instant.year < LATEST.year or not EARLIEST <= instant < LATEST:
        raise EventError(field_path, f"{value!r} is outside the years {EARLIEST.year} to "
                                     f"{LATEST.year - 1}")
    return instant.astimezone(UTC)


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _identifier(raw: Mapping[str, Any], name: str, required: bool = False) -> str | None:
    value = raw.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        need = "required: " if required else ""
        raise EventError(name, f"{need}a non-empty string, got {_show(value)}")
    text = str(value)
    if not text.strip() or len(text) > MAX_ID:
        raise EventError(name, f"must be 1 to {MAX_ID} characters, got {_show(value)}")
    _check_text(text, name)
    return text


def _check_reserved(kind: str, properties: Mapping[str, Any]) -> None:
    if kind == "subscribed":
        if "channels" not in properties:
            raise EventError("properties.channels", "required for 'subscribed': the channels "
                                                    "consented to, e.g. [\"push\", \"email\"]")
        _channels(properties["channels"])
        attributes = properties.get("attributes", {})
        if not isinstance(attributes, Mapping):
            raise EventError("properties.attributes", f"expected a JSON object, got "
                                                      f"{_kind(attributes)}")
        _email(properties, "properties.email")
        _email(attributes, "properties.attributes.email")
        _zone(attributes, "properties.attributes.timezone")
    elif kind == "unsubscribed":
        if "channels" in properties:
            _channels(properties["channels"])
    elif kind == "attributes":
        _email(properties, "properties.email")
        _zone(properties, "properties.timezone")


def _check_text(value: Any, field_path: str) -> None:
    """Every string is text that can be stored: JSON's `\\ud800` escapes can carry half of a
    UTF-16 pair, which no database or push payload accepts."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError as problem:
                raise EventError(field_path, f"not valid text: {problem.reason} at character "
                                             f"{problem.start}") from None
    elif isinstance(value, dict | Mapping):
        for key, item in value.items():
            _check_text(key, field_path)
            _check_text(item, f"{field_path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_text(item, f"{field_path}[{index}]")


def _channels(value: Any) -> None:
    if not isinstance(value, list):
        raise EventError("properties.channels", f"expected a list such as [\"push\", "
                                                f"\"email\"], got {_kind(value)}")
    for index, channel in enumerate(value):
        if channel not in CONSENT_CHANNELS:
            raise EventError(f"properties.channels[{index}]",
                             f"{_show(channel)} is not a channel; expected 'push' or 'email'")


EMAIL_ADDRESS = re.compile(r'[^\s@<>(),;:"\[\]\\]+@[^\s@<>(),;:"\[\]\\]+\Z')
"""One mailbox, `name@domain`: no spaces or line breaks (which would let a value add mail
headers), no display name or list. Deliberately plain: the relay has the last word."""


def is_email_address(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 254 and EMAIL_ADDRESS.match(value) is not None


BOUNCED_EMAIL = "bounced_email"
"""The attribute holding an address that bounced hard (`email_bounced`): no e-mail goes to it
while it is still the subscriber's `email`."""


def bounced(attributes: Mapping[str, Any]) -> bool:
    """Whether the subscriber's address is one that bounced hard (a new address is not)."""
    return same_address(attributes.get("email"), attributes.get(BOUNCED_EMAIL))


def same_address(one: Any, other: Any) -> bool:
    """Two e-mail addresses that are the same mailbox, as far as case goes."""
    return isinstance(one, str) and isinstance(other, str) and one.casefold() == other.casefold()


def _email(properties: Mapping[str, Any], field_path: str) -> None:
    value = properties.get("email")
    if value is not None and not is_email_address(value):
        raise EventError(field_path, f"expected an e-mail address, got {_show(value)}")


def _zone(attributes: Mapping[str, Any], field_path: str) -> None:
    """A `timezone` attribute decides the subscriber's quiet hours: one that names no zone
    would be ignored, and nights would be kept in the workflow's zone instead, unnoticed.
    `null` leaves it unknown (the workflow's zone applies)."""
    value = attributes.get("timezone")
    if value is None:
        return
    if not isinstance(value, str):
        raise EventError(field_path, f"expected a time zone such as 'Europe/Warsaw', got "
                                     f"{_kind(value)}")
    problem = zone_problem(value)
    if problem is not None:
        raise EventError(field_path, problem)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value),
                                                                        type(value).__name__)


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
