"""Every kind of problem of SPEC §1.8, with the exact place and message users see."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

Check = Callable[..., list[str]]

OK_MESSAGE = """
message hello push {
  title "Hello"
}
"""


def flow(body: str, messages: str = OK_MESSAGE) -> str:
    return f"workflow w {{\n{body}\n}}\n{messages}"


# ---------------------------------------------------------------- syntax errors

SYNTAX_CASES = [
    pytest.param(  # said at the name, not at the next line's first word
        "workflow w {\n  stage a {\n    go to b when purchase  # bought\n"
        "    after 1 day: send push hello\n  }\n  stage b { }\n}\n",
        "w.flow:3:18: error: 'when purchase' needs a comparison, such as 'purchase == true' "
        "or 'purchase >= 10'; to move when a 'purchase' event arrives, write 'go to b on "
        "purchase'",
        id="event-after-when",
    ),
    pytest.param(
        "workflow w {\n  score s { on x +1 }\n  stage a {\n    go to b when s => 10\n"
        "  }\n  stage b { }\n}\n",
        "w.flow:4:20: error: unexpected '=>'; expected a comparison such as '==' or '>=', "
        "'contains', '.', 'startswith' or 'in'; write '>=' to compare",
        id="comparison-written-backwards",
    ),
    pytest.param(
        "workflow w {\n  score s { on x +1 }\n  stage a {\n    go to b when s = 10\n"
        "  }\n  stage b { }\n}\n",
        "w.flow:4:20: error: unexpected '='; expected a comparison such as '==' or '>=', "
        "'contains', '.', 'startswith' or 'in'; write '==' to compare",
        id="single-equals",
    ),
    pytest.param(
        "workflow w {\n  stage a { on enter: send push hello with code = HOT10 }\n}\n",
        "w.flow:2:51: error: unexpected 'HOT10': a text value is written in quotes: \"HOT10\"",
        id="unquoted-text-value",
    ),
    pytest.param(
        "workflow w {\n  stage a { on enter: send push \"hello\" }\n}\n",
        "w.flow:2:33: error: unexpected string \"hello\"; expected a name",
        id="quoted-message-name",
    ),
    pytest.param(
        "workflow w {\n  score fit { when vip +10 }\n  stage a { }\n}\n",
        "w.flow:2:20: error: 'when vip' needs a comparison, such as 'vip == true' or "
        "'vip >= 10'",
        id="bare-name-in-fit-rule",
    ),
    pytest.param(
        "workflow w {\n  stge a { }\n}\n",
        "w.flow:2:3: error: unexpected 'stge'; expected 'stage', 'score', 'tag', 'entry', "
        "'exit', 'start', 'timezone', 'quiet hours', 'limit' or '}'; did you mean 'stage'?",
        id="misspelt-keyword",
    ),
    pytest.param(
        "workflow w {\n  stage a {\n    after 10: send push hello\n  }\n}\n",
        "w.flow:3:13: error: unexpected ':'; expected a duration unit such as 'days'",
        id="missing-unit",
    ),
    pytest.param(
        "workflow w {\n  stage a {\n    after 10 mins: send push hello\n  }\n}\n",
        "w.flow:3:14: error: unexpected 'mins'; expected a duration unit such as 'days'; "
        "did you mean 'minutes'?",
        id="misspelt-unit",
    ),
    pytest.param(
        "workflow w {\n  quiet hours 9 to 17\n}\n",
        "w.flow:2:15: error: unexpected '9'; expected a clock time such as '21:00'",
        id="clock-without-minutes",
    ),
    pytest.param(
        "message m sms {\n  title \"x\"\n}\n",
        "w.flow:1:11: error: unexpected 'sms'; expected a channel: 'push', 'email' or "
        "'webhook'",
        id="unknown-channel",
    ),
    pytest.param(
        "workflow w {\n  score s {\n    on purchase 25\n  }\n}\n",
        "w.flow:3:17: error: unexpected '25'; expected points such as '+10' or '-20' or "
        "'where' (points carry a sign: write '+25')",
        id="points-without-sign",
    ),
    pytest.param(
        "workflow w {\n  timezone \"Europe/Warsaw\n}\n",
        "w.flow:2:12: error: unterminated string: a string must end with '\"' on the same line",
        id="unterminated-string",
    ),
    pytest.param(
        "workflow w {\n  stage a {\n    after -5 minutes: send push hello\n  }\n}\n",
        "w.flow:3:11: error: unexpected '-5'; expected a number (durations and counts cannot "
        "be negative)",
        id="negative-duration",
    ),
    pytest.param(
        "workflow w {\n  stage a {\n    on enter: send push hello\n",
        "w.flow:4:1: error: unexpected end of file; expected 'on', 'after', 'every', 'go', "
        "'with' or '}' (the '{' of 'stage a' on line 2 is not closed)",
        id="unclosed-block",
    ),
    pytest.param(
        "Workflow w {\n}\n",
        "w.flow:1:1: error: unexpected 'Workflow': names and keywords are written in lower "
        "case; did you mean 'workflow'?",
        id="capitalised-keyword",
    ),
    pytest.param(
        "workflow w {\n  stage a {\n    go to b whn x > 1\n  }\n  stage b { }\n}\n",
        "w.flow:3:13: error: unexpected 'whn'; expected 'on', 'after' or 'when'; did you mean "
        "'when'?",
        id="misspelt-keyword-in-transition",
    ),
    pytest.param(
        "workflow w {\n  stage a {\n    on enter: send push hello\n  stage b { }\n}\n",
        "w.flow:4:3: error: unexpected 'stage'; expected 'on', 'after', 'every', 'go', 'with' "
        "or '}' (the '{' of 'stage a' on line 2 is not closed)",
        id="missing-closing-brace",
    ),
    pytest.param(
        "workflow w {\n  stage a {\n    go to a when x >= 1 @\n  }\n}\n",
        "w.flow:3:25: error: unexpected character '@'; expected 'on', 'after', 'every', 'go', "
        "'and', 'or' or '}'",
        id="stray-character",
    ),
    # pasted from a word processor or a web page
    pytest.param(
        "workflow w {\n  tag \u201cvip\u201d on purchase\n  stage a { }\n}\n",
        "w.flow:2:7: error: unexpected character '\u201c' (left double quotation mark, as word "
        "processors write it); expected a quoted string; write '\"' instead",
        id="typographic-quotes",
    ),
    pytest.param(
        "workflow w {\n  tag \"vip\u201d on purchase\n  stage a { }\n}\n",
        "w.flow:2:7: error: unterminated string: a string must end with '\"' on the same line; "
        "it holds '\u201d' (right double quotation mark, as word processors write it): write "
        "'\"' instead",
        id="string-closed-by-a-typographic-quote",
    ),
    pytest.param(
        "workflow w {\n  score s { on click \u20135 }\n  stage a { }\n}\n",
        "w.flow:2:22: error: unexpected character '\u2013' (en dash, as word processors write "
        "it); expected points such as '+10' or '-20' or 'where'; write '-' instead",
        id="en-dash",
    ),
    pytest.param(
        "workflow w {\n  stage\u00a0a { }\n}\n",
        "w.flow:2:8: error: unexpected character U+00A0 (no-break space); expected a name; an "
        "invisible character or an unusual space, as text pasted from a web page or a word "
        "processor brings: retype it",
        id="no-break-space",
    ),
]


@pytest.mark.parametrize(("text", "expected"), SYNTAX_CASES)
def test_syntax_error(check_lines: Check, text: str, expected: str) -> None:
    assert check_lines(text) == [expected]


# ---------------------------------------------------------------- errors found while building


def test_reserved_word_as_name(check_lines: Check) -> None:
    text = flow("  stage stage {\n    on enter: send push hello\n  }")
    assert check_lines(text) == [
        "w.flow:2:9: error: 'stage' is a reserved word and cannot be used as a name",
    ]


def test_bad_clock_time(check_lines: Check) -> None:
    text = flow("  quiet hours 21:00 to 24:30\n  stage a { }")
    assert check_lines(text) == [
        "w.flow:2:24: error: bad clock time '24:30': use HH:MM from 00:00 to 23:59",
    ]


def test_bad_minutes_in_clock_time(check_lines: Check) -> None:
    text = flow("  quiet hours 21:75 to 08:00\n  stage a { }")
    assert check_lines(text) == [
        "w.flow:2:15: error: bad clock time '21:75': use HH:MM from 00:00 to 23:59",
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("0.001 minutes", "a duration must be at least one second, not '0.001 minutes'"),
    ("6000 weeks", "a duration must be at most 100 years, not '6000 weeks'"),
])
def test_durations_too_short_or_too_long(check_lines: Check, text: str, message: str) -> None:
    lines = check_lines(flow(f"  stage a {{\n    every {text}: send push hello\n  }}"))
    assert lines == [f"w.flow:3:11: error: {message}"]


def test_zero_duration(check_lines: Check) -> None:
    text = flow("  stage a {\n    after 0 minutes: send push hello\n  }")
    assert check_lines(text) == [
        "w.flow:3:11: error: a duration must be longer than zero, not '0 minutes'",
    ]


def test_zero_decay_period(check_lines: Check) -> None:
    text = flow("  score s {\n    decay 10% every 0 days\n  }\n  stage a { }")
    assert check_lines(text) == [
        "w.flow:3:21: error: a duration must be longer than zero, not '0 days'",
    ]


def test_cap_that_can_never_be_met(check_lines: Check) -> None:
    text = flow("  limit push to 1 per day, 0 per week\n  stage a { }")
    assert check_lines(text) == [
        "w.flow:2:28: error: a cap of 0 per week can never be met: nothing would be sent",
    ]


def test_score_max_that_adds_nothing(check_lines: Check) -> None:
    text = flow("  score s {\n    on email_open +10 max 0 per week\n  }\n  stage a { }")
    assert check_lines(text) == [
        "w.flow:3:27: error: 'max 0 per week' never lets this rule add anything",
    ]


def test_redundant_cap_is_a_warning(check_lines: Check) -> None:
    text = flow("  limit push to 3 per day, 2 per week\n  stage a { }")
    assert check_lines(text) == [
        "w.flow:2:17: warning: '3 per day' never applies: '2 per week' on push is stricter",
    ]


def test_a_transition_to_its_own_stage_is_a_warning(check_lines: Check) -> None:
    text = flow("  score s { on ping +1 }\n"
                "  stage a {\n"
                "    go to a after 7 days\n"
                "    go to b when s >= 1\n"
                "  }\n"
                "  stage b { go to b on ping }")
    assert check_lines(text) == [
        "w.flow:4:11: warning: 'go to a' inside stage 'a' never moves anyone (a stage is "
        "entered at most once per evaluation), and while it holds the transitions written "
        "after it are not tried",
        "w.flow:7:19: warning: 'go to b' inside stage 'b' never moves anyone (a stage is "
        "entered at most once per evaluation), and while it holds the transitions written "
        "after it are not tried",
    ]


def test_an_endless_drip_faster_than_its_cap_is_a_warning(check_lines: Check) -> None:
    text = flow("  limit push to 1 per day, 5 per week\n"
                "  stage a {\n"
                "    every 1 hour: send push hello\n"  # held back: queues without end
                "    every 1 hour, 48 times: send push hello\n"  # a bounded line: fine
                "    every 1 day: send push hello\n"  # 7 a week against 5
                "    every 2 days: send push hello\n"  # fits both
                "  }")
    assert check_lines(text) == [
        "w.flow:4:5: warning: 'every 1 hour' sends push more often than 'limit push to 1 per "
        "day' lets through: the sends held back queue up for as long as a subscriber stays in "
        "stage 'a' (give it a count, or a longer interval)",
        "w.flow:6:5: warning: 'every 1 day' sends push more often than 'limit push to 5 per "
        "week' lets through: the sends held back queue up for as long as a subscriber stays in "
        "stage 'a' (give it a count, or a longer interval)",
    ]


def test_a_subscriber_attribute_read_without_a_default_is_a_warning(check_lines: Check) -> None:
    """`check` renders with a sample subscriber who has every attribute, so it would not show
    that a subscriber without `first_name` gets nothing (SPEC §1.5a: render_error)."""
    messages = (
        'message hello push {\n'
        '  title "Hi {{ subscriber.first_name }}, {{ subscriber[\'city\'] }}"\n'
        '  body "{{ subscriber.first_name | default(\'there\') }} {{ subscriber.id }}'
        ' {{ subscriber.get(\'x\') }} {% if subscriber.vip is defined %}'
        '{{ subscriber.vip }}{% endif %}"\n'
        '}\n'
        'message letter email {\n'
        '  subject "For {{ subscriber.email }}"\n'  # always there when an e-mail goes out
        '  text "x"\n'
        '}\n')
    text = flow("  stage a {\n    on enter: send push hello\n    on enter: send email letter\n"
                "  }", messages)
    assert check_lines(text) == [
        "w.flow:8:3: warning: field 'title' of message 'hello' reads subscriber.city without a "
        "default: a subscriber without it gets no message (render_error); "
        "{{ subscriber.city | default('…') }} avoids that",
        "w.flow:8:3: warning: field 'title' of message 'hello' reads subscriber.first_name "
        "without a default: a subscriber without it gets no message (render_error); "
        "{{ subscriber.first_name | default('…') }} avoids that",
    ]


def test_unknown_message_field(check_lines: Check) -> None:
    text = flow("  stage a { }", 'message hello push {\n  titel "Hello"\n}\n')
    assert check_lines(text) == [
        "w.flow:4:1: error: push message 'hello' needs a title",
        "w.flow:5:3: error: unknown push field 'titel'; did you mean 'title'? (a push message "
        "has title, body, url, icon, ttl, urgency, topic)",
    ]


def test_workflow_without_stages(check_lines: Check) -> None:
    assert check_lines("workflow w { }\n") == [
        "w.flow:1:1: error: workflow 'w' has no stages; add one such as 'stage welcome { }'",
    ]


# ---------------------------------------------------------------- semantic errors


def test_unknown_stage(check_lines: Check) -> None:
    text = flow("  stage awareness {\n    go to intrest when engagement >= 20\n  }\n"
                "  stage interest { }")
    assert check_lines(text) == [
        "w.flow:3:11: error: unknown stage 'intrest'; did you mean 'interest'?",
        "w.flow:5:3: warning: stage 'interest' is unreachable: no transition from 'awareness' "
        "leads to it",
    ]


def test_unknown_start_stage(check_lines: Check) -> None:
    text = flow("  start at welcom\n  stage welcome { }")
    assert check_lines(text) == [
        "w.flow:2:12: error: unknown stage 'welcom'; did you mean 'welcome'?",
    ]


def test_unknown_score(check_lines: Check) -> None:
    text = flow("  score engagement {\n    on page_view +1\n  }\n  stage a {\n"
                "    go to b when engagment >= 20\n  }\n  stage b { }")
    assert check_lines(text) == [
        "w.flow:6:18: error: unknown score 'engagment'; did you mean 'engagement'? (write "
        "subscriber.engagment for an attribute of that name)",
    ]


def test_a_score_read_by_a_fit_rule(check_lines: Check) -> None:
    """SPEC §1.4: fit rules are on attributes. `engagement` here would read an attribute
    of that name and never hold; `subscriber.engagement` says an attribute is meant."""
    text = flow("  score engagement {\n    on page_view +10\n  }\n  score hot {\n"
                "    when engagement >= 20 or subscriber.engagement >= 20 +1\n  }\n"
                "  stage a { }")
    assert check_lines(text) == [
        "w.flow:6:10: error: 'engagement' is a score, but a fit rule reads subscriber "
        "attributes and is not tried again when scores change; to act on the score, use "
        "'go to STAGE when engagement …' in a stage (write subscriber.engagement for an "
        "attribute of that name)",
    ]


def test_a_tag_that_no_rule_adds(check_lines: Check) -> None:
    """`has tag` of a tag no rule adds (here misspelt, in a `when` and in a `where`) would
    never hold: a warning, since subscribers may carry it from an earlier version."""
    text = flow('  tag "diamonds" on page_view where url contains "/diamonds"\n'
                '  score s {\n    on purchase where has tag "vip" +5\n  }\n'
                '  stage a {\n    go to b when has tag "diamond" or has tag "diamonds"\n  }\n'
                "  stage b { }")
    assert check_lines(text) == [
        "w.flow:4:23: warning: no tag rule adds tag 'vip'",
        "w.flow:7:18: warning: no tag rule adds tag 'diamond'; did you mean 'diamonds'?",
    ]


def test_an_event_name_one_letter_off_nurtures_own(check_lines: Check) -> None:
    """`entry on subscribe` enrols nobody; a site's own event names raise nothing."""
    text = flow("  entry on subscribe\n  score s {\n    on push_clik +5\n"
                "    on subscription +1\n    on page_view +1\n  }\n  stage a {\n"
                "    go to b on atributes\n  }\n  stage b { }")
    assert check_lines(text) == [
        "w.flow:2:12: warning: event 'subscribe' is none of nurture's own events; did you "
        "mean 'subscribed'?",
        "w.flow:4:8: warning: event 'push_clik' is none of nurture's own events; did you "
        "mean 'push_click'?",
        "w.flow:9:16: warning: event 'atributes' is none of nurture's own events; did you "
        "mean 'attributes'?",
    ]


