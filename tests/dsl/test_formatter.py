"""`nurture fmt`'s layout: the SPEC's example as it is written, and nothing but white space
changed."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import formatter
from dsl.formatter import FormatterBug, format_content, format_text
from dsl.parser import layout

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "workflows").glob("*.flow"))
JEWELRY = (ROOT / "workflows" / "jewelry.flow").read_text(encoding="utf-8")
SPEC = ROOT.parent / "shared" / "SPEC.md"

MESSY = """\
# top comment
workflow w { entry on subscribed   # trailing
exit on unsubscribed


  score s { on a where x.y == 1 +3
       on bb where subscriber . name in [ "a" , "b" ]    -2 max 5 per week
   decay 10% every 30 days }
  score fit {
     when role == "x" +10
  }
  stage a { go to b on x where (a > 1 or b < 2)
     and c == 3
    # comment in stage
  }
stage b {
}
  stage c { # nothing yet
  }
}
message hi push { title "x {{ y }}" }
message bye push {

   title "bye"   # why



   url "https://x"

}
# end
"""

LAID_OUT = """\
# top comment
workflow w {
  entry on subscribed  # trailing
  exit on unsubscribed

  score s {
    on a where x.y == 1                        +3
    on bb where subscriber.name in ["a", "b"]  -2 max 5 per week
    decay 10% every 30 days
  }
  score fit {
    when role == "x"                           +10
  }
  stage a {
    go to b on x where (a > 1 or b < 2)
        and c == 3
    # comment in stage
  }
  stage b { }
  stage c {  # nothing yet
  }
}

message hi push {
  title "x {{ y }}"
}

message bye push {
  title "bye"  # why

  url "https://x"
}

# end
"""


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_example_workflows_are_laid_out(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert format_text(text) == text


def test_the_spec_example_is_its_own_layout() -> None:
    if not SPEC.exists():
        pytest.skip("../shared/SPEC.md is not beside this checkout")
    spec = SPEC.read_text(encoding="utf-8")
    example = spec.split("### 1.1", 1)[1].split("```\n", 2)[1]
    assert example.startswith("# Nurture for an online jewelry shop.")
    assert format_text(example) == example


def test_a_messy_file_is_laid_out() -> None:
    assert format_text(MESSY) == LAID_OUT
    assert format_text(LAID_OUT) == LAID_OUT


def test_statements_on_one_line_are_put_on_lines_of_their_own() -> None:
    text = ('workflow w { entry on a exit on b timezone "UTC" stage s { on enter: send push m '
            'go to t after 1 day } stage t { } }\n')
    assert format_text(text) == (
        "workflow w {\n"
        "  entry on a\n"
        "  exit on b\n"
        '  timezone "UTC"\n'
        "  stage s {\n"
        "    on enter: send push m\n"
        "    go to t after 1 day\n"
        "  }\n"
        "  stage t { }\n"
        "}\n")


def test_punctuation_is_spaced_as_in_the_spec() -> None:
    text = ("workflow w {\n  limit push to 1 per day ,3 per week\n  stage s {\n"
            "    every 3 days,3 times : send push m with a=\"x\" ,b = 2\n"
            "    go to s when not(x>=1)and subscriber . y in[1,2]\n  }\n}\n")
    assert format_text(text) == (
        "workflow w {\n  limit push to 1 per day, 3 per week\n  stage s {\n"
        '    every 3 days, 3 times: send push m with a = "x", b = 2\n'
        "    go to s when not (x >= 1) and subscriber.y in [1, 2]\n  }\n}\n")


def test_blank_lines_between_top_level_blocks() -> None:
    text = "message a push {\n title \"a\"\n}\nmessage b push {\ntitle \"b\"\n}\n\n\n\n" \
           "# about c\nmessage c push { title \"c\" }"
    assert format_text(text) == (
        'message a push {\n  title "a"\n}\n\nmessage b push {\n  title "b"\n}\n\n'
        '# about c\nmessage c push {\n  title "c"\n}\n')


def test_points_align_per_workflow_and_a_broken_rule_keeps_its_own() -> None:
    text = ("workflow a {\n  score s {\n    on x +1\n    on a_longer_event +2\n  }\n"
            "  score t {\n    when role == \"x\" -3\n  }\n}\n"
            "workflow b {\n  score s {\n    on y +1\n    on z where long_property_name\n"
            "        == 1 +5\n  }\n}\n")
    assert format_text(text) == (
        "workflow a {\n  score s {\n    on x               +1\n    on a_longer_event  +2\n"
        "  }\n  score t {\n    when role == \"x\"   -3\n  }\n}\n\n"
        "workflow b {\n  score s {\n    on y  +1\n    on z where long_property_name\n"
        "        == 1 +5\n  }\n}\n")


def test_comments_stay_where_they_were_written() -> None:
    text = ("# head\n\n\nworkflow w # after the name\n{\n  stage s {\n    go to s on x # why\n"
            "\n    # before the brace\n  }\n    # end of the workflow\n}\n# tail")
    assert format_text(text) == (
        "# head\n\nworkflow w  # after the name\n    {\n  stage s {\n    go to s on x  # why\n"
        "\n    # before the brace\n  }\n  # end of the workflow\n}\n\n# tail\n")


def test_text_that_does_not_parse_has_no_layout() -> None:
    assert format_text("workflow w {\n  stage s { go to }\n}\n") is None


def test_crlf_line_ends_are_kept() -> None:
    crlf = LAID_OUT.replace("\n", "\r\n")
    assert format_text(MESSY.replace("\n", "\r\n")) == crlf
    mixed = MESSY.replace("\n", "\r\n", 1)
    assert format_text(mixed) == LAID_OUT


def test_file_content_keeps_its_byte_order_mark() -> None:
    done = format_content("w.flow", codecs.BOM_UTF8 + MESSY.encode())
    assert done.after == codecs.BOM_UTF8 + LAID_OUT.encode()
    assert done.changed and done.problems == ()


def test_file_content_that_cannot_be_laid_out_says_why() -> None:
    broken = format_content("w.flow", b"workflow w {\n  stage s { go to }\n}\n")
    assert (broken.after, broken.changed) == (None, False)
    assert [str(d) for d in broken.problems] == [
        "w.flow:2:19: error: unexpected '}'; expected a name"]
    latin = format_content("w.flow", "# café\nworkflow w { }\n".encode("latin-1"))
    assert latin.after is None
    assert [str(d) for d in latin.problems] == [
        "w.flow:1:6: error: not UTF-8 text (byte 0xe9): save the file as UTF-8"]


def test_a_layout_that_would_change_the_tokens_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formatter, "NO_SPACE_AFTER", frozenset({"(", "[", ".", "on"}))
    with pytest.raises(FormatterBug):
        format_text("workflow w {\n  entry on subscribed\n}\n")


def _gaps(text: str) -> tuple[list[str], list[str]]:
    """The text's tokens and the white space (with comments) around them."""
    found = layout(text)
    assert found is not None
    words, gaps, end = [], [], 0
    for lexeme in found.lexemes:
        gaps.append(text[end:lexeme.start])
        words.append(lexeme.text)
        end = lexeme.end
    gaps.append(text[end:])
    return words, gaps


