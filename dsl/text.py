"""Text that people save, read as UTF-8, and where it is not, said as an editor shows it.

A marketer whose editor saved a workflow in a legacy encoding (Windows-1250 for a Polish
shop), or a developer whose code sends a name in Latin-1, is told the line and column of the
first character written that way, rather than a byte offset or "line 1 column 1".
"""

from __future__ import annotations

import codecs
from pathlib import Path


class NotUtf8Text(ValueError):
    """A file in another encoding: where its first such byte is (line and column, in
    characters, from 1), and which byte; or a UTF-16 file (`byte` None)."""

    def __init__(self, line: int, column: int, byte: int | None) -> None:
        self.line, self.column, self.byte = line, column, byte
        super().__init__("UTF-16 text, not UTF-8" if byte is None
                         else f"not UTF-8 text (byte 0x{byte:02x})")

    @property
    def where(self) -> str:
        """` at line L, column C`, for a message about text that has no place of its own (a
        template file, a request body); nothing for a UTF-16 file, wrong throughout."""
        return "" if self.byte is None else f" at line {self.line}, column {self.column}"


def first_not_utf8(data: bytes) -> NotUtf8Text | None:
    """Where `data` (without a byte order mark) stops being UTF-8, or None if it is."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as problem:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return NotUtf8Text(1, 1, None)
        before = data[:problem.start]
        line_start = before.rfind(b"\n") + 1
        column = len(before[line_start:].decode("utf-8")) + 1
        return NotUtf8Text(before.count(b"\n") + 1, column, data[problem.start])
    return None


def decode_utf8(data: bytes) -> str:
    """Text saved as UTF-8, with or without the byte order mark some editors write; else
    `NotUtf8Text`."""
    data = data.removeprefix(codecs.BOM_UTF8)
    problem = first_not_utf8(data)
    if problem is not None:
        raise problem
    return data.decode("utf-8")


def read_utf8(path: str) -> str:
    """A file's text (see `decode_utf8`)."""
    return decode_utf8(Path(path).read_bytes())
