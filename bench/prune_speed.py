"""How fast `nurture prune` removes old events and messages and merges old score ledger
entries, and what a run costs when nothing is old enough (the daily job of a service whose data
is all recent), on SQLite.

The jewelry workflow's traffic (`bench.journeys`, the visits shape) is ingested over 10 hours
with due work done along the way and the outbox marked as delivered; then the first half of
that time is pruned, then (again) nothing, then the rest. At the end each score has one
ledger entry left.

    .venv/bin/python -m bench.prune_speed [--subscribers N] [--events-each N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from bench.journeys import batches, journeys
from dsl.loader import load_paths
from engine.clock import VirtualClock
from engine.processor import Engine
from engine.store import retention
from engine.store.database import Database, open_database
from engine.store.states import DELIVERIES, DISPATCHES, EVENTS, LEDGER, SCORES

ROOT = Path(__file__).resolve().parent.parent


def _counts(database: Database) -> tuple[int, int, int, int]:
    """Events, messages, outbox rows, ledger entries."""
    with database.reading() as connection:
        return tuple(int(connection.execute(select(func.count()).select_from(table)).scalar_one())
                     for table in (EVENTS, DELIVERIES, DISPATCHES, LEDGER)
                     )  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--events-each", type=int, default=21)
    args = parser.parse_args()
    catalog = load_paths([str(ROOT / "workflows" / "jewelry.flow")]).catalog
    assert catalog is not None
    start = datetime(2026, 3, 2, 7, tzinfo=UTC)
    span = timedelta(hours=10)
    events = journeys(args.subscribers, args.events_each, start, span, per_visit=10)
    with tempfile.TemporaryDirectory() as folder:
        database = open_database(f"sqlite:///{Path(folder) / 'bench.db'}")
        clock = VirtualClock(start)
        engine = Engine(catalog, database, clock=clock, push_needs_subscription=False)
        for batch in batches(events, 1000):
            clock.advance_to(max(clock.now(), batch[-1].at))
            engine.ingest(batch)
            engine.tick()
        with database.transaction() as connection:  # as if the dispatcher had sent them all
            connection.execute(update(DISPATCHES).values(status="delivered", due_at=None,
                                                         finished_at=clock.now()))
        stored = _counts(database)
        with database.reading() as connection:
            scores = int(connection.execute(select(func.count()).select_from(SCORES)
                                            ).scalar_one())
        print(f"{args.subscribers:,} subscribers: {stored[0]:,} events, {stored[1]:,} messages, "
              f"{stored[2]:,} outbox rows, {stored[3]:,} ledger entries of {scores:,} scores")
        for label, before in (("the first half", start + span / 2),
                              ("nothing old enough", start + span / 2),
                              ("the rest", clock.now() + timedelta(seconds=1))):
            began = time.perf_counter()
            pruned = retention.prune(database, before)
            elapsed = time.perf_counter() - began
            removed = pruned.events + pruned.messages + pruned.ledger
            rate = f" = {removed / elapsed:,.0f} rows/s" if removed else ""
            print(f"  prune {label:<19} {pruned.events:>8,} events {pruned.messages:>7,} "
                  f"messages {pruned.ledger:>8,} ledger entries in {elapsed * 1000:8.1f} ms"
                  f"{rate}")
        assert _counts(database) == (0, 0, 0, scores), _counts(database)
        database.dispose()


if __name__ == "__main__":
    main()
