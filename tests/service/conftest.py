"""A runtime and the HTTP API on a temporary database, with a virtual clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dsl.loader import load_paths
from engine.api import create_app
from engine.clock import VirtualClock
from engine.config import Settings
from engine.runtime import Runtime
from engine.store import queries
from engine.store.database import open_database

API_KEY = "test-api-key-0123456789"
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {API_KEY}"}

FLOW = """\
workflow shop {
  exit on unsubscribed
  score engagement {
    on page_view where url contains "/diamonds" +30
    on push_click +5
    on email_open +1
    on email_click +2
  }
  tag "diamonds" on page_view where url contains "/diamonds"
  stage browsing {
    on enter: send email welcome
    go to hot when engagement >= 30
  }
  stage hot { on enter: send push offer }
}
message welcome email {
  subject "Welcome"
  html "<p>See <a href=\\"https://shop.example/new\\">what is new</a></p>"
  text "See https://shop.example/new"
}
message offer push { title "10% off" body "Just for you" url "https://shop.example/offer" }
"""


@dataclass
class Api:
    client: TestClient
    runtime: Runtime
    clock: VirtualClock
    folder: Path

    def post_events(self, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.post("/v1/events", json=body,
                                headers=AUTH if headers is None else headers)

    def count(self, table: str) -> int:
        with self.runtime.database.transaction() as connection:
            return int(connection.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one())

    def key(self, subscriber: str) -> int:
        with self.runtime.database.transaction() as connection:
            found = queries.subscriber_key(connection, subscriber)
        assert found is not None
        return found


def build_runtime(folder: Path, flow: str = FLOW, **settings: Any) -> Runtime:
    workflows = folder / "workflows"
    workflows.mkdir(exist_ok=True)
    (workflows / "shop.flow").write_text(flow, encoding="utf-8")
    options: dict[str, Any] = dict(
        db=f"sqlite:///{folder / 'api.db'}", workflows=str(workflows),
        vapid_key_file=folder / "keys" / "vapid.pem", secret_file=folder / "keys" / "secret",
        api_key=API_KEY, push_allow_hosts=("127.0.0.1",), public_url="http://testserver")
    options.update(settings)
    config = Settings(**options)
    catalog = load_paths([config.workflows]).catalog
    assert catalog is not None
    return Runtime(config, open_database(config.db), catalog, clock=VirtualClock(T0))


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    runtime = build_runtime(tmp_path, db=database_url)
    with TestClient(create_app(runtime)) as client:
        yield Api(client, runtime, runtime.clock, tmp_path)  # type: ignore[arg-type]
    runtime.database.dispose()


class LiveServer:
    """The app on a real uvicorn server in a thread (real HTTP on loopback)."""

    def __init__(self, app: Any) -> None:
        import socket
        import threading

        import uvicorn

        # The socket is bound here and handed over, so that no other test process (the suite
        # runs in several) can take the port between choosing it and listening on it.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.bind(("127.0.0.1", 0))
        self.port = int(listener.getsockname()[1])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_config=None, access_log=False,
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [listener]},
                                       daemon=True)
        self.thread.start()
        import time
        deadline = time.time() + 20
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        assert self.server.started, "uvicorn did not start"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def wait_for(condition: Any, timeout: float = 20.0, what: str = "the condition") -> Any:
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
