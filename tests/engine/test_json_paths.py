"""Where a field of a JSON text is: exact for any JSON, whatever its strings and spacing."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.json_paths import field_offset

LINE = ('{"subscriber": "a", "type": "subscribed", "at": "2026-03-02T10:00:00Z", '
        '"properties": {"channels": ["push", "sms"], "a.b": 1}, "colour": 1}')


def test_values_and_keys_are_found() -> None:
    assert LINE[field_offset(LINE, "at"):].startswith('"2026-03-02T10:00:00Z"')
    assert LINE[field_offset(LINE, "properties.channels[1]"):].startswith('"sms"')
    assert LINE[field_offset(LINE, "colour", key=True):].startswith('"colour": 1')
    assert LINE[field_offset(LINE, "properties.channels", key=True):].startswith(
        '"channels"')


def test_what_is_not_there_is_none() -> None:
    for path in ("missing", "properties.channels[2]", "at.inner", "properties.a.b", "", "[0]x",
                 "properties..channels"):
        assert field_offset(LINE, path) is None, path
    assert field_offset("not json", "at") is None
    assert field_offset('{"at": }', "at") is None
    assert field_offset('{"x": tru, "at": 1}', "at") is None


def test_nesting_deeper_than_the_standard_scanner_reads_is_no_crash() -> None:
    """orjson, which reads the events, takes 1,024 levels; the standard library's scanner
    gives up sooner: the column is then unknown."""
    deep = '{"properties": ' + "[" * 1000 + "]" * 1000 + ', "at": 2}'
    assert field_offset(deep, "at") is None
    assert field_offset(deep, "properties") is None  # (a later key of that name may follow)


def test_a_repeated_key_is_its_last_value() -> None:
    text = '{"at": 1, "at": 2}'
    assert field_offset(text, "at") == text.rindex("2")


KEYS = st.text(min_size=1, max_size=6).filter(lambda k: not set(k) & set(".[]"))
SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | \
    st.floats(allow_nan=False, allow_infinity=False)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)
SPACING = st.sampled_from(["", " ", "\t", "\n ", "  "])


def _paths(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{prefix}.{key}" if prefix else key
            found += [(path, inner), *_paths(inner, path)]
    elif isinstance(value, list) and prefix:
        for number, inner in enumerate(value):
            path = f"{prefix}[{number}]"
            found += [(path, inner), *_paths(inner, path)]
    return found


def _dump(value: Any, space: Any) -> str:
    """JSON with spacing drawn between its tokens, and non-ASCII text left as it is."""
    if isinstance(value, dict):
        members = [f"{space()}{json.dumps(k, ensure_ascii=False)}{space()}:{space()}"
                   f"{_dump(v, space)}{space()}" for k, v in value.items()]
        return "{" + ",".join(members) + space() + "}"
    if isinstance(value, list):
        return "[" + ",".join(f"{space()}{_dump(v, space)}{space()}" for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, VALUES, min_size=1, max_size=5), st.data())
def test_every_path_of_any_object_leads_to_its_value(event: dict[str, Any],
                                                     data: st.DataObject) -> None:
    text = _dump(event, lambda: data.draw(SPACING))
    decoder = json.JSONDecoder()
    for path, value in _paths(event):
        offset = field_offset(text, path)
        assert offset is not None, (text, path)
        assert decoder.raw_decode(text, offset)[0] == value
        key = field_offset(text, path, key=True)
        if not path.endswith("]"):
            assert key is not None
            name = path.rsplit(".", 1)[-1] if "." in path else path
            assert decoder.raw_decode(text, key)[0] == name
