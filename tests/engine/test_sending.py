"""SPEC §1.5a "when a send goes out" and "why a send is skipped", §1.7 and §2's consent rules."""

from __future__ import annotations

import json

import pytest

from engine.events import Event, EventError
from tests.engine.conftest import brief, sends

WARSAW_NIGHTS = """\
workflow w {
  timezone "Europe/Warsaw"
  quiet hours 21:00 to 08:00
  stage a { after 10 minutes: send push hello }
}
"""


def test_quiet_hours_across_midnight_postpone_to_the_local_morning(flow) -> None:
    run = flow(WARSAW_NIGHTS, start="2026-01-05T19:55:00Z")  # 20:55 in Warsaw
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=12)
    assert sends(run) == [("2026-01-06T07:00:00Z", "hello")]  # 08:00 CET


def test_a_send_outside_quiet_hours_goes_at_once(flow) -> None:
    run = flow(WARSAW_NIGHTS, start="2026-01-05T19:49:00Z")  # due 20:59 local
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=12)
    assert sends(run) == [("2026-01-05T19:59:00Z", "hello")]


def test_quiet_hours_across_the_spring_daylight_saving_change(flow) -> None:
    # Warsaw moves from CET (+1) to CEST (+2) on 2026-03-29 at 02:00.
    run = flow(WARSAW_NIGHTS, start="2026-03-28T19:55:00Z")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=12)
    assert sends(run) == [("2026-03-29T06:00:00Z", "hello")]  # 08:00 CEST


def test_quiet_hours_across_the_autumn_daylight_saving_change(flow) -> None:
    # Back from CEST to CET on 2026-10-25 at 03:00.
    run = flow(WARSAW_NIGHTS, start="2026-10-24T18:55:00Z")  # 20:55 CEST
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=14)
    assert sends(run) == [("2026-10-25T07:00:00Z", "hello")]  # 08:00 CET


def test_quiet_hours_ending_in_a_daylight_saving_gap(flow) -> None:
    run = flow(WARSAW_NIGHTS.replace("21:00 to 08:00", "22:00 to 02:30"),
               start="2026-03-28T21:20:00Z")  # due 22:30 CET
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=12)
    # 02:30 does not exist on 29 March: the first valid instant after it is 03:00 CEST
    assert sends(run) == [("2026-03-29T01:00:00Z", "hello")]


def test_the_subscribers_own_time_zone_decides_quiet_hours(flow) -> None:
    run = flow(WARSAW_NIGHTS, start="2026-01-05T22:50:00Z")  # 23:50 in Warsaw
    run.event("ann", "subscribed", channels=["push"],
              attributes={"timezone": "America/New_York"})  # 17:50 in New York
    with pytest.raises(EventError, match="unknown time zone 'Mars/Olympus'"):
        run.event("bob", "subscribed", channels=["push"],
                  attributes={"timezone": "Mars/Olympus"})
    # a zone stored before events were checked for one (no event can bring it in now)
    run.engine.ingest([Event("bob", "subscribed", run.now, {
        "channels": ["push"], "attributes": {"timezone": "Mars/Olympus"}})])
    run.advance(hours=12)
    assert sends(run, "ann") == [("2026-01-05T23:00:00Z", "hello")]
    assert sends(run, "bob") == [("2026-01-06T07:00:00Z", "hello")]  # unknown zone: the workflow's


CAPPED = """\
workflow w {
  limit push to 1 per day
  stage a {
    on enter: send push hello
    after 1 hour: send push nudge
    after 2 hours: send push drip
  }
}
"""


def test_caps_defer_several_queued_sends_in_the_order_they_were_due(flow) -> None:
    run = flow(CAPPED)
    run.event("ann", "subscribed", channels=["push"])
    run.advance(days=5)
    assert sends(run) == [
        ("2026-01-05T09:00:00Z", "hello"),
        ("2026-01-06T09:00:00Z", "nudge"),  # exactly 24 h later: the first no longer counts
        ("2026-01-07T09:00:00Z", "drip"),
    ]


