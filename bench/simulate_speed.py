"""`nurture simulate` on 10,000 subscribers with ~20 events each over 90 days (issue 3).

Writes a seeded JSON-lines file of 200,000 events of the jewelry shop (subscriptions in the
first 9 days, then page views, opens, clicks, forms, purchases, declined offers and attribute
changes spread over the 90 days), then runs the real command line in a child process —
`nurture simulate workflows/jewelry.flow --events FILE --json --until START+90d` — with its
output going to a file, and reports the wall time, the peak memory and the
number of timeline records. Targets: under 60 s, under 500 MB. The simulation shares its
subscribers among one process per CPU (`--jobs` sets the number): the memory reported is the
sampled peak of all of them together, as the machine sees it.

    .venv/bin/python -m bench.simulate_speed [--subscribers N] [--events-each N] [--jobs N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.journeys import journeys

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 3, 2, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--events-each", type=int, default=20)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--jobs", type=int, help="passed on to `nurture simulate`")
    args = parser.parse_args()
    until = START + timedelta(days=args.days)
    with tempfile.TemporaryDirectory() as folder:
        feed = Path(folder) / "events.jsonl"
        timeline = Path(folder) / "timeline.jsonl"
        with feed.open("w", encoding="utf-8") as out:
            for event in journeys(args.subscribers, args.events_each, START,
                                  timedelta(days=args.days)):
                out.write(json.dumps({"id": event.key, "subscriber": event.subscriber,
                                      "type": event.type, "at": event.at.isoformat(),
                                      "properties": dict(event.properties)}) + "\n")
        command = [str(Path(sys.executable).with_name("nurture")), "simulate",
                   str(ROOT / "workflows" / "jewelry.flow"), "--events", str(feed), "--json",
                   "--until", until.isoformat()]
        if args.jobs is not None:
            command += ["--jobs", str(args.jobs)]
        began = time.perf_counter()
        with timeline.open("w", encoding="utf-8") as out:
            child = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, text=True)
            sampler = TreeMemory(child.pid)
            sampler.start()
            _, stderr = child.communicate()
            sampler.stop.set()
            sampler.join()
        elapsed = time.perf_counter() - began
        if child.returncode != 0:
            raise SystemExit(f"simulate failed ({child.returncode}): {stderr}")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
        kinds = Counter(json.loads(line)["kind"] for line in timeline.open(encoding="utf-8"))
        events = sum(1 for _ in feed.open(encoding="utf-8"))
        print(f"  {args.subscribers:,} subscribers, {events:,} events over {args.days} days: "
              f"{elapsed:.1f} s wall, peak memory {sampler.peak / 2**20:.0f} MiB in all its "
              f"processes (targets: < 60 s, < 500 MB); the largest one process: "
              f"{peak / 2**20:.0f} MiB")
        print(f"  timeline: {sum(kinds.values()):,} records ("
              + ", ".join(f"{n:,} {k}" for k, n in kinds.most_common()) + ")")
        print(f"  {stderr.strip()}")


class TreeMemory(threading.Thread):
    """Samples the memory of a process and its descendants every 50 ms; keeps the peak.

    Proportional set size (PSS): a page that forked processes share counts once in all, so the
    sum is what the simulation takes from the machine. Linux only (`/proc`)."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        tree: list[int] = []
        for sample in itertools.count():
            if self.stop.wait(0.05):
                return
            if sample % 10 == 0:  # the processes are found twice a second: /proc is scanned
                tree = self._tree()
            self.peak = max(self.peak, sum(map(_pss, tree)))

    def _tree(self) -> list[int]:
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        tree = [self.root]
        for pid in tree:
            tree += [child for child, parent in parents.items() if parent == pid]
        return tree


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    main()