def test_an_event_name_one_letter_off_another_the_workflows_name(check_lines: Check) -> None:
    """A site's event named once, nearly as another event the workflows name: a typo is
    likely. When the other is named more often it is the one meant; when each is named once,
    either may be the typo (said once, at the later)."""
    text = flow("  score s {\n    on purchase +25\n    on purchase where amount > 1000 +50\n"
                "    on demo_booked +5\n  }\n  stage a {\n    go to b on purchse\n  }\n"
                "  stage b {\n    go to a on demo_boked\n  }")
    assert check_lines(text) == [
        "w.flow:8:16: warning: event 'purchse' is named only here, and 'purchase' 2 times "
        "elsewhere; did you mean 'purchase'?",
        "w.flow:11:16: warning: events 'demo_boked' and 'demo_booked' (at w.flow:5:8) are "
        "each named once and nearly the same: if one is a typo, it never happens",
    ]


def test_a_tag_written_in_another_case(check_lines: Check) -> None:
    text = flow('  tag "vip" on purchase\n  stage a {\n    go to b when has tag "VIP"\n  }\n'
                "  stage b { }")
    assert check_lines(text) == [
        "w.flow:4:18: warning: no tag rule adds tag 'VIP'; did you mean 'vip'?"]


def test_a_score_of_another_workflow(check_lines: Check) -> None:
    """Scores are each workflow's own: `engagement` in workflow b reads an attribute."""
    text = ("workflow a {\n  score engagement {\n    on page_view +10\n  }\n  stage s { }\n}\n"
            "workflow b {\n  score fit {\n    when engagement > 1 +1\n  }\n"
            "  stage s {\n    go to t when engagement >= 20\n  }\n  stage t { }\n}\n")
    assert check_lines(text) == [
        "w.flow:9:10: error: 'engagement' is a score, but a fit rule reads subscriber "
        "attributes and is not tried again when scores change; to act on the score, use "
        "'go to STAGE when engagement …' in workflow 'a' (write subscriber.engagement for an "
        "attribute of that name)",
        "w.flow:12:18: error: 'engagement' is a score of workflow 'a', not of 'b': a "
        "workflow's conditions read its own scores (declare the score here too, or write "
        "subscriber.engagement for an attribute of that name)",
    ]


