"""Events ingested and scored per second, in batches, on SQLite (issue 3's target: 20,000/s).

10,000 subscribers subscribe (each enrols, enters the awareness stage, plans its steps), then
200,000 behaviour events of theirs (page views, opens, clicks, purchases...: scored, tagged,
moving stages, deciding sends) are ingested in batches of 1,000 as the API would receive them.
Time advances with the events, so due work (welcome pushes, drips, postponed sends) is done
along the way. Two shapes of the same traffic, side by side:

- scattered: every behaviour event at an independent random time, so nearly every event in
  a batch is from a different subscriber (the worst case: each event pays a whole
  subscriber's read, rows and commit pages);
- visits: the same number of events, but in visits of 10 within a few minutes, as web
  traffic comes (a batch holds a few events of each visitor).

    .venv/bin/python -m bench.ingest_speed [--subscribers N] [--events-each N] [--batch N]
                                           [--shape scattered|visits]
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
from engine.collector import tune_for_long_runs
from engine.processor import Engine
from engine.store.database import open_database

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--events-each", type=int, default=21)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--shape", choices=("scattered", "visits"), action="append",
                        help="measure only this shape (repeatable; default: both)")
    args = parser.parse_args()
    catalog = load_paths([str(ROOT / "workflows" / "jewelry.flow")]).catalog
    assert catalog is not None
    start = datetime(2026, 3, 2, 7, tzinfo=UTC)
    span = timedelta(hours=10)
    shapes = {
        "scattered": journeys(args.subscribers, args.events_each, start, span),
        "visits": journeys(args.subscribers, args.events_each, start, span, per_visit=10),
    }
    if args.shape:
        shapes = {shape: events for shape, events in shapes.items() if shape in args.shape}
    tune_for_long_runs()  # as `nurture serve` does; the streams above are set aside with it
    print(f"{args.subscribers:,} subscribers, {args.events_each - 1} behaviour events each, "
          f"batches of {args.batch}, SQLite (WAL, synchronous=NORMAL)")
    for shape, events in shapes.items():
        joins = [e for e in events if e.type == "subscribed"]
        acts = [e for e in events if e.type != "subscribed"]
        per_batch = sum(len({e.subscriber for e in b}) for b in batches(acts, args.batch))
        with tempfile.TemporaryDirectory() as folder:
            database = open_database(f"sqlite:///{Path(folder) / 'bench.db'}")
            clock = VirtualClock(start)
            engine = Engine(catalog, database, clock=clock, push_needs_subscription=False,
                            batch_size=args.batch)
            for label, stream in (("subscribe", joins), ("behaviour", acts)):
                began = time.perf_counter()
                for batch in batches(stream, args.batch):
                    clock.advance_to(max(clock.now(), batch[-1].at))
                    engine.ingest(batch)
                elapsed = time.perf_counter() - began
                print(f"  {shape:<9} {label:<9} {len(stream):>8,} events {elapsed:6.2f} s "
                      f"= {len(stream) / elapsed:>7,.0f} events/s")
            database.dispose()
        print(f"  {shape:<9} behaviour batches hold {len(acts) / per_batch:.1f} events per "
              "subscriber on average")


if __name__ == "__main__":
    main()
