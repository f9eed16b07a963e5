"""Templates cannot take the engine's time or memory: `nurture check` and every send render
them, so a runaway template is reported as the one failing message instead of hanging or
killing the process (the service included)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dsl.templates import compile_template, render

Check = Callable[..., list[str]]

RUNAWAY = [
    ("{{ 'x' * 3000000000 }}", "a repetition of over 1,000,000 items"),
    ("{{ [1, 2] * 600000 }}", "a repetition of over 1,000,000 items"),
    ("{{ 9 ** 999999 }}", "9 ** 999999 is over 1000 digits"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "loops over range() took over 100,000 steps"),
    ("{{ 'x'.ljust(3000000000) }}", "a width of over 1,000,000 characters"),
    ("{{ '{:>2000000000}'.format('x') }}", "a width of over 1,000,000 characters"),
    ("{{ 'x' | center(3000000000) }}", "a width of over 1,000,000 characters"),
    ("{{ '%2000000000s' | format('y') }}", "a width of over 1,000,000 characters"),
    ("{% for i in range(20) %}{{ 'x' * 99999 }}{% endfor %}", "over 1,000,000 characters"),
    ("{{ ('x' * 999999) | replace('x', 'x' * 999999) }}",
     "a replacement making over 1,000,000 characters"),
    ("{{ ('x' * 999999).replace('x', 'xx') }}", "a replacement making over 1,000,000 characters"),
]


@pytest.mark.parametrize(("template", "why"), RUNAWAY)
def test_a_runaway_template_is_an_error_of_its_message(check_lines: Check, template: str,
                                                       why: str) -> None:
    text = ("workflow w { stage a { on enter: send push hi } }\n"
            f"message hi push {{ title \"{template}\" }}\n")
    assert check_lines(text) == [
        f"w.flow:2:19: error: field 'title' of message 'hi' does not render: not allowed in "
        f"a template: {why}"]


def test_ordinary_uses_of_the_same_things_render() -> None:
    compiled = compile_template(
        "{{ '=' * 10 }} {{ 2 ** 10 }} {% for i in range(3) %}{{ i }}{% endfor %} "
        "{{ name.center(7) }}|{{ '%5.1f' | format(3.14159) }}|{{ '{:>4}'.format(n) }}|"
        "{{ name | center(7) }}")
    assert render(compiled, {"name": "1234567", "n": 7}) == (
        "========== 1024 012 1234567|  3.1|   7|1234567")


def test_numbers_in_the_text_are_not_widths() -> None:
    """Only a format's pattern is searched for a width: text may hold any number."""
    compiled = compile_template(
        "{{ bio | wordwrap(20) }}|{{ bio | truncate(30) }}|{{ bio.center(30) }}|"
        "{{ bio | replace('call', 'ring') }}|{{ '%s' | format(bio) }}")
    bio = "call 12345678901 now"
    assert render(compiled, {"bio": bio}) == (
        f"{bio}|{bio}|{bio.center(30)}|ring 12345678901 now|{bio}")


def test_large_numbers_given_to_a_format_are_values_not_widths() -> None:
    compiled = compile_template("{{ '{} PLN'.format(price) }}|{{ '%d PLN' | format(price) }}")
    assert render(compiled, {"price": 2500000}) == "2500000 PLN|2500000 PLN"


def test_each_rendering_has_its_own_budget_of_steps() -> None:
    compiled = compile_template("{% for i in range(60000) %}{% endfor %}done")
    assert [render(compiled, {}) for _ in range(3)] == ["done"] * 3
