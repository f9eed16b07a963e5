"""Sends held back by a cap: the time the engine takes as the line of waiting sends grows.

An endless `every 1 hour` push under `limit push to 1 per day` (which `nurture check` warns
about) sends one push a day and holds the other 23 back: after d days a subscriber has about
23·d sends waiting, and every one of them is looked at again each time the window opens. This
runs `simulate` in process over 20 subscribers for 15, 30 and 60 days and prints the time of
each, so that the growth shows: twice the days costs four times the work if each window
opening is linear in the line (the line grows linearly), more if it is worse.

    .venv/bin/python -m bench.held_back [--subscribers N]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from dsl.loader import load_text
from engine.events import parse_event
from engine.simulate import simulate

FLOW = """\
workflow drip {
  limit push to 1 per day
  stage a { every 1 hour: send push hi }
}
message hi push { title "Hi" }
"""
START = datetime(2026, 1, 1, tzinfo=UTC)


def run(subscribers: int, days: int) -> tuple[float, int]:
    catalog = load_text(FLOW, "drip.flow").catalog
    assert catalog is not None
    events = [parse_event({"subscriber": f"s{i}", "type": "subscribed",
                           "properties": {"channels": ["push"]}}, i, default_at=START)
              for i in range(subscribers)]
    began = time.perf_counter()
    summary = simulate(catalog, events, START, START + timedelta(days=days), lambda _: None,
                       lambda record: record.kind)
    return time.perf_counter() - began, summary.sends


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=20)
    args = parser.parse_args()
    print(f"{args.subscribers} subscribers, every 1 hour under 1 per day:")
    for days in (15, 30, 60):
        seconds, sends = run(args.subscribers, days)
        print(f"  {days:>2} days: {seconds:6.2f} s, {sends:,} sends, about "
              f"{23 * days:,} held back per subscriber at the end")


if __name__ == "__main__":
    main()
