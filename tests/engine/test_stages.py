"""SPEC §1.5 and §1.5a (entering, ordering, chaining), in frozen time with exact instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dsl.loader import load_text
from engine.events import parse_event
from engine.records import Record
from engine.simulate import simulate
from tests.engine.conftest import MESSAGES, START, brief, sends


def test_enrolment_enters_the_start_stage_at_the_entry_event(flow) -> None:
    run = flow("""\
workflow w {
  entry on subscribed where source == "footer"
  start at second
  stage first { }
  stage second { on enter: send push hello }
}
""")
    run.event("bob", "subscribed", channels=["push"], source="popup")
    assert run.stage("bob") is None
    run.event("ann", "subscribed", channels=["push"], source="footer")
    assert brief(run.timeline("ann")) == [
        ("2026-01-05T09:00:00Z", "enter", "second"),
        ("2026-01-05T09:00:00Z", "send", "push hello"),
    ]


def test_a_second_entry_event_does_not_enrol_twice(flow) -> None:
    run = flow("workflow w { stage a { on enter: send push hello } }\n")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(days=1)
    run.event("ann", "subscribed", channels=["push"])
    assert sends(run) == [("2026-01-05T09:00:00Z", "hello")]


def test_after_runs_once_and_every_runs_at_nominal_times_n_times(flow) -> None:
    run = flow("""\
workflow w {
  stage a {
    after 10 minutes: send push hello
    every 3 days, 3 times: send push drip
  }
}
""")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(days=30)
    assert sends(run) == [
        ("2026-01-05T09:10:00Z", "hello"),
        ("2026-01-08T09:00:00Z", "drip"),
        ("2026-01-11T09:00:00Z", "drip"),
        ("2026-01-14T09:00:00Z", "drip"),
    ]


def test_every_without_a_count_goes_on_while_in_the_stage(flow) -> None:
    run = flow("workflow w { stage a { every 1 week: send push drip } }\n")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(weeks=5)
    assert [t for t, _ in sends(run)] == [
        "2026-01-12T09:00:00Z", "2026-01-19T09:00:00Z", "2026-01-26T09:00:00Z",
        "2026-02-02T09:00:00Z", "2026-02-09T09:00:00Z"]


UNLESS = """\
workflow w {
  stage browsing { go to cart on add_to_cart }
  stage cart {
    after 2 days unless purchase: send push nudge
    after 3 days: send push later
  }
}
"""


def test_after_unless_is_cancelled_by_the_event_since_entering(flow) -> None:
    run = flow(UNLESS)
    run.event("ann", "subscribed", channels=["push"])
    run.event("ann", "add_to_cart")
    run.advance(days=1)
    run.event("ann", "purchase")
    run.advance(days=5)
    assert sends(run) == [("2026-01-08T09:00:00Z", "later")]


def test_after_unless_ignores_the_event_before_entering(flow) -> None:
    run = flow(UNLESS)
    run.event("ann", "subscribed", channels=["push"])
    run.event("ann", "purchase")  # before entering `cart`
    run.advance(hours=1)
    run.event("ann", "add_to_cart")
    run.advance(days=5)
    assert sends(run) == [("2026-01-07T10:00:00Z", "nudge"), ("2026-01-08T10:00:00Z", "later")]


def test_go_when_reads_scores_attributes_and_tags(flow) -> None:
    run = flow("""\
workflow w {
  score engagement { on page_view +10 }
  tag "vip" on purchase where amount >= 500
  stage a { go to b when engagement >= 20 }
  stage b { go to c when plan == "pro" }
  stage c { go to d when has tag "vip" }
  stage d { }
}
""")
    run.event("ann", "subscribed", channels=[])
    run.event("ann", "page_view")
    assert run.stage("ann") == "a"
    run.event("ann", "page_view")
    assert run.stage("ann") == "b"
    run.event("ann", "attributes", plan="pro")
    assert run.stage("ann") == "c"
    run.event("ann", "purchase", amount=100)
    assert run.stage("ann") == "c"
    run.event("ann", "purchase", amount=800)
    assert run.stage("ann") == "d"
    assert run.tags("ann") == {"vip"}


def test_go_on_event_with_where(flow) -> None:
    run = flow("""\