def test_a_cap_that_frees_a_send_inside_quiet_hours_waits_for_the_morning(flow) -> None:
    run = flow("""\
workflow w {
  timezone "Europe/Warsaw"
  quiet hours 21:00 to 08:00
  limit push to 1 per hour
  stage a {
    on enter: send push hello
    after 5 minutes: send push nudge
  }
}
""", start="2026-01-05T19:30:00Z")  # 20:30 local
    run.event("ann", "subscribed", channels=["push"])
    run.advance(days=1)
    assert sends(run) == [
        ("2026-01-05T19:30:00Z", "hello"),
        ("2026-01-06T07:00:00Z", "nudge"),  # the cap frees it at 21:30 local: quiet until 08:00
    ]


def test_caps_count_every_message_on_the_channel_from_any_workflow(flow) -> None:
    run = flow("""\
workflow loud { stage a { on enter: send push hello } }
workflow polite {
  limit push to 1 per day, 2 per week
  stage a {
    after 1 hour: send push nudge
    after 2 days: send push drip
    after 3 days: send push later
  }
}
""")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(weeks=2)
    assert sends(run) == [
        ("2026-01-05T09:00:00Z", "hello"),  # loud has no cap
        ("2026-01-06T09:00:00Z", "nudge"),  # polite counts loud's send
        ("2026-01-12T09:00:00Z", "drip"),   # 2 per week: hello and nudge fill the week
        ("2026-01-13T09:00:00Z", "later"),
    ]


def test_a_postponed_send_keeps_its_place_later_times_do_not_shift(flow) -> None:
    run = flow("""\
workflow w {
  quiet hours 00:00 to 06:00
  stage a { every 10 hours, 3 times: send push drip }
}
""")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(days=3)
    assert sends(run) == [
        ("2026-01-05T19:00:00Z", "drip"),
        ("2026-01-06T06:00:00Z", "drip"),  # due 05:00, in quiet hours
        ("2026-01-06T15:00:00Z", "drip"),  # nominal: entry + 30 h, not 06:00 + 10 h
    ]


def test_a_postponed_send_is_cancelled_when_the_stage_is_left(flow) -> None:
    run = flow("""\
workflow w {
  timezone "Europe/Warsaw"
  quiet hours 21:00 to 08:00
  stage a {
    after 10 minutes: send push hello
    go to b on click
  }
  stage b { }
}
""", start="2026-01-05T19:55:00Z")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=1)
    assert run.sent("ann") == [] and run.skipped("ann") == []  # hello waits for 08:00
    run.event("ann", "click")
    run.advance(hours=12)
    assert run.sent("ann") == [] and run.skipped("ann") == []


def test_exit_cancels_a_postponed_send(flow) -> None:
    run = flow(WARSAW_NIGHTS.replace("quiet hours", "exit on unsubscribed\n  quiet hours"),
               start="2026-01-05T19:55:00Z")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=1)
    run.event("ann", "unsubscribed")
    run.advance(hours=12)
    assert brief(run.timeline("ann")) == [("2026-01-05T19:55:00Z", "enter", "a"),
                                          ("2026-01-05T20:55:00Z", "exit", "unsubscribed")]


def test_webhooks_ignore_consent_quiet_hours_and_caps(flow) -> None:
    run = flow("""\
workflow w {
  quiet hours 00:00 to 23:59
  limit webhook to 1 per week
  stage a {
    on enter: send webhook alert
    after 1 minute: send webhook alert
  }
}
""")
    run.event("ann", "page_view")
    run.event("ann", "subscribed", channels=[])  # enrols, consents to nothing
    run.advance(minutes=1)
    assert sends(run) == [("2026-01-05T09:00:00Z", "alert"), ("2026-01-05T09:01:00Z", "alert")]
    assert run.sent("ann")[0].fields["url"] == "https://crm.example/hook"


# ---------------------------------------------------------------- skips (SPEC §1.5a, §2)

SKIPS = """\
workflow w {
  stage a {
    on enter: send push hello
    on enter: send email letter
    after 1 day: send push nudge
  }
}
"""


def test_skip_reasons_no_consent_and_no_address(flow) -> None:
    run = flow(SKIPS)
    run.event("ann", "subscribed", channels=["email"])  # no push consent; email but no address
    assert brief(run.timeline("ann"))[1:] == [
        ("2026-01-05T09:00:00Z", "skip", "push hello: no_consent"),
        ("2026-01-05T09:00:00Z", "skip", "email letter: no_address"),
    ]


