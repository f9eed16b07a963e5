"""Scale-out on PostgreSQL (issue 6), side by side in one run.

1. Event ingest: the same scattered traffic of the jewelry workflow ingested in batches of
   1,000 on PostgreSQL and on SQLite.
2. Due-work throughput with 1, 2 and 4 worker processes: 20,000 subscribers joined at 09:00,
   so at 09:10 each has its welcome step due. Every pass starts from a copy of the same
   database (`CREATE DATABASE … TEMPLATE`); the workers start together and tick until nothing
   is due, sharing the work through `FOR UPDATE SKIP LOCKED`. Reported: due subscribers per
   second of wall time, and the check that every subscriber was processed exactly once.
3. Tick cost with 10,000 versus 1,000,000 enrolled subscribers for the same due work (1,000
   subscribers per tick), as `bench.tick_speed` measures it on SQLite; ratio target < 1.5.

The built databases are kept (`nurture_bench_*` on the server) and reused by later runs:
building 1,000,000 subscribers through the engine takes a while. `--drop` removes them.

    .venv/bin/python -m bench.pg_scale [--pg postgresql+psycopg://postgres@127.0.0.1:5432/test]
        [--large 1000000] [--workers 1,2,4] [--drop]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.journeys import batches, journeys, subscribed
from bench.tick_speed import COHORT, build, ticks
from dsl.loader import load_paths
from engine.clock import VirtualClock
from engine.processor import Engine
from engine.store.database import open_database

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = os.environ.get("NURTURE_TEST_PG",
                            "postgresql+psycopg://postgres@127.0.0.1:5432/test")
JOINED = datetime(2026, 3, 2, 9, tzinfo=UTC)
DUE = JOINED + timedelta(minutes=10)


class Server:
    """Databases on the PostgreSQL server: made, copied from a template, dropped."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT")

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def exists(self, name: str) -> bool:
        with self.admin.connect() as connection:
            return connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                      {"n": name}).first() is not None

    def create(self, name: str, template: str | None = None) -> str:
        self.drop(name)
        with self.admin.connect() as connection:
            connection.exec_driver_sql(
                f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url_of(name)

    def drop(self, name: str) -> None:
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def settle(self, name: str) -> None:
        """VACUUM ANALYZE a freshly built database, as autovacuum soon would: plans and the
        visibility map then reflect the data, whichever copy a pass runs on."""
        engine = create_engine(self.url_of(name), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql("VACUUM (ANALYZE)")
        engine.dispose()

    def size(self, name: str) -> int:
        with self.admin.connect() as connection:
            return int(connection.execute(text("SELECT pg_database_size(:n)"),
                                          {"n": name}).scalar_one())


# ---------------------------------------------------------------- 1. ingest

def ingest_rate(url: str, subscribers: int) -> tuple[float, float]:
    """(subscribe events/s, behaviour events/s) for scattered traffic in batches of 1,000."""
    catalog = load_paths([str(ROOT / "workflows" / "jewelry.flow")]).catalog
    assert catalog is not None
    start = datetime(2026, 3, 2, 7, tzinfo=UTC)
    events = journeys(subscribers, 11, start, timedelta(hours=10))
    database = open_database(url)
    clock = VirtualClock(start)
    engine = Engine(catalog, database, clock=clock, push_needs_subscription=False,
                    batch_size=1000)
    rates = []
    for stream in ([e for e in events if e.type == "subscribed"],
                   [e for e in events if e.type != "subscribed"]):
        began = time.perf_counter()
        for batch in batches(stream, 1000):
            clock.advance_to(max(clock.now(), batch[-1].at))
            engine.ingest(batch)
        rates.append(len(stream) / (time.perf_counter() - began))
    database.dispose()
    return rates[0], rates[1]


# ---------------------------------------------------------------- 2. workers

def build_due(url: str, subscribers: int) -> None:
    """`subscribers` join at 09:00: at 09:10 each has its welcome step due."""
    import random

    catalog = load_paths([str(ROOT / "workflows" / "jewelry.flow")]).catalog
    assert catalog is not None
    database = open_database(url)
    engine = Engine(catalog, database, clock=VirtualClock(JOINED),
                    push_needs_subscription=False, batch_size=2000)
    rng = random.Random(5)
    for first in range(0, subscribers, 2000):
        engine.ingest([subscribed(f"w{n:07d}", JOINED, rng, n + 1)
                       for n in range(first, min(first + 2000, subscribers))])
    database.dispose()


def _worker(url: str, ready: Any, go: Any, results: Any) -> None:
    catalog = load_paths([str(ROOT / "workflows" / "jewelry.flow")]).catalog
    assert catalog is not None
    database = open_database(url, migrate=False)
    engine = Engine(catalog, database, clock=VirtualClock(DUE), push_needs_subscription=False,
                    batch_size=500)
    with database.transaction() as connection:
        connection.exec_driver_sql("SELECT 1")
    ready.release()
    go.wait()
    began = time.perf_counter()
    done = engine.tick().subscribers
    results.put((done, began, time.perf_counter()))
    database.dispose()


def due_throughput(server: Server, template: str, workers: int) -> tuple[float, int, int]:
    """(due subscribers per second, subscribers processed, rows still due) for one pass."""
    url = server.create("nurture_bench_pass", template)
    context = multiprocessing.get_context("spawn")
    ready, go, results = context.Semaphore(0), context.Event(), context.Queue()
    processes = [context.Process(target=_worker, args=(url, ready, go, results))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    for _ in processes:
        ready.acquire()
    go.set()
    outcomes = [results.get() for _ in processes]
    for process in processes:
        process.join()
    processed = sum(done for done, _, _ in outcomes)
    elapsed = max(end for _, _, end in outcomes) - min(began for _, began, _ in outcomes)
    database = open_database(url, migrate=False)
    with database.transaction() as connection:
        left: int = connection.exec_driver_sql(
            "SELECT COUNT(*) FROM schedule WHERE due_at <= %(t)s", {"t": DUE}).scalar_one()
    database.dispose()
    server.drop("nurture_bench_pass")
    return processed / elapsed, processed, int(left)


# ---------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default=DEFAULT_PG, help="a URL of the server (any database)")
    parser.add_argument("--ingest-subscribers", type=int, default=5000)
    parser.add_argument("--due", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--parts", default="1,2,3", help="which of the three to run")
    parser.add_argument("--drop", action="store_true", help="drop the kept databases and stop")
    args = parser.parse_args()
    server = Server(args.pg)
    kept = [f"nurture_bench_due_{args.due}", f"nurture_bench_tick_{args.small}",
            f"nurture_bench_tick_{args.large}"]
    if args.drop:
        for name in kept:
            server.drop(name)
        return

    parts = set(args.parts.split(","))
    if "1" in parts:
        ingest(server, args.ingest_subscribers)
    if "2" in parts:
        workers(server, kept[0], args.due, [int(n) for n in args.workers.split(",")])
    if "3" in parts:
        tick_ratio(server, args.small, args.large, kept[1], kept[2])


def ingest(server: Server, subscribers: int) -> None:
    print(f"1. ingest, {subscribers:,} subscribers x 10 behaviour events, "
          "scattered, batches of 1,000")
    with tempfile.TemporaryDirectory() as folder:
        sqlite = ingest_rate(f"sqlite:///{Path(folder) / 'ingest.db'}", subscribers)
    postgres = ingest_rate(server.create("nurture_bench_ingest"), subscribers)
    server.drop("nurture_bench_ingest")
    for label, (joins, acts) in (("PostgreSQL", postgres), ("SQLite", sqlite)):
        print(f"   {label:<10} subscribe {joins:7,.0f} events/s   behaviour {acts:7,.0f} "
              "events/s")
    print(f"   PostgreSQL / SQLite, behaviour: {postgres[1] / sqlite[1]:.2f}")


def workers(server: Server, due: str, subscribers: int, counts: list[int]) -> None:
    if not server.exists(due):
        print(f"   (building {subscribers:,} subscribers with due work ...)", flush=True)
        build_due(server.create(due), subscribers)
        server.settle(due)
    print(f"2. due work: {subscribers:,} subscribers due, workers ticking together")
    rates: dict[int, float] = {}
    for count in counts:
        rate, processed, left = due_throughput(server, due, count)
        assert processed == subscribers and left == 0, (processed, left)
        rates[count] = rate
        print(f"   {count} worker{'s' if count > 1 else ' '}: {rate:7,.0f} due subscribers/s "
              f"({processed:,} processed once each, {left} left due)  "
              f"x{rate / rates[min(rates)]:.2f}", flush=True)


def tick_ratio(server: Server, small: int, large: int, small_name: str, large_name: str) -> None:
    print(f"3. tick of {COHORT:,} due subscribers among {small:,} and {large:,} enrolled")
    medians = {}
    for total, name in ((small, small_name), (large, large_name)):
        if not server.exists(name):
            print(f"   (building {total:,} enrolled subscribers ...)", flush=True)
            build(server.create(name), total)
            server.settle(name)
        timed = ticks(server.create("nurture_bench_pass", name), traced=False)
        traced = ticks(server.create("nurture_bench_pass", name), traced=True)
        server.drop("nurture_bench_pass")
        assert all(n == COHORT for _, n, _ in timed + traced), (timed, traced)
        medians[total] = statistics.median(t for t, _, _ in timed)
        print(f"   {total:>9,} enrolled: {', '.join(f'{t * 1000:.0f}' for t, _, _ in timed)} "
              f"ms (median {medians[total] * 1000:.0f} ms); peak traced memory "
              f"{max(p for _, _, p in traced) / 2**20:.1f} MiB; database "
              f"{server.size(name) / 2**20:,.0f} MiB", flush=True)
    print(f"   ratio {large:,} / {small:,}: {medians[large] / medians[small]:.2f} "
          "(target < 1.5)")


if __name__ == "__main__":
    main()
