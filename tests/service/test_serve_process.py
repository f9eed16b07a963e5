"""`nurture serve` as an operator runs it: SIGHUP reloads, a broken edit is refused and the
last good workflows keep running, SIGTERM stops it after the batch in hand."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.service.conftest import FLOW, wait_for

NURTURE = Path(sys.executable).with_name("nurture")
BANNER = re.compile(r"demo page http://localhost:(\d+)/")
SECOND = """\
workflow later { stage only { } }
"""


def test_sighup_reloads_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "shop.flow").write_text(FLOW, encoding="utf-8")
    log_file = tmp_path / "serve.log"
    log = log_file.open("ab")  # the child's own end, appending: reading never moves it
    environment = {**os.environ, "NURTURE_TICK_SECONDS": "0.5"}
    process = subprocess.Popen(  # port 0: the system picks a free one, the banner names it
        [str(NURTURE), "serve", "--db", f"sqlite:///{tmp_path / 'n.db'}", "--workflows",
         str(workflows), "--port", "0"],
        cwd=tmp_path, env=environment, stderr=log, stdout=subprocess.DEVNULL)
    banner = wait_for(lambda: BANNER.search(log_file.read_text()), 30, "the banner")
    port = int(banner.group(1))
    assert port != 0
    api_key = (tmp_path / ".nurture" / "api-key").read_text().strip()
    assert len(api_key) >= 32
    assert f"API key {api_key[:8]}… (in " in log_file.read_text()
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
        wait_for(lambda: "reload refused" in log_file.read_text(), 10, "the refusal")
        assert health() == {"status": "ok", "workflows": 2, "database": "ok",
                            "scheduler": "running"}
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: "stopped by SIGTERM"
        assert process.wait(30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    log.close()
    text = log_file.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines]
    assert "workflows reloaded" in messages
    assert any(line.get("diagnostic", "").endswith("expected '{'") or
               "reload refused" in line["message"] for line in lines)
    assert messages.index("scheduler stopped") > messages.index("workflows reloaded")
    assert messages.index("Application shutdown complete.") > messages.index("scheduler stopped")
    assert all(line["level"] in ("info", "warning", "error") for line in lines)
    assert api_key not in text  # a secret: not in what the service manager logs


def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    """The port is bound before anything else starts: no traceback, no database claimed."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(NURTURE), "serve", "--db", f"sqlite:///{tmp_path / 'n.db'}", "--workflows",
             str(tmp_path), "--port", str(port)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"nurture: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert not (tmp_path / "n.db").exists()