def test_no_consent_is_checked_before_the_address(flow) -> None:
    run = flow(SKIPS)
    run.event("ann", "subscribed", channels=[])
    assert [r.get("reason") for r in run.skipped("ann")] == ["no_consent", "no_consent"]


def test_an_address_from_the_subscribed_event_or_attributes(flow) -> None:
    run = flow(SKIPS)
    run.event("ann", "subscribed", channels=["email"], email="ann@example.com")
    run.event("bob", "subscribed", channels=["email"], attributes={"email": "bob@example.com"})
    assert [r.get("subject") for r in run.sent(channel="email")] == [
        "Letter for ann", "Letter for bob"]


def test_push_needs_a_live_subscription_outside_the_simulator(flow) -> None:
    run = flow(SKIPS, live_push=True)
    run.event("ann", "subscribed", channels=["push"])
    assert run.skipped("ann")[0].fields["reason"] == "no_address"
    run.add_push_subscription("ann", "https://push.example/ann")
    run.advance(days=1)
    assert sends(run) == [("2026-01-06T09:00:00Z", "nudge")]


def test_a_template_that_fails_is_a_render_error_and_is_never_retried(flow) -> None:
    run = flow("""\
workflow w { stage a { every 1 day, 2 times: send push strict } }
message strict push { title "Hi {{ subscriber.first_name }}" }
""")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(days=1)
    run.event("ann", "attributes", first_name="Ann")
    run.advance(days=5)
    assert brief(run.timeline("ann"))[1:] == [
        ("2026-01-06T09:00:00Z", "skip", "push strict: render_error"),
        ("2026-01-07T09:00:00Z", "send", "push strict"),  # the next occurrence, not a retry
    ]
    assert run.skipped("ann")[0].note == (
        "title: subscriber.first_name is undefined; a default avoids this: "
        "{{ subscriber.first_name | default('…') }}")


def test_an_address_rendered_from_a_subscribers_data_that_is_none_is_a_render_error(
        flow) -> None:
    # the checker cannot see a value that comes from the subscriber; the send can
    run = flow("""\
workflow w { stage a { on enter: send push landing } }
message landing push {
  title "For you"
  url "{{ subscriber.landing | default('/') }}"
}
""")
    run.event("ann", "subscribed", channels=["push"], attributes={"landing": "javascript:x()"})
    run.event("bob", "subscribed", channels=["push"],
              attributes={"landing": "shop.example/rings"})
    run.event("cid", "subscribed", channels=["push"],
              attributes={"landing": "https://shop.example/rings"})
    run.event("dan", "subscribed", channels=["push"])
    assert [r.note for r in run.skipped()] == [
        "url: 'javascript:x()' is not a web address (http or https)",
        "url: 'shop.example/rings' has no 'https://': write 'https://shop.example/rings', or a "
        "browser opens it as a path on the site that serves sw.js"]
    assert [(r.subscriber, r.get("url")) for r in run.sent()] == [
        ("cid", "https://shop.example/rings"), ("dan", "/")]


def test_an_attribute_set_to_null_is_undefined_and_nothing_prints_none(flow) -> None:
    # sites send `"first_name": null` for "not known"; printed, it would greet "Hi None!"
    run = flow("""\
workflow w { stage a { on enter: send push greet } }
message greet push {
  title "Hi {{ subscriber.first_name | default('there') }}"
  body "{{ subscriber.address.city | default('Your city', true) }}: {{ subscriber.note }}"
}
""")
    run.event("ann", "subscribed", channels=["push"],
              attributes={"first_name": None, "address": {"city": None}, "note": "ok"})
    run.event("bob", "subscribed", channels=["push"],
              attributes={"first_name": {"given": "Bob"}, "note": "ok"})
    run.event("cid", "subscribed", channels=["push"],
              attributes={"first_name": "Cid", "address": {"city": "Kraków"},
                          "note": ["rings", 2]})
    run.event("dan", "subscribed", channels=["push"],
              attributes={"first_name": "Dan", "address": {"city": None}, "note": None})
    assert [(r.subscriber, r.get("title"), r.get("body")) for r in run.sent()] == [
        ("ann", "Hi there", "Your city: ok"),
        ("cid", "Hi Cid", "Kraków: ['rings', 2]")]  # a list as Jinja2 prints it
    assert [(r.subscriber, r.note) for r in run.skipped()] == [
        ("bob", "title: a value printed is an object, not text ({'given': 'Bob'}): print one "
                "of its fields"),
        ("dan", "body: subscriber.note is undefined; a default avoids this: "
                "{{ subscriber.note | default('…') }}")]


