"""`docs/nurture.service`, the systemd unit the README offers operators, is one systemd takes:
`systemd-analyze verify` reads it (unknown keys, bad values, a command that is not there) with
its paths moved into a temporary folder, the command being this checkout's `nurture`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    home = tmp_path / "srv"
    (home / ".venv" / "bin").mkdir(parents=True)
    (home / ".venv" / "bin" / "nurture").symlink_to(Path(sys.executable).parent / "nurture")
    (tmp_path / "nurture.env").write_text("NURTURE_DB=sqlite:///nurture.db\n")
    unit = (ROOT / "docs" / "nurture.service").read_text(encoding="utf-8")
    assert "ExecStart=/srv/nurture/.venv/bin/nurture serve " in unit
    unit = unit.replace("/srv/nurture", str(home)).replace("/etc/nurture/nurture.env",
                                                           str(tmp_path / "nurture.env"))
    (tmp_path / "nurture.service").write_text(unit, encoding="utf-8")
    checked = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "nurture.service")],
                             capture_output=True, text=True, check=False)
    assert (checked.returncode, checked.stderr) == (0, "")
