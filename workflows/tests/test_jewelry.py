"""The jewelry shop's funnel, tested the way a marketing team would test its own workflows.

The `nurture` fixture comes with nurture (a pytest plugin): it loads the .flow files, freezes
time, feeds events, moves the clock and tells what was sent, skipped, scored and where each
subscriber is.
"""

from pathlib import Path

FLOW = Path(__file__).parent.parent / "jewelry.flow"
MONDAY = "2026-03-02T09:00:00Z"  # 10:00 in Warsaw


def test_a_new_subscriber_gets_a_welcome_and_three_bestseller_pushes(nurture):
    shop = nurture.load(FLOW, start=MONDAY)
    shop.event("ann", "subscribed", channels=["push"], attributes={"first_name": "Ann"})
    shop.advance(days=14)
    assert [(str(s.at), s.get("message")) for s in shop.sent("ann")] == [
        ("2026-03-02 09:10:00+00:00", "welcome"),
        ("2026-03-05 09:00:00+00:00", "bestsellers"),
        ("2026-03-08 09:00:00+00:00", "bestsellers"),
        ("2026-03-11 09:00:00+00:00", "bestsellers"),
    ]
    assert shop.sent("ann")[0].get("title") == "Hi Ann!"


def test_polish_subscribers_get_the_polish_welcome(nurture):
    shop = nurture.load(FLOW, start=MONDAY)
    shop.event("ola", "subscribed", channels=["push"],
               attributes={"first_name": "Ola", "locale": "pl-PL"})
    shop.advance(minutes=10)
    welcome = shop.sent("ola")[0]
    assert (welcome.get("lang"), welcome.get("title")) == ("pl", "Cześć Ola!")


def test_nobody_is_woken_up_at_night(nurture):
    shop = nurture.load(FLOW, start="2026-03-02T21:00:00Z")  # 22:00 in Warsaw
    shop.event("bob", "subscribed", channels=["push"])
    shop.advance(hours=12)
    assert [str(s.at) for s in shop.sent("bob")] == ["2026-03-03 07:00:00+00:00"]  # 08:00 local


def test_a_diamond_lover_moves_to_interest_and_gets_the_newsletter(nurture):
    shop = nurture.load(FLOW, start=MONDAY)
    shop.event("ann", "subscribed", channels=["push", "email"], email="ann@example.com")
    shop.event("ann", "page_view", url="https://shop.example/diamonds")
    assert shop.stage("ann") == "interest"
    assert shop.tags("ann") == {"diamonds"}
    shop.advance(days=7)
    assert [s.get("subject") for s in shop.sent("ann", channel="email")] == [
        "News from our workshop"]


def test_a_hot_lead_with_a_good_fit_gets_the_discount_and_a_buyer_alerts_sales(nurture):
    shop = nurture.load(FLOW, start=MONDAY)
    shop.event("ann", "subscribed", channels=["push", "email"], email="ann@example.com",
               attributes={"first_name": "Ann", "industry": "retail"})
    shop.event("ann", "page_view", url="/diamonds/rings")
    shop.event("ann", "page_view", url="/diamonds/earrings")
    assert shop.stage("ann") == "selection"
    discount = shop.sent("ann")[-1]
    assert (discount.get("title"), discount.get("body")) == (
        "10% off, just for you", "Use code HOT10 at checkout.")
    shop.advance(hours=3)
    shop.event("ann", "purchase", amount=1400)
    assert shop.score("ann", "engagement") == 60 + 25 + 50
    assert shop.stage("ann") == "sale"
    alert = shop.sent("ann", channel="webhook")[0]
    assert alert.get("url") == "https://crm.example/hooks/hot-lead"
    shop.advance(days=1)
    assert shop.stage("ann") == "after_sale"


def test_free_delivery_only_for_those_who_have_not_bought(nurture):
    shop = nurture.load(FLOW, start=MONDAY)
    for who in ("ann", "bob"):
        shop.event(who, "subscribed", channels=["push"], attributes={"industry": "fashion"})
        shop.event(who, "page_view", url="/diamonds")
        shop.event(who, "page_view", url="/diamonds")
    shop.advance(days=3)
    assert "free_delivery" in [s.get("message") for s in shop.sent("bob")]
    shop.event("ann", "offer_declined")
    assert shop.score("ann", "engagement") == 40


def test_engagement_decays_by_a_tenth_every_30_days(nurture):
    shop = nurture.load(FLOW, start=MONDAY)
    shop.event("ann", "page_view", url="/diamonds")
    shop.advance(days=30)
    assert shop.score("ann", "engagement") == 27
    assert [line.kind for line in shop.ledger("ann", "engagement")] == ["event", "decay"]


def test_an_engaged_lead_without_fit_waits_in_interest_and_we_can_see_why(nurture):
    shop = nurture.load(FLOW, start=MONDAY)
    shop.event("cy", "subscribed", channels=["push", "email"], email="cy@example.com")
    shop.event("cy", "page_view", url="/diamonds/rings")
    shop.event("cy", "page_view", url="/diamonds/earrings")
    [journey] = shop.status("cy").enrolments
    assert (journey.stage, journey.scores) == ("interest", {"engagement": 60, "fit": 0})
    [to_selection] = journey.transitions
    assert [(check.condition, check.holds) for check in to_selection.checks] == [
        ("engagement >= 50", True), ("fit >= 10", False)]
    newsletter = journey.planned[0]
    assert (str(newsletter.local), newsletter.what) == (
        "2026-03-09 10:00:00+01:00", "send email newsletter (every 7 days, 1st)")


def test_fit_is_what_holds_engaged_leads_in_interest(nurture):
    shop = nurture.load(FLOW, start=MONDAY)
    for who, industry in (("cy", "banking"), ("di", "health"), ("ed", "fashion")):
        shop.event(who, "subscribed", channels=["push"], attributes={"industry": industry})
        shop.event(who, "page_view", url="/diamonds/rings")
    shop.event("cy", "page_view", url="/diamonds/earrings")
    shop.event("di", "page_view", url="/diamonds/earrings")
    assert shop.stage("ed") == "interest"  # fit 20, but engagement 30: not yet selection
    [interest] = shop.waiting(stage="interest").stages
    [to_selection] = interest.transitions
    assert [(c.condition, c.holds, c.would_move) for c in to_selection.comparisons] == [
        ("engagement >= 50", 2, 1), ("fit >= 10", 1, 2)]  # fit would move two, engagement one


def test_the_hottest_leads_come_first_for_sales(nurture):
    shop = nurture.load(FLOW, start=MONDAY)
    for who in ("ann", "bob", "cy"):
        shop.event(who, "subscribed", channels=["email"], email=f"{who}@example.com")
    shop.event("bob", "page_view", url="https://shop.example/diamonds")  # +30
    shop.event("cy", "page_view", url="https://shop.example/pricing")  # +2
    shop.event("ann", "offer_declined")  # -20
    assert [lead.subscriber for lead in shop.leads()] == ["bob", "cy", "ann"]
    assert [lead.subscriber for lead in shop.leads(stage="interest")] == ["bob"]
    assert shop.leads(limit=1)[0].scores == {"engagement": 30, "fit": 0}
    shop.advance(hours=2)
    shop.event("cy", "page_view", url="https://shop.example/diamonds")  # interest, 2 h later
    assert [lead.subscriber for lead in shop.leads(stage="interest",
                                                  since="2026-03-02T10:00:00Z")] == ["cy"]
