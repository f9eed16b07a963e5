"""The parser's tables kept in the user's cache folder: read back only when safe, and the
parser read back is the parser built."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from lark import Lark

from dsl import parser, user_cache
from dsl.loader import load_paths

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "nurture"


def test_a_systemd_services_cache_directory_comes_first(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample unit's `CacheDirectory=nurture`: systemd makes the folder (mode 0755, the
    service's user) and names it in `$CACHE_DIRECTORY`, several separated by colons."""
    service = tmp_path / "var-cache-nurture"
    service.mkdir(mode=0o755)
    monkeypatch.setenv("CACHE_DIRECTORY", f"{service}:{tmp_path / 'other'}")
    assert user_cache.folder() == service
    user_cache.write("thing", b"tables")
    assert user_cache.read("thing") == b"tables"
    assert [p.name for p in service.iterdir()] == ["thing"]
    assert not cache.exists()
    monkeypatch.setenv("CACHE_DIRECTORY", "relative")  # not systemd's: ignored
    assert user_cache.folder() == cache


def test_a_kept_file_is_private_and_read_back(cache: Path) -> None:
    user_cache.write("thing", b"tables")
    assert user_cache.read("thing") == b"tables"
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(cache / "thing").st_mode) == 0o600
    assert [p.name for p in cache.iterdir()] == ["thing"]  # no temporary file left


@pytest.mark.parametrize("shared", ["file", "folder"])
def test_nothing_is_read_that_someone_else_may_have_written(cache: Path, shared: str) -> None:
    user_cache.write("thing", b"tables")
    os.chmod(cache / "thing" if shared == "file" else cache, 0o777 if shared == "folder"
             else 0o666)
    assert user_cache.read("thing") is None
    if shared == "folder":  # and nothing is written there either
        user_cache.write("other", b"tables")
        assert not (cache / "other").exists()


def test_a_file_of_another_user_is_not_read(cache: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    user_cache.write("thing", b"tables")
    monkeypatch.setattr(os, "getuid", lambda: os.stat(cache).st_uid + 1)
    assert user_cache.read("thing") is None


def test_a_relative_cache_home_is_ignored_as_the_xdg_rules_say(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_cache.folder() == tmp_path / ".cache" / "nurture"


def test_no_place_to_keep_anything_is_no_error(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cache").write_text("a file where the folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    user_cache.write("thing", b"tables")
    assert user_cache.read("thing") is None


def _results(paths: list[str]) -> list[object]:
    result = load_paths(paths)
    return [str(d) for d in result.diagnostics] + [result.catalog]


def test_the_parser_read_back_parses_as_the_one_built(cache: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken.flow"
    broken.write_text('workflow w {\n  stage a { on enter: sned push m }\n}\n'
                      'message m push { title "Hi" }\n', encoding="utf-8")
    paths = [str(ROOT / "workflows"), str(broken)]
    built = parser._lark.__wrapped__()  # no file kept yet: built, and kept
    assert len(list(cache.glob("grammar-*.lark"))) == 1

    class NotBuilt(Lark):
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("the parser was built again, not read back")

    monkeypatch.setattr(parser, "Lark", NotBuilt)
    read_back = parser._lark.__wrapped__()
    assert isinstance(read_back, NotBuilt)
    cached = parser._lark
    try:
        parser._lark = lambda: built  # type: ignore[assignment]
        expected = _results(paths)
        parser._lark = lambda: read_back  # type: ignore[assignment]
        assert _results(paths) == expected
    finally:
        parser._lark = cached  # type: ignore[assignment]
    assert "did you mean 'send'" in str(expected)


def test_a_kept_parser_cut_short_is_built_again(cache: Path) -> None:
    parser._lark.__wrapped__()
    (kept,) = cache.glob("grammar-*.lark")
    whole = kept.read_bytes()
    kept.write_bytes(whole[:len(whole) // 2])
    rebuilt = parser._lark.__wrapped__()
    assert rebuilt.parse("workflow w { stage a { } }\n") is not None
    assert kept.read_bytes() != whole[:len(whole) // 2]  # and kept whole again
