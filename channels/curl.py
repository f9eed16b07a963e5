"""HTTP POSTs from asyncio through libcurl's multi interface (pycurl): the push sender's wire.

Why not aiohttp here: a push is one small POST and a `201`, and the push benchmark measured
aiohttp's request cycle at 110-150 µs of CPU each over TLS against 15 µs for libcurl, where
TLS, HTTP parsing and connection reuse happen in C. Everything else keeps aiohttp.

One `CurlClient` drives one `CurlMulti` from the running event loop: libcurl tells us which
sockets to watch (`M_SOCKETFUNCTION`, loop readers/writers) and when to call back
(`M_TIMERFUNCTION`, `call_at`); finished transfers resolve their futures. A one-second
sweep asks libcurl to look at everything again, as a guard against a missed socket event.
Connections are kept alive per host and reused (HTTP/2 multiplexing where the server speaks
it); at most `concurrency` transfers run at once.

Where a transfer connects is checked at connection time (`OPENSOCKETFUNCTION`): the guard sees
the address libcurl is about to connect to, after any name resolution, so a name that resolves
to a private address is refused however it was resolved. Proxies from the environment are
ignored, redirects are not followed, only http and https are spoken.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import certifi
import pycurl

BODY_KEPT = 2048
"""Bytes of a response body kept (push services answer with short explanations)."""

AddressCheck = Callable[[str, int, str], str | None]
"""(host of the URL, port, address about to be connected) -> why it is refused, or None."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    retry_after: int
    """Seconds from `Retry-After` (libcurl reads both forms), 0 when absent."""


class TransferError(Exception):
    """No HTTP answer: timeout, connection or TLS failure, or an address the guard refused."""

    def __init__(self, code: int, message: str, refused: str | None = None) -> None:
        super().__init__(refused or message)
        self.code = code
        self.refused = refused
        """Set when every address was refused by the guard: a permanent failure."""

    @property
    def permanent(self) -> bool:
        """Trying again cannot help: a refused address or a URL libcurl cannot take."""
        return self.refused is not None or self.code == pycurl.E_URL_MALFORMAT

    @property
    def timed_out(self) -> bool:
        return bool(self.code == pycurl.E_OPERATION_TIMEDOUT)


def default_ca_file() -> str:
    """The CA bundle to verify servers with: `SSL_CERT_FILE`, the system's, else certifi's."""
    configured = os.environ.get("SSL_CERT_FILE")
    if configured:
        return configured
    system = ssl.get_default_verify_paths().cafile
    if system and Path(system).is_file():
        return system
    for candidate in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
        if Path(candidate).is_file():
            return candidate
    return certifi.where()


@dataclass(slots=True)
class _Transfer:
    """What one easy handle is doing now."""

    url: str = ""
    future: asyncio.Future[Response] | None = None
    body: bytearray = field(default_factory=bytearray)
    refused: list[str] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        room = BODY_KEPT - len(self.body)
        if room > 0:
            self.body += data[:room]


