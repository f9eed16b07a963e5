"""Query parameters that several calls share."""

from __future__ import annotations

from datetime import datetime

from engine.api.errors import field_error
from engine.events import EventError
from engine.funnel import parse_since


def since_parameter(text: str | None, now: datetime) -> datetime | None:
    """`?since=`: a time or a span back from now (`engine.funnel.parse_since`); a 422 naming
    `since` when it is neither."""
    if text is None:
        return None
    try:
        return parse_since(text, now)
    except EventError as problem:
        raise field_error(422, "since", problem.message) from None
