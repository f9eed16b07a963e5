"""`nurture serve` killed with SIGKILL while clients are sending events keeps every event it
acknowledged; the clients send again what was not acknowledged (and, not knowing, some that
were), and after a restart every event is stored exactly once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.service.conftest import FLOW, wait_for
from tests.service.test_serve_process import BANNER, NURTURE

CLIENTS = 4
PER_REQUEST = 40
REQUESTS_EACH = 60


def _requests() -> list[list[list[dict[str, Any]]]]:
    """Each client's requests: batches of events with ids, a few events per visitor."""
    out: list[list[list[dict[str, Any]]]] = []
    for client in range(CLIENTS):
        batches = []
        for number in range(REQUESTS_EACH):
            events = []
            for index in range(PER_REQUEST):
                who = f"c{client}-v{(number * PER_REQUEST + index) // 4}"
                kind, properties = (("subscribed", {"channels": ["email"],
                                                    "email": f"{who}@shop.example"})
                                    if index % 4 == 0 else
                                    ("page_view", {"url": f"https://shop.example/p{index}"}))
                events.append({"id": f"{client}-{number}-{index}", "subscriber": who,
                               "type": kind, "at": "2026-03-02T09:00:00Z",
                               "properties": properties})
            batches.append(events)
        out.append(batches)
    return out


class Server:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log_file = folder / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        before = self.log_file.read_text() if self.log_file.exists() else ""
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [str(NURTURE), "serve", "--db", f"sqlite:///{self.folder / 'n.db'}",
                 "--workflows", str(self.folder / "workflows"), "--port", "0"],
                cwd=self.folder, env={**os.environ, "NURTURE_TICK_SECONDS": "0.2"},
                stderr=log, stdout=subprocess.DEVNULL)
        banner = wait_for(lambda: BANNER.search(self.log_file.read_text()[len(before):]), 30,
                          "the banner")
        self.url = f"http://127.0.0.1:{banner.group(1)}"

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def test_a_killed_service_keeps_every_event_it_acknowledged(tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "shop.flow").write_text(FLOW, encoding="utf-8")
    server = Server(tmp_path)
    server.start()
    auth = {"Authorization": "Bearer " + (tmp_path / ".nurture" / "api-key").read_text().strip()}
    requests = _requests()
    acknowledged: set[str] = set()
    unanswered: list[list[dict[str, Any]]] = []
    lock = threading.Lock()
    started = threading.Barrier(CLIENTS + 1)

    def client(batches: list[list[dict[str, Any]]]) -> None:
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as http:
            started.wait()
            for number, events in enumerate(batches):
                try:
                    answer = http.post("/v1/events", json={"events": events})
                except httpx.TransportError:  # killed: this one and the rest are not answered
                    with lock:
                        unanswered.extend(batches[number:])
                    return
                assert answer.status_code == 200, answer.text
                body = answer.json()
                assert body["accepted"] + len(body["duplicates"]) == len(events)
                with lock:
                    acknowledged.update(e["id"] for e in events)

    threads = [threading.Thread(target=client, args=(batches,)) for batches in requests]
    try:
        for thread in threads:
            thread.start()
        started.wait()
        wait_for(lambda: len(acknowledged) >= CLIENTS * PER_REQUEST * 5 or None, 60,
                 "the first answers")
        server.kill()  # in the middle of the clients' requests
        for thread in threads:
            thread.join(60)
        assert unanswered, "the clients were done before the kill: nothing was tested"
        assert acknowledged

        with sqlite3.connect(tmp_path / "n.db") as database:  # what the crash left
            stored = {key for (key,) in database.execute("SELECT key FROM events")}
        assert acknowledged <= stored  # every acknowledged event survived
        all_ids = {e["id"] for batches in requests for events in batches for e in events}

        server.start()  # the operator restarts it; the clients send what was not answered
        sent_again: dict[str, int] = {"accepted": 0, "duplicates": 0}
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as http:
            for events in unanswered:
                body = http.post("/v1/events", json={"events": events}).json()
                sent_again["accepted"] += body["accepted"]
                sent_again["duplicates"] += len(body["duplicates"])
            time.sleep(0.5)  # a tick or two over what came in
        server.stop()
    finally:
        for thread in threads:
            thread.join(1)
        if server.process is not None and server.process.poll() is None:
            server.kill()

    unanswered_ids = {e["id"] for events in unanswered for e in events}
    assert acknowledged | unanswered_ids == all_ids
    # stored before the crash though not answered: found again as duplicates, not twice
    assert sent_again["duplicates"] == len(stored & unanswered_ids)
    assert sent_again["accepted"] == len(unanswered_ids - stored)
    with sqlite3.connect(tmp_path / "n.db") as database:
        keys = [key for (key,) in database.execute("SELECT key FROM events")]
        enrolled = database.execute("SELECT count(*) FROM enrolments").fetchone()[0]
        subscribers = database.execute("SELECT count(*) FROM subscribers").fetchone()[0]
    assert sorted(keys) == sorted(all_ids)
    assert enrolled == subscribers == CLIENTS * REQUESTS_EACH * PER_REQUEST // 4