def test_a_null_deep_in_an_attribute_is_refused_rather_than_printed(flow) -> None:
    run = flow("""\
workflow w { stage a { on enter: send push greet } }
message greet push { title "{{ subscriber.address.city | default('Your city') }}" }
""")
    run.event("ann", "subscribed", channels=["push"], attributes={"address": {"city": None}})
    assert [r.note for r in run.skipped()] == [
        "title: a value printed is null (no value): give a default that also replaces null, "
        "such as {{ … | default('friend', true) }}"]


def test_consent_is_checked_before_rendering(flow) -> None:
    run = flow("""\
workflow w { stage a { on enter: send push strict } }
message strict push { title "Hi {{ subscriber.first_name }}" }
""")
    run.event("ann", "subscribed", channels=[])
    assert run.skipped("ann")[0].fields["reason"] == "no_consent"


def test_consent_withdrawn_mid_journey(flow) -> None:
    run = flow("""\
workflow w { stage a { every 1 day: send push drip  every 1 day: send email letter } }
""")
    run.event("ann", "subscribed", channels=["push", "email"], email="ann@example.com")
    run.advance(days=1, hours=1)
    run.event("ann", "unsubscribed", channels=["push"])  # email stays
    run.advance(days=1)
    assert brief(run.timeline("ann"))[1:] == [
        ("2026-01-06T09:00:00Z", "send", "push drip"),
        ("2026-01-06T09:00:00Z", "send", "email letter"),
        ("2026-01-07T09:00:00Z", "skip", "push drip: no_consent"),
        ("2026-01-07T09:00:00Z", "send", "email letter"),
    ]


def test_consent_withdrawn_while_a_send_waits_skips_it_when_it_would_go(flow) -> None:
    run = flow(WARSAW_NIGHTS, start="2026-01-05T19:55:00Z")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=1)
    run.event("ann", "unsubscribed")  # no exit rule: still enrolled
    run.advance(hours=12)
    assert brief(run.skipped("ann")) == [("2026-01-06T07:00:00Z", "skip", "push hello: no_consent")]


def test_a_waiting_send_is_rendered_when_it_goes(flow) -> None:
    run = flow(WARSAW_NIGHTS, start="2026-01-05T19:55:00Z")
    run.event("ann", "subscribed", channels=["push"])
    run.advance(hours=1)
    run.event("ann", "attributes", first_name="Ann")
    run.advance(hours=12)
    assert run.sent("ann")[0].fields["title"] == "Hello Ann"


# ---------------------------------------------------------------- messages (SPEC §1.7)

LOCALES = """\
workflow w { stage a { on enter: send push hi } }
message hi push { title "Hello" }
message hi push lang "pl" { title "Cześć" }
message hi push lang "pt" { title "Olá" }
message hi push lang "pt-BR" { title "Oi" }
"""


def test_the_locale_picks_the_variant(flow) -> None:
    run = flow(LOCALES, messages="")
    for who, locale in [("a", "pl-PL"), ("b", "pl_PL"), ("c", "PL"), ("d", "pt-BR"),
                        ("e", "pt-PT"), ("f", "pt_br"), ("g", "de-DE"), ("h", None)]:
        attributes = {"locale": locale} if locale else {}
        run.event(who, "subscribed", channels=["push"], attributes=attributes)
    assert [(r.subscriber, r.get("lang"), r.get("title")) for r in run.sent()] == [
        ("a", "pl", "Cześć"), ("b", "pl", "Cześć"), ("c", "pl", "Cześć"),
        ("d", "pt-BR", "Oi"), ("e", "pt", "Olá"), ("f", "pt-BR", "Oi"),
        ("g", None, "Hello"), ("h", None, "Hello")]


