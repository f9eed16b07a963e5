"""`nurture simulate` (SPEC §3.1) as users run it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench.journeys import batches, journeys
from engine import simulate as sim
from engine.cli import main
from engine.events import Event
from engine.funnel import TimelineTally
from engine.store import funnel

ROOT = Path(__file__).resolve().parents[2]
JOURNEY = ROOT / "workflows" / "journeys" / "jewelry.jsonl"
GOLDEN = Path(__file__).parent / "golden" / "jewelry-journey.jsonl"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_the_example_journey_prints_the_expected_timeline(in_root: None) -> None:
    code, out, err = run("simulate", "workflows/jewelry.flow", "--events",
                         "workflows/journeys/jewelry.jsonl", "--json")
    assert code == 0, err
    assert out == GOLDEN.read_text(encoding="utf-8")
    assert "7 event(s) of 2 subscriber(s)" in err and "9 send(s), 0 skip(s)" in err


def test_events_can_come_on_the_standard_input(in_root: None) -> None:
    """`--events -`: `nurture events | nurture simulate … --events -`."""
    result = CliRunner().invoke(main, ["simulate", "workflows/jewelry.flow", "--events", "-",
                                       "--json"], input=JOURNEY.read_bytes())
    assert result.exit_code == 0, result.output
    assert result.stdout == GOLDEN.read_text(encoding="utf-8")
    bad = CliRunner().invoke(main, ["simulate", "workflows/jewelry.flow", "--events", "-"],
                             input=b'{"subscriber": "ann"}\n')
    assert bad.exit_code == 1 and bad.stdout.startswith("-:1:1: error: type: required")


def test_the_golden_timeline_says_what_the_spec_promises() -> None:
    records = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]
    assert [r["at"] for r in records] == sorted(r["at"] for r in records)
    first = records[0]
    assert list(first) == ["at", "subscriber", "workflow", "kind", "score", "delta", "total",
                           "rule"]
    assert first["rule"] == "workflows/jewelry.flow:23"
    sends = [r for r in records if r["kind"] == "send"]
    assert list(sends[0]) == ["at", "subscriber", "workflow", "kind", "channel", "message",
                              "lang", "title", "body", "url"]
    assert (sends[0]["lang"], sends[0]["title"]) == ("pl", "Cześć Anna!")
    # Bob subscribed at 22:30 in Warsaw: his welcome waits for 08:00 local (07:00 UTC)
    assert ("2026-03-03T07:00:00Z", "bob", "welcome") in [
        (r["at"], r["subscriber"], r["message"]) for r in sends]
    last = records[-1]
    assert (last["delta"], last["total"]) == (-7.5, 130.5)
    assert '"total": 130.5' in GOLDEN.read_text(encoding="utf-8").splitlines()[-1]


def test_the_readme_shows_this_timeline(in_root: None) -> None:
    code, out, _ = run("simulate", "workflows/jewelry.flow", "--events",
                       "workflows/journeys/jewelry.jsonl")
    assert code == 0
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert out in readme, "README's example timeline is out of date"
    shown = [line for line in readme.splitlines() if line.startswith('{"at"')]
    assert shown and all(line in GOLDEN.read_text(encoding="utf-8") for line in shown)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


FLOW = """\
workflow w {
  stage a {
    after 1 day: send push hi
    go to b on click
  }
  stage b { }
}
message hi push { title "Hi" }
"""


def events(*lines: dict[str, object]) -> str:
    return "\n".join(json.dumps(line) for line in lines) + "\n"


def sub(who: str, at: str) -> dict[str, object]:
    return {"subscriber": who, "type": "subscribed", "at": at,
            "properties": {"channels": ["push"]}}


def test_until_is_inclusive_and_later_events_are_reported(tmp_path: Path) -> None:
    flow = write(tmp_path, "w.flow", FLOW)
    feed = write(tmp_path, "e.jsonl", events(
        sub("ann", "2026-01-05T09:00:00Z"),
        {"subscriber": "ann", "type": "click", "at": "2026-01-09T09:00:00Z"}))
    code, out, err = run("simulate", flow, "--events", feed, "--json",
                         "--until", "2026-01-06T09:00:00Z")
    assert code == 0
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["enter", "send"]
    assert "1 event(s) after --until not simulated" in err


def test_from_hides_earlier_records_but_simulates_their_events(tmp_path: Path) -> None:
    flow = write(tmp_path, "w.flow", FLOW)
    feed = write(tmp_path, "e.jsonl", events(sub("ann", "2026-01-05T09:00:00Z")))
    code, out, err = run("simulate", flow, "--events", feed, "--json",
                         "--from", "2026-01-06")
    assert code == 0
    assert [json.loads(line)["at"] for line in out.splitlines()] == ["2026-01-06T09:00:00Z"]
    assert "1 record(s) before --from not shown" in err


def test_the_default_horizon_is_the_last_event_plus_30_days(tmp_path: Path) -> None:
    flow = write(tmp_path, "w.flow", FLOW.replace("after 1 day", "after 30 days"))
    feed = write(tmp_path, "e.jsonl", events(sub("ann", "2026-01-05T09:00:00Z")))
    code, out, err = run("simulate", flow, "--events", feed, "--json")
    assert code == 0
    assert [json.loads(line)["at"] for line in out.splitlines()] == [
        "2026-01-05T09:00:00Z", "2026-02-04T09:00:00Z"]
    assert "to 2026-02-04T09:00:00Z" in err


def test_bad_lines_are_all_reported_with_their_numbers_and_nothing_runs(tmp_path: Path) -> None:
    flow = write(tmp_path, "w.flow", FLOW)
    feed = write(tmp_path, "e.jsonl",
                 events(sub("ann", "2026-01-05T09:00:00Z")) + "\n{not json\n" +
                 events({"subscriber": "bob", "type": "click", "at": "2026-01-05"},
                        {"subscriber": "bob", "type": "subscribed", "at": "2026-01-05T09:00Z",
                         "properties": {"channels": ["sms"]}},
                        {"subscriber": "bob", "type": "click", "at": "9999-12-31T00:00:00Z"}))
    code, out, err = run("simulate", flow, "--events", feed)
    assert code == 1
    assert out.splitlines() == [
        f"{feed}:3:2: error: not valid JSON: unexpected character, expected a string key",
        f"{feed}:4:46: error: at: '2026-01-05' has no time zone; add 'Z' for UTC or an offset "
        "such as '+01:00'",
        f"{feed}:5:100: error: properties.channels[0]: 'sms' is not a channel; expected 'push' "
        "or 'email'",
        f"{feed}:6:46: error: at: '9999-12-31T00:00:00Z' is outside the years 1970 to 2999",
    ]
    assert "nothing simulated" in err
    # each column is where the value is, for an editor's cursor to land on
    lines = Path(feed).read_text(encoding="utf-8").splitlines()
    assert lines[3][45:].startswith('"2026-01-05"')
    assert lines[4][99:].startswith('"sms"')
    assert lines[5][45:].startswith('"9999-12-31T00:00:00Z"')


def test_a_field_that_an_event_does_not_have_is_pointed_at(tmp_path: Path) -> None:
    flow = write(tmp_path, "w.flow", FLOW)
    line = '{"subscriber": "ann", "type": "click", "at": "2026-01-05T09:00:00Z", "colour": 1}'
    feed = write(tmp_path, "e.jsonl", line + "\n")
    code, out, _ = run("simulate", flow, "--events", feed)
    assert code == 1
    column = line.index('"colour"') + 1
    assert out == (f"{feed}:1:{column}: error: colour: unknown field; an event has "
                   "'subscriber', 'type', 'at', 'properties', 'id'\n")


def test_an_event_type_nearly_spelling_a_named_one_is_pointed_out(tmp_path: Path) -> None:
    # a hand-written file's typo: simulated as it is (a site sends any name), but the marketer
    # is told why nothing happens, instead of reading a timeline without the move
    flow = write(tmp_path, "w.flow", FLOW)
    feed = write(tmp_path, "e.jsonl", events(
        sub("ann", "2026-01-05T09:00:00Z"),
        {"subscriber": "ann", "type": "clik", "at": "2026-01-05T09:10:00Z"},
        {"subscriber": "ann", "type": "page_view", "at": "2026-01-05T09:20:00Z"},
        {"subscriber": "ann", "type": "clik", "at": "2026-01-05T09:30:00Z"},
        {"subscriber": "ann", "type": "unsubscribe", "at": "2026-01-05T09:40:00Z"}))
    code, out, err = run("simulate", flow, "--events", feed, "--json")
    assert code == 0
    assert err.splitlines()[:2] == [
        f"{feed}:2:31: warning: event 'clik' is named by no workflow loaded; did you mean "
        "'click'? (2 event(s) of this type, the first here)",
        f"{feed}:5:31: warning: event 'unsubscribe' is named by no workflow loaded; did you "
        "mean 'unsubscribed'? (1 event(s) of this type, the first here)"]
    assert "5 event(s) of 1 subscriber(s) simulated" in err
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["enter", "send"]


def test_a_time_zone_that_is_none_is_refused_with_the_one_meant(tmp_path: Path) -> None:
    # it decides the subscriber's quiet hours: ignoring it would move their night unseen
    flow = write(tmp_path, "w.flow", FLOW)
    feed = write(tmp_path, "e.jsonl", events(
        {**sub("ann", "2026-01-05T09:00:00Z"),
         "properties": {"channels": ["push"], "attributes": {"timezone": "Europe/Lisbin"}}}))
    code, out, err = run("simulate", flow, "--events", feed)
    assert code == 1
    assert out.splitlines() == [
        f"{feed}:1:139: error: properties.attributes.timezone: unknown time zone "
        "'Europe/Lisbin'; did you mean 'Europe/Lisbon'?"]
    assert Path(feed).read_text(encoding="utf-8")[138:].startswith('"Europe/Lisbin"')
    assert "nothing simulated" in err


def test_lines_the_api_would_refuse_are_refused_with_their_place(tmp_path: Path) -> None:
    # half of a UTF-16 pair (no database or push payload takes it), NaN: not JSON for the API
    flow = write(tmp_path, "w.flow", FLOW)
    feed = write(tmp_path, "e.jsonl", '{"subscriber": "a\\ud800", "type": "x", '
                 '"at": "2026-01-05T09:00:00Z"}\n{"subscriber": "b", "type": "x", '
                 '"at": "2026-01-05T09:00:00Z", "properties": {"n": NaN}}\n')
    code, out, err = run("simulate", flow, "--events", feed)
    assert code == 1
    assert out.splitlines() == [
        f"{feed}:1:18: error: not valid JSON: no low surrogate in string",
        f"{feed}:2:84: error: not valid JSON: unexpected character, expected a JSON value"]
    assert "Traceback" not in out + err


@pytest.mark.parametrize("from_stdin", [False, True])
def test_a_line_not_in_utf8_is_one_bad_line_with_its_place(tmp_path: Path,
                                                           from_stdin: bool) -> None:
    """A name typed in Windows-1250 on one line: that line is reported, where the byte is,
    beside the file's other bad lines (before, the whole file was refused at 1:1)."""
    flow = write(tmp_path, "w.flow", FLOW)
    good = events(sub("ann", "2026-01-05T09:00:00Z")).encode()
    named = b'{"subscriber": "bob", "type": "attributes", "at": "2026-01-05T09:00:00Z", ' \
        b'"properties": {"first_name": "Ma\xb3gorzata"}}\n'
    feed = tmp_path / "e.jsonl"
    feed.write_bytes(good + named + b"{not json}\n" + good)
    if from_stdin:
        result = CliRunner().invoke(main, ["simulate", flow, "--events", "-"],
                                    input=feed.read_bytes())
        code, out, err, name = result.exit_code, result.stdout, result.stderr, "-"
    else:
        (code, out, err), name = run("simulate", flow, "--events", str(feed)), str(feed)
    assert code == 1
    assert out.splitlines() == [
        f"{name}:2:107: error: not UTF-8 text (byte 0xb3): save the file as UTF-8",
        f"{name}:3:2: error: not valid JSON: unexpected character, expected a string key"]
    assert f"2 bad line(s) in {name}: nothing simulated" in err


