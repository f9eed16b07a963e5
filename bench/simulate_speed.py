"""`nurture simulate` on 10,000 subscribers with ~20 events each over 90 days (issue 3).

Writes a seeded JSON-lines file of 200,000 events of the jewelry shop (subscriptions in the
first 9 days, then page views, opens, clicks, forms, purchases, declined offers and attribute
changes spread over the 90 days), then runs the real command line in a child process —
`nurture simulate workflows/jewelry.flow --events FILE --json --until START+90d` — with its
output going to a file, and reports the wall time, the child's peak resident memory and the
number of timeline records. Targets: under 60 s, under 500 MB.

    .venv/bin/python -m bench.simulate_speed [--subscribers N] [--events-each N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
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
        began = time.perf_counter()
        with timeline.open("w", encoding="utf-8") as out:
            finished = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, text=True,
                                      check=False)
        elapsed = time.perf_counter() - began
        if finished.returncode != 0:
            raise SystemExit(f"simulate failed ({finished.returncode}): {finished.stderr}")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
        kinds = Counter(json.loads(line)["kind"] for line in timeline.open(encoding="utf-8"))
        events = sum(1 for _ in feed.open(encoding="utf-8"))
        print(f"  {args.subscribers:,} subscribers, {events:,} events over {args.days} days: "
              f"{elapsed:.1f} s wall, peak memory {peak / 2**20:.0f} MiB (targets: < 60 s, "
              f"< 500 MB)")
        print(f"  timeline: {sum(kinds.values()):,} records ("
              + ", ".join(f"{n:,} {k}" for k, n in kinds.most_common()) + ")")
        print(f"  {finished.stderr.strip()}")


if __name__ == "__main__":
    main()
