"""The text part made from the HTML of an e-mail that gives only HTML."""

from __future__ import annotations

import pytest

from channels.plain_text import text_from_html


def test_blocks_lists_links_and_images_read_as_text() -> None:
    html = """<!doctype html><html><head><title>News</title>
<style>p { color: red }</style></head>
<body><h1>News from our  workshop</h1>
<p>Hello Anna,<br>new rings &amp; pendants.</p>
<ul><li>Gold</li><li><a href="https://shop.example/silver">Silver</a></li></ul>
<p><img src="logo.png" alt="Shop logo"><img src="pixel.gif" alt=""></p>
<p><a href="https://shop.example/new">https://shop.example/new</a>
<a href="#top">Top</a> <a href="mailto:help@shop.example">Write to us</a></p>
<script>alert(1)</script></body></html>"""
    assert text_from_html(html) == (
        "News from our workshop\n\n"
        "Hello Anna,\nnew rings & pendants.\n\n"
        "- Gold\n- Silver (https://shop.example/silver)\n\n"
        "Shop logo\n\n"
        "https://shop.example/new Top Write to us\n")


@pytest.mark.parametrize(("html", "text"), [
    ("", "\n"),
    ("plain words", "plain words\n"),
    ("<p>unclosed <b>bold", "unclosed bold\n"),
    ("<a href='https://x.example/a'></a>", "https://x.example/a\n"),  # a link without a label
])
def test_odd_html_still_gives_text(html: str, text: str) -> None:
    assert text_from_html(html) == text