def test_repeated_event_ids_are_stored_once_and_reported(tmp_path: Path) -> None:
    flow = write(tmp_path, "w.flow", FLOW.replace("after 1 day: send push hi",
                                                  "on enter: send push hi"))
    feed = write(tmp_path, "e.jsonl", events(
        {**sub("ann", "2026-01-05T09:00:00Z"), "id": "x"},
        {**sub("ann", "2026-01-05T09:00:00Z"), "id": "x"}))
    code, out, err = run("simulate", flow, "--events", feed, "--json")
    assert code == 0
    assert len(out.splitlines()) == 2
    assert "1 event(s) repeated an earlier event's id and were stored once" in err


def test_workflow_errors_stop_the_simulation(tmp_path: Path) -> None:
    flow = write(tmp_path, "w.flow", FLOW.replace("go to b", "go to c"))
    feed = write(tmp_path, "e.jsonl", events(sub("ann", "2026-01-05T09:00:00Z")))
    code, out, _ = run("simulate", flow, "--events", feed)
    assert code == 1
    assert "unknown stage 'c'" in out


def test_an_unparsable_from_is_a_usage_error(tmp_path: Path) -> None:
    flow = write(tmp_path, "w.flow", FLOW)
    feed = write(tmp_path, "e.jsonl", events(sub("ann", "2026-01-05T09:00:00Z")))
    code, _, err = run("simulate", flow, "--events", feed, "--from", "2026-01-05T09:00")
    assert code == 2
    assert "--from" in err and "no time zone" in err