def test_locales_as_systems_and_browsers_write_them(flow) -> None:
    """A POSIX locale (`pt_BR.UTF-8`, `sr_RS@latin`) or a browser's Accept-Language
    (`de-CH,pl;q=0.9`) as the `locale` attribute: the languages it names are tried most wanted
    first, without encoding or modifier."""
    run = flow(LOCALES, messages="")
    for who, locale in [("a", "pt_BR.UTF-8"), ("b", "pl_PL.utf8"), ("c", "pt_BR@latin"),
                        ("d", "pt-BR,pt;q=0.9,en;q=0.8"), ("e", "de-CH,pl;q=0.9"),
                        ("f", " PL ; q=1"), ("g", "de;q=0.5,pt-PT;q=0.8"), ("h", "pl;q=0,de"),
                        ("i", "*")]:
        run.event(who, "subscribed", channels=["push"], attributes={"locale": locale})
    assert [(r.subscriber, r.get("lang")) for r in run.sent()] == [
        ("a", "pt-BR"), ("b", "pl"), ("c", "pt-BR"), ("d", "pt-BR"), ("e", "pl"), ("f", "pl"),
        ("g", "pt"), ("h", None), ("i", None)]


def test_no_variant_for_the_locale_is_a_skip(flow) -> None:
    run = flow("""\
workflow w { stage a { on enter: send push hi } }
message hi push lang "pl" { title "Cześć" }
""", messages="")
    run.event("ann", "subscribed", channels=["push"], attributes={"locale": "en"})
    assert run.skipped("ann")[0].fields["reason"] == "no_variant"


def test_templates_see_subscriber_scores_stage_tags_workflow_and_with_values(flow) -> None:
    run = flow("""\
workflow shop {
  score engagement { on page_view +10  on click +2.5 }
  tag "diamonds" on page_view
  stage browsing { on enter: send push info with code = "HOT10", percent = 10 }
}
message info push {
  title "{{ percent }}% off with {{ code }} for {{ subscriber.id }} ({{ subscriber.city }})"
  body "{{ workflow }}/{{ stage }}: {{ scores.engagement }} {{ tags | join(',') }}"
}
""", messages="")
    run.event("ann", "page_view")
    run.event("ann", "click")
    run.event("ann", "subscribed", channels=["push"], attributes={"city": "Kraków"})
    sent = run.sent("ann")[0].fields
    assert sent["title"] == "10% off with HOT10 for ann (Kraków)"
    assert sent["body"] == "shop/browsing: 12.5 diamonds"


def test_a_webhook_body_must_be_json_after_rendering(flow) -> None:
    """`nurture check` refuses a body that is not JSON with sample data; one that is not JSON
    with a subscriber's data is skipped when it is sent."""
    body = ('{\\"n\\": {% if subscriber.name == \\"Ann\\" %}{{ subscriber.name }}'
            '{% else %}0{% endif %}}')
    run = flow(f"""\
workflow w {{ stage a {{ on enter: send webhook hook }} }}
message hook webhook {{ url "https://crm.example/" body "{body}" }}
""", messages="")
    run.event("ann", "subscribed", channels=[], attributes={"name": "Ann"})  # unquoted
    [skip] = run.skipped("ann")
    assert skip.fields["reason"] == "render_error"
    assert skip.note is not None and skip.note.startswith("body: not JSON after rendering")


def test_text_in_a_webhook_body_is_escaped_for_json(flow) -> None:
    """A subscriber's data can neither break the body nor add keys to it; numbers and
    `| tojson` are as they were."""
    body = ('{\\"lead\\": \\"{{ subscriber.id }}\\", \\"name\\": '
            '\\"{{ subscriber.name | default(\'\') }}\\", \\"fit\\": {{ scores.fit }}, '
            '\\"tags\\": {{ tags | tojson }}, \\"vip\\": {{ subscriber.vip | default(false) }}, '
            '\\"likes\\": {{ subscriber.likes | default([]) }}, \\"scores\\": {{ scores }}}')
    run = flow(f"""\
workflow w {{
  score fit {{ when role == "cto" +10 }}
  stage a {{ on enter: send webhook hook }}
}}
message hook webhook {{ url "https://crm.example/" body "{body}" }}
""", messages="")
    name = 'Ann "The Closer" \\ O\'Brien\nline two'
    run.event('x", "owner": "mallory', "subscribed", channels=[],
              attributes={"name": name, "role": "cto", "vip": True,
                          "likes": ["rings", {"kind": "gold"}]})
    [sent] = run.channel.outgoing
    assert json.loads(sent.rendered.fields["body"]) == {
        "lead": 'x", "owner": "mallory', "name": name, "fit": 10, "tags": [],
        "vip": True,  # JSON's true, not Python's True
        "likes": ["rings", {"kind": "gold"}], "scores": {"fit": 10}}  # lists, objects: JSON


