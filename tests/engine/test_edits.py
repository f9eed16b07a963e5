"""Editing a workflow while subscribers are in it (the service reloads the files when they
change): pending work follows its own step, whatever lines the edit moves; work of a step the
edit removes or rewrites is dropped; subscribers in a stage the edit removes stay there,
untouched, and nothing fails. Frozen time, exact instants."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from engine.records import format_instant
from tests.engine.conftest import MESSAGES, brief, sends

DRIP = """\
workflow w {
  stage a {
    after 1 day: send push hello
    every 2 days, 3 times: send push drip
  }
}
"""
DRIP_SENDS = [
    ("2026-01-06T09:00:00Z", "hello"),
    ("2026-01-07T09:00:00Z", "drip"),
    ("2026-01-09T09:00:00Z", "drip"),
    ("2026-01-11T09:00:00Z", "drip"),
]


def edit(workflow: str) -> None:
    """The marketer saves a new version of `w.flow` (the `flow` fixture's file)."""
    Path("w.flow").write_text(workflow + MESSAGES, encoding="utf-8")


def test_a_step_inserted_above_pending_work_leaves_that_work_to_its_own_step(flow) -> None:
    run = flow(DRIP)
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=1)
    edit(DRIP.replace("    after 1 day:", "    after 3 hours: send push nudge\n    after 1 day:"))
    run.reload()
    run.event("bob", "subscribed", channels=["push"])  # 10:00, under the new version
    run.advance(days=10)
    assert sends(run, "ann") == DRIP_SENDS  # no nudge: ann entered before it existed
    assert sends(run, "bob") == [
        ("2026-01-05T13:00:00Z", "nudge"),
        ("2026-01-06T10:00:00Z", "hello"),
        ("2026-01-07T10:00:00Z", "drip"),
        ("2026-01-09T10:00:00Z", "drip"),
        ("2026-01-11T10:00:00Z", "drip"),
    ]


def test_swapped_steps_keep_their_own_messages_times_and_counts(flow) -> None:
    run = flow(DRIP)
    run.event("ann", "subscribed", channels=["push"])
    run.advance(days=2, hours=1)  # hello and the first drip are out
    edit("""\
workflow w {
  stage a {
    every 2 days, 3 times: send push drip
    after 1 day: send push hello
  }
}
""")
    run.reload()
    run.advance(days=10)
    assert sends(run) == DRIP_SENDS


def test_a_removed_step_takes_its_pending_work_with_it(flow) -> None:
    run = flow(DRIP)
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=1)
    edit(DRIP.replace("    after 1 day: send push hello\n", ""))
    run.reload()
    run.advance(days=10)
    assert sends(run) == DRIP_SENDS[1:]


def test_a_step_that_sends_another_message_is_another_step(flow) -> None:
    run = flow(DRIP)
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=1)
    edit(DRIP.replace("after 1 day: send push hello", "after 1 day: send push nudge"))
    run.reload()  # the pending hello goes with its step; nudge starts for newcomers
    run.advance(days=10)
    assert sends(run) == DRIP_SENDS[1:]


def test_a_step_edited_in_its_details_keeps_its_pending_work(flow) -> None:
    """The same message from the same kind of step, with another delay, count, interval or
    `with` value, is still the marketer's step: what it planned goes on, under the edit."""
    version = """workflow w {
  stage a {
    after 1 day: send push hello with who = "friend"
    every 2 days, 2 times: send push drip
  }
}
"""
    run = flow(version, messages=MESSAGES.replace(
        "title \"Hello {{ subscriber.first_name | default('you') }}\"",
        "title \"Hello {{ who }}\""))
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=1)
    Path("w.flow").write_text(Path("w.flow").read_text(encoding="utf-8").replace(
        'after 1 day: send push hello with who = "friend"',
        'after 3 days: send push hello with who = "dear friend"').replace(
        "every 2 days, 2 times", "every 24 hours, 4 times"), encoding="utf-8")
    run.reload()
    run.advance(days=10)
    assert [(format_instant(r.at), r.fields["title"]) for r in run.sent("ann")] == [
        ("2026-01-06T09:00:00Z", "Hello dear friend"),  # the time planned, the new values
        ("2026-01-07T09:00:00Z", "Drip #a"),  # planned as the first of every 2 days
        ("2026-01-08T09:00:00Z", "Drip #a"),  # then every 24 hours from it, 4 in all
        ("2026-01-09T09:00:00Z", "Drip #a"),
        ("2026-01-10T09:00:00Z", "Drip #a"),
    ]