def test_at_one_instant_every_subscribers_events_come_before_due_work(tmp_path: Path) -> None:
    flow = write(tmp_path, "w.flow", FLOW)
    feed = write(tmp_path, "e.jsonl", events(
        sub("ann", "2026-01-05T09:00:00Z"),
        sub("bob", "2026-01-06T09:00:00Z")))  # exactly when ann's step is due
    _, out, _ = run("simulate", flow, "--events", feed, "--json")
    assert [(r["at"][:10], r["subscriber"], r["kind"]) for r in map(json.loads,
                                                                   out.splitlines())] == [
        ("2026-01-05", "ann", "enter"), ("2026-01-06", "bob", "enter"),
        ("2026-01-06", "ann", "send"), ("2026-01-07", "bob", "send")]


def test_many_subscribers_spill_to_sorted_runs_with_the_same_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flow = write(tmp_path, "w.flow", FLOW)
    lines = [sub(f"s{i:02d}", f"2026-01-05T{9 + i % 5:02d}:{i:02d}:00Z") for i in range(30)]
    lines += [{"subscriber": f"s{i:02d}", "type": "click", "at": "2026-01-05T20:00:00Z"}
              for i in range(0, 30, 3)]
    feed = write(tmp_path, "e.jsonl", events(*lines))
    _, in_memory, _ = run("simulate", flow, "--events", feed, "--json", "--jobs", "1")
    monkeypatch.setattr(sim, "SUBSCRIBERS_PER_BATCH", 4)
    monkeypatch.setattr(sim, "PICKLE_CHUNK", 3)
    _, spilled, _ = run("simulate", flow, "--events", feed, "--json", "--jobs", "1")
    assert spilled == in_memory
    assert len(in_memory.splitlines()) == 30 + 10 + 20  # enters, moves, sends


