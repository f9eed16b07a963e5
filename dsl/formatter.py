"""One layout for every workflow file (`nurture fmt`), so that a diff shows what changed.

The layout is the SPEC's own example (§1.1): two spaces per block, each statement on a line of
its own, one space between words, none before `,` `:` `)` `]` or around `.`, `{ }` for an
empty block, at most one blank line in a row and none just inside a block's braces, one blank
line between top-level blocks, and the points of a workflow's score rules aligned in one
column, two spaces after the longest rule.

What the writer chose is kept where it carries meaning for a reader: comments (on their own
line or after a statement), blank lines between statements, and a long statement broken over
several lines (its further lines indented two levels deeper). Only white space changes, and
that is checked, not assumed: the result must read back as the same tokens and comments, or
nothing is returned (`FormatterBug`), so a file is never rewritten into something else.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dsl.diagnostics import Diagnostic
from dsl.loader import find_flow_files, unreadable
from dsl.parser import Layout, Lexeme, layout, parse_text
from dsl.text import NotUtf8Text, decode_utf8

INDENT = "  "
CONTINUATION = 2
"""Extra levels of indentation for the further lines of a statement broken over several."""
NO_SPACE_BEFORE = frozenset({",", ":", ")", "]", "."})
NO_SPACE_AFTER = frozenset({"(", "[", "."})
_GAP = re.compile(r"#[^\n]*|\n")


class FormatterBug(RuntimeError):
    """The laid-out text would not read back as the same tokens and comments."""


@dataclass(slots=True)
class _Line:
    depth: int
    pieces: list[str] = field(default_factory=list)
    """The line's text after its indentation; each piece with the space before it."""
    points: int | None = None
    """Which piece is the points of a score rule, to be aligned (with `group`)."""
    group: int = -1
    comment: str | None = None
    """A comment after the line's text."""

    @property
    def opens_block(self) -> bool:
        return bool(self.pieces) and self.pieces[-1].endswith("{")

    @property
    def closes_block(self) -> bool:
        return bool(self.pieces) and self.pieces[-1].endswith("}")

    @property
    def width_before_points(self) -> int:
        assert self.points is not None
        return len(INDENT) * self.depth + len("".join(self.pieces[:self.points]))

    def text(self) -> str:
        body = "".join(self.pieces)
        if self.comment is not None:
            body = f"{body}  {self.comment}" if body else self.comment
        return INDENT * self.depth + body


def format_text(text: str) -> str | None:
    """The text laid out; None when it does not parse (`parse_text` reports why).

    CRLF line ends are kept when every line has them."""
    crlf = "\r\n" in text and text.count("\r\n") == text.count("\n")
    body = text.replace("\r\n", "\n") if crlf else text
    found = layout(body)
    if found is None:
        return None
    lines = _Printer(body, found).print()
    result = "".join(line.text().rstrip() + "\n" for line in lines)
    again = layout(result)
    if again is None or _words(body, found) != _words(result, again):
        raise FormatterBug("laying the file out would change its tokens or comments")
    return result.replace("\n", "\r\n") if crlf else result


def _words(text: str, found: Layout) -> list[str]:
    """The tokens and comments of a text, in order: what laying out must not change."""
    words: list[str] = []
    end = 0
    for lexeme in found.lexemes:
        words += [comment for _, comment in _gap(text[end:lexeme.start])[0]]
        words.append(f"{lexeme.kind} {lexeme.text}")
        end = lexeme.end
    words += [comment for _, comment in _gap(text[end:])[0]]
    return words


def _gap(gap: str) -> tuple[list[tuple[int, str]], int]:
    """The comments in the white space between two tokens, each with the line breaks before
    it, and the line breaks after the last."""
    comments: list[tuple[int, str]] = []
    breaks = 0
    for match in _GAP.finditer(gap):
        if match.group() == "\n":
            breaks += 1
        else:
            comments.append((breaks, match.group().rstrip()))
            breaks = 0
    return comments, breaks


