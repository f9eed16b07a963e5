"""The push sender's wire alone: aiohttp versus `channels.curl` (libcurl), side by side.

The same 20,000 POSTs (a 300-byte body and push headers, as a push carries) over TLS on
loopback to `bench.push_sink` in its own process, 64 in flight, keep-alive; no encryption, no
database. Prints the rate and the CPU of this process per request: what choosing the HTTP
client costs each push.

    .venv/bin/python -m bench.http_clients [--requests N]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import trustme

from bench.push_speed import free_port
from channels.curl import CurlClient

BODY = b"x" * 300
HEADERS = {"TTL": "86400", "Urgency": "normal", "Topic": "abcdefghijklmnopqrstuvwx",
           "Content-Encoding": "aes128gcm", "Content-Type": "application/octet-stream",
           "Authorization": "vapid t=" + "a" * 300 + ", k=" + "b" * 87}
CONCURRENCY = 64


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert_file, key_file, ca_file = (Path(folder) / n for n in ("c.pem", "k.pem", "ca.pem"))
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        ca.cert_pem.write_to_path(str(ca_file))
        port = free_port()
        sink = subprocess.Popen([sys.executable, "-m", "bench.push_sink", str(port),
                                 str(cert_file), str(key_file)], stdout=subprocess.PIPE,
                                text=True)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        try:
            origin = f"https://127.0.0.1:{port}"
            for name, client in (("aiohttp", with_aiohttp), ("libcurl (channels.curl)",
                                                             with_curl)):
                rate, cpu = asyncio.run(client(origin, str(ca_file), args.requests))
                print(f"  {name:<24} {rate:>8,.0f} requests/s  {cpu:5.0f} µs of CPU each")
        finally:
            sink.terminate()
            sink.communicate(timeout=10)


async def measure(post: Callable[[int], Awaitable[int]], count: int) -> tuple[float, float]:
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(number: int) -> int:
        async with slots:
            return await post(number)

    await asyncio.gather(*(one(n) for n in range(500)))  # connections made, caches warm
    began, cpu = time.perf_counter(), time.process_time()
    statuses = await asyncio.gather(*(one(n) for n in range(count)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    assert set(statuses) == {201}, set(statuses)
    return count / elapsed, cpu / count * 1e6


async def with_aiohttp(origin: str, ca_file: str, count: int) -> tuple[float, float]:
    context = ssl.create_default_context(cafile=ca_file)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY, ssl=context)
    async with aiohttp.ClientSession(connector=connector, trust_env=False,
                                     auto_decompress=False) as session:
        async def post(number: int) -> int:
            async with session.post(f"{origin}/push/b{number}", data=BODY, headers=HEADERS,
                                    allow_redirects=False) as response:
                await response.content.read(2048)
                return response.status

        return await measure(post, count)


async def with_curl(origin: str, ca_file: str, count: int) -> tuple[float, float]:
    client = CurlClient(concurrency=CONCURRENCY, ca_file=ca_file,
                        address_check=lambda host, port, address: None)
    headers = [f"{name}: {value}" for name, value in HEADERS.items()] + ["Expect:"]

    async def post(number: int) -> int:
        return (await client.post(f"{origin}/push/b{number}", BODY, headers)).status

    try:
        return await measure(post, count)
    finally:
        await client.close()


if __name__ == "__main__":
    main()