class CurlClient:
    """POSTs with bounded concurrency on kept-alive connections; made for one event loop at a
    time (it binds to the loop of its first request and can be closed and used again)."""

    def __init__(self, *, concurrency: int = 64, timeout: float = 10.0,
                 ca_file: str | None = None, address_check: AddressCheck | None = None,
                 user_agent: str = "nurture") -> None:
        self.concurrency = max(1, concurrency)
        self.timeout_ms = max(1, int(timeout * 1000))
        self.ca_file = ca_file or default_ca_file()
        self.address_check = address_check
        self.user_agent = user_agent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._multi: Any = None
        self._free: list[Any] = []
        self._handles: list[Any] = []
        self._slots: asyncio.Semaphore | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._watched: set[int] = set()
        self._opened: list[socket.socket] = []
        """Sockets made for libcurl: it uses its own duplicates, these are closed after."""
        self._running = 0

    # ------------------------------------------------------------ public

    async def post(self, url: str, body: bytes, headers: list[str]) -> Response:
        """POST `body`; the answer's status, first bytes and Retry-After, or TransferError."""
        self._bind()
        assert self._slots is not None
        async with self._slots:
            handle = self._free.pop()
            transfer: _Transfer = handle.transfer
            transfer.url = url
            transfer.body = bytearray()
            transfer.refused = []
            try:
                handle.setopt(pycurl.URL, url)
                handle.setopt(pycurl.POSTFIELDS, body)
                handle.setopt(pycurl.HTTPHEADER, headers)
            except (ValueError, pycurl.error) as problem:  # UnicodeEncodeError is a ValueError
                self._free.append(handle)
                raise TransferError(pycurl.E_URL_MALFORMAT,
                                    f"cannot send this request: {problem}") from None
            future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
            transfer.future = future
            self._multi.add_handle(handle)
            self._running += 1
            self._arm_sweep()
            try:
                return await future
            finally:
                if not future.done() or future.cancelled():  # given up on: take it back
                    self._finish(handle)

    async def close(self) -> None:
        """Drop connections and handles; a later request starts afresh."""
        if self._multi is None:
            return
        for timer in (self._timer, self._sweep):
            if timer is not None:
                timer.cancel()
        self._timer = self._sweep = None
        for handle in self._handles:
            future = handle.transfer.future
            if future is not None:
                self._finish(handle)
                if not future.done():
                    future.set_exception(TransferError(pycurl.E_ABORTED_BY_CALLBACK,
                                                       "the HTTP client was closed"))
        for fd in list(self._watched):
            self._unwatch(fd)
        for handle in self._handles:
            handle.close()
        self._multi.close()
        self._multi, self._loop, self._slots = None, None, None
        self._handles, self._free = [], []
        self._running = 0

    # ------------------------------------------------------------ setup

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None:  # a new event loop (tests run several): start afresh
            self._forget()
        self._loop = loop
        self._slots = asyncio.Semaphore(self.concurrency)
        multi = self._multi = pycurl.CurlMulti()
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, self.concurrency)
        multi.setopt(pycurl.M_MAXCONNECTS, self.concurrency)
        self._handles = [self._new_handle() for _ in range(self.concurrency)]
        self._free = list(self._handles)

    def _forget(self) -> None:
        """The previous loop is gone: its sockets and timers went with it."""
        for handle in self._handles:
            handle.close()
        if self._multi is not None:
            self._multi.close()
        self._watched.clear()
        self._timer = self._sweep = None
        self._running = 0

    def _new_handle(self) -> Any:
        handle = pycurl.Curl()
        transfer = _Transfer()
        handle.transfer = transfer
        handle.setopt(pycurl.NOSIGNAL, 1)
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        handle.setopt(pycurl.FOLLOWLOCATION, 0)
        handle.setopt(pycurl.PROXY, "")  # never a proxy from the environment
        handle.setopt(pycurl.POST, 1)
        handle.setopt(pycurl.TIMEOUT_MS, self.timeout_ms)
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, self.timeout_ms)
        handle.setopt(pycurl.CAINFO, self.ca_file)
        handle.setopt(pycurl.SSL_VERIFYPEER, 1)
        handle.setopt(pycurl.SSL_VERIFYHOST, 2)
        handle.setopt(pycurl.USERAGENT, self.user_agent)
        handle.setopt(pycurl.WRITEFUNCTION, transfer.write)
        if self.address_check is not None:
            handle.setopt(pycurl.OPENSOCKETFUNCTION, self._guard(transfer))
        return handle

    def _guard(self, transfer: _Transfer) -> Callable[[int, Any], Any]:
        check = self.address_check
        assert check is not None

        def open_socket(purpose: int, address: Any) -> Any:
            # Only when a connection opens (they are reused), so the URL is parsed here.
            parts = urlsplit(transfer.url)
            host = str(address.addr[0])
            refused = check(parts.hostname or "", parts.port or (
                443 if parts.scheme == "https" else 80), host)
            if refused is not None:
                transfer.refused.append(host)
                return pycurl.SOCKET_BAD
            opened = socket.socket(address.family, address.socktype, address.protocol)
            self._opened.append(opened)  # pycurl hands libcurl a duplicate of it
            return opened

        return open_socket

    # ------------------------------------------------------------ libcurl's callbacks

    def _on_socket(self, event: int, fd: int, multi: Any, data: Any) -> None:
        # A closed descriptor can come back under the same number: always start afresh.
        self._unwatch(fd)
        if event == pycurl.POLL_REMOVE:
            return
        assert self._loop is not None
        if event in (pycurl.POLL_IN, pycurl.POLL_INOUT):
            self._loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        if event in (pycurl.POLL_OUT, pycurl.POLL_INOUT):
            self._loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        self._watched.add(fd)

    def _unwatch(self, fd: int) -> None:
        if fd in self._watched and self._loop is not None:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
            self._watched.discard(fd)

    def _on_timer(self, milliseconds: int) -> None:
        # libcurl asks for a call in `milliseconds` (-1: none). A call already planned for no
        # later is kept (waking early is harmless: `_timed_out` asks libcurl again), so a
        # burst of new transfers does not cancel and re-plan a timer each.
        loop = self._loop
        if milliseconds < 0 or loop is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        due = loop.time() + milliseconds / 1000
        if self._timer is not None:
            if self._timer.when() <= due:
                return
            self._timer.cancel()
        self._timer = loop.call_at(due, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        self._act(pycurl.SOCKET_TIMEOUT, 0)
        if self._multi is not None and self._timer is None:
            wait = self._multi.timeout()  # what libcurl still waits for, if it did not say
            if wait >= 0:
                self._on_timer(wait)

    def _arm_sweep(self) -> None:
        if self._sweep is None and self._loop is not None:
            self._sweep = self._loop.call_later(1.0, self._swept)

    def _swept(self) -> None:
        self._sweep = None
        if self._running:
            self._act(pycurl.SOCKET_TIMEOUT, 0)
            self._arm_sweep()

    def _act(self, fd: int, events: int) -> None:
        multi = self._multi
        if multi is None:
            return
        while True:
            try:
                result, _ = multi.socket_action(fd, events)
            except pycurl.error as problem:
                result = problem.args[0]
            if result != pycurl.E_CALL_MULTI_PERFORM:
                break
        while self._opened:
            self._opened.pop().close()
        while True:
            queued, succeeded, failed = multi.info_read()
            for handle in succeeded:
                self._settle(handle, None, "")
            for handle, code, message in failed:
                self._settle(handle, code, message)
            if not queued:
                break

    # ------------------------------------------------------------ outcomes

    def _settle(self, handle: Any, code: int | None, message: str) -> None:
        transfer: _Transfer = handle.transfer
        future = transfer.future
        if future is None or future.done():
            self._finish(handle)
            return
        if code is None:
            response = Response(int(handle.getinfo(pycurl.RESPONSE_CODE)), bytes(transfer.body),
                                int(handle.getinfo(pycurl.RETRY_AFTER) or 0))
            self._finish(handle)
            future.set_result(response)
            return
        refused = None
        if transfer.refused and code == pycurl.E_COULDNT_CONNECT:
            refused = (f"{urlsplit(transfer.url).hostname} resolves only to addresses that "
                       f"are not allowed ({', '.join(transfer.refused)})")
        self._finish(handle)
        future.set_exception(TransferError(code, message, refused))

    def _finish(self, handle: Any) -> None:
        transfer: _Transfer = handle.transfer
        if transfer.future is None:
            return
        transfer.future = None
        if self._multi is not None:
            self._multi.remove_handle(handle)
        self._running -= 1
        self._free.append(handle)

