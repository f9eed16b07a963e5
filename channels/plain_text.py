"""The text part of an e-mail whose message gives only HTML.

An HTML-only e-mail is marked down by spam filters (SpamAssassin's `MIME_HTML_ONLY`), and some
readers (text-only clients, screen readers set to plain text, watches) show nothing useful of
it. So when a message has `html` and no `text`, the e-mail carries a plain version made from
its HTML, as the large e-mail services make one: the text of the blocks with blank lines between
them, list items with a dash, a link as `label (address)` so that it can still be followed,
an image by its `alt` text, and nothing of `<head>`, `<style>` or `<script>`.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

BLOCKS = frozenset({"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "tr",
                    "blockquote", "section", "article", "header", "footer", "main", "nav",
                    "aside", "figure", "pre", "address", "form", "fieldset", "dl", "dt", "dd"})
"""Elements that stand on lines of their own."""
HIDDEN = frozenset({"head", "style", "script", "title", "template", "noscript"})
"""Elements whose content a reader never sees."""
_SPACES = re.compile(r"[ \t\r\f\v\n]+")


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line: list[str] = []
        self.hidden = 0
        self.links: list[tuple[str, int]] = []  # (href, where its label starts in self.line)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN:
            self.hidden += 1
        elif tag in BLOCKS:
            self._paragraph()
        elif tag == "br":
            self._end_line()
        elif tag == "li":
            self._end_line()
            self.line.append("- ")
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.line)))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self.line.append(f" {alt} ")

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in BLOCKS:
            self._paragraph()
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = _SPACES.sub(" ", "".join(self.line[start:])).strip()
            if href.startswith(("http://", "https://")) and href != label:
                self.line.append(f" ({href})" if label else href)

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.line.append(data)

    def _end_line(self) -> None:
        self.lines.append(_SPACES.sub(" ", "".join(self.line)).strip())
        self.line = []

    def _paragraph(self) -> None:
        self._end_line()
        self.lines.append("")

    def text(self) -> str:
        self._end_line()
        paragraphs: list[str] = []
        for line in self.lines:
            if line or (paragraphs and paragraphs[-1]):
                paragraphs.append(line)
        return "\n".join(paragraphs).strip() + "\n"


def text_from_html(html: str) -> str:
    """A readable plain-text version of an e-mail's HTML."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.text()
