"""Shared fixtures: a folder of workflow files written by the test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydantic.v1  # noqa: F401  (see below)
import pytest

from dsl.loader import LoadResult, load_paths

# FastAPI imports pydantic.v1 the first time it builds a route, and pydantic.v1 subclasses
# `datetime.date` as it is imported. Under freezegun `date` is a fake with its own metaclass,
# so a process whose first route is built inside a frozen test fails ("metaclass conflict").
# Which test comes first in a process depends on pytest-xdist's distribution: imported here,
# before any test freezes time, it never does.

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def write_flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Write files into a temporary folder (the working directory) and return the path."""
    monkeypatch.chdir(tmp_path)

    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return name

    return write


@pytest.fixture
def check_lines(write_flow: Callable[..., str]) -> Callable[..., list[str]]:
    """Load one or more files and return the diagnostics as the CLI prints them."""

    def check(text: str, name: str = "w.flow", extra: dict[str, str] | None = None) -> list[str]:
        paths = [write_flow(name, text)]
        paths += [write_flow(other, body) for other, body in (extra or {}).items()]
        result: LoadResult = load_paths([p for p in paths if p.endswith(".flow")])
        return [str(d) for d in result.diagnostics]

    return check


pytest_plugins = ["pytester", "tests.channels.fixtures", "tests.databases"]
