"""Text to model: the one place that knows Lark.

`parse_text` returns the file's workflows and messages plus diagnostics. Problems that the
grammar cannot express (a reserved word used as a name, an unknown duration unit, a clock time
of 25:00, a push message without a title) are found while the tree is turned into the model,
so several of them are reported in one run; a syntax error stops that file only.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from importlib import resources
from typing import Any, cast

import lark
from lark import Lark, Token, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.visitors import Transformer_NonRecursive

from dsl import model as m
from dsl import user_cache
from dsl.diagnostics import Diagnostic, did_you_mean, error
from dsl.syntax_errors import (
    bare_when,
    unexpected_character_message,
    unexpected_token_message,
)

RESERVED = frozenset({
    "workflow", "message", "stage", "score", "tag", "entry", "exit", "start", "at", "on",
    "enter", "where", "when", "go", "to", "after", "every", "times", "unless", "idle", "for",
    "send", "with", "limit", "per", "max", "decay", "quiet", "hours", "timezone", "lang", "file",
    "and", "or", "not", "in", "contains", "startswith", "has",
})

MAX_CONDITION_DEPTH = 64

FileReader = Callable[[str, m.Span], "str | None"]
"""Reads a `file "…"` body relative to the workflow file; reports its own problems."""


@dataclass(frozen=True, slots=True)
class ParsedFile:
    path: str
    workflows: tuple[m.Workflow, ...]
    messages: tuple[m.Message, ...]
    diagnostics: tuple[Diagnostic, ...]
    syntax_error: bool = False
    lost: str = ""
    """The text of the blocks that did not parse (for `validate.Lost`)."""


LARK_OPTIONS: dict[str, Any] = {"parser": "lalr", "lexer": "contextual",
                                "propagate_positions": True, "maybe_placeholders": True}


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    """The parser, its tables read from the user's cache when this grammar's were kept
    there (by this Lark, on this Python), else built and kept (see `dsl.user_cache`)."""
    grammar = resources.files("dsl").joinpath("grammar.lark").read_text(encoding="utf-8")
    made_of = f"{grammar}\n{sorted(LARK_OPTIONS.items())}\n{lark.__version__}\n{sys.version}"
    name = f"grammar-{hashlib.sha256(made_of.encode()).hexdigest()[:24]}.lark"
    kept = user_cache.read(name)
    if kept is not None:
        try:
            return Lark.load(io.BytesIO(kept))
        except Exception:  # cut short, or another Lark's: build it again
            pass
    built = Lark(grammar, **LARK_OPTIONS)
    saved = io.BytesIO()
    built.save(saved)
    user_cache.write(name, saved.getvalue())
    return built


def parse_text(text: str, path: str, read_file: FileReader | None = None) -> ParsedFile:
    """Parse one file's text. Never raises for anything the text contains.

    After a syntax error, each top-level block is parsed on its own, so that one broken
    workflow or message does not hide the problems of the others in the same file.
    """
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as problem:
        blocks = top_level_blocks(text)
        if len(blocks) <= 1:
            return ParsedFile(path, (), (), (_syntax_diagnostic(problem, text, path),), True,
                              text)
        return _parse_blocks(text, blocks, path, read_file)
    return _build(tree, path, read_file)


STATEMENTS = frozenset({
    "workflow", "message", "entry", "exit", "start_at", "timezone", "quiet_hours", "limit",
    "score", "tag_rule", "stage", "event_rule", "fit_rule", "decay", "on_enter", "after_step",
    "every_step", "go_when", "go_idle", "go_on", "go_after", "field",
})
"""The rules that are statements: each begins a line of its own in `nurture fmt`'s layout."""


@dataclass(frozen=True, slots=True)
class Lexeme:
    """A token as the parser read it (comments and white space are not tokens)."""

    kind: str
    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Layout:
    """What laying a file out needs of its parse: its tokens, which of them begin a statement,
    and the points of its score rules (to be aligned), each with the offset of its workflow."""

    lexemes: tuple[Lexeme, ...]
    statement_starts: frozenset[int]
    points: dict[int, int]