def test_unknown_message(check_lines: Check) -> None:
    text = flow("  stage a {\n    on enter: send push helo\n  }")
    assert check_lines(text) == [
        "w.flow:3:25: error: unknown message 'helo'; did you mean 'hello'?",
    ]


def test_send_to_a_channel_without_that_message(check_lines: Check) -> None:
    text = flow("  stage a {\n    on enter: send email hello\n  }")
    assert check_lines(text) == [
        "w.flow:3:26: error: message 'hello' has no email variant (it is declared for push)",
    ]


def test_duplicate_workflow_across_files(check_lines: Check) -> None:
    other = "workflow w {\n  stage a { }\n}\n"
    lines = check_lines(flow("  stage a { }"), extra={"z/other.flow": other})
    assert lines == ["z/other.flow:1:1: error: duplicate workflow 'w' (first defined at "
                     "w.flow:1:1)"]


def test_duplicate_message_variant_across_files(check_lines: Check) -> None:
    other = 'message hello push {\n  title "Hi"\n}\n'
    lines = check_lines(flow("  stage a { }"), extra={"z/other.flow": other})
    assert lines == ["z/other.flow:1:1: error: duplicate message 'hello' push (first defined "
                     "at w.flow:5:1)"]


def test_same_message_name_on_two_channels_is_fine(check_lines: Check) -> None:
    other = 'message hello email {\n  subject "Hi"\n  text "Hello"\n}\n'
    assert check_lines(flow("  stage a { }"), extra={"z/other.flow": other}) == []


