"""`nurture serve` as an operator runs it: SIGHUP reloads, a broken edit is refused and the
last good workflows keep running, SIGTERM stops it after the batch in hand."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.channels.peers import free_port
from tests.service.conftest import FLOW, wait_for

SECOND = """\
workflow later { stage only { } }
"""


def test_sighup_reloads_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "shop.flow").write_text(FLOW, encoding="utf-8")
    port = free_port()
    log = (tmp_path / "serve.log").open("w+")
    environment = {**os.environ, "NURTURE_TICK_SECONDS": "0.5"}
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("nurture")), "serve", "--db",
         f"sqlite:///{tmp_path / 'n.db'}", "--workflows", str(workflows), "--port", str(port)],
        cwd=tmp_path, env=environment, stderr=log, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def health() -> dict[str, object] | None:
        try:
            return httpx.get(f"{url}/healthz", timeout=2).json()  # type: ignore[no-any-return]
        except httpx.HTTPError:
            return None

    try:
        assert wait_for(health, 30, "the service")["workflows"] == 1
        (workflows / "later.flow").write_text(SECOND, encoding="utf-8")
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: (health() or {}).get("workflows") == 2, 10, "the reload")
        (workflows / "later.flow").write_text("workflow later { stage }", encoding="utf-8")
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in _read(log), 10, "the refusal")
        assert health() == {"status": "ok", "workflows": 2, "database": "ok",
                            "scheduler": "running"}
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: "stopped by SIGTERM"
        assert process.wait(30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    text = _read(log)
    log.close()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines]
    assert "workflows reloaded" in messages
    assert any(line.get("diagnostic", "").endswith("expected '{'") or
               "reload refused" in line["message"] for line in lines)
    assert messages.index("scheduler stopped") > messages.index("workflows reloaded")
    assert messages.index("Application shutdown complete.") > messages.index("scheduler stopped")
    assert all(line["level"] in ("info", "warning", "error") for line in lines)


def _read(log) -> str:  # type: ignore[no-untyped-def]
    log.flush()
    log.seek(0)
    return str(log.read())
