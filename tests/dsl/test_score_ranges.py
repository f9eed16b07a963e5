"""`nurture check` warns about a `go to … when` threshold that its score can never reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.loader import load_text

ROOT = Path(__file__).resolve().parents[2]
JEWELRY = (ROOT / "workflows" / "jewelry.flow").read_text(encoding="utf-8")


def _warnings(text: str) -> list[str]:
    result = load_text(text, "w.flow", base_dir=str(ROOT / "workflows"))
    assert not result.errors, result.errors
    return [str(d) for d in result.warnings]


def _flow(scores: str, when: str) -> str:
    return (f"workflow w {{\n{scores}\n  stage a {{\n    go to b when {when}\n  }}\n"
            "  stage b { }\n}\n")


FIT = ('  score fit {\n    when role == "marketing" +20\n    when industry == "retail" +10\n'
       "  }")


def test_the_jewelry_workflow_with_a_threshold_fit_never_reaches() -> None:
    edited = JEWELRY.replace("engagement >= 50 and fit >= 10", "engagement >= 50 and fit >= 40")
    assert _warnings(JEWELRY) == []
    assert _warnings(edited) == [
        "w.flow:38:47: warning: 'fit >= 40' never holds: score 'fit' is at most 30 (fit rules: "
        "+20 and +10; no event rule); so 'go to selection' never moves anyone"]


@pytest.mark.parametrize(("when", "why"), [
    ("fit > 30", "is at most 30"),
    ("fit == 15", "is only ever 0, 10, 20 or 30"),
    ("fit < 0", "is at least 0"),
    ("fit <= -1", "is at least 0"),
])
def test_fit_rules_alone_bound_a_score(when: str, why: str) -> None:
    column = 18
    assert _warnings(_flow(FIT, when)) == [
        f"w.flow:7:{column}: warning: '{when}' never holds: score 'fit' {why} (fit rules: +20 "
        "and +10; no event rule); so 'go to b' never moves anyone"]


@pytest.mark.parametrize("when", ["fit >= 30", "fit == 20", "fit != 30", "fit > 0",
                                  "fit <= 0", "fit < 10", "subscriber.fit >= 40",
                                  "fit >= 40 or fit >= 10", "not (fit >= 40)",
                                  'fit >= "40"'])
def test_a_threshold_within_reach_is_not_warned_about(when: str) -> None:
    assert _warnings(_flow(FIT, when)) == []


def test_event_rules_lift_the_bound_they_push() -> None:
    scores = ("  score penalty {\n    on offer_declined -20\n  }\n"
              "  score engagement {\n    on click +5\n    on offer_declined -20\n  }")
    assert _warnings(_flow(scores, "penalty > 0 and engagement >= 1000")) == [
        "w.flow:10:18: warning: 'penalty > 0' never holds: score 'penalty' is at most 0 (fit "
        "rules: none; its event rules only take points away); so 'go to b' never moves "
        "anyone"]
    assert _warnings(_flow(scores, "penalty <= -1000 or engagement <= -1000")) == []
    assert _warnings(_flow(scores, "penalty > 0 or engagement >= 1000")) == []  # may hold


def test_every_comparison_that_keeps_a_condition_false_is_named() -> None:
    assert _warnings(_flow(FIT, "fit >= 40 or fit == 5")) == [
        "w.flow:7:18: warning: 'fit >= 40' never holds: score 'fit' is at most 30 (fit rules: "
        "+20 and +10; no event rule); so 'go to b' never moves anyone",
        "w.flow:7:31: warning: 'fit == 5' never holds: score 'fit' is only ever 0, 10, 20 or "
        "30 (fit rules: +20 and +10; no event rule); so 'go to b' never moves anyone"]


def test_a_score_without_rules_is_always_0() -> None:
    assert _warnings(_flow("  score s { }", "s != 0")) == [
        "w.flow:4:18: warning: 's != 0' never holds: score 's' is always 0 (fit rules: none; "
        "no event rule); so 'go to b' never moves anyone"]


def test_many_fit_rules_and_decimal_points() -> None:
    rules = "".join(f'    when a{n} == "x" +{n}.5\n' for n in range(1, 15))
    scores = f"  score many {{\n{rules}  }}"
    highest = sum(n + 0.5 for n in range(1, 15))
    assert _warnings(_flow(scores, f"many >= {highest}")) == []
    [warned] = _warnings(_flow(scores, f"many > {highest}"))
    assert f"'many > {highest}' never holds: score 'many' is at most {highest} " in warned
