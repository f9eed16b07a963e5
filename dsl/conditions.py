"""Conditions evaluated against a context, and written back as text (pure functions).

A missing property or attribute makes a comparison false, never an error (SPEC §1.6); so does a
comparison between values that cannot be ordered (a word against a number).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from decimal import Decimal, InvalidOperation
from typing import Any

from dsl import model as m

MISSING: Any = object()
"""What a lookup returns for a name that the event or subscriber does not have."""

Lookup = Callable[[m.Reference], Any]


def evaluate(condition: m.Condition, lookup: Lookup, tags: Collection[str]) -> bool:
    match condition:
        case m.And(operands=operands):
            return all(evaluate(c, lookup, tags) for c in operands)
        case m.Or(operands=operands):
            return any(evaluate(c, lookup, tags) for c in operands)
        case m.Not(operand=operand):
            return not evaluate(operand, lookup, tags)
        case m.HasTag(tag=tag):
            return tag in tags
        case m.Comparison(left=left, operator=operator, right=right):
            return _compare(lookup(left), operator, right)
        case m.Membership(left=left, options=options):
            actual = lookup(left)
            return actual is not MISSING and any(_compare(actual, "==", o) for o in options)
        case m.TextMatch(left=left, operator=operator, text=text):
            actual = lookup(left)
            if not isinstance(actual, str):
                return False
            return text in actual if operator == "contains" else actual.startswith(text)
    raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover


def _compare(actual: Any, operator: str, expected: m.Value) -> bool:
    if actual is MISSING or actual is None:
        return False
    left, right = _comparable(actual, expected)
    if left is None:
        return False
    try:
        if operator == "==":
            return bool(left == right)
        if operator == "!=":
            return bool(left != right)
        if operator == "<":
            return bool(left < right)
        if operator == "<=":
            return bool(left <= right)
        if operator == ">":
            return bool(left > right)
        return bool(left >= right)
    except TypeError:
        return False


def _comparable(actual: Any, expected: m.Value) -> tuple[Any, Any]:
    """Bring both sides to one type: numbers as Decimal, booleans and text as themselves."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return (actual, expected) if type(actual) is type(expected) else (None, None)
    if isinstance(expected, int | Decimal):
        number = _as_decimal(actual)
        return (number, Decimal(expected)) if number is not None else (None, None)
    if isinstance(actual, str):
        return actual, expected
    return (None, None)


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


# ---------------------------------------------------------------- text


def describe(condition: m.Condition) -> str:
    """The condition as a marketer would write it (for graphs and explanations)."""
    match condition:
        case m.And(operands=operands):
            return " and ".join(_grouped(c, m.Or) for c in operands)
        case m.Or(operands=operands):
            return " or ".join(describe(c) for c in operands)
        case m.Not(operand=operand):
            return f"not {_grouped(operand, m.And | m.Or)}"
        case m.HasTag(tag=tag):
            return f"has tag {literal(tag)}"
        case m.Comparison(left=left, operator=operator, right=right):
            return f"{left} {operator} {literal(right)}"
        case m.Membership(left=left, options=options):
            return f"{left} in [{', '.join(literal(o) for o in options)}]"
        case m.TextMatch(left=left, operator=operator, text=text):
            return f"{left} {operator} {literal(text)}"
    raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover


def _grouped(condition: m.Condition, kinds: Any) -> str:
    text = describe(condition)
    return f"({text})" if isinstance(condition, kinds) else text


def literal(value: m.Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return str(value)


def references(condition: m.Condition) -> list[m.Reference]:
    """Every name a condition reads, in written order."""
    match condition:
        case m.And(operands=operands) | m.Or(operands=operands):
            return [r for c in operands for r in references(c)]
        case m.Not(operand=operand):
            return references(operand)
        case m.Comparison(left=left) | m.Membership(left=left) | m.TextMatch(left=left):
            return [left]
    return []
