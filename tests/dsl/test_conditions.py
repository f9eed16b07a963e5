"""Conditions evaluate as SPEC §1.6 says: a missing name makes a comparison false."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dsl import model as m
from dsl.conditions import MISSING, describe, evaluate
from dsl.loader import load_text


def condition(text: str) -> m.Condition:
    result = load_text(f"workflow w {{ stage a {{ go to a when {text} }} }}", "c.flow")
    assert result.catalog is not None, result.diagnostics
    transition = result.catalog.workflow("w").stage("a").transitions[0]
    assert isinstance(transition, m.GoWhen)
    return transition.condition


def holds(text: str, values: dict[str, Any], tags: tuple[str, ...] = ()) -> bool:
    def lookup(reference: m.Reference) -> Any:
        key = str(reference)
        return values.get(key, MISSING)

    return evaluate(condition(text), lookup, tags)


@pytest.mark.parametrize(("text", "values", "expected"), [
    ("engagement >= 50 and fit >= 10", {"engagement": 50, "fit": 10}, True),
    ("engagement >= 50 and fit >= 10", {"engagement": 50, "fit": 9}, False),
    ("engagement >= 50 or fit >= 10", {"fit": 10}, True),
    ("amount > 1000", {"amount": "1000.01"}, True),
    ("amount > 1000", {"amount": Decimal("999.5")}, False),
    ("amount > 1000", {"amount": "a lot"}, False),
    ("amount > 1000", {}, False),
    ("amount != 3", {}, False),
    ("not amount == 3", {}, True),
    ("industry in [\"fashion\", \"retail\"]", {"industry": "retail"}, True),
    ("industry in [\"fashion\", \"retail\"]", {"industry": "banking"}, False),
    ("industry in [\"fashion\", \"retail\"]", {}, False),
    ("url contains \"/diamonds\"", {"url": "https://shop.example/diamonds/rings"}, True),
    ("url contains \"/diamonds\"", {"url": 42}, False),
    ("url startswith \"https\"", {"url": "https://x"}, True),
    ("subscriber.role == \"marketing\"", {"subscriber.role": "marketing"}, True),
    ("vip == true", {"vip": True}, True),
    ("vip == true", {"vip": "true"}, False),
    ("count == 1", {"count": True}, False),
    ("balance < -5", {"balance": -6}, True),
    ("(a == 1 or b == 2) and not c == 3", {"b": 2, "c": 4}, True),
])
def test_evaluate(text: str, values: dict[str, Any], expected: bool) -> None:
    assert holds(text, values) is expected


def test_has_tag() -> None:
    assert holds('has tag "diamonds"', {}, ("diamonds",)) is True
    assert holds('has tag "diamonds"', {}, ("promo_hunter",)) is False


@pytest.mark.parametrize("text", [
    "engagement >= 50 and fit >= 10",
    "(a == 1 or b == 2) and not c == 3",
    "not (a == 1 and b == \"x\")",
    "industry in [\"fashion\", \"retail\"] or subscriber.role startswith \"mark\"",
    "has tag \"vip\" and vip == true and balance < -5.5",
])
def test_describe_round_trips(text: str) -> None:
    first = condition(text)
    again = condition(describe(first))
    assert describe(again) == describe(first)
    assert describe(first) == text


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity", float("nan"),
                                   Decimal("NaN"), Decimal("sNaN")])
def test_not_a_number_compares_false_instead_of_failing(value: Any) -> None:
    cond = condition("amount > 10")
    assert evaluate(cond, lambda ref: value, ()) is False
    assert evaluate(condition("amount in [1, 2]"), lambda ref: value, ()) is False