def layout(text: str) -> Layout | None:
    """The layout facts of a text that parses; None when it does not (`parse_text` says
    why). Only the grammar is applied: a file with semantic errors still has a layout."""
    try:
        interactive = _lark().parse_interactive(text)
        tokens = list(interactive.iter_parse())
        tree = interactive.feed_eof()  # type: ignore[no-untyped-call]
    except UnexpectedInput:
        return None
    starts: set[int] = set()
    points: dict[int, int] = {}
    for workflow in tree.children:
        for node in workflow.iter_subtrees():
            if node.data in STATEMENTS:
                starts.add(node.meta.start_pos)
            if node.data in ("event_rule", "fit_rule"):
                points.update((cast(int, child.start_pos), workflow.meta.start_pos)
                              for child in node.children
                              if isinstance(child, Token) and child.type == "POINTS")
    lexemes = tuple(Lexeme(t.type, str(t), cast(int, t.start_pos), cast(int, t.end_pos))
                    for t in tokens if t.type != "$END")
    return Layout(lexemes, frozenset(starts), points)


def _build(tree: Any, path: str, read_file: FileReader | None) -> ParsedFile:
    builder = _ModelBuilder(path, read_file)
    try:
        workflows, messages = builder.transform(tree)
    except VisitError as wrapped:  # pragma: no cover - a bug in the builder, not the user's
        raise wrapped.orig_exc from wrapped
    except RecursionError:  # pragma: no cover - the builder does not recurse
        span = m.Span(path, 1, 1)
        return ParsedFile(path, (), (), (error(span, "conditions are nested too deeply"),), True)
    return ParsedFile(path, workflows, messages, tuple(builder.diagnostics))


def _parse_blocks(text: str, blocks: list[tuple[int, int]], path: str,
                  read_file: FileReader | None) -> ParsedFile:
    workflows: list[m.Workflow] = []
    messages: list[m.Message] = []
    diagnostics: list[Diagnostic] = []
    lost: list[str] = []
    for start, end in blocks:
        # Blank out what precedes the block, keeping lines and columns where they were.
        line_start = text.rfind("\n", 0, start) + 1
        block = "\n" * text.count("\n", 0, start) + " " * (start - line_start) + text[start:end]
        try:
            tree = _lark().parse(block)
        except UnexpectedInput as problem:
            diagnostics.append(_syntax_diagnostic(problem, block, path))
            lost.append(text[start:end])
            continue
        parsed = _build(tree, path, read_file)
        workflows += parsed.workflows
        messages += parsed.messages
        diagnostics += parsed.diagnostics
    return ParsedFile(path, tuple(workflows), tuple(messages), tuple(diagnostics), True,
                      "\n".join(lost))


def top_level_blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each top-level `… { … }` block, skipping strings and comments.

    An unclosed block runs to the end of the text.
    """
    blocks: list[tuple[int, int]] = []
    depth, start, index = 0, -1, 0
    while index < len(text):
        char = text[index]
        if char == "#":
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
            continue
        if start < 0 and not char.isspace():
            start = index
        if char == '"':
            index = _string_end(text, index)
            continue
        if char == "{":
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                blocks.append((start, index + 1))
                start = -1
        index += 1
    if start >= 0:
        blocks.append((start, len(text)))
    return blocks


def _string_end(text: str, index: int) -> int:
    """Offset just past the string opening at `index` (or at its line's end if unclosed)."""
    index += 1
    while index < len(text) and text[index] not in '"\n':
        index += 2 if text[index] == "\\" else 1
    return index + 1 if index < len(text) and text[index] == '"' else index


def _syntax_diagnostic(problem: UnexpectedInput, text: str, path: str) -> Diagnostic:
    line = max(problem.line, 1) if isinstance(problem.line, int) else 1
    column = max(problem.column, 1) if isinstance(problem.column, int) else 1
    if isinstance(problem, UnexpectedToken):
        token = problem.token
        if token.type == "$END":
            line, column = _end_position(text)
        expected = problem.accepts or problem.expected
        written = str(token)
        if written == "=" and isinstance(token.end_pos, int) and \
                text[token.end_pos:token.end_pos + 1] in ("<", ">"):
            written += text[token.end_pos]  # `=>` or `=<`: a comparison written backwards
        message = unexpected_token_message(token.type, written, expected, text, line)
        before = text[:token.start_pos] if isinstance(token.start_pos, int) else ""
        hint = bare_when(before, "" if token.type == "$END" else str(token), expected)
        if hint is not None:  # said at the name, not at the next line's first word
            offset, message = hint
            line = before.count("\n", 0, offset) + 1
            column = offset - before.rfind("\n", 0, offset)
    elif isinstance(problem, UnexpectedCharacters):
        interactive = getattr(problem, "interactive_parser", None)
        allowed = interactive.accepts() if interactive is not None else problem.allowed
        message = unexpected_character_message(problem.char, text, problem.pos_in_stream or 0,
                                               allowed or ())
    else:  # pragma: no cover - LALR raises only the two above
        message = "syntax error"
    return error(m.Span(path, line, column), message)


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


# ---------------------------------------------------------------- the tree → model builder

_LONGEST_DURATION = 100 * 366 * 86400
"""Longer timers would overflow calendar dates; nobody means them."""

_UNITS = {
    "minute": "minute", "minutes": "minute", "hour": "hour", "hours": "hour",
    "day": "day", "days": "day", "week": "week", "weeks": "week",
}
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}
_FIELDS: dict[str, tuple[str, ...]] = {
    "push": ("title", "body", "url", "icon", "ttl", "urgency", "topic"),
    "email": ("subject", "html", "text"),
    "webhook": ("url", "body"),
}
_REQUIRED = {"push": "title", "email": "subject", "webhook": "url"}


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    value: Any
    span: m.Span


