"""Does `nurture serve` hold its memory over a long run? Steady traffic, the RSS sampled.

An operator runs the service for weeks: what it keeps in memory (the kept subscriber states,
compiled statements, SQLite's page cache, the metrics) must stop growing once warm, whatever
the number of subscribers. The server is the real command in its own process on SQLite, with
its scheduler and dispatcher running; the client sends the jewelry shop's traffic (visits of
10 events) at a steady rate, new subscribers every round (each round is `journeys` of 5,000
subscribers under new names), and the server's resident memory and the database's size are
read every few seconds. Below the service's capacity on purpose: a saturated server measures
its queues, not what it keeps. The server keeps the states of the 20,000 subscribers it saw
last (`Engine(cache_size=...)`): at 1,000 events/s, 5,000 new subscribers a minute, its memory
grows for the first four minutes, and should not after.

    .venv/bin/python -m bench.soak [--minutes 10] [--rate 1000] [--batch 100]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.http_ingest import serving
from bench.journeys import journeys

ROOT = Path(__file__).resolve().parent.parent
ROUND_SUBSCRIBERS = 5_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--sample-seconds", type=float, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "soak.db"
        with serving(database) as (server, url, key):
            samples = run(url, key, server.pid, database, args)
    report(samples)


Sample = tuple[float, int, int, float, float]
"""(seconds since the start, events accepted, errors, RSS MiB, database + WAL MiB)."""


def run(url: str, key: str, pid: int, database: Path, args: argparse.Namespace) -> list[Sample]:
    accepted = errors = 0
    stop = time.perf_counter() + args.minutes * 60
    began = time.perf_counter()
    samples: list[Sample] = []

    def sample() -> None:
        print("  minute  events accepted  errors  server RSS  database + WAL", flush=True)
        shown = -1
        while True:
            size = sum(p.stat().st_size for p in database.parent.glob(database.name + "*"))
            at = time.perf_counter() - began
            samples.append((at, accepted, errors, rss_mib(pid), size / 2**20))
            last = time.perf_counter() >= stop
            if int(at // 60) > shown or last:  # a line a minute, as the run goes
                shown = int(at // 60)
                print(f"  {at / 60:6.1f}  {accepted:>15,}  {errors:>6}  {samples[-1][3]:7.1f} "
                      f"MiB  {samples[-1][4]:9.1f} MiB", flush=True)
            if last:
                return
            time.sleep(min(args.sample_seconds, max(0.0, stop - time.perf_counter())))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    interval = args.batch / args.rate
    with httpx.Client(base_url=url, timeout=60) as client:
        next_at = time.perf_counter()
        for body in bodies(args.batch):
            if time.perf_counter() >= stop:
                break
            answer = client.post("/v1/events", content=body, headers=headers)
            if answer.status_code == 200:
                accepted += answer.json()["accepted"]
            else:
                errors += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
    sampler.join()
    return samples


def bodies(batch: int) -> Iterator[bytes]:
    """Request bodies, round after round of new subscribers, for as long as asked."""
    for number in range(10_000):
        now = datetime.now(UTC)
        events = journeys(ROUND_SUBSCRIBERS, 12, now - timedelta(hours=2), timedelta(hours=2),
                          per_visit=10, seed=number)
        for start in range(0, len(events), batch):
            yield json.dumps({"events": [
                {"subscriber": f"r{number}-{e.subscriber}", "type": e.type,
                 "id": f"r{number}-{e.key}", "at": e.at.isoformat(),
                 "properties": dict(e.properties)}
                for e in events[start:start + batch]]}).encode()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(samples: list[Sample]) -> None:
    """The second half of the run against its peak: warm by then, a server that keeps
    something per event or per subscriber beyond its bounds still grows there."""
    half = samples[-1][0] / 2
    first = next(s for s in samples if s[0] >= half)
    last = samples[-1]
    events = last[1] - first[1]
    growth = last[3] - first[3]
    print(f"  second half of the run: RSS {first[3]:.1f} -> {last[3]:.1f} MiB ({growth:+.1f} MiB "
          f"over {events:,} events); peak {max(s[3] for s in samples):.1f} MiB; "
          f"{last[2]} errors")


if __name__ == "__main__":
    main()