# The simulator forks; a test process may have threads of its own (pytest-xdist's), which
# Python 3.12 and later warn about. The command itself forks before starting any thread.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_processes_sharing_the_subscribers_print_the_same_timeline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flow = write(tmp_path, "w.flow", FLOW)
    lines = [sub(f"s{i:02d}", f"2026-01-05T{9 + i % 5:02d}:{i:02d}:00Z") for i in range(30)]
    # ten who subscribe at one instant, written in reverse: their steps fall due together
    # exactly at --until, in the final tick, in different processes
    lines += [sub(f"t{i}", "2026-01-06T09:00:00Z") for i in reversed(range(10))]
    lines += [{"subscriber": f"s{i:02d}", "type": "click", "at": "2026-01-05T20:00:00Z"}
              for i in range(0, 30, 3)]
    # one event id repeated by subscribers whose batches go to different processes
    lines += [{"id": "same", "subscriber": who, "type": "click", "at": "2026-01-05T21:00:00Z"}
              for who in ("s28", "s01", "s13")]
    feed = write(tmp_path, "e.jsonl", events(*lines))
    monkeypatch.setattr(sim, "SUBSCRIBERS_PER_BATCH", 4)
    until = ("--until", "2026-01-07T09:00:00Z")
    code, alone, alone_err = run("simulate", flow, "--events", feed, "--json", *until,
                                 "--jobs", "1")
    assert code == 0
    for jobs in ("2", "3"):
        code, shared, shared_err = run("simulate", flow, "--events", feed, "--json", *until,
                                       "--jobs", jobs)
        assert code == 0
        assert shared == alone
        assert shared_err == alone_err
    records = [json.loads(line) for line in alone.splitlines()]
    last = [(r["subscriber"], r["kind"]) for r in records if r["at"] == "2026-01-07T09:00:00Z"]
    assert last == [(f"t{i}", "send") for i in reversed(range(10))]  # in the order they came
    moved = [r["subscriber"] for r in records
             if r["kind"] == "enter" and r["stage"] == "b" and r["at"].endswith("21:00:00Z")]
    assert moved == ["s01"]  # the repeated id is s01's alone: its subscriber came first
    assert "2 event(s) repeated an earlier event's id and were stored once" in alone_err


