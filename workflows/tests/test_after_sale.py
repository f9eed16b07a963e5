"""After the sale: thanks, reviews, loyalty, and win-back."""

from pathlib import Path

FLOW = Path(__file__).parent.parent / "after_sale.flow"
START = "2026-03-02T10:00:00Z"  # 11:00 in Berlin


def customer(nurture, **attributes):
    shop = nurture.load(FLOW, start=START)
    shop.event("ute", "subscribed", channels=["push", "email"], email="ute@example.com",
               attributes=attributes)
    shop.event("ute", "purchase", amount=250)
    return shop


def test_a_purchase_starts_onboarding_in_the_customers_language(nurture):
    shop = customer(nurture, first_name="Ute", locale="de-DE")
    assert shop.stage("ute") == "onboarding"
    thanks = shop.sent("ute")[0]
    assert (thanks.get("lang"), thanks.get("subject")) == ("de", "Danke für Ihre Bestellung, Ute!")


def test_the_review_request_is_skipped_for_those_who_already_reviewed(nurture):
    shop = customer(nurture)
    shop.advance(days=6)
    shop.event("ute", "review_submitted")
    shop.advance(days=10)
    assert [s.get("message") for s in shop.sent("ute")] == ["order_thanks", "care_tips"]
    assert shop.stage("ute") == "loyal"
    assert shop.tags("ute") == {"reviewer"}


def test_a_quiet_customer_is_won_back_then_let_go(nurture):
    shop = customer(nurture)
    shop.advance(days=14 + 60)
    assert shop.stage("ute") == "win_back"
    offer = [s for s in shop.sent("ute") if s.get("message") == "we_miss_you"]
    assert offer[0].get("subject") == "15% off to welcome you back"
    shop.advance(days=30)
    assert shop.stage("ute") == "sunset"
    shop.event("ute", "purchase", amount=40)
    assert shop.stage("ute") == "loyal"


def test_loyalty_makes_a_vip(nurture):
    shop = customer(nurture)
    shop.advance(days=14)
    shop.event("ute", "referral")
    shop.event("ute", "review_submitted")
    assert shop.score("ute", "loyalty") == 20 + 15 + 25 + 10
    shop.event("ute", "purchase", amount=30)
    assert shop.stage("ute") == "vip"
    assert shop.sent("ute")[-1].get("message") == "vip_welcome"
