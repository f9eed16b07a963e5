"""One library behind one module, and dependencies pointing one way (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dsl", "channels", "engine")

# library → the only module(s) allowed to import it
OWNERS = {
    "lark": ("dsl/parser.py",),
    "jinja2": ("dsl/templates.py",),
    "sqlalchemy": ("engine/store/",),
    "alembic": ("engine/store/",),
    "pywebpush": ("channels/webpush.py",),
    "apscheduler": ("engine/service.py",),
}
# package → packages it must not import
FORBIDDEN = {"dsl": ("channels", "engine"), "channels": ("engine",)}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


SOURCES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_respect_the_architecture(path: Path) -> None:
    relative = path.relative_to(ROOT).as_posix()
    modules = imported_modules(path)
    for library, owners in OWNERS.items():
        if library in modules:
            assert relative.startswith(owners), f"{relative} imports {library}; only {owners}"
    package = relative.split("/")[0]
    for forbidden in FORBIDDEN.get(package, ()):
        assert forbidden not in modules, f"{relative} imports {forbidden}"
