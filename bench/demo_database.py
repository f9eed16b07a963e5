"""A database of the jewelry workflow with 10,000 subscribers 20 days in: the README's samples.

The funnel report and the waiting report in the README were printed from it. The events are
the benchmarks' seeded journeys (`bench/journeys.py`, in visits), ingested in batches of 1,000,
each at its own time and followed by a tick, as the service does; pushes are decided without browser
subscriptions, and no dispatcher runs, so e-mails and webhooks wait in the outbox.

    .venv/bin/python -m bench.demo_database demo.db
    nurture funnel jewelry --db sqlite:///demo.db --workflows workflows
    nurture waiting jewelry --db sqlite:///demo.db --workflows workflows
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.journeys import batches, journeys
from dsl.loader import load_paths
from engine.clock import VirtualClock
from engine.collector import tune_for_long_runs
from engine.processor import Engine
from engine.store.database import open_database

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path, help="the SQLite file to write (replaced)")
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=20)
    args = parser.parse_args()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{args.path}{suffix}").unlink(missing_ok=True)
    catalog = load_paths([str(ROOT / "workflows" / "jewelry.flow")]).catalog
    assert catalog is not None
    start = datetime(2026, 3, 2, 7, tzinfo=UTC)
    events = journeys(args.subscribers, 21, start, timedelta(days=args.days), per_visit=10)
    tune_for_long_runs()
    database = open_database(f"sqlite:///{args.path}")
    clock = VirtualClock(start)
    engine = Engine(catalog, database, clock=clock, push_needs_subscription=False,
                    batch_size=1000)
    began = time.perf_counter()
    for batch in batches(events, 1000):
        clock.advance_to(max(clock.now(), batch[-1].at))
        engine.ingest(batch)  # each at its own time, after the work due before it
        engine.tick()  # then the rest of the work due by now
    database.dispose()
    print(f"{args.path}: {len(events):,} events of {args.subscribers:,} subscribers in "
          f"{time.perf_counter() - began:.1f} s; the engine's clock stopped at "
          f"{clock.now():%Y-%m-%d %H:%M:%S} UTC")


if __name__ == "__main__":
    main()
