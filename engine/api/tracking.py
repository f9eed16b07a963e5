"""Links that come back: push click and receipt reports, e-mail clicks and opens, unsubscribe.

Each link carries a token signed for its purpose (`channels.tokens`): a forged or altered token
is refused, and the click redirect goes only to the URL inside its token. Each becomes an event
of the subscriber (`push_click`, `push_received`, `email_click`, `email_open`, `unsubscribed`)
whose id is derived from the delivery, so a repeat (a second click, a mail client fetching the
pixel again) is a duplicate, not more points.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from channels.tokens import BadToken
from engine.api.auth import runtime_of
from engine.api.errors import field_error
from engine.api.page_words import PageWords, words_for
from engine.events import Event
from engine.links import unsubscribe_event
from engine.runtime import Runtime
from engine.store import queries

router = APIRouter()
Current = Annotated[Runtime, Depends(runtime_of)]
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000"
                      "010001000002024401003b")


class Report(BaseModel):
    token: str = Field(max_length=500)


def _delivery(runtime: Runtime, reference: str) -> dict[str, Any] | None:
    subscriber_key, _, seq = reference.partition(".")
    if not subscriber_key.isdigit() or not seq.isdigit():
        return None
    with runtime.database.reading() as connection:
        return queries.delivery_by_reference(connection, int(subscriber_key), int(seq))


def _record(runtime: Runtime, kind: str, reference: str, key: str,
            extra: dict[str, Any] | None = None) -> bool:
    found = _delivery(runtime, reference)
    if found is None:
        return False  # erased, or never ours: nothing to record
    event = Event(found["subscriber"], kind, runtime.clock.now(),
                  {"workflow": found["workflow"], "message": found["message"],
                   "delivery": reference, **(extra or {})}, key)
    runtime.ingest([event])
    return True


def _verify(runtime: Runtime, purpose: str, token: str) -> str:
    try:
        return runtime.signer.verify(purpose, token)
    except BadToken as problem:
        raise field_error(403, "token", str(problem)) from None


@router.post("/v1/track/push-click", status_code=204, summary="The service worker reports a "
             "click on a notification")
async def push_click(report: Report, runtime: Current) -> Response:
    reference = _verify(runtime, "push", report.token)
    await run_in_threadpool(_record, runtime, "push_click", reference,
                            f"push_click:{reference}")
    return Response(status_code=204)


@router.post("/v1/track/push-received", status_code=204, summary="The service worker reports "
             "that a push arrived")
async def push_received(report: Report, runtime: Current) -> Response:
    reference = _verify(runtime, "push", report.token)
    await run_in_threadpool(_record, runtime, "push_received", reference,
                            f"push_received:{reference}")
    return Response(status_code=204)


@router.get("/v1/t/c/{token}", summary="A tracked e-mail link: records the click, redirects to "
            "the URL that was signed", response_class=RedirectResponse, status_code=302)
async def email_click(token: str, runtime: Current) -> RedirectResponse:
    claims = json.loads(_verify(runtime, "click", token))
    url, reference = str(claims["u"]), str(claims["d"])
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    await run_in_threadpool(_record, runtime, "email_click", reference,
                            f"email_click:{reference}:{digest}", {"url": url})
    return RedirectResponse(url, status_code=302)


@router.get("/v1/t/o/{token}", summary="The open pixel of an e-mail")
async def email_open(token: str, runtime: Current) -> Response:
    reference = _verify(runtime, "open", token.removesuffix(".gif"))
    await run_in_threadpool(_record, runtime, "email_open", reference,
                            f"email_open:{reference}")
    return Response(PIXEL, media_type="image/gif",
                    headers={"Cache-Control": "no-store, private"})


Token = Annotated[str, Query(max_length=1000)]


@router.get("/v1/unsubscribe", response_class=HTMLResponse,
            summary="The page behind an unsubscribe link (a button: GETs never unsubscribe)",
            responses={400: {"description": "No token: a page saying the link is cut short"},
                       403: {"description": "A token that is not ours: a page saying so"}})
def unsubscribe_page(request: Request, runtime: Current,
                     token: Annotated[str | None, Query(max_length=1000)] = None
                     ) -> HTMLResponse:
    if token is None:  # a link cut short (or a test e-mail's, which has none)
        return _broken_link(request, 400)
    try:
        event = unsubscribe_event(runtime.signer, token, runtime.clock.now())
    except BadToken:  # a person followed it: a page in their language, not JSON
        return _broken_link(request, 403)
    channel = event.properties["channels"][0]
    reader = _reader(runtime, event.subscriber, request, channel)
    words = reader.words
    if reader.left:  # a second visit (or the mail client's one-click came first): say so
        return _page(words.lang, words.done_title, f"<p>{escape(words.done)}</p>")
    question = words.question.get(channel, words.question["email"])
    return _page(words.lang, words.title,
                 f"<p>{escape(question)}</p><form method=\"post\"><button type=\"submit\">"
                 f"{escape(words.button)}</button></form>")


@router.post("/v1/unsubscribe", response_class=HTMLResponse,
             summary="Unsubscribe (also RFC 8058 one-click: List-Unsubscribe=One-Click)")
async def unsubscribe(request: Request, token: Token, runtime: Current) -> HTMLResponse:
    await request.body()  # "List-Unsubscribe=One-Click" from mail clients; nothing else needed
    event = _unsubscribe(runtime, token)
    reader = await run_in_threadpool(_reader, runtime, event.subscriber, request,
                                     event.properties["channels"][0])
    if reader.known:
        await run_in_threadpool(runtime.ingest, [event])
    words = reader.words
    return _page(words.lang, words.done_title, f"<p>{escape(words.done)}</p>")


@dataclass(frozen=True, slots=True)
class _Reader:
    known: bool
    """The subscriber is on record (the link of an erased one, or of an e-mail from another
    database, must not make a new record under that id: there is nobody to stop sending
    to)."""
    left: bool
    """Their consent for the link's channel is withdrawn already."""
    words: PageWords
    """The page's words in their language (their `locale`), else the browser's."""


