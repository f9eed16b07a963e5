"""Files and folders in, one Catalog (or the diagnostics that prevent it) out.

Loading is all or nothing: the engine only ever receives a catalog that checked clean, while
`nurture check` gets every problem of every file in one run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dsl import model as m
from dsl.diagnostics import Diagnostic, error, sort_key
from dsl.parser import FileReader, ParsedFile, parse_text
from dsl.text import NotUtf8Text, decode_utf8, read_utf8
from dsl.validate import Lost, validate


@dataclass(frozen=True, slots=True)
class LoadResult:
    catalog: m.Catalog | None
    """None when any error was found."""
    diagnostics: tuple[Diagnostic, ...]
    files: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.catalog is not None

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if not d.is_error)


def find_flow_files(paths: Iterable[str]) -> tuple[list[str], list[Diagnostic]]:
    """Expand folders recursively to their `*.flow` files, in a stable order."""
    files: list[str] = []
    problems: list[Diagnostic] = []
    for path in paths:
        where = m.Span(path, 1, 1)
        if os.path.isdir(path):
            found = sorted(str(p) for p in Path(path).rglob("*.flow") if p.is_file())
            if not found:
                problems.append(error(where, "no .flow files in this folder"))
            files.extend(found)
        elif os.path.isfile(path):
            mistaken = _not_a_workflow(path)
            if mistaken:
                problems.append(error(where, mistaken))
            else:
                files.append(path)
        else:
            problems.append(error(where, "no such file or folder"))
    unique = list(dict.fromkeys(os.path.normpath(f) for f in files))
    return unique, problems


TEMPLATE_SUFFIXES = frozenset({".html", ".htm", ".txt", ".md", ".j2", ".jinja"})


def _not_a_workflow(path: str) -> str | None:
    """Why a file named on the command line is surely no workflow file, or None. (A template
    or an events file parsed as one gives a screenful of syntax errors that say nothing of
    the mistake.)"""
    suffix = Path(path).suffix.lower()
    if suffix in TEMPLATE_SUFFIXES:
        return ("not a workflow file (.flow): a message's template file is checked with the "
                "workflow file that names it, e.g. `nurture check workflows/`")
    if suffix in (".jsonl", ".json", ".ndjson"):
        return ("not a workflow file (.flow): events are simulated with `nurture simulate "
                "WORKFLOWS --events FILE.jsonl`")
    return None


def load_paths(paths: Sequence[str], unsaved: Mapping[str, bytes] | None = None) -> LoadResult:
    """Load the `.flow` files of these files and folders.

    `unsaved` (file -> content) is what an editor holds for files not saved yet: that is
    checked in place of the file's on disk (or beside the others, for a new file), with the
    rest of its folder, so that names from the other files are known; the file is reported
    under the name given here."""
    files, problems = find_flow_files(paths)
    texts: dict[str, bytes] = {}
    for name, content in (unsaved or {}).items():
        same = [f for f in files if os.path.realpath(f) == os.path.realpath(name)]
        files = [name if f in same else f for f in files] if same else [*files, name]
        problems = [p for p in problems if os.path.realpath(p.span.path) !=
                    os.path.realpath(name)]  # a new file's "no such file"
        texts[name] = content
    parsed: list[ParsedFile] = []
    for path in files:
        try:
            text = decode_utf8(texts[path]) if path in texts else read_utf8(path)
        except (NotUtf8Text, OSError) as problem:
            problems.append(unreadable(path, problem))
            continue
        parsed.append(parse_text(text, path, _file_reader(path, problems)))
    return _combine(parsed, problems, tuple(files))


def unreadable(path: str, problem: NotUtf8Text | OSError) -> Diagnostic:
    """A workflow file that could not be read as text, said where the problem is."""
    if isinstance(problem, NotUtf8Text):
        return error(m.Span(path, problem.line, problem.column),
                     f"{problem}: save the file as UTF-8")
    return error(m.Span(path, 1, 1), f"cannot read: {problem.strerror}")


def load_text(text: str, path: str = "<text>", base_dir: str | None = None) -> LoadResult:
    """Load one file's text (tests, tools); `file "…"` bodies resolve against base_dir."""
    problems: list[Diagnostic] = []
    reader_path = os.path.join(base_dir, os.path.basename(path)) if base_dir else path
    parsed = parse_text(text, path, _file_reader(reader_path, problems))
    return _combine([parsed], problems, (path,))


def _file_reader(flow_path: str, problems: list[Diagnostic]) -> FileReader:
    """Reads `file "…"` fields: relative to the workflow file, in its folder or below.

    Templates are rendered into messages that leave the machine: a file from anywhere else
    (`../.env`, the signing secret in `../.nurture/`) would be mailed out by whoever may edit
    workflows. The check follows symbolic links, as reading does. The rule does not depend on
    how the file was loaded (alone, or within a folder), so `nurture check` of one file and of
    its folder agree."""
    folder = os.path.dirname(flow_path)
    inside = os.path.realpath(folder or ".")

    def read(relative: str, span: m.Span) -> str | None:
        if os.path.isabs(relative):
            problems.append(error(span, f"file \"{relative}\" must be a path relative to "
                                        "the workflow file"))
            return None
        path = os.path.normpath(os.path.join(folder, relative))
        if os.path.commonpath([os.path.realpath(path), inside]) != inside:
            link = os.path.commonpath([os.path.abspath(path), os.path.abspath(folder)]) == \
                os.path.abspath(folder)
            problems.append(error(span, f"file \"{relative}\" is "
                                        f"{'a link to a file ' if link else ''}outside the "
                                        "workflow file's folder: a template must be in it or "
                                        "below it"))
            return None
        try:
            return read_utf8(path)
        except FileNotFoundError:
            problems.append(error(span, f"file not found: {path}"))
        except NotUtf8Text as problem:
            problems.append(error(span, f"file {path} is {problem}{problem.where}: save it as "
                                        "UTF-8"))
        except OSError as problem:
            problems.append(error(span, f"cannot read {path}: {problem.strerror}"))
        return None

    return read


def _combine(parsed: list[ParsedFile], problems: list[Diagnostic],
             files: tuple[str, ...]) -> LoadResult:
    diagnostics = list(problems)
    for item in parsed:
        diagnostics.extend(item.diagnostics)
    catalog = m.Catalog(
        workflows=tuple(w for item in parsed for w in item.workflows),
        messages=tuple(msg for item in parsed for msg in item.messages),
        files=files,
    )
    complete = not any(item.syntax_error for item in parsed)
    lost = Lost.in_text("\n".join(item.lost for item in parsed if item.lost))
    diagnostics.extend(validate(catalog, complete=complete, lost=lost))
    # once each, by position; two at one position in the order they were found (a set's
    # order would change from one run to the next)
    diagnostics = sorted(dict.fromkeys(diagnostics), key=sort_key)
    has_errors = any(d.is_error for d in diagnostics)
    return LoadResult(None if has_errors else catalog, tuple(diagnostics), files)
