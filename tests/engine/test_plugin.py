"""The `nurture` fixture reaches a team's own test suite through the pytest11 entry point."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TEAMS_RUN = ("-q", "-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:anyio",
             "-p", "no:xdist", "-p", "no:xdist.looponfail")
"""A team's pytest run, in a new process. Without this project's schemathesis, anyio and xdist:
a team need not have them, and their imports at start-up were 4 s of each run's 5 on a slow
machine."""

FLOW = """\
workflow onboarding {
  quiet hours 22:00 to 07:00
  stage welcome {
    after 1 hour: send push tips
    go to active on login
  }
  stage active { }
}
message tips push { title "Three tips for {{ subscriber.first_name | default('you') }}" }
"""

TEST = """\
def test_tips_arrive_an_hour_after_subscribing(nurture):
    run = nurture.load("onboarding.flow", start="2026-05-04T12:00:00Z")
    run.event("zoe", "subscribed", channels=["push"], attributes={"first_name": "Zoe"})
    run.advance(minutes=59)
    assert run.sent("zoe") == []
    run.advance(minutes=1)
    assert [s.get("title") for s in run.sent("zoe")] == ["Three tips for Zoe"]
    run.event("zoe", "login")
    assert run.stage("zoe") == "active"


def test_a_broken_workflow_fails_with_the_checkers_message(nurture):
    import pytest
    from engine.testing import WorkflowLoadError
    with pytest.raises(WorkflowLoadError, match="unknown stage 'activ'"):
        nurture.load("broken.flow")


def test_the_teams_own_fastapi_app_in_frozen_time(nurture):
    # FastAPI imports pydantic.v1 when it builds its first route; under frozen time that
    # import failed ("metaclass conflict") unless something had imported it before.
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from pydantic import BaseModel
    run = nurture.load("onboarding.flow", start="2026-05-04T12:00:00Z")

    class Signup(BaseModel):
        subscriber: str

    app = FastAPI()

    @app.post("/signup")
    def signup(body: Signup) -> dict:
        run.event(body.subscriber, "subscribed", channels=["push"])
        return {"stage": run.stage(body.subscriber)}

    assert TestClient(app).post("/signup", json={"subscriber": "zoe"}).json() == {
        "stage": "welcome"}
"""


def test_the_fixture_is_available_without_any_set_up(pytester: pytest.Pytester) -> None:
    pytester.makefile(".flow", onboarding=FLOW,
                      broken=FLOW.replace("go to active", "go to activ"))
    pytester.makepyfile(test_onboarding=TEST)
    result = pytester.runpytest_subprocess(*TEAMS_RUN, "--durations=1", "--durations-min=0")
    result.assert_outcomes(passed=3)
    # Frozen in 2026 by the fixture, a test still reports how long it really took (a frozen
    # clock made `--durations` print the years since 1970).
    slowest = next(line for line in result.outlines if "test_onboarding.py::" in line)
    assert float(slowest.split("s ", 1)[0]) < 600, slowest


LOADED_ON_FIRST_USE = """\
import sys


def test_a_test_that_does_not_ask_for_the_fixture_runs_without_the_engine():
    loaded = {"engine.processor", "engine.testing", "sqlalchemy", "lark", "pywebpush"}
    assert loaded.isdisjoint(sys.modules)


def test_the_next_test_that_asks_for_it_has_it(nurture):
    run = nurture.load("onboarding.flow", start="2026-05-04T12:00:00Z")
    run.event("zoe", "subscribed", channels=["push"])
    run.advance(hours=1)
    assert [s.get("title") for s in run.sent("zoe")] == ["Three tips for you"]
    assert "engine.processor" in sys.modules
"""


def test_the_plugin_loads_the_engine_only_for_a_test_that_uses_the_fixture(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest imports every installed plugin at start-up, so what ours imports there every
    run of a team's suite pays, fixture or not: registered as `engine.testing`, it was the
    whole engine (pytest took 7.5 s instead of 4.5 s to collect nothing on a slow machine).
    Here with plugins loaded only on request, as the README says to (`-p nurture`)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makefile(".flow", onboarding=FLOW)
    pytester.makepyfile(test_first_use=LOADED_ON_FIRST_USE)
    result = pytester.runpytest_subprocess(*TEAMS_RUN, "-p", "nurture")
    result.assert_outcomes(passed=2)


FROZEN_BY_THE_TEAM = """\
from freezegun import freeze_time


@freeze_time("2026-05-04 08:00:00")
def test_tips_under_the_teams_clock(nurture):
    run = nurture.load("onboarding.flow", start="2026-05-04T12:00:00Z")
    run.event("zoe", "subscribed", channels=["push"], attributes={"first_name": "Zoe"})
    run.advance(hours=1)
    assert [s.get("title") for s in run.sent("zoe")] == ["Three tips for Zoe"]


@freeze_time("2026-05-04 12:00:00")
def test_without_a_start_the_run_starts_on_the_teams_clock_and_moves_it(nurture):
    import datetime
    run = nurture.load("onboarding.flow")
    assert run.now == datetime.datetime(2026, 5, 4, 12, tzinfo=datetime.timezone.utc)
    run.event("zoe", "subscribed", channels=["push"], attributes={"first_name": "Zoe"})
    run.advance(hours=1)
    assert datetime.datetime.now() == datetime.datetime(2026, 5, 4, 13)  # the team's code
    assert [s.get("title") for s in run.sent("zoe")] == ["Three tips for Zoe"]


