"""B2B lead scoring: fit and engagement decide when sales gets a lead."""

import json
from pathlib import Path

FLOW = Path(__file__).parent.parent / "b2b_lead_scoring.flow"
TUESDAY = "2026-03-03T14:00:00Z"  # 09:00 in New York


def cto(nurture):
    saas = nurture.load(FLOW, start=TUESDAY)
    saas.event("lee", "subscribed", channels=["email"], email="lee@fintech.example",
               attributes={"first_name": "Lee", "role": "cto", "company_size": 500,
                           "industry": "fintech", "country": "US"})
    saas.event("lee", "form_submit", form="ebook")
    return saas


def test_a_download_enrols_the_lead_cold_with_a_welcome(nurture):
    saas = cto(nurture)
    assert saas.stage("lee") == "cold"
    assert saas.score("lee", "fit") == 25 + 20 + 15 + 5
    assert saas.score("lee", "engagement") == 10
    assert [s.get("subject") for s in saas.sent("lee")] == ["Your guide is ready"]


def test_pricing_visits_count_at_most_24_points_a_week(nurture):
    saas = cto(nurture)
    for _ in range(5):
        saas.event("lee", "page_view", url="https://saas.example/pricing")
    assert saas.score("lee", "engagement") == 10 + 24
    assert saas.stage("lee") == "warm"


def test_a_demo_request_hands_the_lead_to_sales_through_the_crm(nurture):
    saas = cto(nurture)
    saas.advance(hours=1)
    saas.event("lee", "form_submit", form="demo_request")
    assert saas.stage("lee") == "hot"
    hook = saas.sent("lee", channel="webhook")[0]
    assert hook.get("url") == "https://crm.example/api/leads/hot"


def test_sales_can_send_a_lead_back_and_a_free_mail_domain_disqualifies(nurture):
    saas = cto(nurture)
    saas.event("lee", "form_submit", form="demo_request")
    saas.event("lee", "sales_feedback", outcome="not_now")
    assert saas.stage("lee") == "nurture_later"
    saas.event("sam", "form_submit", form="ebook")
    saas.event("sam", "attributes", email_domain="gmail.com")
    assert saas.score("sam", "fit") == -15
    assert saas.stage("sam") == "disqualified"


def test_the_weekly_insight_respects_new_york_office_hours(nurture):
    saas = nurture.load(FLOW, start="2026-03-03T23:30:00Z")  # 18:30 in New York
    saas.event("kim", "subscribed", channels=["email"], email="kim@example.com")
    saas.event("kim", "form_submit", form="webinar")
    saas.advance(days=8)
    assert [str(s.at) for s in saas.sent("kim")] == [
        "2026-03-04 13:30:00+00:00",  # welcome: next morning 08:30 EST
        "2026-03-11 12:30:00+00:00",  # a week later 08:30 EDT (clocks moved on 8 March)
    ]


def test_the_crm_receives_json(nurture):
    saas = cto(nurture)
    saas.event("lee", "form_submit", form="demo_request")
    saas.advance(minutes=1)
    outgoing = [o for o in saas.channel.outgoing if o.rendered.channel == "webhook"]
    body = json.loads(outgoing[0].rendered.fields["body"])
    assert body == {"lead": "lee", "fit": 65, "engagement": 50, "tags": [], "stage": "hot"}
