"""A subscriber's timeline read back from the database (`nurture timeline`) says what the
engine did, in the records it emitted while doing it (SPEC §3.1)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import event

from bench.journeys import journeys
from engine.cli import main
from engine.events import Event, parse_instant
from engine.store import queries
from engine.store import timeline as store
from engine.timeline import timeline
from tests.databases import url_of

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = [ROOT / "workflows" / name for name in
             ("jewelry.flow", "after_sale.flow", "b2b_lead_scoring.flow")]


def stored_timeline(flow: Any, subscriber: str, **options: Any) -> list[dict[str, Any]]:
    with flow.database.reading() as connection:
        key = queries.subscriber_key(connection, subscriber)
        found = store.happenings(connection, key, **options)
    order = [w.name for w in flow.catalog.workflows]
    lines = [json.loads(line.to_json())
             for line in timeline([(subscriber, found)], order, options.get("latest"))]
    for line in lines:  # no outbox here: the engine hands sends to recording channels
        assert line.pop("dispatches", []) == []
    return lines


def test_the_stored_timeline_of_every_subscriber_is_the_one_the_engine_recorded(
        nurture: Any) -> None:
    """150 subscribers of three workflows over 40 days, some unsubscribing and coming back:
    read back from the database, each one's timeline holds exactly the records the engine
    emitted, at their instants, and each workflow's in the order they happened (at one
    instant, records of different workflows follow the declared order of the workflows,
    which is not always the order of due work)."""
    start = datetime(2026, 3, 2, 7, tzinfo=UTC)
    flow = nurture.load(*map(str, WORKFLOWS), start=start)
    events = journeys(150, 12, start, timedelta(days=10), per_visit=3)
    events += [Event(f"sub{n:07d}", "unsubscribed", start + timedelta(days=5, minutes=n), {},
                     None, 10_000 + n) for n in range(0, 150, 7)]
    events += [Event(f"sub{n:07d}", "subscribed", start + timedelta(days=6, minutes=n),
                     {"channels": ["email"]}, None, 20_000 + n) for n in range(0, 150, 14)]
    events.sort(key=lambda e: e.at)
    flow.advance_to(events[-1].at)  # nobody is there yet: nothing to do
    flow.engine.ingest(events)  # each subscriber's events in order, due work between them
    flow.advance(days=30)
    emitted: dict[str, list[dict[str, Any]]] = {}
    for record in flow.timeline():
        emitted.setdefault(record.subscriber, []).append(json.loads(record.to_json()))
    kinds: Counter[str] = Counter()
    for subscriber, records in emitted.items():
        stored = stored_timeline(flow, subscriber)
        assert Counter(map(_canonical, stored)) == Counter(map(_canonical, records)), subscriber
        assert [r["at"] for r in stored] == [r["at"] for r in records]
        for workflow in {r["workflow"] for r in records}:
            assert ([r for r in stored if r["workflow"] == workflow]
                    == [r for r in records if r["workflow"] == workflow]), (subscriber, workflow)
        kinds.update(r["kind"] for r in stored)
    assert set(kinds) == {"enter", "score", "tag", "send", "skip", "exit"}
    assert sum(kinds.values()) > 4000
    # Reading one subscriber's rows goes through indexes on the subscriber: no table scan.
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                _executemany: bool) -> None:
        statements.append((statement, parameters))

    event.listen(flow.database.engine, "before_cursor_execute", capture)
    try:
        last = stored_timeline(flow, "sub0000007", since=start + timedelta(days=3), latest=5)
    finally:
        event.remove(flow.database.engine, "before_cursor_execute", capture)
    assert last == stored_timeline(flow, "sub0000007")[-len(last):]
    selects = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 8
    with flow.database.engine.connect() as connection:
        for statement, parameters in selects:
            plan = [row[-1] for row in connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", parameters)]
            assert not [step for step in plan if step.startswith("SCAN")], (statement, plan)


def test_recorded_events_simulated_give_the_stored_timeline(nurture: Any,
                                                             tmp_path: Path) -> None:
    """`nurture events` prints what the service recorded as `nurture simulate`'s input: run
    again through the simulator, the recorded traffic of 60 subscribers of the three example
    workflows gives each subscriber's stored timeline, record for record."""
    start = datetime(2026, 3, 2, 7, tzinfo=UTC)
    flow = nurture.load(*map(str, WORKFLOWS), start=start)
    events = journeys(60, 12, start, timedelta(days=10), per_visit=3)
    events += [Event(f"sub{n:07d}", "unsubscribed", start + timedelta(days=5, minutes=n), {},
                     f"u{n}", 10_000 + n) for n in range(0, 60, 7)]
    events.sort(key=lambda e: e.at)
    flow.advance_to(events[-1].at)
    flow.engine.ingest(events)
    flow.advance(days=30)  # as far as the simulator goes by default
    url = url_of(flow.database)
    exported = CliRunner().invoke(main, ["events", "--db", url])
    assert exported.exit_code == 0, exported.output
    assert exported.stderr.strip() == f"{len(events)} event(s) of 60 subscriber(s)"
    recorded = tmp_path / "recorded.jsonl"
    recorded.write_text(exported.stdout, encoding="utf-8")
    first = json.loads(exported.stdout.splitlines()[0])
    assert list(first) == ["id", "subscriber", "type", "at", "properties"]
    simulated = CliRunner().invoke(main, ["simulate", *map(str, WORKFLOWS), "--events",
                                          str(recorded), "--json"])
    assert simulated.exit_code == 0, simulated.output
    by_subscriber: dict[str, list[dict[str, Any]]] = {}
    for line in simulated.stdout.splitlines():
        record = json.loads(line)
        by_subscriber.setdefault(record["subscriber"], []).append(record)
    assert len(by_subscriber) == 60
    for subscriber, records in by_subscriber.items():
        stored = stored_timeline(flow, subscriber)
        for workflow in {r["workflow"] for r in records} | {r["workflow"] for r in stored}:
            assert ([r for r in stored if r["workflow"] == workflow]
                    == [r for r in records if r["workflow"] == workflow]), (subscriber, workflow)
    # One subscriber's, since a day: the events of that subscriber dated since then.
    who = events[-1].subscriber
    since = events[-1].at - timedelta(days=1)
    mine = CliRunner().invoke(main, ["events", who, "--since", since.isoformat(), "--db", url])
    assert [parse_instant(json.loads(line)["at"], "at") for line in mine.stdout.splitlines()
            ] == [e.at for e in events if e.subscriber == who and e.at >= since]  # to the µs
    missing = CliRunner().invoke(main, ["events", "nobody", "--db", url])
    assert (missing.exit_code, missing.stderr) == (
        2, "nurture: no subscriber 'nobody' in the database\n")
    typo = CliRunner().invoke(main, ["timeline", f"{who}x", "--db", url])
    assert (typo.exit_code, typo.stderr) == (
        2, f"nurture: no subscriber '{who}x' in the database; did you mean '{who}'?\n")
    # the ids to suggest are read through the ids' index (ranges of it), not by a scan
    from engine.store import queries

    statements: list[tuple[str, Any]] = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(flow.database.engine, "before_cursor_execute", note)
    try:
        with flow.database.reading() as connection:
            assert who in queries.ids_like(connection, who.upper())
    finally:
        event.remove(flow.database.engine, "before_cursor_execute", note)
    assert len(statements) == 3  # "SU", "su" and "Su"
    with flow.database.engine.connect() as connection:
        for statement, parameters in statements:
            plan = [row[-1] for row in connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", parameters)]
            assert not [step for step in plan if step.startswith("SCAN")], (statement, plan)
    backwards = CliRunner().invoke(main, ["events", "--since", "2026-03-10", "--until",
                                          "2026-03-01", "--db", url])
    assert backwards.exit_code == 2 and "--until is before --since" in backwards.stderr


def _canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True)