def test_two_runs_of_their_own_still_keep_their_own_clocks(nurture):
    first = nurture.load("onboarding.flow", start="2026-05-04T12:00:00Z")
    second = nurture.load("onboarding.flow", start="2026-06-01T12:00:00Z")
    first.event("zoe", "subscribed", channels=["push"])
    second.event("zoe", "subscribed", channels=["push"])
    second.advance(hours=1)
    assert [str(s.at) for s in second.sent("zoe")] == ["2026-06-01 13:00:00+00:00"]
"""


def test_a_test_under_the_teams_own_freeze_time(pytester: pytest.Pytester) -> None:
    """A team's test decorated with freezegun's `@freeze_time` (a clock of its own for the
    code it tests) loads workflows too: the fixture's import of `pydantic.v1`, meant to run
    before time is frozen, failed with "metaclass conflict" there, in a process that had not
    imported it before."""
    pytester.makefile(".flow", onboarding=FLOW)
    pytester.makepyfile(test_frozen=FROZEN_BY_THE_TEAM)
    result = pytester.runpytest_subprocess(*TEAMS_RUN)
    result.assert_outcomes(passed=3)


def test_the_readmes_example_tests_pass(pytester: pytest.Pytester) -> None:
    """What a team copies first must work as printed."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Testing your own workflows", 1)[1].split("\n## ", 1)[0]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    shutil.copytree(ROOT / "workflows", pytester.path / "workflows",
                    ignore=shutil.ignore_patterns("tests", "__pycache__"))
    pytester.makepyfile(test_readme_example=example)
    result = pytester.runpytest_subprocess(*TEAMS_RUN)
    tests = re.findall(r"^def test_", example, flags=re.MULTILINE)
    assert len(tests) == 2
    result.assert_outcomes(passed=len(tests))


def test_a_misspelt_score_or_workflow_in_a_test_is_an_error_not_a_zero(flow) -> None:
    run = flow("workflow w {\n  score engagement { on click +10 }\n  score fit { }\n"
               "  stage a { }\n}\n")
    run.event("ann", "subscribed", channels=[])
    with pytest.raises(ValueError, match=r"^workflow 'w' has no score 'engagment'; did you "
                                         r"mean 'engagement'\? \(its scores: engagement, "
                                         r"fit\)$"):
        run.score("ann", "engagment")
    with pytest.raises(ValueError, match="has no score 'engagment'"):
        run.ledger("ann", "engagment")
    with pytest.raises(ValueError, match=r"^no workflow 'v' is loaded \(loaded: w\)$"):
        run.stage("ann", workflow="v")
    # a declared score not counted yet: 0
    assert run.score("ann", "engagement") == 0
    # a subscriber no event was about, nearly spelling one: a typo, not 0 and no stage
    for ask in (lambda: run.score("an", "fit"), lambda: run.stage("an"),
                lambda: run.tags("an"), lambda: run.ledger("an"), lambda: run.sent("an"),
                lambda: run.timeline("an"), lambda: run.skipped("an")):
        with pytest.raises(ValueError, match=r"^no event of this test was about subscriber "
                                             r"'an'; did you mean 'ann'\?$"):
            ask()
    # one far from every name is answered, as is one that events were about
    assert (run.score("bob", "fit"), run.stage("bob"), run.sent("bob")) == (0, None, [])
    run.event("bob", "page_view")
    assert (run.score("bob", "fit"), run.stage("bob"), run.sent("bob")) == (0, None, [])
    with pytest.raises(ValueError, match="advance\\(\\) takes weeks=, days=, hours=, minutes=, "
                                         "seconds=, not 'day='; did you mean 'days'"):
        run.advance(day=1)


def test_a_misspelt_event_channel_or_kind_in_a_test_is_an_error_not_nothing(flow) -> None:
    # each would make "nothing was sent" true for the wrong reason
    run = flow("workflow w {\n  score engagement { on purchase +25 }\n  stage a {\n"
               "    go to b on email_open\n  }\n  stage b { on enter: send push hello }\n}\n")
    run.event("ann", "subscribed", channels=["push"])
    with pytest.raises(ValueError, match=r"^no loaded workflow names event 'purchse'; did you "
                                         r"mean 'purchase'\? \(sent as it is, it would change "
                                         r"nothing\)$"):
        run.event("ann", "purchse", amount=120)
    with pytest.raises(ValueError, match="did you mean 'email_open'"):
        run.events([{"subscriber": "ann", "type": "purchase"},
                    {"subscriber": "ann", "type": "email_opened"}])
    with pytest.raises(ValueError, match="did you mean 'unsubscribed'"):
        run.event("ann", "unsubscribe")
    assert run.score("ann", "engagement") == 0  # a refused call stores none of its events
    run.event("ann", "ping")  # far from every name: a site's own event, taken
    run.event("ann", "email_open")
    assert run.stage("ann") == "b"
    with pytest.raises(ValueError, match=r"^no channel 'e-mail'; did you mean 'email'\? "
                                         r"\(channels: push, email, webhook\)$"):
        run.sent("ann", channel="e-mail")
    with pytest.raises(ValueError, match=r"^no record is of kind 'sends'; did you mean "
                                         r"'send'\? \(kinds: enter, score, tag, send, skip, "
                                         r"exit\)$"):
        run.timeline("ann", kind="sends")
    with pytest.raises(ValueError, match="no workflow 'ww' is loaded; did you mean 'w'"):
        run.timeline(workflow="ww")
    assert [r.get("message") for r in run.sent("ann", channel="push")] == ["hello"]
