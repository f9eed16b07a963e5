"""Decay of a heavy subscriber: the time of the ticks that decay thousands of contributions.

One subscriber of the jewelry workflow (`decay 10% every 30 days`) views a diamonds page every
30 seconds, 1,000 times a day, as a heavy visitor or a bot does; each view is a contribution
with its own decay boundary. After the views, one tick does the first decay period: as many
decay steps as views. Printed for several numbers of views, so that the growth shows (twice
the views: twice the time if a step costs the same whatever the number of contributions; four
times if each step looks at all of them).

    .venv/bin/python -m bench.heavy_decay [--views N ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dsl.loader import load_paths
from engine.clock import VirtualClock
from engine.events import Event
from engine.processor import Engine
from engine.store.database import open_database

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 3, 2, 9, tzinfo=UTC)
PAGE = {"url": "https://shop.example/diamonds/rings"}


def run(views: int) -> tuple[float, float]:
    catalog = load_paths([str(ROOT / "workflows" / "jewelry.flow")]).catalog
    assert catalog is not None
    with tempfile.TemporaryDirectory() as folder:
        database = open_database(f"sqlite:///{Path(folder) / 'heavy.db'}", durable=False)
        clock = VirtualClock(START)
        engine = Engine(catalog, database, clock=clock, push_needs_subscription=False)
        engine.ingest([Event("bot", "subscribed", START, {"channels": ["email"]}, None, 0)])
        began = time.perf_counter()
        days = -(-views // 1000)
        for day in range(days):
            batch = [Event("bot", "page_view", START + timedelta(days=day, seconds=30 * i + 1),
                           PAGE, None, day * 1000 + i + 1)
                     for i in range(min(1000, views - day * 1000))]
            clock.advance_to(batch[-1].at)
            engine.ingest(batch)
            engine.tick()
        ingested = time.perf_counter() - began
        began = time.perf_counter()
        clock.advance_to(START + timedelta(days=days + 31))
        engine.tick()
        decayed = time.perf_counter() - began
        database.dispose()
    return ingested, decayed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--views", type=int, nargs="+", default=[5_000, 10_000, 50_000])
    args = parser.parse_args()
    for views in args.views:
        ingested, decayed = run(views)
        print(f"  {views:>7,} page views of one subscriber: ingested in {ingested:5.1f} s; "
              f"the ticks of the first decay period {decayed:6.1f} s")


if __name__ == "__main__":
    main()