def test_duplicate_stage_and_score(check_lines: Check) -> None:
    text = flow("  score s {\n  }\n  score s {\n  }\n  stage a { }\n  stage a { }")
    assert check_lines(text) == [
        "w.flow:4:3: error: duplicate score 's' in workflow 'w' (first defined on line 2)",
        "w.flow:7:3: error: duplicate stage 'a' in workflow 'w' (first defined on line 6)",
    ]


def test_unreachable_stage_is_a_warning(check_lines: Check) -> None:
    text = flow("  stage a { }\n  stage lost { }")
    assert check_lines(text) == [
        "w.flow:3:3: warning: stage 'lost' is unreachable: no transition from 'a' leads to it",
    ]


def test_unknown_time_zone(check_lines: Check) -> None:
    text = flow('  timezone "Europe/Warsw"\n  stage a { }')
    assert check_lines(text) == [
        "w.flow:2:12: error: unknown time zone 'Europe/Warsw'; did you mean 'Europe/Warsaw'?",
    ]


@pytest.mark.parametrize(("written", "message"), [
    ("europe/warsaw", "unknown time zone 'europe/warsaw'; did you mean 'Europe/Warsaw'?"),
    ("GMT+1", "'GMT+1' is an offset, not a time zone; write the place's zone (such as "
              "'Europe/Warsaw'), which follows its daylight-saving changes"),
])
def test_a_time_zone_written_as_people_say_it(check_lines: Check, written: str,
                                              message: str) -> None:
    text = flow(f'  timezone "{written}"\n  stage a {{ }}')
    assert check_lines(text) == [f"w.flow:2:12: error: {message}"]