def test_the_table_aligns_its_columns(tmp_path: Path, in_root: None) -> None:
    _, out, _ = run("simulate", "workflows/jewelry.flow", "--events",
                    "workflows/journeys/jewelry.jsonl")
    header, *rows = out.splitlines()
    column = header.index("what")
    assert all(row[column - 2:column] == "  " and row[column] != " " for row in rows)


def test_the_funnel_of_the_example_journey(in_root: None) -> None:
    code, out, err = run("simulate", "workflows/jewelry.flow", "--events",
                         "workflows/journeys/jewelry.jsonl", "--funnel")
    assert code == 0, err
    assert out.splitlines() == [
        "workflow jewelry: 1 in it at the end; in the simulation: 2 enrolled, 1 exited "
        "(unsubscribed 1)",
        "",
        "  stage       in it at the end  entered  moved on  median stay",
        "  awareness                  0        2   1 (50%)         33 h",
        "  interest                   0        1  1 (100%)       8 days",
        "  selection                  0        1  1 (100%)         25 h",
        "  sale                       0        1  1 (100%)         24 h",
        "  after_sale                 1        1         0            -",
        "",
        "  stage       message         channel  sent  skipped",
        "  awareness   bestsellers     push        2  -",
        "  awareness   welcome         push        2  -",
        "  interest    newsletter      email       1  -",
        "  selection   discount        push        1  -",
        "  sale        sales_alert     webhook     1  -",
        "  sale        thank_you       email       1  -",
        "  after_sale  review_request  push        1  -",
    ]
    code, _, err = run("simulate", "workflows/jewelry.flow", "--events",
                       "workflows/journeys/jewelry.jsonl", "--funnel", "--from", "2026-03-03")
    assert code == 2 and "leave out --from" in err