workflow w {
  stage a { go to b on form_submit where form == "demo" }
  stage b { }
}
""")
    run.event("ann", "subscribed", channels=[])
    run.event("ann", "form_submit", form="newsletter")
    assert run.stage("ann") == "a"
    run.event("ann", "form_submit", form="demo")
    assert run.stage("ann") == "b"


def test_go_after_moves_at_the_exact_instant(flow) -> None:
    run = flow("""\
workflow w {
  stage a { go to b after 1 day }
  stage b { on enter: send push hello }
}
""")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=23, minutes=59)
    assert run.stage("ann") == "a"
    run.advance(minutes=1)
    assert run.stage("ann") == "b"
    assert sends(run) == [("2026-01-06T09:00:00Z", "hello")]


IDLE = """\
workflow w {
  stage a { go to b on click }
  stage b { go to c when idle for 3 days }
  stage c { on enter: send push nudge }
}
"""


def test_idle_counts_from_the_later_of_entry_and_the_last_event(flow) -> None:
    run = flow(IDLE)
    run.event("ann", "subscribed", channels=["push"])
    run.event("ann", "click")                     # enters b at Mon 09:00
    run.advance(days=2)
    run.event("ann", "page_view")                 # Wed 09:00: the clock restarts
    run.advance(days=2, hours=23)
    assert run.stage("ann") == "b"                # Sat 08:00: idle 2 days 23 hours
    run.advance(hours=1)
    assert run.stage("ann") == "c"
    assert sends(run) == [("2026-01-10T09:00:00Z", "nudge")]


def test_idle_from_entry_when_the_last_event_is_older(flow) -> None:
    run = flow("""\
workflow w {
  stage a { go to b after 5 days }
  stage b { go to c when idle for 3 days }
  stage c { }
}
""")
    run.event("ann", "subscribed", channels=[])
    run.advance(days=7, hours=23)
    assert run.stage("ann") == "b"  # idle 7 days, but in b only since day 5
    run.advance(hours=1)
    assert brief(run.timeline("ann", "enter")) == [
        ("2026-01-05T09:00:00Z", "enter", "a"),
        ("2026-01-10T09:00:00Z", "enter", "b"),
        ("2026-01-13T09:00:00Z", "enter", "c"),
    ]


def test_transitions_are_tried_in_written_order_first_wins(flow) -> None:
    run = flow("""\
workflow w {
  score s { on click +10 }
  stage a {
    go to c when s >= 10
    go to b on click
  }
  stage b { }
  stage c { }
}
""")
    run.event("ann", "subscribed", channels=[])
    run.event("ann", "click")
    assert run.stage("ann") == "c"


def test_one_event_carries_across_several_stages_running_each_entry(flow) -> None:
    run = flow("""\
workflow w {
  score s { on purchase +100 }
  stage a { go to b when s >= 10 }
  stage b {
    on enter: send push hello
    after 1 day: send push later
    go to c when s >= 50
  }
  stage c { on enter: send email letter }
}
""")
    run.event("ann", "subscribed", channels=["push", "email"], email="ann@example.com")
    run.event("ann", "purchase")
    run.advance(days=2)
    assert brief(run.timeline("ann"))[1:] == [
        ("2026-01-05T09:00:00Z", "score", "s +100 = 100"),
        ("2026-01-05T09:00:00Z", "enter", "b"),
        ("2026-01-05T09:00:00Z", "send", "push hello"),
        ("2026-01-05T09:00:00Z", "enter", "c"),
        ("2026-01-05T09:00:00Z", "send", "email letter"),
    ]  # b's `after 1 day` was cancelled when the subscriber left b


def test_chaining_never_loops(flow) -> None:
    run = flow("""\
workflow w {
  score s { on click +1 }
  stage a { go to b when s >= 1 }
  stage b { go to a when s >= 1 }
}
""")
    run.event("ann", "subscribed", channels=[])
    run.event("ann", "click")
    assert [b[2] for b in brief(run.timeline("ann", "enter"))] == ["a", "b"]
    run.event("ann", "click")  # the next evaluation moves again, once
    assert run.stage("ann") == "a"


def test_entering_runs_on_enter_then_starts_timers_then_tries_when(flow) -> None:
    run = flow("""\
