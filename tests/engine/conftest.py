"""Fixtures for engine tests: a workflow written by the test, run in frozen time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from engine.records import Record, format_instant, format_number
from engine.testing import FlowTest, NurtureFixture

MESSAGES = """
message hello push {
  title "Hello {{ subscriber.first_name | default('you') }}"
  url "https://shop.example/"
}
message nudge push { title "Nudge" }
message drip push { title "Drip #{{ stage }}" }
message later push { title "Later" }
message letter email { subject "Letter for {{ subscriber.id }}" text "Hi" }
message alert webhook {
  url "https://crm.example/hook"
  body "{\\"lead\\": \\"{{ subscriber.id }}\\"}"
}
"""
"""Messages every test workflow can send."""

START = "2026-01-05T09:00:00Z"
"""A Monday, in winter time everywhere the tests look."""


@pytest.fixture
def flow(nurture: NurtureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
         database_url: str) -> Callable[..., FlowTest]:
    """Write `w.flow` (the test's workflow plus MESSAGES) and start a run at `start`, on
    SQLite and (with NURTURE_TEST_PG) on PostgreSQL."""
    monkeypatch.chdir(tmp_path)

    def load(text: str, start: str = START, live_push: bool = False,
             messages: str = MESSAGES) -> FlowTest:
        Path("w.flow").write_text(text + messages, encoding="utf-8")
        return nurture.load("w.flow", start=start, live_push=live_push, database=database_url)

    return load


def brief(records: Iterable[Record]) -> list[tuple[str, str, str]]:
    """Records as (time, kind, what) for exact comparisons."""
    out = []
    for record in records:
        f = record.fields
        match record.kind:
            case "enter":
                what = f["stage"]
            case "score":
                delta = format_number(f["delta"])
                sign = "" if delta.startswith("-") else "+"
                what = f"{f['score']} {sign}{delta} = {format_number(f['total'])}"
            case "tag":
                what = f["tag"]
            case "send":
                what = f"{f['channel']} {f['message']}"
            case "skip":
                what = f"{f['channel']} {f['message']}: {f['reason']}"
            case _:
                what = str(f.get("reason"))
        out.append((format_instant(record.at), record.kind, what))
    return out


def sends(run: FlowTest, subscriber: str = "ann") -> list[tuple[str, str]]:
    """(time, message) of every send to the subscriber."""
    return [(format_instant(r.at), r.fields["message"]) for r in run.sent(subscriber)]
