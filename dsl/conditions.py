"""Conditions evaluated against a context, and written back as text (pure functions).

A missing property or attribute makes a comparison false, never an error (SPEC §1.6); so does a
comparison between values that cannot be ordered (a word against a number).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection
from decimal import Decimal, InvalidOperation
from typing import Any

from dsl import model as m

MISSING: Any = object()
"""What a lookup returns for a name that the event or subscriber does not have."""

Lookup = Callable[[m.Reference], Any]
Predicate = Callable[[Lookup, Collection[str]], bool]
"""A compiled condition: given how to read names and the subscriber's tags, does it hold?"""

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge}
_COMPILED: dict[int, tuple[m.Condition, Predicate]] = {}


def evaluate(condition: m.Condition, lookup: Lookup, tags: Collection[str]) -> bool:
    return predicate(condition)(lookup, tags)


def predicate(condition: m.Condition) -> Predicate:
    """The condition compiled once into nested closures (conditions are evaluated for every
    event of every subscriber; walking the tree each time costs several times more)."""
    known = _COMPILED.get(id(condition))
    if known is not None and known[0] is condition:
        return known[1]
    compiled = _compile(condition)
    _COMPILED[id(condition)] = (condition, compiled)
    return compiled


def _compile(condition: m.Condition) -> Predicate:
    match condition:
        case m.And(operands=operands):
            return _all(tuple(_compile(c) for c in operands))
        case m.Or(operands=operands):
            return _any(tuple(_compile(c) for c in operands))
        case m.Not(operand=operand):
            inner = _compile(operand)
            return lambda lookup, tags: not inner(lookup, tags)
        case m.HasTag(tag=tag):
            return lambda lookup, tags: tag in tags
        case m.Comparison(left=left, operator=op, right=right):
            test = _test(op, right)
            return lambda lookup, tags: test(lookup(left))
        case m.Membership(left=left, options=options):
            tests = tuple(_test("==", option) for option in options)
            return lambda lookup, tags: _member(lookup(left), tests)
        case m.TextMatch(left=left, operator=op, text=text):
            if op == "contains":
                return lambda lookup, tags: _contains(lookup(left), text)
            return lambda lookup, tags: _starts(lookup(left), text)
    raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover


def _all(parts: tuple[Predicate, ...]) -> Predicate:
    def holds(lookup: Lookup, tags: Collection[str]) -> bool:
        return all(part(lookup, tags) for part in parts)
    return holds


def _any(parts: tuple[Predicate, ...]) -> Predicate:
    def holds(lookup: Lookup, tags: Collection[str]) -> bool:
        return any(part(lookup, tags) for part in parts)
    return holds


def _test(op: str, expected: m.Value) -> Callable[[Any], bool]:
    """How one value compares with a literal: numbers as numbers (a numeric string too),
    booleans only with booleans, text only with text; anything else is false."""
    compare = _OPERATORS[op]
    if isinstance(expected, bool):
        return lambda actual: type(actual) is bool and compare(actual, expected)
    if isinstance(expected, int | Decimal):
        number = Decimal(expected)

        def numeric(actual: Any) -> bool:
            value = _as_decimal(actual)
            return value is not None and compare(value, number)
        return numeric
    return lambda actual: isinstance(actual, str) and compare(actual, expected)


def _member(actual: Any, tests: tuple[Callable[[Any], bool], ...]) -> bool:
    return actual is not MISSING and any(test(actual) for test in tests)


def _contains(actual: Any, text: str) -> bool:
    return isinstance(actual, str) and text in actual


def _starts(actual: Any, text: str) -> bool:
    return isinstance(actual, str) and actual.startswith(text)


def _as_decimal(value: Any) -> Decimal | None:
    """A finite number, or None (text that is no number, NaN and infinities included)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    try:
        if isinstance(value, Decimal):
            number = value
        elif isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, str):
            number = Decimal(value.strip())
        else:
            return None
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


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


def tags_read(condition: m.Condition) -> list[m.HasTag]:
    """Every `has tag` of a condition, in written order."""
    return [leaf for leaf in leaves(condition) if isinstance(leaf, m.HasTag)]


def leaves(condition: m.Condition) -> list[m.Condition]:
    """The tests a condition is made of (comparisons, `in`, `contains`/`startswith`, `has
    tag`), in written order, whatever `and`, `or` and `not` join them."""
    match condition:
        case m.And(operands=operands) | m.Or(operands=operands):
            return [leaf for c in operands for leaf in leaves(c)]
        case m.Not(operand=operand):
            return leaves(operand)
    return [condition]


def holds_if(condition: m.Condition, held: m.Condition, lookup: Lookup,
             tags: Collection[str]) -> bool:
    """Whether the condition would hold if its test `held` (one of its `leaves`, the very
    object) held, whatever it reads now: what keeps a subscriber from moving."""
    match condition:
        case m.And(operands=operands):
            return all(holds_if(c, held, lookup, tags) for c in operands)
        case m.Or(operands=operands):
            return any(holds_if(c, held, lookup, tags) for c in operands)
        case m.Not(operand=operand):
            return not holds_if(operand, held, lookup, tags)
    return condition is held or evaluate(condition, lookup, tags)


def references(condition: m.Condition) -> list[m.Reference]:
    """Every name a condition reads, in written order."""
    return [leaf.left for leaf in leaves(condition)
            if isinstance(leaf, m.Comparison | m.Membership | m.TextMatch)]