def test_template_that_does_not_compile(check_lines: Check) -> None:
    text = flow("  stage a { }", 'message hello push {\n  title "Hi {{ subscriber.name "\n}\n')
    assert check_lines(text) == [
        "w.flow:5:3: error: template of field 'title' in message 'hello' does not compile: "
        "unexpected end of template, expected 'end of print statement'.",
    ]


@pytest.mark.parametrize(("written", "message"), [
    ("{{ subscriber.first_name | default('') | titel }}",
     "does not compile: no filter named 'titel'; did you mean 'title'?"),
    ("{{ 'a' if tags is sequense else 'b' }}",  # Jinja finds an unknown test when rendering
     "does not render: no test named 'sequense'; did you mean 'sequence'?"),
    ("{{ tags | nosuchthing }}", "does not compile: no filter named 'nosuchthing'"),
])
def test_an_unknown_filter_or_test_says_the_one_meant(check_lines: Check, written: str,
                                                      message: str) -> None:
    text = flow("  stage a { }", f'message hello push {{\n  title "{written}"\n}}\n')
    field = "template of field 'title' in message 'hello'" if "compile" in message else \
        "field 'title' of message 'hello'"
    assert check_lines(text) == [f"w.flow:5:3: error: {field} {message}"]


def test_template_with_an_unknown_name(check_lines: Check) -> None:
    text = flow("  stage a { }", 'message hello push {\n  title "Hi {{ subscribr.name }}"\n}\n')
    assert check_lines(text) == [
        "w.flow:5:3: error: unknown name 'subscribr' in field 'title' of message 'hello'; did "
        "you mean 'subscriber'? (a template can use scores, stage, subscriber, tags, workflow)",
    ]


def test_a_syntax_error_is_not_followed_by_errors_it_causes(check_lines: Check) -> None:
    """The workflow with the syntax error is lost, and with it the `with` value and the score
    its messages use: the writer is told of the syntax error, not sent after names that the
    broken text declares and fixing it brings back. A name it does not declare is said at
    once (`nope`), and a misspelt one once the text parses (`cod`)."""
    text = ('workflow w {\n  score engagement { on x +1 }\n'
            '  stage a { on enter: send push hello with code = HOT10 }\n}\n'
            'message hello push {\n  title "{{ code }}: {{ scores.engagement }}"\n}\n')
    assert check_lines(text) == [
        "w.flow:3:51: error: unexpected 'HOT10': a text value is written in quotes: \"HOT10\""]
    other = 'message bye push {\n  title "{{ scores.engagment }} {{ nope }}"\n}\n'
    assert check_lines(text, extra={"z/other.flow": other}) == [
        "w.flow:3:51: error: unexpected 'HOT10': a text value is written in quotes: \"HOT10\"",
        "z/other.flow:2:3: error: unknown name 'nope' in field 'title' of message 'bye' (a "
        "template can use scores, stage, subscriber, tags, workflow)",
        "z/other.flow:2:3: error: unknown score 'engagment' in message 'bye'; did you mean "
        "'engagement'?"]
    fixed = text.replace("HOT10", '"HOT10"').replace("{{ code }}", "{{ cod }}")
    assert check_lines(fixed) == [
        "w.flow:6:3: error: unknown name 'cod' in field 'title' of message 'hello'; did you "
        "mean 'code'? (a template can use code, scores, stage, subscriber, tags, workflow)"]


def test_a_suggestion_is_a_likely_typo_not_any_word_that_shares_letters(
        check_lines: Check) -> None:
    """`code` is no typo of `scores` (3 letters of 10 in common, difflib's 0.6): a guess
    that far off sends the writer the wrong way. `subscribr` and `dy` still get theirs."""
    text = flow("  stage a { }", 'message hello push {\n  title "Hi {{ code }}"\n}\n')
    assert check_lines(text) == [
        "w.flow:5:3: error: unknown name 'code' in field 'title' of message 'hello' (a "
        "template can use scores, stage, subscriber, tags, workflow)"]
    assert check_lines(flow("  stage a { after 2 dy: send push hello }")) == [
        "w.flow:2:21: error: unexpected 'dy'; expected a duration unit such as 'days'; did "
        "you mean 'days'?"]


def test_subscriber_attributes_never_fail_with_sample_data(check_lines: Check) -> None:
    text = flow("  stage a { }", 'message hello push {\n  title "Hi {{ subscriber.nickname }}'
                '{{ subscriber.city | default(\'\') }}"\n}\n')
    assert check_lines(text) == [  # no error; the read without a default is worth a warning
        "w.flow:5:3: warning: field 'title' of message 'hello' reads subscriber.nickname "
        "without a default: a subscriber without it gets no message (render_error); "
        "{{ subscriber.nickname | default('…') }} avoids that",
    ]


