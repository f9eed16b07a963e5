"""Sustained event ingestion over HTTP (issue 5): `nurture serve` on SQLite, a bounded client.

The server is the real command in its own process (uvicorn, one worker, scheduler and
dispatcher running); the client keeps N requests in flight (default 8), each a batch of 100
events of the jewelry shop's traffic (visits: a subscriber's events come close together), for a
fixed time after a warm-up. It reports the events accepted per second and the request latency
percentiles. Both share this 2-core machine.

    .venv/bin/python -m bench.http_ingest [--seconds 30] [--in-flight 8] [--batch 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.journeys import journeys
from bench.push_speed import free_port

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--subscribers", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, serving(Path(folder) / "bench.db") as (
            _, url, key):
        now = datetime.now(UTC)
        events = journeys(args.subscribers, 12, now - timedelta(days=1), timedelta(days=1),
                          per_visit=10)
        bodies = [json.dumps({"events": [
            {"subscriber": e.subscriber, "type": e.type, "id": e.key,
             "at": e.at.isoformat(), "properties": dict(e.properties)}
            for e in events[i:i + args.batch]]}).encode()
            for i in range(0, len(events), args.batch)]
        rate, measured, latencies, errors = asyncio.run(
            _load(url, key, bodies, args.in_flight, args.seconds))
    latencies.sort()
    print(f"  {rate:,.0f} events/s sustained over {measured:.0f} s ({args.batch} events per "
          f"request, {args.in_flight} in flight); {len(latencies):,} requests, {errors} errors")
    print(f"  latency p50 {_pct(latencies, 50):.1f} ms, p90 {_pct(latencies, 90):.1f} ms, "
          f"p99 {_pct(latencies, 99):.1f} ms, max {latencies[-1]:.1f} ms")


API_KEY = "bench-api-key-0123456789abcdef"


@contextlib.contextmanager
def serving(database: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, str]]:
    """`nurture serve` on the jewelry workflow in its own process, on SQLite at `database`
    (the workflows copied beside it): the process, its URL and its API key; stopped after."""
    folder = database.parent
    workflows = folder / "workflows"
    workflows.mkdir()
    shutil.copy(ROOT / "workflows" / "jewelry.flow", workflows)
    shutil.copytree(ROOT / "workflows" / "templates", workflows / "templates")
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("nurture")), "serve", "--port", str(port),
         "--db", f"sqlite:///{database}", "--workflows", str(workflows)],
        cwd=folder, env={**os.environ, "NURTURE_API_KEY": API_KEY},
        stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url)
        yield server, url, API_KEY
    finally:
        server.terminate()
        server.wait(30)


async def _load(url: str, key: str, bodies: list[bytes], in_flight: int,
                seconds: float) -> tuple[float, float, list[float], int]:
    """Events accepted per second, the seconds measured (shorter than asked when the events
    run out), the latencies and the errors."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    accepted = 0
    errors = 0
    cursor = 0
    warm_until = time.perf_counter() + 3
    stop_at = warm_until + seconds
    measured_from = 0.0

    async with httpx.AsyncClient(base_url=url, timeout=60,
                                 limits=httpx.Limits(max_connections=in_flight)) as client:
        async def worker() -> None:
            nonlocal cursor, accepted, errors, measured_from
            while time.perf_counter() < stop_at and cursor < len(bodies):
                body = bodies[cursor]
                cursor += 1
                began = time.perf_counter()
                answer = await client.post("/v1/events", content=body, headers=headers)
                ended = time.perf_counter()
                if answer.status_code != 200:
                    errors += 1
                    continue
                if began >= warm_until:
                    measured_from = measured_from or began
                    latencies.append((ended - began) * 1000)
                    accepted += answer.json()["accepted"]

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = min(time.perf_counter(), stop_at) - (measured_from or warm_until)
    return accepted / elapsed, elapsed, latencies, errors


def _pct(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100)[percent - 1]


def _wait(url: str) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the server did not start")


if __name__ == "__main__":
    main()
