"""Random and mutated text never crashes the loader: a model or diagnostics, nothing else;
nor `nurture fmt`, whose layout of any text that parses is laid out already."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.formatter import format_text
from dsl.loader import load_text

ROOT = Path(__file__).resolve().parents[2]
SEEDS = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "workflows").glob("*.flow"))]
WORDS = ["workflow", "stage", "score", "{", "}", "on", "go to", "when", "after", "every",
         "send push", "send email", "10 days", "+5", "-3", '"x"', "21:00", "99:99", "10%",
         "where", "and", "(", ")", "[", "]", ",", ":", "=", "==", "message", "file", "lang",
         "{{", "}}", "{%", "\\", "\n", "#", "0 minutes", "max", "per", "week"]


def assert_user_facing(text: str) -> None:
    result = load_text(text, "fuzz.flow", base_dir=str(ROOT / "workflows"))
    if result.catalog is None:
        assert result.errors, "no catalog must mean at least one error"
    lines = text.split("\n")
    for diagnostic in result.diagnostics:
        assert diagnostic.message and "Traceback" not in diagnostic.message
        if diagnostic.span.path == "fuzz.flow":
            assert 1 <= diagnostic.span.line <= len(lines)
            assert 1 <= diagnostic.span.column <= len(lines[diagnostic.span.line - 1]) + 1
    laid_out = format_text(text)
    if laid_out is not None:
        assert format_text(laid_out) == laid_out


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    assert_user_facing(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(WORDS) | st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
                max_size=60))
def test_random_words(words: list[str]) -> None:
    assert_user_facing(" ".join(words))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 20)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        insert = draw(st.sampled_from(WORDS) | st.text(max_size=5))
        if kind == "delete":
            text = text[:start] + text[end:]
        elif kind == "insert":
            text = text[:start] + insert + text[start:]
        elif kind == "replace":
            text = text[:start] + insert + text[end:]
        else:
            text = text[:end] + text[start:end] + text[end:]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_workflows(text: str) -> None:
    assert_user_facing(text)


def test_deeply_nested_condition_is_a_diagnostic() -> None:
    text = "workflow w { stage a { go to b when " + "not " * 3000 + "x == 1 } stage b { } }"
    result = load_text(text, "deep.flow")
    assert result.catalog is None
    # reported where the nesting first exceeds the limit: the 65th `not` from the inside
    column = 37 + len("not ") * (3000 - 65)
    assert [str(d) for d in result.diagnostics] == [
        f"deep.flow:1:{column}: error: this condition is nested more than 64 levels deep; "
        "simplify it"]


def test_redundant_parentheses_are_fine() -> None:
    text = ("workflow w { stage a { go to b when " + "(" * 3000 + "x == 1" + ")" * 3000
            + " } stage b { } }")
    assert load_text(text, "parens.flow").diagnostics == ()
