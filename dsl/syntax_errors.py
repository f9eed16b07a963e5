"""Lark's syntax errors in words a marketer understands.

Lark reports terminals (`UNIT`, `RBRACE`, `$END`); users should read "a duration unit such as
'days'", "'}'" and "end of file", with a "did you mean" when the unexpected word is a typo of
something that would fit, and a hint about the block left open when a file ends too early.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from dsl.diagnostics import closest, quote_list

KEYWORD_TEXT: dict[str, str] = {"_QUIET": "quiet hours"}

DESCRIPTIONS: dict[str, str] = {
    "NAME": "a name",
    "STRING": "a quoted string",
    "NUMBER": "a number",
    "POINTS": "points such as '+10' or '-20'",
    "PERCENT": "a percentage such as '10%'",
    "CLOCK": "a clock time such as '21:00'",
    "UNIT": "a duration unit such as 'days'",
    "PERIOD": "a period: 'hour', 'day' or 'week'",
    "CHANNEL": "a channel: 'push', 'email' or 'webhook'",
    "BOOLEAN": "'true' or 'false'",
    "COMPARE": "a comparison such as '==' or '>='",
    "CONTAINS": "'contains'",
    "STARTSWITH": "'startswith'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COLON": "':'",
    "COMMA": "','",
    "LSQB": "'['",
    "RSQB": "']'",
    "LPAR": "'('",
    "RPAR": "')'",
    "EQUAL": "'='",
    "DOT": "'.'",
    "$END": "end of file",
}

WORDS_OF: dict[str, tuple[str, ...]] = {
    "UNIT": ("minutes", "hours", "days", "weeks"),
    "PERIOD": ("hour", "day", "week"),
    "CHANNEL": ("push", "email", "webhook"),
    "BOOLEAN": ("true", "false"),
    "CONTAINS": ("contains",),
    "STARTSWITH": ("startswith",),
}

VALUE_TERMINALS = frozenset({"STRING", "NUMBER", "POINTS", "BOOLEAN"})
BLOCK_WORDS = frozenset({"workflow", "message", "stage", "score"})

# Order in which alternatives are listed: statements first, closing brace last.
_ORDER = [
    "_STAGE", "_SCORE", "_TAG", "_ENTRY", "_EXIT", "_START", "_TIMEZONE", "_QUIET", "_LIMIT",
    "_ON", "_AFTER", "_EVERY", "_GO", "_WHEN", "_DECAY", "_WORKFLOW", "_MESSAGE",
]


def describe_terminal(name: str) -> str:
    if name.startswith("_") and name[1:].isupper():
        return f"'{KEYWORD_TEXT.get(name, name[1:].lower())}'"
    return DESCRIPTIONS.get(name, f"'{name.lower()}'")


def words_for(name: str) -> tuple[str, ...]:
    """The words a terminal accepts, for "did you mean" suggestions."""
    if name.startswith("_") and name[1:].isupper():
        return (name[1:].lower(),)
    return WORDS_OF.get(name, ())


def describe_expected(expected: Iterable[str]) -> str:
    names = set(expected)
    parts: list[str] = []
    if names >= VALUE_TERMINALS:
        names -= VALUE_TERMINALS
        parts.append("a value (a string, a number, true or false)")

    def rank(name: str) -> tuple[int, str]:
        if name in _ORDER:
            return (_ORDER.index(name), name)
        return (len(_ORDER) + (2 if name in ("RBRACE", "$END") else 1), name)

    parts.extend(describe_terminal(name) for name in sorted(names, key=rank))
    return quote_list(parts)


def describe_found(kind: str, text: str) -> str:
    if kind == "$END" or not text:
        return "end of file"
    if kind == "STRING":
        return f"string {text}"
    return f"'{text}'"


_COMPARISON_MEANT = {"=": "'=='", "=>": "'>='", "=<": "'<='"}


def unexpected_token_message(kind: str, text: str, expected: Iterable[str], source: str,
                             line: int) -> str:
    expected = set(expected)
    message = f"unexpected {describe_found(kind, text)}; expected {describe_expected(expected)}"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        candidates = [word for name in expected for word in words_for(name)]
        match = closest(text.lower(), candidates)
        if match and match != text:
            message += f"; did you mean '{match}'?"
    if "COMPARE" in expected and text in ("=", "=>", "=<"):
        message += f"; write {_COMPARISON_MEANT[text]} to compare"
    if kind == "NUMBER" and "POINTS" in expected:
        message += f" (points carry a sign: write '+{text}')"
    elif kind == "POINTS" and "NUMBER" in expected and text.startswith("-"):
        message += " (durations and counts cannot be negative)"
    if kind == "$END" or (text in BLOCK_WORDS and "RBRACE" in expected):
        message += unclosed_block_hint(source, line)
    return message


BARE_WHEN = re.compile(r"(?:\bgo\s+to\s+([a-z_][a-z0-9_]*)\s+)?\bwhen\s+"
                       r"([a-z_][a-z0-9_]*)\s*(?:#[^\n]*)?\s*\Z")
"""`go to sale when purchase` then something else: a name where a comparison was due."""


def bare_when(before: str, found: str, expected: Iterable[str]) -> tuple[int, str] | None:
    """A `when NAME` with no comparison (`go to sale when purchase`), followed by the next
    statement (`found` is its first word, a '}', a fit rule's points or nothing): the offset
    of NAME in `before` (the text up to `found`) and what to write instead. An event was most
    likely meant, which `on` takes. (An operator after the name is a mistyped comparison.)"""
    if "COMPARE" not in set(expected) or not re.fullmatch(r"[A-Za-z_]\w*|\}|[+-][\d.]+|",
                                                          found):
        return None
    match = BARE_WHEN.search(before)
    if match is None:
        return None
    target, name = match.group(1), match.group(2)
    message = f"'when {name}' needs a comparison, such as '{name} == true' or '{name} >= 10'"
    if target is not None:
        message += f"; to move when a '{name}' event arrives, write 'go to {target} on {name}'"
    return match.start(2), message


def unexpected_character_message(char: str, source: str, position: int,
                                 allowed: Iterable[str]) -> str:
    if char == '"':
        message = "unterminated string: a string must end with '\"' on the same line"
        rest = source[position + 1:].split("\n", 1)[0]
        typographic = next((c for c in rest if LOOK_ALIKES.get(c) == '"'), None)
        if typographic is not None:
            message += f"; it holds {_typographic(typographic)}: write '\"' instead"
        return message
    word = re.match(r"[A-Za-z_][A-Za-z0-9_]*", source[position:])
    if word and not word.group().islower():
        text = word.group()
        if "STRING" in set(allowed):  # a value was due: `with code = HOT10`
            return f"unexpected '{text}': a text value is written in quotes: \"{text}\""
        return (f"unexpected '{text}': names and keywords are written in lower case; "
                f"did you mean '{text.lower()}'?")
    invisible = char.isspace() or not char.isprintable()
    straight = LOOK_ALIKES.get(char)
    if invisible:
        name = unicodedata.name(char, "").lower()
        message = f"unexpected character U+{ord(char):04X}" + (f" ({name})" if name else "")
    elif straight is not None:
        message = f"unexpected character {_typographic(char)}"
    else:
        message = f"unexpected character '{char}'"
    names = set(allowed)
    if names:
        message += f"; expected {describe_expected(names)}"
    if straight is not None:
        message += f"; write '{straight}' instead"
    elif invisible:
        message += ("; an invisible character or an unusual space, as text pasted from a web "
                    "page or a word processor brings: retype it")
    return message


LOOK_ALIKES: dict[str, str] = {
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u00ab\u00bb", '"'),
    **dict.fromkeys("\u2018\u2019\u201a\u201b", '"'),  # strings take double quotes
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2212\ufe63\uff0d", "-"),
    "\uff0b": "+",
}
"""Typographic characters that word processors put in place of what the language uses."""


def _typographic(char: str) -> str:
    """`'“' (left double quotation mark, as word processors write it)`."""
    return f"'{char}' ({unicodedata.name(char).lower()}, as word processors write it)"


def unclosed_block_hint(source: str, upto_line: int) -> str:
    """Names the innermost block whose '{' is still open where the error happened."""
    stack: list[tuple[int, str]] = []
    for number, text in enumerate(source.splitlines()[:upto_line], start=1):
        code = re.sub(r'"([^"\\\n]|\\.)*"', '""', text).split("#", 1)[0]
        for position, char in enumerate(code):
            if char == "{":
                words = code[:position].split()
                stack.append((number, " ".join(words[:2]) if words else "block"))
            elif char == "}" and stack:
                stack.pop()
    if not stack:
        return ""
    line, opener = stack[-1]
    return f" (the '{{' of '{opener}' on line {line} is not closed)"
