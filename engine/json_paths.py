"""Where in a JSON text a field is, so that a problem with its value is reported there.

Event validation names the offending field as a path (`at`, `properties.channels[1]`); an
events file's reader turns it into the column where an editor's cursor should land, rather
than the start of a long line. The text is walked with the standard library's own scanner
(`json.decoder.scanstring`, `JSONDecoder.raw_decode`), so positions are exact whatever the
strings hold; duplicate keys resolve to the last, as the parsers do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import cast

_DECODER = json.JSONDecoder()
scanstring = cast(Callable[[str, int], tuple[str, int]],
                  json.decoder.scanstring)  # type: ignore[attr-defined]
"""The string at an offset just past its opening quote: its value and the offset past it
(the standard library's own, which typeshed leaves out)."""
_SPACE = re.compile(r"[ \t\n\r]*")
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def field_offset(text: str, path: str, *, key: bool = False) -> int | None:
    """The offset of the value at `path` (dotted names, `[N]` for a list's items) in the JSON
    `text`, or of its key with `key=True`; None when the path is not there as written (a
    name holding a dot, say) or the text is not JSON."""
    steps = _steps(path)
    if steps is None:
        return None
    index = _skip_space(text, 0)
    found: int | None = index
    try:
        for number, step in enumerate(steps):
            if isinstance(step, int):
                found = _item(text, index, step)
            else:
                member = _member(text, index, step)
                last = number == len(steps) - 1
                found = None if member is None else member[0] if key and last else member[1]
            if found is None:
                return None
            index = found
    except (ValueError, IndexError, RecursionError):  # (orjson reads deeper than `json`)
        return None
    return found


def _steps(path: str) -> list[str | int] | None:
    steps: list[str | int] = []
    position = 0
    for match in _STEP.finditer(path):
        if match.start() != position and path[position:match.start()] != ".":
            return None
        name, item = match.groups()
        steps.append(int(item) if item is not None else name)
        position = match.end()
    return steps if steps and position == len(path) else None


def _skip_space(text: str, index: int) -> int:
    match = _SPACE.match(text, index)
    assert match is not None  # `*` matches the empty string
    return match.end()


def _member(text: str, index: int, name: str) -> tuple[int, int] | None:
    """(key, value) offsets of the object's member `name` (the last, if repeated)."""
    if text[index:index + 1] != "{":
        return None
    found = None
    index = _skip_space(text, index + 1)
    while text[index:index + 1] == '"':
        key_at = index
        key, index = scanstring(text, index + 1)
        index = _skip_space(text, index)
        if text[index:index + 1] != ":":
            return None
        index = _skip_space(text, index + 1)
        if key == name:
            found = (key_at, index)
        index = _skip_space(text, _DECODER.raw_decode(text, index)[1])
        if text[index:index + 1] != ",":
            break
        index = _skip_space(text, index + 1)
    return found


def _item(text: str, index: int, wanted: int) -> int | None:
    """The offset of a list's item number `wanted` (from 0)."""
    if text[index:index + 1] != "[":
        return None
    index = _skip_space(text, index + 1)
    number = 0
    while index < len(text) and text[index] != "]":
        if number == wanted:
            return index
        index = _skip_space(text, _DECODER.raw_decode(text, index)[1])
        if text[index:index + 1] != ",":
            return None
        index = _skip_space(text, index + 1)
        number += 1
    return None
