"""Events ingested and scored per second, in batches, on SQLite (issue 3's target: 20,000/s).

Two measurements on one database: 10,000 subscribers subscribing (each enrols, runs the
awareness stage's entry and plans its steps), then 200,000 behaviour events of those
subscribers (page views, opens, clicks, purchases...: scored, tagged, moving stages and
deciding sends), ingested in batches of 1,000 as the API would. Time advances with the
events, so due work (welcome pushes, drips, postponed sends) is done along the way.

    .venv/bin/python bench/ingest_speed.py [--subscribers N] [--events-each N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.journeys import batches, journeys
from dsl.loader import load_paths
from engine.clock import VirtualClock
from engine.processor import Engine
from engine.store.database import open_database

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--events-each", type=int, default=21)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    catalog = load_paths([str(ROOT / "workflows" / "jewelry.flow")]).catalog
    assert catalog is not None
    start = datetime(2026, 3, 2, 7, tzinfo=UTC)
    events = journeys(args.subscribers, args.events_each, start, timedelta(hours=10))
    joins = [e for e in events if e.type == "subscribed"]
    acts = [e for e in events if e.type != "subscribed"]
    with tempfile.TemporaryDirectory() as folder:
        database = open_database(f"sqlite:///{Path(folder) / 'bench.db'}")  # WAL, durable
        clock = VirtualClock(start)
        engine = Engine(catalog, database, clock=clock, push_needs_subscription=False,
                        batch_size=1000)
        for label, stream in (("subscribe (enrol)", joins), ("behaviour", acts)):
            began = time.perf_counter()
            for batch in batches(stream, args.batch):
                clock.advance_to(max(clock.now(), batch[-1].at))
                engine.ingest(batch)
            elapsed = time.perf_counter() - began
            print(f"{label:<18} {len(stream):>8,} events in {elapsed:6.2f} s = "
                  f"{len(stream) / elapsed:>8,.0f} events/s (batches of {args.batch})")
        database.dispose()


if __name__ == "__main__":
    main()
