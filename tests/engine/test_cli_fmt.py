"""`nurture fmt` as users run it: in place, `--check` in CI, `--diff`, and an editor's `-`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
MESSY = "workflow w { entry on subscribed\nstage s { go to s on x } }\n"
LAID_OUT = "workflow w {\n  entry on subscribed\n  stage s {\n    go to s on x\n  }\n}\n"
BROKEN = "workflow b {\n  stage s { go to }\n}\n"


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_the_repositorys_workflows_are_laid_out() -> None:
    code, out, err = run("fmt", "--check", str(ROOT / "workflows"))
    assert (code, out) == (0, "")
    assert err == "0 file(s) would be reformatted, 3 already laid out\n"


def test_fmt_rewrites_files_in_place_and_leaves_the_others_alone(
        write_flow: Callable[..., str]) -> None:
    write_flow("flows/a.flow", MESSY)
    write_flow("flows/deeper/b.flow", LAID_OUT)
    os.chmod("flows/a.flow", 0o640)
    untouched = os.stat("flows/deeper/b.flow").st_mtime_ns
    code, out, err = run("fmt", "flows")
    assert (code, out) == (0, "")
    assert err == "reformatted flows/a.flow\n1 file(s) reformatted, 1 already laid out\n"
    assert Path("flows/a.flow").read_text(encoding="utf-8") == LAID_OUT
    assert os.stat("flows/a.flow").st_mode & 0o777 == 0o640
    assert os.stat("flows/deeper/b.flow").st_mtime_ns == untouched
    assert sorted(os.listdir("flows")) == ["a.flow", "deeper"]  # no temporary file left
    assert run("fmt", "flows")[2] == "0 file(s) reformatted, 2 already laid out\n"


def test_check_changes_nothing_and_fails_on_a_file_not_laid_out(
        write_flow: Callable[..., str]) -> None:
    write_flow("a.flow", MESSY)
    write_flow("b.flow", LAID_OUT)
    code, out, err = run("fmt", "--check", "a.flow", "b.flow")
    assert (code, out) == (1, "")
    assert err == "would reformat a.flow\n1 file(s) would be reformatted, 1 already laid out\n"
    assert Path("a.flow").read_text(encoding="utf-8") == MESSY
    assert run("fmt", "--check", "b.flow")[0] == 0


def test_diff_prints_what_would_change(write_flow: Callable[..., str]) -> None:
    write_flow("a.flow", MESSY)
    code, out, _ = run("fmt", "--diff", "a.flow")
    assert code == 0
    assert out == (
        "--- a.flow\n+++ a.flow\n@@ -1,2 +1,6 @@\n"
        "-workflow w { entry on subscribed\n-stage s { go to s on x } }\n"
        "+workflow w {\n+  entry on subscribed\n+  stage s {\n+    go to s on x\n+  }\n+}\n")
    assert Path("a.flow").read_text(encoding="utf-8") == MESSY
    assert run("fmt", "--diff", "--check", "a.flow")[0] == 1


def test_a_file_with_errors_is_reported_and_left_as_it_is(
        write_flow: Callable[..., str]) -> None:
    write_flow("flows/a.flow", MESSY)
    write_flow("flows/b.flow", BROKEN)
    code, out, err = run("fmt", "flows", "missing.flow")
    assert code == 1
    assert out == ("missing.flow:1:1: error: no such file or folder\n"
                   "flows/b.flow:2:19: error: unexpected '}'; expected a name\n")
    assert err == ("reformatted flows/a.flow\n"
                   "1 file(s) reformatted, 0 already laid out, 2 with errors (left as they are)\n")
    assert Path("flows/b.flow").read_text(encoding="utf-8") == BROKEN
    assert Path("flows/a.flow").read_text(encoding="utf-8") == LAID_OUT


def test_standard_input_is_laid_out_to_standard_output() -> None:
    """As an editor formats a buffer on saving: the text in, the text laid out."""
    assert run("fmt", "-", stdin=MESSY.encode()) == (0, LAID_OUT, "")
    code, out, err = run("fmt", "-", stdin=BROKEN.encode())
    assert (code, out) == (1, "")  # nothing that an editor would put in place of the buffer
    assert err == "<stdin>:2:19: error: unexpected '}'; expected a name\n"
    assert run("fmt", "--check", "-", stdin=MESSY.encode())[0] == 1
    assert run("fmt", "--check", "-", stdin=LAID_OUT.encode()) == (0, "", "")
    code, _, err = run("fmt", "-", "a.flow")
    assert code == 2
    assert "- (the standard input) is formatted alone" in err


def test_fmt_runs_as_a_command(tmp_path: Path) -> None:
    """The installed entry point, as a pre-commit hook runs it."""
    path = tmp_path / "w.flow"
    path.write_text(MESSY, encoding="utf-8")
    nurture = Path(sys.executable).parent / "nurture"
    done = subprocess.run([str(nurture), "fmt", str(path)], capture_output=True, text=True,
                          check=False, timeout=60)
    assert (done.returncode, done.stdout) == (0, "")
    assert path.read_text(encoding="utf-8") == LAID_OUT


def test_a_file_that_cannot_be_written_is_an_error_not_a_crash(
        write_flow: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    """(Root, who runs these tests, may write any file, so the refusal is made here.)"""
    write_flow("a.flow", MESSY)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, out, err = run("fmt", "a.flow")
    assert code == 1
    assert out == ("a.flow:1:1: error: cannot write: Permission denied (the file is left as it "
                   "was)\n")
    assert err == "0 file(s) reformatted, 0 already laid out, 1 with errors (left as they are)\n"
    assert Path("a.flow").read_text(encoding="utf-8") == MESSY