workflow w {
  stage a {
    go to b when stage_done == true
    on enter: send push hello
    after 1 minute: send push later
  }
  stage b { }
}
""")
    run.event("ann", "subscribed", channels=["push"], attributes={"stage_done": True})
    assert brief(run.timeline("ann")) == [
        ("2026-01-05T09:00:00Z", "enter", "a"),
        ("2026-01-05T09:00:00Z", "send", "push hello"),  # on enter ran before the move
        ("2026-01-05T09:00:00Z", "enter", "b"),
    ]
    run.advance(minutes=5)
    assert len(run.sent("ann")) == 1  # the timer started and was cancelled by the move


def test_leaving_a_stage_cancels_its_pending_steps(flow) -> None:
    run = flow("""\
workflow w {
  stage a {
    every 1 day: send push drip
    after 3 days: send push later
    go to b on click
  }
  stage b { }
}
""")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(days=1, hours=12)
    run.event("ann", "click")
    run.advance(days=10)
    assert sends(run) == [("2026-01-06T09:00:00Z", "drip")]


def test_exit_ends_the_enrolment_and_cancels_pending_sends(flow) -> None:
    run = flow("""\
workflow w {
  exit on unsubscribed
  exit on account_closed where why == "moved"
  stage a { after 1 day: send email letter }
}
""")
    run.event("ann", "subscribed", channels=["email"], email="ann@example.com")
    run.event("ann", "account_closed", why="price")
    run.advance(hours=1)
    run.event("ann", "account_closed", why="moved")
    run.advance(days=2)
    assert brief(run.timeline("ann")) == [
        ("2026-01-05T09:00:00Z", "enter", "a"),
        ("2026-01-05T10:00:00Z", "exit", "account_closed"),
    ]
    assert run.stage("ann") is None


def test_re_entry_after_exit_starts_again_at_the_start_stage(flow) -> None:
    run = flow("""\
workflow w {
  exit on unsubscribed
  stage a { go to b on click }
  stage b { }
}
""")
    run.event("ann", "subscribed", channels=["push"])
    run.event("ann", "click")
    run.event("ann", "unsubscribed")
    run.advance(days=1)
    run.event("ann", "subscribed", channels=["push"])
    assert brief(run.timeline("ann")) == [
        ("2026-01-05T09:00:00Z", "enter", "a"),
        ("2026-01-05T09:00:00Z", "enter", "b"),
        ("2026-01-05T09:00:00Z", "exit", "unsubscribed"),
        ("2026-01-06T09:00:00Z", "enter", "a"),
    ]


def test_an_exit_and_a_re_entry_in_one_batch_of_events(flow) -> None:
    """The stored enrolment is ended before the new one is written (at most one enrolment
    of a subscriber in a workflow is active): a client sending both in one request, or two
    requests written together, stores both."""
    run = flow("""\
workflow w {
  exit on unsubscribed
  stage a { on enter: send push hello }
}
""")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=1)
    result = run.events([
        {"subscriber": "ann", "type": "unsubscribed", "at": "2026-01-05T09:30:00Z"},
        {"subscriber": "ann", "type": "subscribed", "at": "2026-01-05T09:45:00Z",
         "properties": {"channels": ["push"]}}])
    assert result.accepted == 2
    assert brief(run.timeline("ann")) == [
        ("2026-01-05T09:00:00Z", "enter", "a"),
        ("2026-01-05T09:00:00Z", "send", "push hello"),
        ("2026-01-05T09:30:00Z", "exit", "unsubscribed"),
        ("2026-01-05T09:45:00Z", "enter", "a"),
        ("2026-01-05T09:45:00Z", "send", "push hello"),
    ]
    assert run.stage("ann") == "a"


def test_transitions_are_evaluated_at_decay_boundaries(flow) -> None:
    run = flow("""\
workflow w {
  score engagement { on page_view +30 decay 50% every 7 days }
  stage cold { go to warm when engagement >= 20 }
  stage warm { go to cold when engagement < 20 }
}
""")
    run.event("ann", "subscribed", channels=[])
    run.event("ann", "page_view")
    assert run.stage("ann") == "warm"
    run.advance(days=6, hours=23)
    assert run.stage("ann") == "warm"
    run.advance(hours=1)  # 30 → 15 at exactly 7 days: the lead moves back
    assert brief(run.timeline("ann"))[-2:] == [
        ("2026-01-12T09:00:00Z", "score", "engagement -15 = 15"),
        ("2026-01-12T09:00:00Z", "enter", "cold"),
    ]


def test_a_due_step_and_a_timed_move_at_one_instant_run_in_planned_order(flow) -> None:
    run = flow("""\
