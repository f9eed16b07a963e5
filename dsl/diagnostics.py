"""User mistakes as data: a diagnostic names a place, a severity and what is wrong.

Problems in a user's file are never exceptions: every stage of loading appends diagnostics and
carries on, so one run reports every problem of every file.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from dsl.model import Span

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    span: Span
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.span}: {self.severity}: {self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


def error(span: Span, message: str) -> Diagnostic:
    return Diagnostic(span, "error", message)


def warning(span: Span, message: str) -> Diagnostic:
    return Diagnostic(span, "warning", message)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a typo most likely meant, if any is close enough: first one that
    differs only in case (`"VIP"` for the tag `"vip"`), then the most similar."""
    pool = sorted(set(candidates))
    folded = word.casefold()
    for candidate in pool:
        if candidate != word and candidate.casefold() == folded:
            return candidate
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.65)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`"; did you mean 'x'?"` or an empty string, to append to a message."""
    match = closest(word, candidates)
    return f"; did you mean '{match}'?" if match else ""


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int]:
    span = diagnostic.span
    return (span.path, span.line, span.column)


def quote_list(words: Iterable[str], conjunction: str = "or") -> str:
    """`'a', 'b' or 'c'`: how a message lists alternatives."""
    items = list(words)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"
