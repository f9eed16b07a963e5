"""`docs/nurture.service` and the daily backup's `docs/nurture-backup.{service,timer}`, the
systemd units the README offers operators, are ones systemd takes: `systemd-analyze verify`
reads them (unknown keys, bad values, a command that is not there) with their paths moved into
a temporary folder, the command being this checkout's `nurture`; and the backup's commands,
run as systemd would run them, make today's backup and remove only the old ones."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.store.database import open_database

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    _install(tmp_path)
    unit = _placed(tmp_path, "nurture.service")
    assert f"ExecStart={tmp_path}/srv/.venv/bin/nurture serve " in unit
    checked = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "nurture.service")],
                             capture_output=True, text=True, check=False)
    assert (checked.returncode, checked.stderr) == (0, "")


def _install(tmp_path: Path) -> Path:
    """The units' folders under `tmp_path` (see `_placed`), this checkout's `nurture` as the
    installed one: the service's home."""
    home = tmp_path / "srv"
    (home / ".venv" / "bin").mkdir(parents=True)
    (home / ".venv" / "bin" / "nurture").symlink_to(Path(sys.executable).parent / "nurture")
    (tmp_path / "nurture.env").write_text("NURTURE_DB=sqlite:///nurture.db\n")
    return home


def _placed(tmp_path: Path, name: str) -> str:
    """The unit `docs/NAME` with its paths moved under `tmp_path`, written there."""
    home = tmp_path / "srv"
    unit = (ROOT / "docs" / name).read_text(encoding="utf-8")
    unit = (unit.replace("/srv/nurture-backups", str(tmp_path / "backups"))
            .replace("/srv/nurture", str(home))
            .replace("/etc/nurture/nurture.env", str(tmp_path / "nurture.env")))
    (tmp_path / name).write_text(unit, encoding="utf-8")
    return unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed")
def test_the_backup_units_verify_and_their_commands_back_up(tmp_path: Path) -> None:
    home = _install(tmp_path)
    service = _placed(tmp_path, "nurture-backup.service")
    _placed(tmp_path, "nurture-backup.timer")
    checked = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "nurture-backup.timer"),
                              str(tmp_path / "nurture-backup.service")],
                             capture_output=True, text=True, check=False)
    assert (checked.returncode, checked.stderr) == (0, "")

    # Run its two commands as systemd would (`%%` is a `%`), in its folder, with its settings.
    backups = tmp_path / "backups"
    backups.mkdir()
    old = backups / "2026-01-01"
    old.mkdir()
    recent = backups / "2026-11-30"
    recent.mkdir()
    month_ago = time.time() - 30 * 86400
    os.utime(old, (month_ago, month_ago))
    environment = {**os.environ, "NURTURE_DB": "sqlite:///nurture.db"}
    for variable in ("NURTURE_API_KEY", "NURTURE_SECRET", "NURTURE_VAPID_PRIVATE_KEY"):
        environment.pop(variable, None)
    assert subprocess.run([str(home / ".venv" / "bin" / "nurture"), "keys"], cwd=home,
                          env=environment, capture_output=True, check=False).returncode == 0
    open_database(f"sqlite:///{home / 'nurture.db'}").dispose()
    for key in ("ExecStart=", "ExecStartPost="):
        [line] = [line for line in service.splitlines() if line.startswith(key)]
        command = shlex.split(line[len(key):].replace("%%", "%"))
        ran = subprocess.run(command, cwd=home, env=environment, capture_output=True,
                             text=True, check=False)
        assert ran.returncode == 0, ran.stderr
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert sorted(p.name for p in backups.iterdir()) == sorted({"2026-11-30", today})
    assert sorted(p.name for p in (backups / today / "keys").iterdir()) == [
        "secret", "vapid.pem"]
