"""SPEC §1.4 and §1.5a "score records", in frozen time with exact instants and values."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.store.states import SCORES
from engine.testing import FlowTest
from tests.engine.conftest import brief

SCORED = """\
workflow w {
  score engagement {
    on page_view where url contains "/pricing"   +2
    on purchase                                  +25
    on purchase where amount > 1000              +50
    on email_open                                +10 max 30 per week
    on offer_declined                            -20
  }
  stage only { }
}
"""


def scores(run: FlowTest) -> list[tuple[str, str, str]]:
    return [b for b in brief(run.timeline("ann")) if b[1] == "score"]


def test_each_matching_rule_adds_its_points_in_written_order(flow) -> None:
    run = flow(SCORED)
    run.event("ann", "purchase", amount=1200)
    assert scores(run) == [
        ("2026-01-05T09:00:00Z", "score", "engagement +25 = 25"),
        ("2026-01-05T09:00:00Z", "score", "engagement +50 = 75"),
    ]
    assert [r.get("rule") for r in run.timeline("ann", "score")] == ["w.flow:4", "w.flow:5"]


def test_where_filters_on_event_properties_and_a_missing_property_is_false(flow) -> None:
    run = flow(SCORED)
    run.event("ann", "page_view", url="/pricing/teams")
    run.event("ann", "page_view", url="/about")
    run.event("ann", "page_view")  # no url at all
    run.event("ann", "purchase", amount="not a number")  # only the +25 rule
    assert run.score("ann", "engagement") == 27


def test_scores_may_go_negative_and_start_at_zero(flow) -> None:
    run = flow(SCORED)
    assert run.score("ann", "engagement") == 0
    run.event("ann", "offer_declined")
    assert run.score("ann", "engagement") == -20
    assert scores(run) == [("2026-01-05T09:00:00Z", "score", "engagement -20 = -20")]


def test_max_per_period_adds_only_what_is_left_and_then_nothing(flow) -> None:
    run = flow(SCORED.replace("+10 max 30", "+12 max 30"))
    for _ in range(4):
        run.event("ann", "email_open")
        run.advance(minutes=10)
    assert scores(run) == [
        ("2026-01-05T09:00:00Z", "score", "engagement +12 = 12"),
        ("2026-01-05T09:10:00Z", "score", "engagement +12 = 24"),
        ("2026-01-05T09:20:00Z", "score", "engagement +6 = 30"),  # only 6 left
        # 09:30: nothing left: no ledger entry, no record
    ]
    assert len(run.ledger("ann")) == 3


def test_max_on_a_negative_rule_caps_the_points_it_takes_away(flow) -> None:
    """`on offer_declined -20 max 30 per week`: at most 30 points taken away a week."""
    run = flow(SCORED.replace("-20\n", "-20 max 30 per week\n"))
    for _ in range(3):
        run.event("ann", "offer_declined")
        run.advance(days=1)
    run.advance_to("2026-01-12T09:00:00Z")  # the first decline has left the window
    run.event("ann", "offer_declined")
    assert scores(run) == [
        ("2026-01-05T09:00:00Z", "score", "engagement -20 = -20"),
        ("2026-01-06T09:00:00Z", "score", "engagement -10 = -30"),  # only 10 left to take
        # Wed: nothing left: no record
        ("2026-01-12T09:00:00Z", "score", "engagement -20 = -50"),
    ]


def test_max_window_is_rolling_and_excludes_exactly_one_period_earlier(flow) -> None:
    run = flow(SCORED)
    run.event("ann", "email_open")                      # Mon 09:00 +10
    run.advance(days=1)
    run.event("ann", "email_open")                      # Tue 09:00 +10
    run.event("ann", "email_open")                      # Tue 09:00 +10 (30 reached)
    run.advance_to("2026-01-12T08:59:59Z")
    run.event("ann", "email_open")                      # Mon 09:00 is still in (t-7d, t]
    run.advance_to("2026-01-12T09:00:00Z")
    run.event("ann", "email_open")                      # exactly 7 days later: it no longer counts
    run.event("ann", "email_open")                      # Tue's two still count: full again
    assert scores(run)[-1] == ("2026-01-12T09:00:00Z", "score", "engagement +10 = 40")
    assert len(scores(run)) == 4


def test_the_max_window_survives_between_batches(flow) -> None:
    """Cap accounting is reloaded from the ledger, not kept in process memory."""
    run = flow(SCORED)
    run.event("ann", "email_open")
    run.event("ann", "email_open")
    run.advance(days=3)
    run.event("ann", "email_open")
    run.event("ann", "email_open")
    assert run.score("ann", "engagement") == 30


FIT = """\
workflow w {
  score fit {
    when industry in ["fashion", "retail"]  +20
    when role == "marketing"                +10
    when not (country == "US")              +5
  }
  score engagement { on page_view +1 decay 50% every 1 day }
  stage only { }
}
"""


def test_fit_rules_are_evaluated_for_a_new_subscriber(flow) -> None:
    run = flow(FIT)
    run.event("ann", "page_view")
    assert run.score("ann", "fit") == 5  # `not (country == "US")` holds without a country
    assert brief(run.timeline("ann"))[0] == ("2026-01-05T09:00:00Z", "score", "fit +5 = 5")


def test_fit_rules_follow_attribute_changes_both_ways(flow) -> None:
    run = flow(FIT)
    run.event("ann", "subscribed", channels=[], attributes={"industry": "retail"})
    run.advance(hours=1)
    run.event("ann", "attributes", role="marketing", country="US")
    run.advance(hours=1)
    run.event("ann", "attributes", industry="banking")
    run.advance(hours=1)
    run.event("ann", "attributes", industry="banking")  # no change: nothing happens
    assert scores(run) == [
        ("2026-01-05T09:00:00Z", "score", "fit +20 = 20"),
        ("2026-01-05T09:00:00Z", "score", "fit +5 = 25"),
        ("2026-01-05T10:00:00Z", "score", "fit +10 = 35"),
        ("2026-01-05T10:00:00Z", "score", "fit -5 = 30"),
        ("2026-01-05T11:00:00Z", "score", "fit -20 = 10"),
    ]
    assert [line.kind for line in run.ledger("ann", "fit")] == ["fit"] * 5


def test_fit_rules_do_not_decay(flow) -> None:
    run = flow(FIT)
    run.event("ann", "attributes", role="marketing")
    run.advance(days=10)
    assert run.score("ann", "fit") == 15
    assert all(r.get("score") == "fit" for r in run.timeline("ann", "score"))


DECAY = """\
workflow w {
  score engagement {
    on page_view  +30
    on email_open +10
    decay 10% every 30 days
  }
  stage only { }
}
"""


def test_decay_follows_the_formula_at_each_full_period(flow) -> None:
    run = flow(DECAY)
    run.event("ann", "page_view")
    run.advance(days=29, hours=23, minutes=59)
    assert run.score("ann", "engagement") == 30
    run.advance(minutes=1)  # exactly 30 days: 30 x 0.9
    assert run.score("ann", "engagement") == 27
    run.advance(days=60)  # 30 x 0.9³
    assert run.score("ann", "engagement") == Decimal("21.87")
    assert scores(run) == [
        ("2026-01-05T09:00:00Z", "score", "engagement +30 = 30"),
        ("2026-02-04T09:00:00Z", "score", "engagement -3 = 27"),
        ("2026-03-06T09:00:00Z", "score", "engagement -2.7 = 24.3"),
        ("2026-04-05T09:00:00Z", "score", "engagement -2.43 = 21.87"),
    ]
    assert [r.get("rule") for r in run.timeline("ann", "score")][1:] == ["w.flow:5"] * 3


def test_decay_at_one_instant_is_one_record_per_score(flow) -> None:
    run = flow(DECAY)
    run.event("ann", "page_view")
    run.event("ann", "email_open")
    run.advance(hours=1)
    run.event("ann", "email_open")
    run.advance(days=30)
    assert scores(run)[3:] == [
        ("2026-02-04T09:00:00Z", "score", "engagement -4 = 46"),  # 30 and 10 earned at 09:00
        ("2026-02-04T10:00:00Z", "score", "engagement -1 = 45"),  # the 10 earned at 10:00
    ]


def test_a_decay_step_whose_losses_cancel_out_makes_no_record(flow) -> None:
    run = flow(DECAY.replace("on email_open +10", "on email_open -30"))
    run.event("ann", "page_view")  # +30
    run.event("ann", "email_open")  # -30, the same instant
    run.advance(days=30)  # -3 and +3: nothing changes
    assert scores(run) == [
        ("2026-01-05T09:00:00Z", "score", "engagement +30 = 30"),
        ("2026-01-05T09:00:00Z", "score", "engagement -30 = 0"),
    ]
    assert len(run.ledger("ann")) == 2


def test_each_contribution_decays_from_its_own_age(flow) -> None:
    run = flow(DECAY)
    run.event("ann", "page_view")
    run.advance(days=20)
    run.event("ann", "page_view")
    run.advance(days=20)  # day 40: the first has decayed once, the second not yet
    assert run.score("ann", "engagement") == 57
    run.advance(days=10)  # day 50: both once
    assert run.score("ann", "engagement") == 54


def test_a_worthless_contribution_is_retired(flow) -> None:
    run = flow(DECAY.replace("10% every 30 days", "90% every 1 day"))
    run.event("ann", "email_open")  # 10 → 1 → 0.1 → 0.01 → 0.001 (< 0.01: removed)
    run.advance(days=10)
    assert [b[2] for b in scores(run)] == [
        "engagement +10 = 10", "engagement -9 = 1", "engagement -0.9 = 0.1",
        "engagement -0.09 = 0.01", "engagement -0.01 = 0"]
    assert run.score("ann", "engagement") == 0


ENTRY = """\
workflow w {
  entry on subscribed
  score engagement { on page_view +5  on subscribed +1 }
  stage first { go to second when engagement >= 6 }
  stage second { }
}
"""


def test_scores_count_events_before_enrolment_and_the_entry_event_first(flow) -> None:
    run = flow(ENTRY)
    run.event("ann", "page_view")  # not enrolled: still scored
    assert run.stage("ann") is None
    run.advance(minutes=1)
    run.event("ann", "subscribed", channels=["push"])
    assert brief(run.timeline("ann")) == [
        ("2026-01-05T09:00:00Z", "score", "engagement +5 = 5"),
        ("2026-01-05T09:01:00Z", "score", "engagement +1 = 6"),
        ("2026-01-05T09:01:00Z", "enter", "first"),
        ("2026-01-05T09:01:00Z", "enter", "second"),
    ]


def test_the_ledger_explains_every_score(flow) -> None:
    run = flow(DECAY)
    run.event("ann", "page_view", id="evt-1")
    run.event("ann", "email_open", id="evt-2")
    run.advance(days=31)
    lines = run.ledger("ann", "engagement")
    assert sum(line.delta for line in lines) == Decimal(run.score("ann", "engagement"))
    assert [(line.kind, line.rule, line.event_id, line.delta) for line in lines] == [
        ("event", "w.flow:3", "evt-1", 30),
        ("event", "w.flow:4", "evt-2", 10),
        ("decay", "w.flow:5", None, -4),
    ]
    assert [line.total for line in lines] == [30, 40, 36]


def test_scores_that_decay_at_different_paces_each_keep_their_own_boundaries(flow) -> None:
    run = flow("""\