def test_template_that_fails_to_render(check_lines: Check) -> None:
    text = flow("  stage a { }",
                'message hello push {\n  title "{{ workflow.no_such_method() }}"\n}\n')
    assert check_lines(text) == [
        "w.flow:5:3: error: field 'title' of message 'hello' does not render: 'str object' "
        "has no attribute 'no_such_method'",
    ]


def test_sandbox_refuses_unsafe_attributes(check_lines: Check) -> None:
    text = flow("  stage a { }",
                'message hello push {\n  title "{{ workflow.__class__.__mro__ }}"\n}\n')
    assert check_lines(text) == [
        "w.flow:5:3: error: field 'title' of message 'hello' does not render: not allowed in "
        "a template: access to attribute '__class__' of 'str' object is unsafe.",
    ]


def test_template_using_an_unknown_score(check_lines: Check) -> None:
    text = flow("  score engagement {\n  }\n  stage a {\n    on enter: send push hello\n  }",
                'message hello push {\n  title "{{ scores.engagment }}"\n}\n')
    assert check_lines(text) == [
        "w.flow:9:3: error: unknown score 'engagment' in message 'hello'; did you mean "
        "'engagement'?",
    ]


def test_send_that_does_not_give_a_with_value(check_lines: Check) -> None:
    text = flow("  stage a {\n    on enter: send push hello with code = \"A\"\n"
                "    after 1 day: send push hello\n  }",
                'message hello push {\n  title "Use {{ code }}"\n}\n')
    assert check_lines(text) == [
        "w.flow:4:18: error: message 'hello' uses 'code', which this send does not give; "
        "add: with code = …",
    ]


def test_webhook_body_must_be_json(check_lines: Check) -> None:
    text = flow("  stage a {\n    on enter: send webhook hook\n  }",
                'message hook webhook {\n  url "https://crm.example/hook"\n'
                '  body "{\\"lead\\": {{ subscriber.id }}}"\n}\n')
    assert check_lines(text) == [
        "w.flow:8:3: error: webhook body is not JSON after rendering: Expecting value: line 1 "
        "column 10 (char 9)",
    ]


def test_missing_template_file(check_lines: Check) -> None:
    text = flow("  stage a { }", 'message news email {\n  subject "News"\n'
                '  html file "templates/news.html"\n}\n')
    assert check_lines(text) == [
        "w.flow:6:13: error: file not found: templates/news.html",
    ]


def test_a_template_file_must_be_in_the_workflow_files_folder(
        check_lines: Check, write_flow: Callable[..., str], tmp_path: Path) -> None:
    """Templates go out in messages: a workflow may not read (and mail) files from elsewhere,
    such as the service's `.env` or `.nurture/secret`, not even through a link."""
    write_flow(".env", "NURTURE_SMTP_URL=smtp://ops:s3cret@mail.example\n")
    write_flow("flows/templates/ok.html", "<p>fine</p>")
    (tmp_path / "flows" / "templates" / "env.html").symlink_to(tmp_path / ".env")
    text = flow("  stage a { }", 'message a email {\n  subject "A"\n'
                '  html file "templates/ok.html"\n  text file "../.env"\n}\n'
                'message b email {\n  subject "B"\n  html file "templates/env.html"\n}\n'
                'message c email {\n  subject "C"\n  html file "templates/../templates/ok.html"'
                "\n}\n")
    assert check_lines(text, name="flows/w.flow") == [
        "flows/w.flow:7:13: error: file \"../.env\" is outside the workflow file's folder: a "
        "template must be in it or below it",
        "flows/w.flow:11:13: error: file \"templates/env.html\" is a link to a file outside the "
        "workflow file's folder: a template must be in it or below it",
    ]


def test_a_template_file_is_named_by_a_path_that_opens_from_where_check_ran(
        check_lines: Check) -> None:
    # `nurture check flows/w.flow` run from the project: the template is in flows/templates
    text = flow("  stage a { on enter: send email news }", 'message news email {\n'
                '  subject "News"\n  html file "templates/news.html"\n}\n')
    lines = check_lines(text, name="flows/w.flow", extra={
        "flows/templates/news.html": "<p>{{ scores.engagment }}</p>\n<a href='shop.example'>"})
    assert lines == [
        "flows/templates/news.html:1:1: error: unknown score 'engagment' in message 'news'",
        "flows/templates/news.html:2:1: warning: link 'shop.example' in the html of message "
        "'news' has no 'https://': a mail client cannot open it (an e-mail has no site to "
        "read it against), and it is not click-tracked"]


def test_template_file_error_points_into_the_file(check_lines: Check) -> None:
    text = flow("  stage a { }", 'message news email {\n  subject "News"\n'
                '  html file "templates/news.html"\n}\n')
    lines = check_lines(text, extra={"templates/news.html": "<p>\n{% if x %}\n</p>\n"})
    assert lines == [
        "templates/news.html:2:1: error: template of field 'html' in message 'news' does not "
        "compile: Unexpected end of template. Jinja was looking for the following tags: "
        "'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.",
    ]


def test_language_only_variants_warn(check_lines: Check) -> None:
    text = flow("  stage a { }", 'message hello push lang "pl" {\n  title "Cześć"\n}\n')
    assert check_lines(text) == [
        "w.flow:4:1: warning: message 'hello' push has only language variants: a subscriber "
        "with another locale gets nothing; add a variant without 'lang'",
    ]


