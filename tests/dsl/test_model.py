"""The SPEC's example and every construct of SPEC §1 become the expected model."""

from __future__ import annotations

import re
from datetime import time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from dsl import model as m
from dsl.loader import load_paths, load_text

ROOT = Path(__file__).resolve().parents[2]
JEWELRY = ROOT / "workflows" / "jewelry.flow"
SPEC = ROOT.parent / "shared" / "SPEC.md"


@pytest.fixture(scope="module")
def jewelry() -> m.Catalog:
    result = load_paths([str(JEWELRY)])
    assert result.diagnostics == ()
    assert result.catalog is not None
    return result.catalog


def test_workflow_files_match_the_spec_example() -> None:
    if not SPEC.exists():
        pytest.skip("../shared/SPEC.md is not beside this checkout")
    example = re.search(r"```\n(# Nurture for an online jewelry shop.*?)```",
                        SPEC.read_text(encoding="utf-8"), re.S)
    assert example is not None
    assert JEWELRY.read_text(encoding="utf-8") == example.group(1)


def test_workflow_settings(jewelry: m.Catalog) -> None:
    workflow = jewelry.workflow("jewelry")
    assert [(t.event, t.where) for t in workflow.entries] == [("subscribed", None)]
    assert [(t.event, t.where) for t in workflow.exits] == [("unsubscribed", None)]
    assert workflow.start == "awareness"
    assert workflow.timezone == "Europe/Warsaw"
    assert workflow.quiet_hours is not None
    assert (workflow.quiet_hours.start, workflow.quiet_hours.end) == (time(21), time(8))
    push = workflow.limit("push")
    email = workflow.limit("email")
    assert push is not None and email is not None
    assert [(c.count, c.period, c.window) for c in push.caps] == [
        (1, "day", timedelta(days=1)), (3, "week", timedelta(weeks=1))]
    assert [(c.count, c.period) for c in email.caps] == [(2, "week")]


def test_scores(jewelry: m.Catalog) -> None:
    engagement = jewelry.workflow("jewelry").score("engagement")
    assert engagement is not None
    rules = [(r.event, r.points, r.max and (r.max.count, r.max.period), r.span.line)
             for r in engagement.event_rules]
    assert rules == [
        ("page_view", 30, None, 11), ("page_view", 2, None, 12),
        ("email_open", 10, (30, "week"), 13), ("push_click", 5, None, 14),
        ("form_submit", 3, None, 15), ("purchase", 25, None, 16),
        ("purchase", 50, None, 17), ("offer_declined", -20, None, 18),
    ]
    assert all(type(r.points) is int for r in engagement.event_rules)
    diamonds = engagement.event_rules[0].where
    assert diamonds == m.TextMatch(m.Reference("plain", "url", diamonds.left.span),  # type: ignore[union-attr]
                                   "contains", "/diamonds", diamonds.span)  # type: ignore[union-attr]
    big = engagement.event_rules[6].where
    assert isinstance(big, m.Comparison) and (big.left.name, big.operator, big.right) == (
        "amount", ">", 1000)
    assert engagement.decay is not None
    assert (engagement.decay.percent, engagement.decay.every) == (10, m.Duration(30, "day"))
    assert engagement.decay.span.rule_ref.endswith("jewelry.flow:19")
    fit = jewelry.workflow("jewelry").score("fit")
    assert fit is not None and fit.decay is None
    industry, role = fit.fit_rules
    assert isinstance(industry.condition, m.Membership)
    assert industry.condition.options == ("fashion", "retail") and industry.points == 20
    assert isinstance(role.condition, m.Comparison)
    assert (role.condition.left.name, role.condition.right, role.points) == (
        "role", "marketing", 10)


def test_tags(jewelry: m.Catalog) -> None:
    tags = jewelry.workflow("jewelry").tags
    assert [(t.tag, t.event) for t in tags] == [("diamonds", "page_view"),
                                              ("promo_hunter", "page_view")]


def test_stages_steps_and_transitions(jewelry: m.Catalog) -> None:
    workflow = jewelry.workflow("jewelry")
    assert [s.name for s in workflow.stages] == ["awareness", "interest", "selection", "sale",
                                                 "after_sale"]
    awareness = workflow.stage("awareness")
    after, every = awareness.steps
    assert isinstance(after, m.After) and after.delay == m.Duration(10, "minute")
    assert after.delay.delta == timedelta(minutes=10) and after.unless is None
    assert (after.action.channel, after.action.message) == ("push", "welcome")
    assert isinstance(every, m.Every) and (every.interval, every.times) == (m.Duration(3, "day"), 3)
    selection = workflow.stage("selection")
    on_enter, reminder = selection.steps
    assert isinstance(on_enter, m.OnEnter)
    assert on_enter.action.params == (("code", "HOT10"), ("percent", 10))
    assert isinstance(reminder, m.After) and reminder.unless == "purchase"
    go_on, go_idle = selection.transitions
    assert isinstance(go_on, m.GoOn) and (go_on.target, go_on.event) == ("sale", "purchase")
    assert isinstance(go_idle, m.GoIdle) and go_idle.idle == m.Duration(14, "day")
    sale = workflow.stage("sale")
    assert [s.action.channel for s in sale.steps] == ["email", "webhook"]
    go_after = sale.transitions[0]
    assert isinstance(go_after, m.GoAfter) and go_after.delay == m.Duration(1, "day")
    interest = workflow.stage("interest").transitions[0]
    assert isinstance(interest, m.GoWhen) and isinstance(interest.condition, m.And)