@dataclass(frozen=True, slots=True)
class _FileBody:
    relative: str
    span: m.Span


@dataclass(frozen=True, slots=True)
class _Item:
    """A workflow statement before the workflow is assembled."""

    kind: str
    value: Any
    span: m.Span


_FileModel = tuple[tuple[m.Workflow, ...], tuple[m.Message, ...]]


@v_args(meta=True)
class _ModelBuilder(Transformer_NonRecursive[Token, _FileModel]):
    def __init__(self, path: str, read_file: FileReader | None) -> None:
        super().__init__()
        self.path = path
        self.read_file = read_file
        self.diagnostics: list[Diagnostic] = []
        self._depths: dict[int, int] = {}
        self._too_deep = False

    # ------------------------------------------------------------ helpers

    def _span(self, meta: Any) -> m.Span:
        return m.Span(self.path, getattr(meta, "line", 1), getattr(meta, "column", 1))

    def _at(self, token: Token) -> m.Span:
        return m.Span(self.path, token.line or 1, token.column or 1)

    def _error(self, span: m.Span, message: str) -> None:
        self.diagnostics.append(error(span, message))

    def _name(self, token: Token) -> str:
        if str(token) in RESERVED:
            self._error(self._at(token),
                        f"'{token}' is a reserved word and cannot be used as a name")
        return str(token)

    def _string(self, token: Token) -> str:
        raw = str(token)[1:-1]
        out: list[str] = []
        index = 0
        while index < len(raw):
            char = raw[index]
            if char == "\\":
                escaped = raw[index + 1]
                if escaped not in _ESCAPES:
                    span = m.Span(self.path, token.line or 1, (token.column or 1) + 1 + index)
                    self._error(span, f"unknown escape '\\{escaped}' in a string; "
                                      "use \\\", \\\\ or \\n")
                out.append(_ESCAPES.get(escaped, escaped))
                index += 2
            else:
                out.append(char)
                index += 1
        return "".join(out)

    @staticmethod
    def _number(token: Token) -> m.Number:
        text = str(token).lstrip("+")
        return Decimal(text) if "." in text else int(text)

    def _positive_int(self, token: Token, what: str) -> int:
        value = self._number(token)
        if not isinstance(value, int) or value < 1:
            self._error(self._at(token), f"{what} must be a whole number of at least 1, "
                                         f"not '{token}'")
            return 1
        return value

    # ------------------------------------------------------------ files

    def start(self, meta: Any, children: list[Any]) -> tuple[tuple[m.Workflow, ...],
                                                              tuple[m.Message, ...]]:
        workflows = tuple(c for c in children if isinstance(c, m.Workflow))
        messages = tuple(c for c in children if isinstance(c, m.Message))
        return workflows, messages

    # ------------------------------------------------------------ workflows

    def workflow(self, meta: Any, children: list[Any]) -> m.Workflow:
        name_token, *items = children
        span = self._span(meta)
        name = self._name(name_token)
        single: dict[str, _Item] = {}
        for item in items:
            if item.kind in ("start", "timezone", "quiet_hours"):
                if item.kind in single:
                    first = single[item.kind].span
                    label = item.kind.replace("_", " ")
                    self._error(item.span, f"'{label}' is given twice in workflow '{name}' "
                                           f"(first on line {first.line})")
                else:
                    single[item.kind] = item
        stages = self._unique([i.value for i in items if i.kind == "stage"], "stage", name)
        scores = self._unique([i.value for i in items if i.kind == "score"], "score", name)
        limits = self._unique_limits([i.value for i in items if i.kind == "limit"], name)
        entries = tuple(i.value for i in items if i.kind == "entry")
        if not stages:
            self._error(span, f"workflow '{name}' has no stages; add one such as "
                              "'stage welcome { }'")
        start, start_span = single["start"].value if "start" in single else (
            (stages[0].name, stages[0].span) if stages else ("", span))
        timezone, timezone_span = single["timezone"].value if "timezone" in single else (
            "UTC", span)
        return m.Workflow(
            name=name,
            entries=entries or (m.Trigger("subscribed", None, span),),
            exits=tuple(i.value for i in items if i.kind == "exit"),
            start=start,
            start_span=start_span,
            timezone=timezone,
            timezone_span=timezone_span,
            quiet_hours=single["quiet_hours"].value if "quiet_hours" in single else None,
            limits=tuple(limits),
            scores=tuple(scores),
            tags=tuple(i.value for i in items if i.kind == "tag"),
            stages=tuple(stages),
            span=span,
        )

    def _unique(self, nodes: list[Any], kind: str, workflow: str) -> list[Any]:
        seen: dict[str, m.Span] = {}
        kept = []
        for node in nodes:
            if node.name in seen:
                self._error(node.span, f"duplicate {kind} '{node.name}' in workflow "
                                       f"'{workflow}' (first defined on line "
                                       f"{seen[node.name].line})")
                continue
            seen[node.name] = node.span
            kept.append(node)
        return kept

    def _unique_limits(self, limits: list[m.Limit], workflow: str) -> list[m.Limit]:
        seen: dict[str, m.Span] = {}
        kept = []
        for limit in limits:
            if limit.channel in seen:
                self._error(limit.span, f"a second 'limit {limit.channel}' in workflow "
                                        f"'{workflow}' (first on line "
                                        f"{seen[limit.channel].line}); list every cap in one "
                                        "statement, separated by commas")
                continue
            seen[limit.channel] = limit.span
            kept.append(limit)
        return kept

    def entry(self, meta: Any, children: list[Any]) -> _Item:
        event, where = children
        trigger = m.Trigger(self._name(event), where, self._span(meta), self._at(event))
        return _Item("entry", trigger, trigger.span)

    def exit(self, meta: Any, children: list[Any]) -> _Item:
        event, where = children
        trigger = m.Trigger(self._name(event), where, self._span(meta), self._at(event))
        return _Item("exit", trigger, trigger.span)

    def start_at(self, meta: Any, children: list[Any]) -> _Item:
        return _Item("start", (self._name(children[0]), self._at(children[0])), self._span(meta))

    def timezone(self, meta: Any, children: list[Any]) -> _Item:
        return _Item("timezone", (self._string(children[0]), self._at(children[0])),
                     self._span(meta))

    def quiet_hours(self, meta: Any, children: list[Any]) -> _Item:
        start, end = (self._clock(token) for token in children)
        span = self._span(meta)
        if start == end:
            self._error(self._at(children[1]), "quiet hours start and end at the same time; "
                                               "give a window such as 21:00 to 08:00")
        return _Item("quiet_hours", m.QuietHours(start, end, span), span)

    def _clock(self, token: Token) -> time:
        hours, minutes = (int(part) for part in str(token).split(":"))
        if hours > 23 or minutes > 59:
            self._error(self._at(token), f"bad clock time '{token}': use HH:MM from 00:00 "
                                         "to 23:59")
            return time(0, 0)
        return time(hours, minutes)

    def limit(self, meta: Any, children: list[Any]) -> _Item:
        channel, *caps = children
        span = self._span(meta)
        seen: dict[str, m.Cap] = {}
        for cap in caps:
            if cap.period in seen:
                self._error(cap.span, f"two caps per {cap.period} for {channel}; keep one")
            seen[cap.period] = cap
        limit = m.Limit(cast(m.ChannelName, str(channel)), tuple(caps), span)
        return _Item("limit", limit, span)

    def cap(self, meta: Any, children: list[Any]) -> m.Cap:
        count_token, period = children
        count = self._number(count_token)
        span = self._at(count_token)
        if count == 0:
            self._error(span, f"a cap of 0 per {period} can never be met: nothing would be sent")
        elif not isinstance(count, int):
            self._error(span, f"a cap counts messages: use a whole number, not '{count_token}'")
        return m.Cap(count, str(period), span)

    # ------------------------------------------------------------ scores and tags

    def score(self, meta: Any, children: list[Any]) -> _Item:
        name_token, *rules = children
        span = self._span(meta)
        decays = [r for r in rules if isinstance(r, m.Decay)]
        for extra in decays[1:]:
            self._error(extra.span, f"score '{name_token}' has more than one decay rule")
        score = m.Score(
            name=self._name(name_token),
            event_rules=tuple(r for r in rules if isinstance(r, m.EventRule)),
            fit_rules=tuple(r for r in rules if isinstance(r, m.FitRule)),
            decay=decays[0] if decays else None,
            span=span,
        )
        return _Item("score", score, span)

    def event_rule(self, meta: Any, children: list[Any]) -> m.EventRule:
        event, where, points, max_count, period = children
        cap = None
        if max_count is not None:
            count = self._number(max_count)
            if count <= 0:
                self._error(self._at(max_count), f"'max {max_count} per {period}' never lets "
                                                 "this rule add anything")
            cap = m.Cap(count, str(period), self._at(max_count))
        return m.EventRule(self._name(event), where, self._number(points), cap, self._span(meta),
                           self._at(event))

    def fit_rule(self, meta: Any, children: list[Any]) -> m.FitRule:
        condition, points = children
        return m.FitRule(condition, self._number(points), self._span(meta))

    def decay(self, meta: Any, children: list[Any]) -> m.Decay:
        percent_token, every = children
        percent = self._number(Token("NUMBER", str(percent_token).rstrip("%")))
        if not 0 < percent <= 100:
            self._error(self._at(percent_token), f"decay must be more than 0% and at most "
                                                 f"100%, not '{percent_token}'")
        return m.Decay(percent, every, self._span(meta))

    def tag_rule(self, meta: Any, children: list[Any]) -> _Item:
        tag, event, where = children
        span = self._span(meta)
        rule = m.TagRule(self._string(tag), self._name(event), where, span, self._at(event))
        if not rule.tag.strip():
            self._error(self._at(tag), "a tag cannot be empty")
        return _Item("tag", rule, span)

    # ------------------------------------------------------------ stages

    def stage(self, meta: Any, children: list[Any]) -> _Item:
        name_token, *items = children
        span = self._span(meta)
        stage = m.Stage(
            name=self._name(name_token),
            steps=tuple(i for i in items if isinstance(i, m.OnEnter | m.After | m.Every)),
            transitions=tuple(i for i in items
                              if isinstance(i, m.GoWhen | m.GoOn | m.GoAfter | m.GoIdle)),
            span=span,
        )
        return _Item("stage", stage, span)

    def on_enter(self, meta: Any, children: list[Any]) -> m.OnEnter:
        return m.OnEnter(children[0], self._span(meta))

    def after_step(self, meta: Any, children: list[Any]) -> m.After:
        delay, unless, action = children
        return m.After(delay, self._name(unless) if unless else None, action, self._span(meta),
                       self._at(unless) if unless else None)

    def every_step(self, meta: Any, children: list[Any]) -> m.Every:
        interval, times, action = children
        count = self._positive_int(times, "'times'") if times is not None else None
        return m.Every(interval, count, action, self._span(meta))

    def go_when(self, meta: Any, children: list[Any]) -> m.GoWhen:
        return m.GoWhen(self._name(children[0]), self._at(children[0]), children[1],
                       self._span(meta))

    def go_idle(self, meta: Any, children: list[Any]) -> m.GoIdle:
        return m.GoIdle(self._name(children[0]), self._at(children[0]), children[1],
                       self._span(meta))

    def go_on(self, meta: Any, children: list[Any]) -> m.GoOn:
        target, event, where = children
        return m.GoOn(self._name(target), self._at(target), self._name(event), where,
                       self._span(meta), self._at(event))

    def go_after(self, meta: Any, children: list[Any]) -> m.GoAfter:
        return m.GoAfter(self._name(children[0]), self._at(children[0]), children[1],
                       self._span(meta))

    def action(self, meta: Any, children: list[Any]) -> m.Send:
        channel, message, *assignments = children
        params: dict[str, m.Value] = {}
        for assignment in assignments:
            if assignment is None:
                continue
            key_token, value = assignment
            if str(key_token) in params:
                self._error(self._at(key_token), f"'{key_token}' is given twice in this send")
            params[self._name(key_token)] = value
        return m.Send(cast(m.ChannelName, str(channel)), self._name(message),
                      tuple(params.items()), self._span(meta), self._at(message))

    def assignment(self, meta: Any, children: list[Any]) -> tuple[Token, m.Value]:
        return children[0], self._literal(children[1])

    # ------------------------------------------------------------ conditions

    def _literal(self, token: Token) -> m.Value:
        if token.type == "STRING":
            return self._string(token)
        if token.type == "BOOLEAN":
            return str(token) == "true"
        return self._number(token)

    def _nested(self, node: m.Condition, children: list[Any]) -> m.Condition:
        """Refuses conditions nested deeper than anyone writes, so nothing recurses forever."""
        depth = 1 + max((self._depths.get(id(child), 0) for child in children), default=0)
        if depth > MAX_CONDITION_DEPTH:
            if not self._too_deep:
                self._error(node.span, f"this condition is nested more than "
                                       f"{MAX_CONDITION_DEPTH} levels deep; simplify it")
                self._too_deep = True
            return cast(m.Condition, children[0])
        self._depths[id(node)] = depth
        return node

    def or_condition(self, meta: Any, children: list[Any]) -> m.Condition:
        return self._nested(m.Or(tuple(children), self._span(meta)), children)

    def and_condition(self, meta: Any, children: list[Any]) -> m.Condition:
        return self._nested(m.And(tuple(children), self._span(meta)), children)

    def negation(self, meta: Any, children: list[Any]) -> m.Condition:
        return self._nested(m.Not(children[0], self._span(meta)), children)

    def comparison(self, meta: Any, children: list[Any]) -> m.Comparison:
        left, operator, value = children
        return m.Comparison(left, str(operator), self._literal(value),  # type: ignore[arg-type]
                            self._span(meta))

    def membership(self, meta: Any, children: list[Any]) -> m.Membership:
        left, *values = children
        return m.Membership(left, tuple(self._literal(v) for v in values), self._span(meta))

    def text_match(self, meta: Any, children: list[Any]) -> m.TextMatch:
        left, operator, text = children
        return m.TextMatch(left, str(operator), self._string(text),  # type: ignore[arg-type]
                           self._span(meta))

    def has_tag(self, meta: Any, children: list[Any]) -> m.HasTag:
        return m.HasTag(self._string(children[0]), self._span(meta))

    def reference(self, meta: Any, children: list[Any]) -> m.Reference:
        span = self._span(meta)
        parts = [self._name(token) for token in children]
        if len(parts) == 1:
            return m.Reference("plain", parts[0], span)
        if parts[0] != "subscriber" or len(parts) != 2:
            self._error(span, f"'{'.'.join(parts)}' is not a name a condition can use; write "
                              "a name or subscriber.NAME")
        return m.Reference("subscriber", parts[-1], span)

    # ------------------------------------------------------------ durations

    def duration(self, meta: Any, children: list[Any]) -> m.Duration:
        amount_token, unit = children
        amount = self._number(amount_token)
        duration = m.Duration(amount, _UNITS[str(unit)])
        if amount == 0:
            self._error(self._at(amount_token), f"a duration must be longer than zero, "
                                                f"not '{amount_token} {unit}'")
        elif duration.seconds < 1:
            self._error(self._at(amount_token), f"a duration must be at least one second, "
                                                f"not '{amount_token} {unit}'")
        elif duration.seconds > _LONGEST_DURATION:
            self._error(self._at(amount_token), f"a duration must be at most 100 years, "
                                                f"not '{amount_token} {unit}'")
        return duration

    # ------------------------------------------------------------ messages

    def file_body(self, meta: Any, children: list[Any]) -> _FileBody:
        return _FileBody(self._string(children[0]), self._at(children[0]))

    def field(self, meta: Any, children: list[Any]) -> _Field:
        name, value = children
        return _Field(str(name), value, self._at(name))

    def message(self, meta: Any, children: list[Any]) -> m.Message:
        name_token, channel_token, lang_token, *fields = children
        span = self._span(meta)
        channel = cast(m.ChannelName, str(channel_token))
        lang = self._lang(lang_token) if lang_token is not None else None
        values = self._message_fields(channel, fields, str(name_token))
        content = self._content(channel, values, span, str(name_token))
        return m.Message(self._name(name_token), channel, lang, content, span)

    def _lang(self, token: Token) -> str:
        text = self._string(token)
        if not re.fullmatch(r"[A-Za-z]{2,3}([-_][A-Za-z]{2,4})?", text):
            self._error(self._at(token), f"'{text}' is not a language such as \"pl\" or "
                                         "\"pt-BR\"")
        return text.replace("_", "-")

    def _message_fields(self, channel: str, fields: list[_Field], name: str) -> dict[str, Any]:
        allowed = _FIELDS[channel]
        values: dict[str, Any] = {}
        for item in fields:
            if item.name not in allowed:
                article = "an" if channel[0] in "aeiou" else "a"
                self._error(item.span, f"unknown {channel} field '{item.name}'"
                                       f"{did_you_mean(item.name, allowed)} ({article} "
                                       f"{channel} message has {', '.join(allowed)})")
                continue
            if item.name in values:
                self._error(item.span, f"field '{item.name}' is given twice in message '{name}'")
                continue
            converted = self._field_value(channel, item)
            if converted is not None:
                values[item.name] = converted
        return values

    def _field_value(self, channel: str, item: _Field) -> Any:
        value = item.value
        if item.name == "ttl":
            if not isinstance(value, m.Duration):
                self._error(item.span, "ttl needs a duration such as '2 days'")
                return None
            return value
        if item.name == "urgency":
            if not (isinstance(value, Token) and value.type == "NAME"
                    and str(value) in m.URGENCIES):
                text = str(value) if isinstance(value, Token) else "this value"
                self._error(item.span, f"urgency must be very_low, low, normal or high, not "
                                       f"'{text}'{did_you_mean(text, m.URGENCIES)}")
                return None
            return str(value)
        if isinstance(value, _FileBody):
            if item.name not in ("html", "text"):
                self._error(value.span, f"only an email's html and text can come from a file, "
                                        f"not '{item.name}'")
                return None
            source = self.read_file(value.relative, value.span) if self.read_file else None
            # where the file is, as the workflow file's own path says (so that a problem in
            # it is reported at a path that opens from where `nurture check` was run)
            where = os.path.normpath(os.path.join(os.path.dirname(self.path), value.relative))
            return m.Template(source or "", item.span, where)
        if isinstance(value, Token) and value.type == "STRING":
            return m.Template(self._string(value), item.span)
        self._error(item.span, f"{item.name} needs a quoted string")
        return None

    def _content(self, channel: str, values: dict[str, Any], span: m.Span,
                 name: str) -> m.MessageContent:
        required = _REQUIRED[channel]
        if required not in values:
            self._error(span, f"{channel} message '{name}' needs a {required}")
            values[required] = m.Template("", span)
        if channel == "push":
            return m.PushContent(**values)
        if channel == "email":
            if "html" not in values and "text" not in values:
                self._error(span, f"email message '{name}' needs an html or a text body")
            return m.EmailContent(**values)
        return m.WebhookContent(**values)


