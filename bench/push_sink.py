"""A push service that only counts: the receiving end of the push benchmark.

Keep-alive HTTP/1.1 over TLS on asyncio, answering `201 Created` to every POST after reading
its body. It does no verification (the tests' push service does: VAPID, decryption); it exists
to be faster than the sender being measured. Run in its own process:

    python -m bench.push_sink PORT CERT KEY
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys

RESPONSE = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"


class Sink(asyncio.Protocol):
    received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            start = head.find(b"content-length:")
            length = int(head[start + 15:head.find(b"\r\n", start) if head.find(
                b"\r\n", start) > 0 else None]) if start >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            Sink.received += 1
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]


async def serve(port: int, cert: str, key: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Sink, "127.0.0.1", port, ssl=context, backlog=1024)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    print(Sink.received, flush=True)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