def test_every_problem_of_every_file_in_one_run(check_lines: Check) -> None:
    broken = "workflow other {\n  stage a {\n    after 5 dayz: send push hello\n  }\n}\n"
    text = flow('  timezone "Mars/Olympus"\n  stage a {\n    go to b after 1 day\n  }')
    lines = check_lines(text, extra={"b.flow": broken})
    assert lines == [
        "b.flow:3:13: error: unexpected 'dayz'; expected a duration unit such as 'days'; did "
        "you mean 'days'?",
        "w.flow:2:12: error: unknown time zone 'Mars/Olympus' (an IANA name such as "
        "'Europe/Warsaw')",
        "w.flow:4:11: error: unknown stage 'b'",
    ]


def test_a_syntax_error_does_not_hide_the_other_blocks_of_the_file(check_lines: Check) -> None:
    text = (
        "workflow a {\n  stage s {\n    after 2 dys: send email hello\n  }\n}\n"
        "message hello email {\n  subjct \"x\"\n  text \"y\"\n}\n"
        "workflow c {\n  quiet hours 9 to 5\n  stage s { }\n}\n"
        "# a comment with a \" quote and a { brace\n"
        "message m push { title \"a}{\" url \"{{ nope }}\" }\n"
    )
    assert check_lines(text) == [
        "w.flow:3:13: error: unexpected 'dys'; expected a duration unit such as 'days'; did you "
        "mean 'days'?",
        "w.flow:6:1: error: email message 'hello' needs a subject",
        "w.flow:7:3: error: unknown email field 'subjct'; did you mean 'subject'? (an email "
        "message has subject, html, text)",
        "w.flow:11:15: error: unexpected '9'; expected a clock time such as '21:00'",
        "w.flow:15:30: error: unknown name 'nope' in field 'url' of message 'm' (a template can "
        "use scores, stage, subscriber, tags, workflow)",
    ]


def test_a_push_that_can_never_fit_is_refused(check_lines: Check) -> None:
    long_body = "x" * 4000
    text = ('workflow w {\n  stage a { on enter: send push big }\n}\n'
            f'message big push {{\n  title "Hi"\n  body "{long_body}"\n}}\n')
    [line] = check_lines(text)
    assert line.startswith("w.flow:4:1: error: push message 'big' can never be sent: its fixed "
                           "text alone makes a 4")
    assert line.endswith("more than the 3993 bytes a push can carry")


def test_a_push_whose_size_depends_on_data_is_checked_when_sent(check_lines: Check) -> None:
    text = ('workflow w {\n  stage a { on enter: send push big }\n}\n'
            'message big push {\n  title "Hi"\n'
            '  body "{{ subscriber.story | default(\'\') }}"\n}\n')
    assert check_lines(text) == []


def test_a_byte_order_mark_is_not_part_of_a_workflow_or_a_template(tmp_path: Path) -> None:
    # some Windows editors save UTF-8 with it; it would be an "unexpected character" before
    # 'workflow', and an invisible character at the start of every e-mail
    from dsl.loader import load_paths

    (tmp_path / "letter.html").write_bytes("\ufeff<p>Hi</p>".encode())
    (tmp_path / "w.flow").write_bytes(
        "\ufeffworkflow w { stage a { on enter: send email letter } }\n"
        'message letter email { subject "Hi" html file "letter.html" }\n'.encode())
    result = load_paths([str(tmp_path / "w.flow")])
    assert result.catalog is not None, [str(d) for d in result.diagnostics]
    (letter,) = result.catalog.messages
    assert [(name, t.source) for name, t in letter.templates()] == [
        ("subject", "Hi"), ("html", "<p>Hi</p>")]


def test_a_template_file_not_in_utf8_is_reported_with_its_line_and_column(
        tmp_path: Path) -> None:
    from dsl.loader import load_paths

    (tmp_path / "letter.html").write_bytes(b"<p>Hello</p>\n<p>Caf\xe9 tonight?</p>\n")
    (tmp_path / "w.flow").write_text(
        "workflow w { stage a { on enter: send email letter } }\n"
        'message letter email {\n  subject "Hi"\n  html file "letter.html"\n}\n',
        encoding="utf-8")
    result = load_paths([str(tmp_path / "w.flow")])
    assert [str(d) for d in result.diagnostics] == [
        f"{tmp_path / 'w.flow'}:4:13: error: file {tmp_path / 'letter.html'} is not UTF-8 text "
        "(byte 0xe9) at line 2, column 7: save it as UTF-8"]


@pytest.mark.parametrize(("window", "warned"), [
    ("08:00 to 21:00", True), ("06:00 to 18:30", True),  # quiet by day: written the wrong way
    ("21:00 to 08:00", False), ("18:00 to 09:00", False),  # nights, short or long
    ("12:00 to 13:00", False), ("00:00 to 06:00", False),  # a lunch break, the small hours
])
def test_quiet_hours_that_keep_messages_for_the_night(check_lines: Check, window: str,
                                                      warned: bool) -> None:
    start, _, end = window.split()
    lines = check_lines(flow(f"  quiet hours {window}\n  stage a {{ }}"))
    assert lines == ([f"w.flow:2:3: warning: quiet hours {window} let messages go out only "
                      f"from {end} to {start}, at night; did you mean 'quiet hours {end} to "
                      f"{start}'?"] if warned else [])


