"""Web push throughput over TLS on loopback, side by side in one run (issue 4).

- nurture's dispatcher: the outbox holds 20,000 decided pushes (20,000 subscribers enrolled
  through the engine, one browser each); `Dispatcher.drain()` claims, encrypts, signs (VAPID
  cached per origin), sends over pooled keep-alive connections with 64 in flight, and records
  every outcome — all in this one process, on one core;
- the naive loop: `pywebpush.webpush()` called once per message, as its README shows;
- the floor: the encryption alone (a fresh P-256 key, ECDH, HKDF, AES-GCM) per message.

The push service is `bench.push_sink` in its own process (the other core), serving TLS with a
certificate from a throw-away CA that the clients are told to trust.
Targets: at least 4,000 messages/s, 20x the naive loop, 25% of the floor's rate.

    .venv/bin/python -m bench.push_speed [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import certifi
import http_ece
import trustme
from cryptography.hazmat.primitives.asymmetric import ec
from pywebpush import webpush

from channels.endpoints import PushEndpointPolicy
from channels.tokens import Signer
from channels.vapid import VapidKey
from channels.webpush import WebPushSender
from dsl.loader import load_text
from engine.clock import SystemClock, VirtualClock
from engine.collector import tune_for_long_runs
from engine.dispatcher import Dispatcher, Links
from engine.events import parse_event
from engine.processor import Engine
from engine.store import push_subscriptions
from engine.store.database import open_database
from tests.channels.peers import Browser

FLOW = """\
workflow news {
  stage subscribed { on enter: send push hello }
}
message hello push {
  title "Hello {{ subscriber.first_name | default('there') }}"
  body "Our spring collection is here: rings, earrings and pendants, handmade in Kraków."
  url "https://shop.example/spring"
}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--naive", type=int, default=200)
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
            floor = encryption_floor()
            naive = naive_loop(port, str(ca_file), args.naive)
            rate, outcomes = dispatcher_rate(Path(folder), port, str(ca_file), args.messages)
        finally:
            sink.terminate()
            received = sink.communicate(timeout=10)[0].strip()
        print(f"  encryption floor: {floor:,.0f} messages/s ({1e6 / floor:.0f} µs each)")
        print(f"  naive pywebpush.webpush() loop: {naive:,.1f} messages/s")
        print(f"  nurture dispatcher: {rate:,.0f} messages/s ({outcomes}); the sink counted "
              f"{received} requests")
        print(f"  dispatcher / naive: {rate / naive:,.0f}x (target >= 20x); dispatcher / floor: "
              f"{rate / floor:.1%} (target >= 25%); target >= 4,000/s")


def encryption_floor(count: int = 3000) -> float:
    browser = Browser.new("floor")
    receiver = browser.private_key.public_key()
    data = b'{"title":"Hello there","body":"' + b"x" * 120 + b'"}'
    began = time.perf_counter()
    for _ in range(count):
        http_ece.encrypt(data, private_key=ec.generate_private_key(ec.SECP256R1()),
                         dh=receiver, auth_secret=browser.auth, version="aes128gcm")
    return count / (time.perf_counter() - began)


def naive_loop(port: int, ca_file: str, count: int) -> float:
    key_file = Path(ca_file).with_name("vapid.pem")
    key_file.write_bytes(VapidKey.generate().pem())
    pem = str(key_file)
    browsers = [Browser.new(f"n{i}") for i in range(count)]
    # trust the test CA as a deployment would: added to the usual bundle
    bundle = Path(ca_file).with_name("bundle.pem")
    bundle.write_text(Path(certifi.where()).read_text() + Path(ca_file).read_text())
    os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)
    data = '{"title":"Hello there","body":"Our spring collection is here."}'
    began = time.perf_counter()
    for browser in browsers:
        webpush({"endpoint": f"https://127.0.0.1:{port}/push/{browser.name}",
                 "keys": {"p256dh": browser.p256dh, "auth": browser.auth_secret}},
                data, vapid_private_key=pem, vapid_claims={"sub": "mailto:ops@shop.example"})
    return count / (time.perf_counter() - began)


def dispatcher_rate(folder: Path, port: int, ca_file: str, count: int) -> tuple[float, str]:
    catalog = load_text(FLOW, "news.flow").catalog
    assert catalog is not None
    database = open_database(f"sqlite:///{folder / 'push.db'}")
    start = datetime.now(UTC) - timedelta(minutes=1)
    clock = VirtualClock(start)
    engine = Engine(catalog, database, clock=clock, batch_size=2000)
    with database.transaction() as connection:
        for index in range(count):
            browser = Browser.new(f"b{index}")
            push_subscriptions.add(connection, f"s{index}",
                                   f"https://127.0.0.1:{port}/push/b{index}", browser.p256dh,
                                   browser.auth_secret, start)
    engine.ingest([parse_event({"subscriber": f"s{i}", "type": "subscribed",
                                "properties": {"channels": ["push"]}}, i, default_at=start)
                   for i in range(count)])
    vapid = VapidKey.generate()
    sender = WebPushSender(vapid, "mailto:ops@shop.example",
                           PushEndpointPolicy.from_hosts([f"127.0.0.1:{port}"]),
                           SystemClock().now, ca_file=ca_file, concurrency=64)
    dispatcher = Dispatcher(database, Links(Signer(b"0" * 32), "https://nurture.example"),
                            clock=SystemClock(), push=sender, batch_size=1000)

    tune_for_long_runs()  # as `nurture dispatch` does

    async def drain() -> tuple[float, str]:
        try:
            began, cpu = time.perf_counter(), time.process_time()
            stats = await dispatcher.drain()
            elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
        finally:
            await dispatcher.close()
        return stats.claimed / elapsed, ", ".join(
            f"{n:,} {s}" for s, n in sorted(stats.outcomes.items())) + (
            f"; {cpu / elapsed:.0%} of one core busy, {cpu / stats.claimed * 1e6:.0f} µs of "
            "CPU each")

    result = asyncio.run(drain())
    database.dispose()
    return result


if __name__ == "__main__":
    main()