def test_messages(jewelry: m.Catalog) -> None:
    welcome = jewelry.variants("welcome", "push")
    assert [v.lang for v in welcome] == [None, "pl"]
    discount = jewelry.variants("discount", "push")[0].content
    assert isinstance(discount, m.PushContent)
    assert discount.title.source == "{{ percent }}% off, just for you"
    assert (discount.ttl, discount.urgency) == (m.Duration(2, "day"), "high")
    bestsellers = jewelry.variants("bestsellers", "push")[0].content
    assert isinstance(bestsellers, m.PushContent)
    assert bestsellers.ttl == m.Duration(4, "week") and bestsellers.urgency == "normal"
    newsletter = jewelry.variants("newsletter", "email")[0].content
    assert isinstance(newsletter, m.EmailContent) and newsletter.html is not None
    assert newsletter.html.file == str(ROOT / "workflows" / "templates" / "newsletter.html")
    assert "News from our workshop" in newsletter.html.source
    hook = jewelry.variants("sales_alert", "webhook")[0].content
    assert isinstance(hook, m.WebhookContent) and hook.body is not None
    assert hook.body.source == '{"lead": "{{ subscriber.id }}", "score": {{ scores.engagement }}}'


SNIPPETS = {
    "empty stage": "workflow w {\n  stage done { }\n}\n",
    "entry and exit with where": """
workflow w {
  entry on signup where source == "landing" and not (country in ["XX"])
  exit on purchase where amount >= 12.5
  start at second
  stage first { }
  stage second { go to first on page_view where subscriber.role startswith "mark" }
}
""",
    "every step kind": """
workflow w {
  tag "vip" on purchase
  stage a {
    on enter: send push p
    after 2 hours unless click: send push p with n = 1, big = true, rate = -0.5
    every 1 week: send email e
    every 30 minutes, 2 times: send webhook h
    go to b when has tag "vip" or score_x < 3
    go to b when idle for 1.5 days
    go to b on purchase
    go to b after 4 weeks
  }
  stage b { }
}
message p push {
  title "t"
  body "b"
  url "https://x.example"
  icon "https://x.example/i.png"
  ttl 90 minutes
  urgency very_low
  topic "offers"
}
message p push lang "pt-BR" { title "t" }
message e email { subject "s" html "<b>x</b>" }
message h webhook { url "https://crm.example" }
""",
    "property names that are words of the grammar": """
workflow w {
  score s {
    on page_view where url contains "/x" and day == 3 and push != "no" +1
  }
  stage a { }
}
""",
}


@pytest.mark.parametrize("text", SNIPPETS.values(), ids=SNIPPETS.keys())
def test_constructs_parse_clean(text: str) -> None:
    result = load_text(text, "snippet.flow")
    assert result.diagnostics == ()
    assert result.catalog is not None


def test_numbers_keep_their_written_type() -> None:
    result = load_text(SNIPPETS["every step kind"], "s.flow")
    assert result.catalog is not None
    stage = result.catalog.workflow("w").stage("a")
    after = stage.steps[1]
    assert isinstance(after, m.After)
    assert after.action.params == (("n", 1), ("big", True), ("rate", Decimal("-0.5")))
    idle = stage.transitions[1]
    assert isinstance(idle, m.GoIdle) and idle.idle.delta == timedelta(hours=36)
    every = stage.steps[3]
    assert isinstance(every, m.Every) and every.times == 2
    assert every.interval.delta == timedelta(minutes=30)


def test_default_entry_start_and_timezone() -> None:
    result = load_text(SNIPPETS["empty stage"], "s.flow")
    assert result.catalog is not None
    workflow = result.catalog.workflow("w")
    assert [t.event for t in workflow.entries] == ["subscribed"]
    assert workflow.start == "done" and workflow.timezone == "UTC"
    assert workflow.quiet_hours is None and workflow.limits == ()


def test_string_escapes() -> None:
    text = 'workflow w { stage a { } }\nmessage m push { title "say \\"hi\\"\\\\ \\n" }\n'
    result = load_text(text, "s.flow")
    assert result.catalog is not None
    content = result.catalog.messages[0].content
    assert isinstance(content, m.PushContent)
    assert content.title.source == 'say "hi"\\ \n'


@pytest.mark.parametrize("path", sorted(str(p) for p in (ROOT / "workflows").rglob("*.flow")))
def test_every_example_workflow_checks_clean(path: str) -> None:
    result = load_paths([path])
    assert result.diagnostics == ()
    assert result.catalog is not None and result.catalog.workflows
