"""The VS Code extension folder `docs/editors/vscode`: its files are what VS Code reads, and its
TextMate grammar colours the SPEC's example as a reader expects.

The grammar is run here by a small TextMate engine (the rules VS Code applies: at each place
the earliest match wins, ties go to the first pattern listed; a `begin`/`end` region's own
patterns apply inside it, its end first) with Python's regular expressions, which agree with
Oniguruma's for the constructs the grammar uses (classes, alternation, `\\b`, a lookbehind).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dsl.parser import RESERVED

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "docs" / "editors" / "vscode"
GRAMMAR = json.loads((EXTENSION / "syntaxes" / "nurture.tmLanguage.json").read_text())
JEWELRY = (ROOT / "workflows" / "jewelry.flow").read_text(encoding="utf-8").splitlines()


@dataclass
class _Rule:
    raw: dict[str, Any]

    @property
    def first(self) -> re.Pattern[str]:
        return re.compile(self.raw.get("match") or self.raw["begin"])


def _rules(patterns: list[dict[str, Any]]) -> list[_Rule]:
    rules: list[_Rule] = []
    for pattern in patterns:
        if "include" in pattern:
            pattern = GRAMMAR["repository"][pattern["include"].lstrip("#")]
        if "match" in pattern or "begin" in pattern:
            rules.append(_Rule(pattern))
        else:
            rules += _rules(pattern["patterns"])
    return rules


def _paint(found: re.Match[str], names: dict[str, Any], base: list[str],
           scopes: list[list[str]]) -> None:
    for group, capture in names.items():
        start, end = found.span(int(group))
        for index in range(start, end):
            scopes[index] = [*base, capture["name"]]


def _run(line: str, rules: list[_Rule], start: int, base: list[str],
         scopes: list[list[str]], end: re.Pattern[str] | None = None) -> re.Match[str] | None:
    """Colour `line` from `start` with `rules`, until `end` matches (its match returned)."""
    position = start
    while position <= len(line):
        best: tuple[int, _Rule | None, re.Match[str]] | None = None
        if end is not None:  # the region's end comes first at a tie
            closing = end.search(line, position)
            if closing is not None:
                best = (closing.start(), None, closing)
        for rule in rules:
            found = rule.first.search(line, position)
            if found is not None and found.end() > found.start() and (
                    best is None or found.start() < best[0]):
                best = (found.start(), rule, found)
        if best is None:
            return None
        _, rule, found = best
        if rule is None:
            return found
        scope = [*base, rule.raw["name"]] if "name" in rule.raw else base
        if "match" in rule.raw:
            scopes[found.start():found.end()] = [scope] * (found.end() - found.start())
            _paint(found, rule.raw.get("captures", {}), base, scopes)
            position = found.end()
            continue
        scopes[found.start():] = [scope] * (len(line) - found.start())
        _paint(found, rule.raw.get("beginCaptures", {}), scope, scopes)
        inner = _rules(rule.raw.get("patterns", []))
        closing = _run(line, inner, found.end(), scope, scopes, re.compile(rule.raw["end"]))
        if closing is None:
            return None  # the region runs on past the line
        _paint(closing, rule.raw.get("endCaptures", {}), scope, scopes)
        scopes[closing.end():] = [base] * (len(line) - closing.end())
        position = max(closing.end(), found.end() + 1)
    return None


def colour(line: str) -> list[list[str]]:
    scopes: list[list[str]] = [[] for _ in line]
    _run(line, _rules(GRAMMAR["patterns"]), 0, [], scopes)
    return scopes


def scope_of(line: str, text: str) -> str:
    """The innermost scope of `text` (its first occurrence, as a whole word if a word),
    the same on each of its characters."""
    word = r"(?<![a-z0-9_])" if text[0].isalnum() else ""
    found = re.search(word + re.escape(text) + (r"(?![a-z0-9_])" if word else ""), line)
    assert found is not None, (text, line)
    start = found.start()
    coloured = colour(line)
    scopes = coloured[start]
    assert all(coloured[start + i][-1:] == scopes[-1:] for i in range(len(text))), coloured
    return scopes[-1] if scopes else ""


def test_the_extension_files_are_what_vscode_reads() -> None:
    manifest = json.loads((EXTENSION / "package.json").read_text())
    [language] = manifest["contributes"]["languages"]
    [grammar] = manifest["contributes"]["grammars"]
    assert language["extensions"] == [".flow"]
    assert grammar["language"] == language["id"]
    assert grammar["scopeName"] == GRAMMAR["scopeName"]
    assert (EXTENSION / grammar["path"]).is_file()
    assert (EXTENSION / language["configuration"]).is_file()
    configuration = json.loads((EXTENSION / language["configuration"]).read_text())
    assert configuration["comments"] == {"lineComment": "#"}
    for rule in _rules(GRAMMAR["patterns"]):  # every pattern compiles
        rule.first  # noqa: B018


def test_every_reserved_word_is_coloured_as_a_keyword() -> None:
    for word in sorted(RESERVED):
        scope = scope_of(f"x {word} y", word)
        assert scope.startswith(("keyword.", "storage.type")), (word, scope)


@pytest.mark.parametrize(("where", "text", "scope"), [
    ("# Nurture", "# Nurture", "comment.line.number-sign.nurture"),
    ("workflow jewelry", "workflow", "storage.type.nurture"),
    ("workflow jewelry", "jewelry", "entity.name.type.nurture"),
    ("timezone", '"Europe/Warsaw"', "string.quoted.double.nurture"),
    ("quiet hours", "21:00", "constant.numeric.time.nurture"),
    ("limit push", "push", "support.type.channel.nurture"),
    ("limit push", "day", "keyword.other.unit.nurture"),
    ("/diamonds", "where", "keyword.control.nurture"),
    ("/diamonds", "contains", "keyword.operator.word.nurture"),
    ("/diamonds", "+30", "constant.numeric.points.nurture"),
    ("on email_open", "max", "keyword.control.nurture"),
    ("on offer_declined", "-20", "constant.numeric.points.nurture"),
    ("decay", "10%", "constant.numeric.percent.nurture"),
    ("decay", "30", "constant.numeric.nurture"),
    ("decay", "days", "keyword.other.unit.nurture"),
    ("when industry", "in", "keyword.operator.word.nurture"),
    ("when industry", '"fashion"', "string.quoted.double.nurture"),
    ("when role", "==", "keyword.operator.comparison.nurture"),
    ("after 10 minutes", "minutes", "keyword.other.unit.nurture"),
    ("after 10 minutes", "send", "keyword.control.nurture"),
    ("after 10 minutes", "welcome", "entity.name.function.nurture"),
    ("go to interest", "interest", "entity.name.type.nurture"),
    ("go to interest", ">=", "keyword.operator.comparison.nurture"),
    ("code = ", "=", "keyword.operator.assignment.nurture"),
    ("code = ", '"HOT10"', "string.quoted.double.nurture"),
    ("unless", "unless", "keyword.control.nurture"),
    ("when idle", "idle", "keyword.control.nurture"),
    ('lang "pl"', "message", "storage.type.nurture"),
    ('lang "pl"', "welcome", "entity.name.function.nurture"),
    ('lang "pl"', "lang", "keyword.control.nurture"),
    ("Cześć", "title", "variable.other.field.nurture"),
    ("Cześć", "{{", "punctuation.section.embedded.begin.nurture"),
    ("Cześć", "subscriber", "variable.language.nurture"),
    ("Cześć", "| default", "support.function.filter.nurture"),
    ("Cześć", "first_name", "meta.embedded.jinja.nurture"),
    ("Cześć", "}}", "punctuation.section.embedded.end.nurture"),
    ("Cześć", "!", "string.quoted.double.nurture"),
    ("urgency", "high", "constant.language.urgency.nurture"),
    ("html file", "file", "keyword.control.nurture"),
    ('{\\"lead', '\\"', "constant.character.escape.nurture"),
])
def test_the_spec_example_is_coloured(where: str, text: str, scope: str) -> None:
    [line] = [line for line in JEWELRY if where in line][:1]
    assert scope_of(line, text) == scope, line


def test_names_that_are_not_words_of_the_language_stay_plain() -> None:
    diamonds = next(line for line in JEWELRY if "/diamonds" in line)
    assert scope_of(diamonds, "page_view") == ""
    assert scope_of(diamonds, "url") == "variable.other.field.nurture"  # as in messages
    assert scope_of('    go to sale when subscriber.plan == "pro"', "plan") == ""