WORDS, GAPS = _gaps(JEWELRY)
SPACES = st.text(alphabet=" \t", max_size=4)


@settings(max_examples=60, deadline=None)
@given(st.lists(SPACES, min_size=len(GAPS), max_size=len(GAPS)))
def test_spaces_and_indentation_do_not_matter(spaces: list[str]) -> None:
    """Any spaces and tabs where the example has spaces (between words, before a line's
    first word) are laid out as the example is."""
    pieces = []
    for index, gap in enumerate(GAPS):
        if "#" in gap:
            pieces.append(gap)
        elif "\n" in gap:
            pieces.append(re.sub(r"\n[ \t]*", "\n" + spaces[index], gap))
        elif gap:
            pieces.append(spaces[index] or " ")
        else:
            pieces.append(spaces[index])
        if index < len(WORDS):
            pieces.append(WORDS[index])
    assert format_text("".join(pieces)) == JEWELRY


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["", " ", "\n", "\n\n\n", "  \t"]), min_size=len(GAPS),
                max_size=len(GAPS)))
def test_any_line_breaks_give_a_layout_that_stays(breaks: list[str]) -> None:
    """Line breaks anywhere between words: the same tokens and comments, laid out once and
    for all (formatting the result again changes nothing)."""
    pieces = []
    for index, gap in enumerate(GAPS):
        needs_space = gap != "" and breaks[index] == ""
        pieces.append(gap if "#" in gap else (" " if needs_space else breaks[index]))
        if index < len(WORDS):
            pieces.append(WORDS[index])
    text = "".join(pieces)
    once = format_text(text)
    assert once is not None
    assert format_text(once) == once
    assert _gaps(once)[0] == WORDS