@pytest.mark.parametrize(("fields", "message"), [
    ('url "www.shop.example/sale"', "field 'url' of message 'hello': 'www.shop.example/sale' "
     "has no 'https://': write 'https://www.shop.example/sale', or a browser opens it as a "
     "path on the site that serves sw.js"),
    ('url "shop.example:8080/{{ code }}"', "field 'url' of message 'hello': "
     "'shop.example:8080/{{ code }}' has no 'https://': write "
     "'https://shop.example:8080/{{ code }}', or a browser opens it as a path on the site "
     "that serves sw.js"),
    ('icon "javascript:alert(1)"', "field 'icon' of message 'hello': 'javascript:alert(1)' is "
     "not a web address (http or https)"),
    ('url "https://"', "field 'url' of message 'hello': 'https://' names no host"),
    # Python's URL parser raises for these: reported like any other address, no traceback
    ('url "https://shop[.example/review"', "field 'url' of message 'hello': "
     "'https://shop[.example/review' is not a valid web address (check its host and port)"),
    ('icon "https://cdn.shop.example:99999/i.png"', "field 'icon' of message 'hello': "
     "'https://cdn.shop.example:99999/i.png' is not a valid web address (check its host and "
     "port)"),
])
def test_a_push_address_a_browser_cannot_open(check_lines: Check, fields: str,
                                              message: str) -> None:
    text = flow('  stage a { on enter: send push hello with code = "X" }',
                f'message hello push {{\n  title "Hello"\n  {fields}\n}}\n')
    assert check_lines(text) == [f"w.flow:6:3: error: {message}"]


@pytest.mark.parametrize("fields", [
    'url "/sale"',  # on the shop's own site, which serves sw.js
    'url "sale.html" icon "logo.png"',  # files' names, beside sw.js: paths, not hosts
    'url "https://shop.example/{{ code }}" icon "https://cdn.shop.example/i.png"',
    'url "{{ subscriber.landing | default(\'/\') }}"',  # its value is checked at each send
    'url ""',
])
def test_push_addresses_that_open(check_lines: Check, fields: str) -> None:
    text = flow('  stage a { on enter: send push hello with code = "X" }',
                f'message hello push {{\n  title "Hello"\n  {fields}\n}}\n')
    assert check_lines(text) == []


def test_a_webhook_needs_an_absolute_address(check_lines: Check) -> None:
    text = flow("  stage a {\n    on enter: send webhook crm\n    on enter: send webhook other\n"
                "  }", 'message crm webhook {\n  url "crm.example/hooks/lead"\n  body "{}"\n}\n'
                       'message other webhook {\n  url "/hooks/lead"\n  body "{}"\n}\n')
    assert check_lines(text) == [
        "w.flow:8:3: error: field 'url' of message 'crm': 'crm.example/hooks/lead' has no "
        "'https://': write 'https://crm.example/hooks/lead'",
        "w.flow:12:3: error: field 'url' of message 'other': '/hooks/lead' is not an absolute "
        "address such as 'https://crm.example/hook'"]


def test_an_email_link_without_https_is_a_warning(check_lines: Check) -> None:
    html = ('<a href=\\"https://shop.example/new\\">new</a> <a href=\'shop.example/sale\'>sale'
            '</a> <a href=\\"/account/{{ subscriber.id }}\\">me</a> <a href=\\"#top\\">top</a> '
            '<a href=\\"mailto:help@shop.example\\">help</a> '
            '<a href=\\"{{ subscriber.profile | default(\'\') }}\\">profile</a> '
            '<a href=\\"https://shop.example]/x\\">broken</a>')
    text = flow("  stage a { on enter: send email news }",
                f'message news email {{\n  subject "News"\n  html "{html}"\n}}\n')
    tail = ("has no 'https://': a mail client cannot open it (an e-mail has no site to read it "
            "against), and it is not click-tracked")
    assert check_lines(text) == [
        f"w.flow:6:3: warning: link 'shop.example/sale' in the html of message 'news' {tail}",
        f"w.flow:6:3: warning: link '/account/{{{{ subscriber.id }}}}' in the html of message "
        f"'news' {tail}",
        "w.flow:6:3: warning: link 'https://shop.example]/x' in the html of message 'news' is "
        "not a valid web address (check its host and port): a mail client cannot open it"]


def test_objects_do_not_print_as_text_and_print_as_json_in_a_webhook(
        check_lines: Check) -> None:
    # as Python writes it, a subscriber would read "{'fit': 0}"; a list prints as Jinja2
    # prints it, and in a webhook's body both are JSON
    text = flow("  score fit { when role == \"cto\" +10 }\n"
                "  stage a {\n    on enter: send push tagged\n    on enter: send webhook crm\n"
                "  }", 'message tagged push {\n  title "For {{ tags }}"\n'
                       '  body "{{ scores }}"\n}\n'
                       'message crm webhook {\n  url "https://crm.example/h"\n'
                       '  body "{\\"tags\\": {{ tags }}, \\"s\\": {{ scores }}}"\n}\n')
    assert check_lines(text) == [
        "w.flow:10:3: error: field 'body' of message 'tagged' does not render: a value printed "
        "is an object, not text ({'fit': 0}): print one of its fields"]


def test_unsubscribe_url_is_a_name_of_e_mails_only(check_lines: Check) -> None:
    text = flow("  stage a {\n    on enter: send email letter\n    on enter: send push nudge\n"
                "  }", 'message letter email {\n  subject "News"\n'
                       '  html "<a href=\\"{{ unsubscribe_url }}\\">Unsubscribe</a>"\n'
                       '  text "Unsubscribe: {{ unsubscribe_url }}"\n}\n'
                       'message nudge push {\n  title "Bye"\n  url "{{ unsubscribe_url }}"\n}\n')
    assert check_lines(text) == [
        "w.flow:14:3: error: 'unsubscribe_url' in field 'url' of message 'nudge' is there in "
        "email messages only, not in push ones"]