def _reader(runtime: Runtime, subscriber: str, request: Request, channel: str) -> _Reader:
    locale, left = None, False
    with runtime.database.reading() as connection:
        key = queries.subscriber_key(connection, subscriber)
        if key is not None:
            locale = queries.attributes(connection, key).get("locale")
            left = queries.consent_now(queries.consents(connection, key)).get(channel) is False
    return _Reader(key is not None, left,
                   words_for(locale, request.headers.get("accept-language")))


def _unsubscribe(runtime: Runtime, token: str) -> Event:
    try:
        return unsubscribe_event(runtime.signer, token, runtime.clock.now())
    except BadToken as problem:
        raise field_error(403, "token", str(problem)) from None


def _broken_link(request: Request, status: int) -> HTMLResponse:
    words = words_for(request.headers.get("accept-language"))
    page = _page(words.lang, words.broken_title, f"<p>{escape(words.broken)}</p>")
    page.status_code = status
    return page


PAGE_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
               "frame-ancestors 'none'")
"""The page runs no script and loads nothing, and no other site may frame it: a framed
unsubscribe button could be clicked for someone by a page laid over it."""


def _page(lang: str, title: str, body: str) -> HTMLResponse:
    """Most unsubscribe links are followed on a phone: the page says how wide it is (else a
    phone draws it for a desktop screen, in tiny type), and the button is large enough for
    a thumb."""
    return HTMLResponse(
        f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>body{{font:1.1rem/1.5 system-ui,sans-serif;"
        "margin:2rem auto;max-width:32rem;padding:0 1rem}button{font:inherit;"
        "padding:.6rem 1.4rem;min-height:44px}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>",
        headers={"Content-Security-Policy": PAGE_POLICY, "X-Frame-Options": "DENY"})