class _Printer:
    def __init__(self, text: str, found: Layout) -> None:
        self.text = text
        self.found = found
        self.lines: list[_Line] = []
        self.depth = 0
        self.statement_line = -1
        """The line where the statement in hand began."""

    def print(self) -> list[_Line]:
        end = 0
        previous: Lexeme | None = None
        for lexeme in self.found.lexemes:
            comments, breaks = _gap(self.text[end:lexeme.start])
            begins = lexeme.start in self.found.statement_starts or lexeme.text == "}"
            continues = previous is not None and not begins
            for before, comment in comments:
                self._comment(comment, before, continues)
                breaks = max(breaks, 1)
            if lexeme.text == "}":
                self.depth -= 1
                if previous is not None and previous.text == "{" and not comments:
                    self.lines[-1].pieces.append(" }")  # an empty block: `stage done { }`
                else:
                    self._new_line(0, self.depth).pieces.append("}")
            elif begins or not self.lines:
                self._new_line(breaks, self.depth).pieces.append(lexeme.text)
                self.statement_line = len(self.lines) - 1
            elif (breaks and lexeme.text != "{") or self.lines[-1].comment is not None:
                self._new_line(0, self.depth + CONTINUATION).pieces.append(lexeme.text)
            else:
                line = self.lines[-1]
                space = "" if (lexeme.text in NO_SPACE_BEFORE or previous is None
                               or previous.text in NO_SPACE_AFTER) else " "
                line.pieces.append(space + lexeme.text)
            if lexeme.text == "{":
                self.depth += 1
            if lexeme.start in self.found.points and len(self.lines) - 1 == self.statement_line:
                line = self.lines[-1]
                line.points, line.group = len(line.pieces) - 1, self.found.points[lexeme.start]
            previous, end = lexeme, lexeme.end
        for before, comment in _gap(self.text[end:])[0]:
            self._comment(comment, before, False)
        self._align()
        return self.lines

    def _comment(self, comment: str, breaks_before: int, continues: bool) -> None:
        if breaks_before == 0 and self.lines:
            self.lines[-1].comment = comment  # after the statement, on its line
            return
        depth = self.depth + (CONTINUATION if continues else 0)
        self._new_line(0 if continues else breaks_before, depth).comment = comment

    def _new_line(self, breaks: int, depth: int) -> _Line:
        """A new line, after a blank one where the writer left one (not just inside braces)
        and always after a top-level block."""
        if self.lines:
            last = self.lines[-1]
            after_block = depth == 0 and last.depth == 0 and last.closes_block
            if (breaks >= 2 or after_block) and not last.opens_block:
                self.lines.append(_Line(depth))
        line = _Line(depth)
        self.lines.append(line)
        return line

    def _align(self) -> None:
        """The points of each workflow's score rules in one column, two spaces after the
        longest rule (a rule broken over lines whose points are not on its first line is
        left as it is)."""
        widths: dict[int, int] = {}
        for line in self.lines:
            if line.points is not None:
                widths[line.group] = max(widths.get(line.group, 0), line.width_before_points)
        for line in self.lines:
            if line.points is not None:
                pad = widths[line.group] + 2 - line.width_before_points
                line.pieces[line.points] = " " * pad + line.pieces[line.points].lstrip()


@dataclass(frozen=True, slots=True)
class FormattedFile:
    """A file's content laid out (`after`, None when it could not be) and why not."""

    path: str
    before: bytes
    after: bytes | None
    problems: tuple[Diagnostic, ...] = ()

    @property
    def changed(self) -> bool:
        return self.after is not None and self.after != self.before


def format_content(path: str, content: bytes) -> FormattedFile:
    """A file's bytes laid out: a byte order mark at the start is kept; a file that is not
    UTF-8 or does not parse is left as it is, with the problems that `nurture check`
    reports for it."""
    try:
        text = decode_utf8(content)
    except NotUtf8Text as problem:
        return FormattedFile(path, content, None, (unreadable(path, problem),))
    after = format_text(text)
    if after is None:
        problems = tuple(d for d in parse_text(text, path).diagnostics if d.is_error)
        return FormattedFile(path, content, None, problems)
    mark = codecs.BOM_UTF8 if content.startswith(codecs.BOM_UTF8) else b""
    return FormattedFile(path, content, mark + after.encode("utf-8"))


def format_paths(paths: Sequence[str]) -> tuple[list[FormattedFile], list[Diagnostic]]:
    """The `.flow` files of these files and folders laid out, and what was not found."""
    files, problems = find_flow_files(paths)
    formatted: list[FormattedFile] = []
    for path in files:
        try:
            content = Path(path).read_bytes()
        except OSError as problem:
            formatted.append(FormattedFile(path, b"", None, (unreadable(path, problem),)))
            continue
        formatted.append(format_content(path, content))
    return formatted, problems


def write_back(path: str, content: bytes) -> None:
    """Replace a file's content whole (a new file renamed over it, with the old one's
    permissions), so that an editor or a crash never sees half a file."""
    folder = os.path.dirname(path) or "."
    mode = os.stat(path).st_mode & 0o7777
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".nurture-fmt-",
                                             suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