def test_email_html_from_a_file_is_rendered_with_escaping(flow, tmp_path) -> None:
    (tmp_path / "letter.html").write_text("<p>Hi {{ subscriber.first_name }}</p>",
                                          encoding="utf-8")
    run = flow("""\
workflow w { stage a { on enter: send email news } }
message news email {
  subject "News for {{ subscriber.first_name }}"
  html file "letter.html"
  text "Hi {{ subscriber.first_name }}"
}
""", messages="")
    run.event("ann", "subscribed", channels=["email"], email="ann@example.com",
              attributes={"first_name": "<Ann & Co>"})
    content = run.channel.outgoing[0].rendered.fields
    assert content["html"] == "<p>Hi &lt;Ann &amp; Co&gt;</p>"
    assert content["text"] == "Hi <Ann & Co>"
    assert content["subject"] == "News for <Ann & Co>"
    assert run.channel.outgoing[0].address == "ann@example.com"


def test_a_push_delivery_keeps_its_transport_settings(flow) -> None:
    run = flow("""\
workflow w { stage a { on enter: send push deal } }
message deal push {
  title "Deal"
  icon "https://shop.example/i.png"
  ttl 2 days
  urgency high
  topic "deal-{{ subscriber.id }}"
}
""", messages="")
    run.event("ann", "subscribed", channels=["push"])
    content = run.channel.outgoing[0].rendered.fields
    assert (content["ttl"], content["urgency"], content["topic"], content["icon"]) == (
        172800, "high", "deal-ann", "https://shop.example/i.png")
    assert content["body"] is None and content["url"] is None


def test_a_push_too_large_once_rendered_is_skipped_with_the_reason(flow) -> None:
    run = flow("""\
workflow w { stage a { on enter: send push story } }
message story push { title "Hi" body "{{ subscriber.story }}" }
""", messages="")
    run.event("ann", "subscribed", channels=["push"], attributes={"story": "é" * 2000})
    run.event("bob", "subscribed", channels=["push"], attributes={"story": "é" * 1800})
    [skip] = run.skipped("ann")
    assert skip.fields["reason"] == "payload_too_large"
    assert "3993 bytes" in (skip.note or "")
    assert [r.subscriber for r in run.sent()] == ["bob"]


def test_an_address_that_bounced_gets_no_more_mail_until_it_changes(flow) -> None:
    """A hard bounce (`email_bounced`, recorded by the dispatcher or sent by a site from its
    mail service) stops every workflow's e-mails to that address, as a push subscription
    that is gone stops pushes: `no_address`, saying why. A new address is mailed again."""
    run = flow("""\
workflow w { stage a { every 1 day: send email letter } }
""")
    run.event("ann", "subscribed", channels=["email"], email="Ann@example.com")
    run.advance(days=1)
    run.event("ann", "email_bounced", address="ann@example.com", status=550)  # (any case)
    run.advance(days=1)
    run.event("ann", "email_bounced", address="old@example.com")  # not hers: nothing
    run.event("ann", "attributes", email="ann@example.net")
    run.advance(days=1)
    run.event("ann", "email_bounced")  # a site's, without an address: the current one
    run.advance(days=1)
    run.event("ann", "attributes", bounced_email=None)  # the mailbox works again
    run.advance(days=1)
    run.event("ann", "email_bounced")
    run.event("ann", "subscribed", channels=["email"], email="ann@example.net")  # opts in again
    run.advance(days=1)
    assert brief(run.timeline("ann"))[1:] == [
        ("2026-01-06T09:00:00Z", "send", "email letter"),
        ("2026-01-07T09:00:00Z", "skip", "email letter: no_address"),
        ("2026-01-08T09:00:00Z", "send", "email letter"),
        ("2026-01-09T09:00:00Z", "skip", "email letter: no_address"),
        ("2026-01-10T09:00:00Z", "send", "email letter"),
        ("2026-01-11T09:00:00Z", "send", "email letter"),
    ]
    assert [s.note for s in run.skipped("ann")] == ["Ann@example.com bounced",
                                                   "ann@example.net bounced"]
    assert run.attributes("ann") == {"email": "ann@example.net", "bounced_email": None}