def test_a_funnel_counted_from_the_timeline_equals_the_one_counted_in_the_database(
        nurture: Any) -> None:
    """The simulator has no database left to count in: `--funnel` counts its records, each
    send or skip in the stage the subscriber was in when it was recorded. On the same run
    both counts agree: stages, entries, exits, and each message's sends and skips."""
    start = datetime(2026, 3, 2, 7, tzinfo=UTC)
    flow = nurture.load(str(ROOT / "workflows" / "jewelry.flow"), start=start)
    events = journeys(150, 12, start, timedelta(days=10), per_visit=3)
    events += [Event(f"sub{n:07d}", "unsubscribed", start + timedelta(days=5, minutes=n), {},
                     None, 10_000 + n) for n in range(0, 150, 7)]
    events.sort(key=lambda e: e.at)
    for batch in batches(events, 100):
        flow.advance_to(max(flow.now, batch[-1].at))
        flow.engine.ingest(batch)
    flow.advance(days=30)
    tally = TimelineTally()
    for record in flow.records:
        tally.add(json.loads(record.to_json()))
    [from_timeline] = tally.finished()
    with flow.database.reading() as connection:
        from_database = funnel.funnel(connection, "jewelry", None)

    def shown(counts: funnel.FunnelCounts) -> tuple[Any, ...]:
        return (counts.in_stage, counts.entered, counts.enrolled, counts.exits,
                sorted((m.stage, m.message, m.channel, m.sent, m.skipped)
                       for m in counts.messages))

    assert shown(from_timeline) == shown(from_database)
    # how long each stayed, to the second (the records give whole seconds, the database more)
    assert from_timeline.moves.keys() == from_database.moves.keys()
    for move, stays in from_database.moves.items():
        pairs = zip(sorted(from_timeline.moves[move]), sorted(stays), strict=True)
        assert all(abs(told - stored) < 1 for told, stored in pairs), move
    assert from_database.exits["unsubscribed"] > 10 and len(from_database.entered) == 5
    assert sum(len(stays) for stays in from_database.moves.values()) > 100
    assert ("selection", "interest") in from_database.moves  # gone cold: `when idle`


def test_a_file_saved_with_a_byte_order_mark_and_crlf_lines_is_read(tmp_path: Path) -> None:
    # as spreadsheet and Windows tools save "UTF-8" text; JSON allows ignoring the mark
    flow = write(tmp_path, "w.flow", FLOW)
    feed = tmp_path / "e.jsonl"
    text = events(sub("ann", "2026-01-05T09:00:00Z")).replace("\n", "\r\n")
    feed.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    code, out, err = run("simulate", flow, "--events", str(feed), "--json")
    assert code == 0, out + err
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["enter", "send"]


@pytest.mark.parametrize(("content", "message"), [
    ("[" + json.dumps(sub("ann", "2026-01-05T09:00:00Z")) + "]\n",
     "1:1: error: expected an event (a JSON object), got a list: write one event per line "
     "(JSON lines), not an array"),
    (None, "1:1: error: UTF-16 text, not UTF-8: save the file as UTF-8"),
])
def test_a_file_in_another_shape_or_encoding_says_what_to_do(tmp_path: Path,
                                                             content: str | None,
                                                             message: str) -> None:
    flow = write(tmp_path, "w.flow", FLOW)
    feed = tmp_path / "e.jsonl"
    if content is None:  # "Unicode text" as a spreadsheet saves it: UTF-16 with its mark
        feed.write_bytes(events(sub("ann", "2026-01-05T09:00:00Z")).encode("utf-16"))
    else:
        feed.write_text(content, encoding="utf-8")
    code, out, err = run("simulate", flow, "--events", str(feed))
    assert code == 1
    assert out.splitlines() == [f"{feed}:{message}"]
    assert "Traceback" not in out + err


def test_the_table_shows_control_characters_rather_than_obeying_them(tmp_path: Path) -> None:
    """Subscribers' data reaches the operator's terminal: an escape sequence (here one that
    would clear the screen), a line break and a right-to-left override are shown escaped."""
    flow = write(tmp_path, "w.flow", """\
workflow w { stage a { on enter: send push p } }
message p push { title "Hi {{ subscriber.first_name }}" }
""")
    feed = write(tmp_path, "e.jsonl", events(
        {"subscriber": "ann\u202egnp.exe", "type": "subscribed", "at": "2026-01-05T09:00:00Z",
         "properties": {"channels": ["push"],
                        "attributes": {"first_name": "Ann\x1b[2J\nBob\x9b"}}}))
    code, out, _ = run("simulate", flow, "--events", feed)
    assert code == 0
    assert out.splitlines()[-1] == (
        "2026-01-05 09:00:00  ann\\u202egnp.exe  w         send push p: Hi Ann\\x1b[2J\\nBob\\x9b")
    assert not any(c in out for c in "\x1b\u202e\x9b\t")
