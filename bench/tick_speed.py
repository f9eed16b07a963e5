"""`tick` cost grows with the due work, not with the number of subscribers (issue 3).

Two databases, built through the engine itself: 10,000 and 1,000,000 subscribers enrolled in
the jewelry workflow. In each, five cohorts of 1,000 subscribers joined at 09:00, 09:01, ...
09:04, so their welcome push falls due at 09:10 ... 09:14; everyone else joined at noon. Each
tick at 09:1x therefore does the work of exactly 1,000 subscribers. Ticks run on a fresh
engine (no states kept in memory), as for work that falls due long after the subscriber was
last seen. Reported: the median tick time per database and their ratio (target below 1.5),
and, in a separate pass under tracemalloc, the peak Python memory of a tick. The two databases
are measured in turn, over several rounds, so that the machine's drift in speed (tens of
percent within minutes on these VMs) falls on both sides of the ratio alike.

    .venv/bin/python -m bench.tick_speed [--large 1000000] [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.journeys import subscribed
from dsl.loader import load_paths
from engine.clock import VirtualClock
from engine.events import Event
from engine.processor import Engine
from engine.store.database import Database, open_database

ROOT = Path(__file__).resolve().parent.parent
COHORTS = 5
COHORT = 1000
MORNING = datetime(2026, 3, 2, 9, tzinfo=UTC)
NOON = datetime(2026, 3, 2, 12, tzinfo=UTC)


def population(total: int) -> Iterator[list[Event]]:
    rng = random.Random(11)
    seq = 0
    for cohort in range(COHORTS):
        at = MORNING + timedelta(minutes=cohort)
        batch = []
        for _ in range(COHORT):
            seq += 1
            batch.append(subscribed(f"c{cohort}-{seq:07d}", at, rng, seq))
        yield batch
    for first in range(COHORTS * COHORT, total, 5000):
        batch = []
        for _ in range(first, min(first + 5000, total)):
            seq += 1
            batch.append(subscribed(f"s{seq:08d}", NOON, rng, seq))
        yield batch


def build(url: str, total: int) -> None:
    """Enrol `total` subscribers through the engine (five morning cohorts, the rest at noon)."""
    catalog = load_paths([str(ROOT / "workflows" / "jewelry.flow")]).catalog
    assert catalog is not None
    database = open_database(url)
    clock = VirtualClock(MORNING)
    engine = Engine(catalog, database, clock=clock, push_needs_subscription=False,
                    batch_size=5000)
    began = time.perf_counter()
    done = 0
    for batch in population(total):
        clock.advance_to(max(clock.now(), batch[0].at))
        engine.ingest(batch)
        done += len(batch)
        if done % 100_000 < len(batch):
            print(f"    built {done:,} subscribers ({time.perf_counter() - began:.0f} s)",
                  flush=True)
    database.dispose()


def ticks(url: str, traced: bool) -> list[tuple[float, int, int]]:
    """(seconds, subscribers processed, peak traced bytes) for each cohort's tick."""
    catalog = load_paths([str(ROOT / "workflows" / "jewelry.flow")]).catalog
    assert catalog is not None
    results = []
    for cohort in range(COHORTS):
        database: Database = open_database(url, migrate=False)
        clock = VirtualClock(MORNING + timedelta(minutes=10 + cohort))
        engine = Engine(catalog, database, clock=clock, push_needs_subscription=False,
                        batch_size=500)
        with database.transaction() as connection:  # warm the connection, not the data
            connection.exec_driver_sql("SELECT 1")
        if traced:
            tracemalloc.start()
        began = time.perf_counter()
        result = engine.tick()
        elapsed = time.perf_counter() - began
        peak = 0
        if traced:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        results.append((elapsed, result.subscribers, peak))
        database.dispose()
    return results


def fresh_copy(path: Path) -> Path:
    """Each pass consumes the due work: it runs on its own copy of the built database."""
    copy = path.with_suffix(".pass.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(path, copy)
    return copy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="passes over both databases, taken in turn (default 3)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the built databases in this folder (and reuse them)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        sizes = (args.small, args.large)
        paths = {total: folder / f"tick-{total}.db" for total in sizes}
        for total, path in paths.items():
            if not path.exists():
                print(f"  building {total:,} enrolled subscribers ...", flush=True)
                build(f"sqlite:///{path}", total)
        times: dict[int, list[float]] = {total: [] for total in sizes}
        ratios = []
        for number in range(1, args.rounds + 1):
            medians = {}
            for total, path in paths.items():
                timed = ticks(f"sqlite:///{fresh_copy(path)}", traced=False)
                assert all(n == COHORT for _, n, _ in timed), timed
                times[total] += [t for t, _, _ in timed]
                medians[total] = statistics.median(t for t, _, _ in timed)
                print(f"  round {number}: {total:>9,} enrolled: tick of {COHORT:,} due "
                      f"subscribers {', '.join(f'{t * 1000:.0f}' for t, _, _ in timed)} ms "
                      f"(median {medians[total] * 1000:.0f} ms)", flush=True)
            ratios.append(medians[args.large] / medians[args.small])
            print(f"  round {number}: ratio {ratios[-1]:.2f}", flush=True)
        for total, path in paths.items():
            traced = ticks(f"sqlite:///{fresh_copy(path)}", traced=True)
            assert all(n == COHORT for _, n, _ in traced), traced
            print(f"  {total:>9,} enrolled: median of {len(times[total])} ticks "
                  f"{statistics.median(times[total]) * 1000:.0f} ms; peak traced memory "
                  f"{max(p for _, _, p in traced) / 2**20:.1f} MiB; database "
                  f"{path.stat().st_size / 2**20:,.0f} MiB")
        ratio = statistics.median(times[args.large]) / statistics.median(times[args.small])
        print(f"  ratio {args.large:,} / {args.small:,}: {ratio:.2f} (target < 1.5); "
              f"by round {', '.join(f'{r:.2f}' for r in ratios)}")


if __name__ == "__main__":
    main()