workflow w {
  score slow { on page_view +100 decay 10% every 30 days }
  score fast { on click +100 decay 50% every 1 day }
  stage only { }
}
""")
    run.event("ann", "page_view")
    run.advance(hours=1)
    run.event("ann", "click")  # its first boundary (1 day) comes before slow's (30 days)
    run.advance(days=3)
    assert scores(run)[2:] == [
        ("2026-01-06T10:00:00Z", "score", "fast -50 = 50"),
        ("2026-01-07T10:00:00Z", "score", "fast -25 = 25"),
        ("2026-01-08T10:00:00Z", "score", "fast -12.5 = 12.5"),
    ]
    run.advance(days=27)
    assert ("2026-02-04T09:00:00Z", "score", "slow -10 = 90") in scores(run)


def test_contributions_stored_in_the_older_form_are_read_and_decay(flow) -> None:
    """Score rows written before 2026-12 hold each contribution with its rule first
    (`[rule, points, value, steps, earned_at]`); they are read as they are, beside new ones."""
    run = flow(DECAY)
    run.event("ann", "page_view")
    run.advance(days=20)
    with run.database.transaction() as connection:
        [form] = connection.execute(select(SCORES.c.contributions).where(
            SCORES.c.score == "engagement")).scalar_one()
        assert len(form) == 4  # as written now: [points, value, steps, earned_at]
        connection.execute(update(SCORES).where(SCORES.c.score == "engagement").values(
            contributions=[["w.flow:4", *form]]))
    run.engine.cache.clear()  # as a new process would: the row is read again
    run.event("ann", "page_view")
    run.advance(days=20)  # day 40: the first (older form) has decayed once, the second not
    assert run.score("ann", "engagement") == 57
    run.advance(days=10)  # day 50: both once
    assert run.score("ann", "engagement") == 54


def test_a_decay_step_looks_only_at_the_contributions_it_decays(
        flow, monkeypatch: pytest.MonkeyPatch) -> None:
    """A heavy visitor (or a bot) earns hundreds of contributions at distinct instants, so
    each has its own decay boundary. A decay step works on the contributions due at its
    instant, not on all of them: 400 page views, one period later, are 400 decay steps of one
    contribution each (before: 400 times 400 looked at, and a bot's 50,000 page views took hours
    of one tick)."""
    from engine import scoring

    run = flow("""\
workflow w {
  score engagement { on page_view +8 decay 50% every 1 day }
  stage only { }
}
""")
    run.advance(hours=6, minutes=40)  # then the day's page views arrive, each at its time
    run.events([{"subscriber": "ann", "type": "page_view",
                 "at": f"2026-01-05T{9 + n // 60:02d}:{n % 60:02d}:00Z"} for n in range(400)])
    looked_at = []
    real = scoring._decay_one

    def counted(*args: Any) -> Decimal:
        looked_at.append(1)
        return real(*args)

    monkeypatch.setattr(scoring, "_decay_one", counted)
    run.advance(days=1)  # past the last page view's first boundary
    assert run.score("ann", "engagement") == 1600
    decays = [b for b in scores(run) if b[2].startswith("engagement -")]
    assert len(decays) == 400 and decays[0] == (
        "2026-01-06T09:00:00Z", "score", "engagement -4 = 3196")
    assert decays[-1] == ("2026-01-06T15:39:00Z", "score", "engagement -4 = 1600")
    assert len(looked_at) == 400