def test_a_timed_move_waits_for_a_delay_an_edit_made_longer(flow) -> None:
    version = """workflow w {
  stage a { go to b after 1 day }
  stage b { }
}
"""
    run = flow(version)
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=1)
    edit(version.replace("go to b after 1 day", "go to b after 3 days"))
    run.reload()
    run.advance(days=5)
    assert brief(run.timeline("ann", "enter")) == [
        ("2026-01-05T09:00:00Z", "enter", "a"),
        ("2026-01-08T09:00:00Z", "enter", "b"),
    ]


def test_a_timed_move_an_edit_added_moves_at_its_instant_with_the_work_due_then(flow) -> None:
    """Nobody in the stage has a timer for a `go to … after` that an edit added: the first
    evaluation at or after its instant moves them (here the drip due at that very instant)."""
    version = """workflow w {
  stage a { every 12 hours: send push drip }
  stage b { }
}
"""
    run = flow(version)
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=1)
    edit(version.replace("stage a { every", "stage a { go to b after 1 day\n  every"))
    run.reload()
    run.advance(days=3)
    assert brief(run.timeline("ann"))[2:] == [
        ("2026-01-06T09:00:00Z", "send", "push drip"),
        ("2026-01-06T09:00:00Z", "enter", "b"),
    ]


def test_a_step_whose_message_another_step_also_sends_is_known_by_its_whole_text(flow) -> None:
    """Two steps sending the same message are told apart by their timing: adding the second
    leaves the first's work alone; changing the timing of one drops that one's work (which
    of the two it belonged to can no longer be told)."""
    version = """workflow w {
  stage a {
    after 1 day: send push hello
  }
}
"""
    run = flow(version)
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=1)
    twins = version.replace("    after 1 day: send push hello\n",
                            "    after 1 day: send push hello\n"
                            "    after 3 days: send push hello\n")
    edit(twins)
    run.reload()
    run.event("bob", "subscribed", channels=["push"])
    run.advance(hours=1)
    edit(twins.replace("after 3 days", "after 4 days"))
    run.reload()
    run.advance(days=5)
    assert sends(run, "ann") == [("2026-01-06T09:00:00Z", "hello")]
    assert sends(run, "bob") == [("2026-01-06T10:00:00Z", "hello")]  # not its 3-day twin


def test_a_postponed_send_goes_out_as_its_own_step_after_an_edit(flow) -> None:
    version = """\
workflow w {
  quiet hours 21:00 to 08:00
  stage a {
    on enter: send push hello
  }
}
"""
    run = flow(version, start="2026-01-05T21:30:00Z")
    run.event("ann", "subscribed", channels=["push"])  # hello waits for 08:00
    run.advance(hours=1)
    edit(version.replace("    on enter:", "    after 1 day: send push drip\n    on enter:"))
    run.reload()
    run.advance(days=1)
    assert sends(run) == [("2026-01-06T08:00:00Z", "hello")]


def test_two_sends_of_one_visit_stay_two_when_an_edit_swaps_their_steps(flow) -> None:
    """Deliveries of a stage visit are filed under the step's number as the subscriber
    entered: after a swap, the second step's send does not take the first one's place."""
    version = """\
workflow w {
  stage a {
    after 1 hour: send push hello
    after 1 day: send push later
  }
}
"""
    run = flow(version)
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=2)
    edit(version.replace("after 1 hour: send push hello", "@").replace(
        "after 1 day: send push later", "after 1 hour: send push hello").replace(
        "@", "after 1 day: send push later"))
    run.reload()
    run.advance(days=2)
    assert sends(run) == [("2026-01-05T10:00:00Z", "hello"), ("2026-01-06T09:00:00Z", "later")]
    with run.database.transaction() as connection:
        filed = connection.execute(text(
            "SELECT step, message FROM deliveries ORDER BY decided_at")).all()
    assert [tuple(row) for row in filed] == [(0, "hello"), (1, "later")]


def test_a_removed_idle_transition_no_longer_moves_anyone(flow) -> None:
    version = """\
workflow w {
  stage a {
    go to b when idle for 3 days
  }
  stage b { on enter: send push hello }
}
"""
    run = flow(version)
    run.event("ann", "subscribed", channels=["push"])
    edit(version.replace("    go to b when idle for 3 days\n", "    go to b on purchase\n"))
    run.reload()
    run.advance(days=5)
    assert run.stage("ann") == "a"
    run.event("ann", "purchase")
    assert run.stage("ann") == "b"


