"""The libcurl client under the push sender, against real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from channels.curl import CurlClient, Response, TransferError
from tests.channels.peers import _Server

HEADERS = ["Content-Type: application/octet-stream", "Expect:"]


class Recorder(_Server):
    """Answers what each test asks for and remembers what it saw."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(tls)
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.peers: set[Any] = set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.delay = 0.0
        self.status = 201
        self.extra: dict[str, str] = {}
        self.text = ""
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self.start(app)

    async def _handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self.bodies.append(await request.read())
            self.headers.append(dict(request.headers))
            self.peers.add(request.transport.get_extra_info("peername") if request.transport
                           else None)
            if self.delay:
                await asyncio.sleep(self.delay)
            return web.Response(status=self.status, headers=self.extra, text=self.text)
        finally:
            self.in_flight -= 1


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.stop()


def run(client: CurlClient, *urls_and_bodies: tuple[str, bytes]) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return await asyncio.gather(*(client.post(url, body, HEADERS)
                                          for url, body in urls_and_bodies),
                                        return_exceptions=True)
        finally:
            await client.close()
    return asyncio.run(go())


def test_a_post_carries_its_body_and_headers_and_the_answer_comes_back(
        recorder: Recorder) -> None:
    recorder.status, recorder.extra, recorder.text = 429, {"Retry-After": "7"}, "slow down"
    client = CurlClient(user_agent="nurture-test")
    [answer] = run(client, (f"{recorder.origin}/push/a", b"\x00\x01 sealed"))
    assert answer == Response(429, b"slow down", 7)
    assert recorder.bodies == [b"\x00\x01 sealed"]
    seen = recorder.headers[0]
    assert seen["Content-Type"] == "application/octet-stream"
    assert seen["User-Agent"] == "nurture-test" and "Expect" not in seen


def test_a_long_answer_is_cut_to_its_first_2048_bytes(recorder: Recorder) -> None:
    recorder.text = "x" * 100_000
    [answer] = run(CurlClient(), (f"{recorder.origin}/push/a", b"{}"))
    assert answer.status == 201 and answer.body == b"x" * 2048


def test_requests_in_flight_stay_within_the_bound_and_connections_are_reused(
        recorder: Recorder) -> None:
    recorder.delay = 0.05
    client = CurlClient(concurrency=4)
    answers = run(client, *((f"{recorder.origin}/push/{i}", str(i).encode())
                            for i in range(40)))
    assert [a.status for a in answers] == [201] * 40
    assert sorted(recorder.bodies, key=int) == [str(i).encode() for i in range(40)]
    assert recorder.most_in_flight == 4
    assert len(recorder.peers) == 4  # four kept-alive connections carried all forty


def test_a_server_that_does_not_answer_in_time_is_a_timeout(recorder: Recorder) -> None:
    recorder.delay = 2.0
    began = time.monotonic()
    [problem] = run(CurlClient(timeout=0.3), (f"{recorder.origin}/push/a", b"{}"))
    assert isinstance(problem, TransferError) and problem.timed_out
    assert problem.refused is None
    assert time.monotonic() - began < 1.9


def test_nothing_listening_is_a_transfer_error_that_can_be_retried() -> None:
    with socket.socket() as bound:  # bound, never listening: refused, and no one else's port
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        [problem] = run(CurlClient(), (f"http://127.0.0.1:{port}/push/a", b"{}"))
    assert isinstance(problem, TransferError) and not problem.timed_out
    assert problem.refused is None and not problem.permanent


def test_the_guard_sees_each_address_before_connecting_and_can_refuse_it(
        recorder: Recorder) -> None:
    asked: list[tuple[str, int, str]] = []

    def check(host: str, port: int, address: str) -> str | None:
        asked.append((host, port, address))
        return "private"

    [problem] = run(CurlClient(address_check=check),
                    (f"http://localhost:{recorder.port}/push/a", b"{}"))
    assert isinstance(problem, TransferError)
    assert problem.refused is not None and "127.0.0.1" in problem.refused
    assert ("localhost", recorder.port, "127.0.0.1") in asked
    assert recorder.bodies == []  # never connected


def test_an_address_the_guard_accepts_is_used(recorder: Recorder) -> None:
    asked: list[str] = []

    def check(host: str, port: int, address: str) -> str | None:
        asked.append(address)
        return None

    [answer] = run(CurlClient(address_check=check), (f"{recorder.origin}/push/a", b"{}"))
    assert answer.status == 201 and asked == ["127.0.0.1"]


def test_a_server_certificate_from_an_unknown_authority_is_refused(
        server_tls: ssl.SSLContext, ca_file: str, tmp_path: Path) -> None:
    server = Recorder(server_tls)
    try:
        stranger = str(tmp_path / "stranger.pem")
        trustme.CA().cert_pem.write_to_path(stranger)
        [refused] = run(CurlClient(ca_file=stranger), (f"{server.origin}/push/a", b"{}"))
        [trusted] = run(CurlClient(ca_file=ca_file), (f"{server.origin}/push/a", b"{}"))
    finally:
        server.stop()
    assert isinstance(refused, TransferError) and refused.refused is None
    assert trusted.status == 201 and len(server.bodies) == 1


def test_a_cancelled_post_frees_its_place_for_the_next(recorder: Recorder) -> None:
    recorder.delay = 0.5
    client = CurlClient(concurrency=1)

    async def go() -> Response:
        try:
            slow = asyncio.ensure_future(client.post(f"{recorder.origin}/push/a", b"1",
                                                     HEADERS))
            await asyncio.sleep(0.1)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            recorder.delay = 0
            return await asyncio.wait_for(
                client.post(f"{recorder.origin}/push/b", b"2", HEADERS), 5)
        finally:
            await client.close()

    assert asyncio.run(go()).status == 201


def test_the_client_works_again_in_a_new_event_loop_after_closing(
        recorder: Recorder) -> None:
    client = CurlClient(concurrency=2)
    first = run(client, (f"{recorder.origin}/push/a", b"1"))
    second = run(client, (f"{recorder.origin}/push/b", b"2"), (f"{recorder.origin}/c", b"3"))
    assert [a.status for a in first + second] == [201, 201, 201]
    assert sorted(recorder.bodies) == [b"1", b"2", b"3"]


def test_retry_after_as_an_http_date_becomes_seconds_from_now(recorder: Recorder) -> None:
    from email.utils import formatdate
    recorder.status, recorder.extra = 503, {"Retry-After": formatdate(time.time() + 90,
                                                                       usegmt=True)}
    [answer] = run(CurlClient(), (f"{recorder.origin}/push/a", b"{}"))
    assert answer.status == 503 and 88 <= answer.retry_after <= 90


def test_a_url_libcurl_cannot_take_is_an_error_and_its_place_is_given_back(
        recorder: Recorder) -> None:
    client = CurlClient(concurrency=1)
    answers = run(client, (f"{recorder.origin}/push/\u0105", b"1"),
                  (f"{recorder.origin}/push/a\x00b", b"2"), (f"{recorder.origin}/push/c", b"3"))
    assert [type(a).__name__ for a in answers[:2]] == ["TransferError", "TransferError"]
    assert "cannot send" in str(answers[0]) and answers[0].permanent
    assert answers[2].status == 201
