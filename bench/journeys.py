"""Seeded, realistic event streams for the jewelry workflow (shared by the benchmarks)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from engine.events import Event

PAGES = [("https://shop.example/diamonds/rings", 12), ("https://shop.example/pricing", 10),
         ("https://shop.example/sale", 10), ("https://shop.example/gold", 25),
         ("https://shop.example/about", 8), ("https://shop.example/", 35)]
BEHAVIOUR = [("page_view", 60), ("email_open", 14), ("push_click", 10), ("form_submit", 5),
             ("purchase", 5), ("offer_declined", 3), ("attributes", 3)]


def subscribed(who: str, at: datetime, rng: random.Random, seq: int) -> Event:
    channels = rng.choice([["push"], ["push", "email"], ["email"], ["push", "email"]])
    attributes = {"first_name": rng.choice(["Anna", "Bob", "Chen", "Dara", "Eve"]),
                  "locale": rng.choice(["pl-PL", "en-GB", "de-DE", "en-US"]),
                  "industry": rng.choice(["fashion", "retail", "banking", "health"]),
                  "role": rng.choice(["marketing", "sales", "engineering"])}
    properties = {"channels": channels, "attributes": attributes}
    if "email" in channels:
        properties["email"] = f"{who}@example.com"
    return Event(who, "subscribed", at, properties, f"{who}-0", seq)


def behaviour(who: str, at: datetime, rng: random.Random, seq: int, n: int) -> Event:
    kind = rng.choices([k for k, _ in BEHAVIOUR], [w for _, w in BEHAVIOUR])[0]
    properties: dict[str, object] = {}
    if kind == "page_view":
        properties["url"] = rng.choices([u for u, _ in PAGES], [w for _, w in PAGES])[0]
    elif kind == "purchase":
        properties["amount"] = rng.choice([120, 480, 1350, 2900])
    elif kind == "attributes":
        properties["timezone"] = rng.choice(["Europe/Warsaw", "Europe/London",
                                             "America/New_York"])
    return Event(who, kind, at, properties, f"{who}-{n}", seq)


def journeys(subscribers: int, events_each: int, start: datetime, span: timedelta,
             per_visit: int = 1, seed: int = 7) -> list[Event]:
    """Every subscriber subscribes somewhere in the first tenth of `span`, then acts.

    With `per_visit` above 1, behaviour comes in visits: that many events within a few
    minutes (pages, a click, an open), the visits spread over `span` — the shape of web
    traffic. With 1, every event is at its own random time.
    """
    rng = random.Random(seed)
    events: list[Event] = []
    seq = 0
    for index in range(subscribers):
        who = f"sub{index:07d}"
        joined = start + span * rng.random() * 0.1
        seq += 1
        events.append(subscribed(who, joined, rng, seq))
        n = 1
        while n < events_each:
            visit = joined + (start + span - joined) * rng.random()
            for _ in range(min(per_visit, events_each - n)):
                seq += 1
                visit += timedelta(seconds=rng.randint(5, 40))
                events.append(behaviour(who, visit, rng, seq, n))
                n += 1
    events.sort(key=lambda e: (e.at, e.seq))
    return events


def batches(events: list[Event], size: int) -> Iterator[list[Event]]:
    for first in range(0, len(events), size):
        yield events[first:first + size]

