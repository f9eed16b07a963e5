"""Web addresses in message fields: a push's `url` and `icon`, a webhook's `url`.

A marketer who writes `url "www.shop.example/sale"` (no `https://`) gets a push whose click
opens a path on the site that serves the service worker: a "not found" page. One that writes
`javascript:` or `data:` gets a click that does nothing. A webhook without a scheme cannot be
posted at all. `nurture check` reports such a field, and a send whose template renders one
(from a subscriber's attribute, say) is skipped as `render_error` rather than sent broken.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

ADDRESS_FIELDS = {"push": ("url", "icon"), "webhook": ("url",)}
"""The fields that hold a web address, by channel."""

HOST_FIRST = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+(:\d+)?([/?#]|\Z)", re.IGNORECASE)
"""`www.shop.example/sale`, `shop.example:8080`: a host written without its scheme."""
FILE_ENDINGS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "html", "htm",
                          "php", "json"})
"""`logo.png`, `sale.html`: a file's name (a path), not a host, although it looks like one."""


def split_address(text: str) -> SplitResult | None:
    """The parts of a web address, or None where Python's parser refuses it (an unclosed
    `[` of an IPv6 host, a port that is no number from 0 to 65535): read through here, a
    marketer's typo is reported like any other bad address instead of raising."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises for a port that is no number or out of range
    except ValueError:
        return None
    return parts


def _host_without_scheme(text: str) -> bool:
    found = HOST_FIRST.match(text)
    if found is None:
        return False
    host = re.split(r"[:/?#]", found.group(0), maxsplit=1)[0]
    return host.rsplit(".", 1)[-1].lower() not in FILE_ENDINGS


def address_problem(channel: str, field: str, value: str,
                    written: str | None = None) -> str | None:
    """What is wrong with a rendered address field, or None (also for other fields). The
    message quotes `written` (the template as the marketer wrote it) when given."""
    if field not in ADDRESS_FIELDS.get(channel, ()):
        return None
    text = value.strip()
    if not text and channel == "push":
        return None  # no address: a click opens nothing
    shown = (written or text).strip()
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    if _host_without_scheme(text):
        return (f"'{shown}' has no 'https://': write 'https://{shown}'"
                + (", or a browser opens it as a path on the site that serves sw.js"
                   if channel == "push" else ""))
    parts = split_address(text)
    if parts is None:
        return f"'{shown}' is not a valid web address (check its host and port)"
    if parts.scheme.lower() in ("http", "https"):
        return None if parts.netloc else f"'{shown}' names no host"
    if parts.scheme:
        return f"'{shown}' is not a web address (http or https)"
    if channel == "push":
        return None  # a path (`/sale`): on the site that serves sw.js, which is the shop's
    return f"'{shown}' is not an absolute address such as 'https://crm.example/hook'"


LINK = re.compile(r"""\bhref\s*=\s*(["'])(.*?)\1""", re.IGNORECASE | re.DOTALL)
"""A link of an e-mail's HTML, in either quotes."""
OPEN_ANYWHERE = ("http", "https", "mailto", "tel", "sms")


def links_nowhere(html: str) -> list[tuple[str, int, str]]:
    """The links of an e-mail's HTML that no mail client can follow, with their lines and
    what is wrong: without a scheme (`shop.example/new`, `/new`), an e-mail has no site to
    resolve them against; a broken host or port opens nothing. Empty ones (a template's
    value left out) and `#anchors` are let be."""
    found: list[tuple[str, int, str]] = []
    for link in LINK.finditer(html):
        text = link[2].strip()
        if not text or text.startswith(("#", "{{", "{%")):
            continue
        parts = split_address(text)
        if parts is None:
            problem = ("is not a valid web address (check its host and port): a mail client "
                       "cannot open it")
        elif parts.scheme.lower() in OPEN_ANYWHERE and not _host_without_scheme(text):
            continue
        else:
            problem = ("has no 'https://': a mail client cannot open it (an e-mail has no "
                       "site to read it against), and it is not click-tracked")
        if all(text != seen for seen, _, _ in found):
            found.append((text, html.count("\n", 0, link.start()) + 1, problem))
    return found