workflow w {
  stage a {
    go to b after 1 day
    every 1 day: send push drip
  }
  stage b { }
}
""")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(days=2)
    # The step's timer starts before the transition's (SPEC §1.5a): the drip goes, then the move.
    assert brief(run.timeline("ann"))[1:] == [
        ("2026-01-06T09:00:00Z", "send", "push drip"),
        ("2026-01-06T09:00:00Z", "enter", "b"),
    ]


TIMED = """\
workflow w {
  score engagement { on page_view +30 decay 50% every 1 day }
  stage a {
    after 1 day: send push drip
    go to b after 1 day
  }
  stage b { on enter: send push hello }
}
"""

STEP_THEN_MOVE = [
    ("2026-01-06T09:00:00Z", "send", "push drip"),  # the step's timer was started first
    ("2026-01-06T09:00:00Z", "enter", "b"),
    ("2026-01-06T09:00:00Z", "send", "push hello"),
]


def test_an_event_at_a_timed_moves_instant_comes_first_and_does_not_move() -> None:
    """Events before the due work of their instant (SPEC §1.5a): a page view at the very
    instant of `go to b after 1 day` is processed in `a`, then the step due then, then the
    move. The same as without the page view: it does not cut the step off. (Simulated: the
    test fixture's clock ticks on reaching an instant, before events of that instant.)"""
    loaded = load_text(TIMED + MESSAGES, "w.flow")
    assert loaded.catalog is not None
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    events = [parse_event({"subscriber": "ann", "type": "subscribed", "at": START,
                           "properties": {"channels": ["push"]}}, 0),
              parse_event({"subscriber": "ann", "type": "page_view",
                           "at": "2026-01-06T09:00:00Z"}, 1)]
    records: list[Record] = []
    simulate(loaded.catalog, events, start, start + timedelta(days=1, hours=1),
             lambda _: None, lambda record: records.append(record) or "")
    assert brief(records) == [
        ("2026-01-05T09:00:00Z", "enter", "a"),
        ("2026-01-06T09:00:00Z", "score", "engagement +30 = 30"),
        *STEP_THEN_MOVE,
    ]


def test_due_work_planned_earlier_at_a_timed_moves_instant_does_not_move_early(flow) -> None:
    """A decay step planned before the stage was entered falls on the instant of its `go to
    b after 1 day`: due work runs in the order planned, so the decay, then the stage's step,
    then the move; the decay's look at the transitions does not take the move early."""
    run = flow(TIMED.replace("stage a {", "start at z\n  stage z { go to a on click }\n"
                                           "  stage a {"))
    run.event("ann", "subscribed", channels=["push"])
    run.event("ann", "page_view")  # decays at 2026-01-06T09:00, planned now
    run.event("ann", "click")  # into `a`: its step and move are due at 2026-01-06T09:00 too
    run.advance(days=1)
    assert brief(run.timeline("ann"))[2:] == [
        ("2026-01-05T09:00:00Z", "enter", "a"),
        ("2026-01-06T09:00:00Z", "score", "engagement -15 = 15"),
        *STEP_THEN_MOVE,
    ]


def test_two_workflows_run_side_by_side_and_share_tags(flow) -> None:
    run = flow("""\
workflow first {
  tag "buyer" on purchase
  stage a { }
}
workflow second {
  entry on purchase
  stage x { go to y when has tag "buyer" }
  stage y { }
}
""")
    run.event("ann", "subscribed", channels=[])
    run.event("ann", "purchase")
    assert run.stage("ann", "first") == "a"
    assert run.stage("ann", "second") == "y"


def test_a_transition_to_its_own_stage_never_moves_and_shadows_those_after_it(flow) -> None:
    """The first transition that holds wins (SPEC §1.5) and the stage is already visited:
    nothing happens, and the later transition is not tried (`nurture check` warns)."""
    run = flow("""\
workflow w {
  score s { on ping +1 }
  stage a {
    go to a after 7 days
    go to b when s >= 1
  }
  stage b { }
}
""")
    run.event("ann", "subscribed", channels=[])
    run.event("bob", "subscribed", channels=[])
    run.advance(days=1)
    run.event("ann", "ping")  # before the 7 days: the second transition is tried
    run.advance(days=7)
    run.event("bob", "ping")  # after: the first one holds, and does nothing
    assert (run.stage("ann"), run.stage("bob")) == ("b", "a")