def test_subscribers_in_a_removed_stage_stay_there_until_it_comes_back(flow) -> None:
    version = """\
workflow w {
  score engagement { on page_view +5 }
  stage a {
    after 2 days: send push hello
    go to b on purchase
  }
  stage b { on enter: send push later }
}
"""
    run = flow(version)
    run.event("ann", "subscribed", channels=["push"])
    edit(version.replace("stage a {", "stage first {"))
    run.reload()
    run.advance(days=3)
    run.event("ann", "page_view")  # scored; no stage to move her from
    run.event("ann", "purchase")
    assert (run.stage("ann"), run.score("ann", "engagement")) == ("a", 5)
    edit(version)
    run.reload()
    run.event("ann", "purchase")
    assert brief(run.timeline("ann", "enter")) == [
        ("2026-01-05T09:00:00Z", "enter", "a"),
        ("2026-01-08T09:00:00Z", "enter", "b"),
    ]
    assert sends(run) == [("2026-01-08T09:00:00Z", "later")]  # hello was dropped with a


def test_work_planned_before_step_keys_runs_by_its_number(flow) -> None:
    """Rows written before step keys were stored name their step by number only: they run
    as before, and one whose number an edit has taken away is dropped, not a crash."""
    run = flow(DRIP)
    run.event("ann", "subscribed", channels=["push"])
    with run.database.transaction() as connection:
        connection.execute(text("UPDATE schedule SET step_key = NULL"))
    run.engine.cache.clear()
    run.advance(hours=1)
    edit(DRIP.replace("    every 2 days, 3 times: send push drip\n", ""))
    run.reload()
    run.advance(days=10)
    assert sends(run, "ann") == DRIP_SENDS[:1]


CAPPED = """\
workflow w {
  score engagement {
    on email_open +10 max 20 per week
  }
  stage a { }
}
"""


def test_a_max_counts_what_its_rule_added_wherever_an_edit_moves_the_rule(flow) -> None:
    run = flow(CAPPED)
    run.event("ann", "subscribed", channels=["push"])
    run.event("ann", "email_open")
    run.event("ann", "email_open")
    edit(CAPPED.replace("  score engagement {\n",
                        "  score engagement {\n    on page_view +1  # new line above\n"))
    run.reload()
    run.advance(hours=1)
    run.event("ann", "email_open")  # the week's 20 are used up, on whatever line
    assert run.score("ann", "engagement") == 20
    edit(CAPPED.replace("max 20 per week", "max 30 per week"))
    run.reload()
    run.event("ann", "email_open")  # a higher cap over the same week's history
    run.event("ann", "email_open")
    assert run.score("ann", "engagement") == 30
    assert [line.rule for line in run.ledger("ann")] == ["w.flow:3", "w.flow:3", "w.flow:3"]


def test_a_max_still_counts_ledger_rows_written_before_rule_keys(flow) -> None:
    run = flow(CAPPED)
    run.event("ann", "subscribed", channels=["push"])
    run.event("ann", "email_open")
    run.event("ann", "email_open")
    with run.database.transaction() as connection:
        connection.execute(text("UPDATE ledger SET rule_key = NULL"))
    run.engine.cache.clear()
    run.advance(hours=1)
    run.event("ann", "email_open")
    assert run.score("ann", "engagement") == 20


def test_an_operator_moves_the_subscribers_of_a_renamed_stage(flow) -> None:
    """`nurture move` (here the engine's `move`): the stage is entered as by a transition,
    its steps and timers starting then."""
    version = """\
workflow w {
  stage a {
    after 2 days: send push hello
    go to b on purchase
  }
  stage b { on enter: send push later }
}
"""
    run = flow(version)
    run.event("ann", "subscribed", channels=["push"])
    run.event("bob", "subscribed", channels=["push"])
    run.advance(hours=1)
    edit(version.replace("stage a {", "stage first {"))
    run.reload()
    with pytest.raises(ValueError, match="workflow 'w' has no stage 'nowhere'"):
        run.engine.move("w", "a", "nowhere")
    assert run.engine.move("w", "a", "first") == 2
    assert run.engine.move("w", "a", "first") == 0  # nobody left there
    assert (run.stage("ann"), run.stage("bob")) == ("first", "first")
    run.advance(days=3)
    run.event("ann", "purchase")
    assert brief(run.timeline("ann", "enter")) == [
        ("2026-01-05T09:00:00Z", "enter", "a"),
        ("2026-01-05T10:00:00Z", "enter", "first"),
        ("2026-01-08T10:00:00Z", "enter", "b"),
    ]
    assert sends(run, "ann") == [("2026-01-07T10:00:00Z", "hello"),
                                 ("2026-01-08T10:00:00Z", "later")]
