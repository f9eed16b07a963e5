"""The `pytest11` entry point: the `nurture` fixture, with the engine imported on first use.

pytest imports every installed plugin when it starts, in every run of every project that has
nurture installed. Registered as `engine.testing` itself, the plugin imported the whole engine
there (SQLAlchemy, Jinja2, lark, pywebpush...): 3 s more before the first test on a slow
machine, paid by runs that never ask for the fixture. This module imports only pytest; the
engine comes with the first test that uses `nurture`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from engine.testing import NurtureFixture


@pytest.fixture
def nurture(tmp_path: Path) -> Iterator[NurtureFixture]:
    """Load `.flow` files, feed events, move frozen time, and ask what happened."""
    from engine.testing import fixture_runs

    yield from fixture_runs(tmp_path)
