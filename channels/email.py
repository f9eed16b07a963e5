"""E-mail over SMTP: multipart text + HTML, one-click unsubscribe (RFC 8058), stable Message-ID.

`NURTURE_SMTP_URL` says how to reach the relay: `smtp://user:password@host:587` (STARTTLS when
the server offers it; `?starttls=require` refuses to go on without it, `?starttls=no` never
tries) or `smtps://…:465` (TLS from the start). A batch of e-mails shares one connection.
An SMTP 5xx answer is permanent (the message is dropped as failed), a 4xx or a lost connection
is temporary (retried later).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import formatdate, parseaddr
from typing import overload
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from channels.base import Outcome
from channels.plain_text import text_from_html


@dataclass(frozen=True, slots=True)
class EmailJob:
    key: str
    to: str
    subject: str
    text: str | None
    html: str | None
    unsubscribe_url: str
    message_id: str | None = None
    """The left part of the `Message-ID` (`key` when None): unique to this e-mail, the same
    for every attempt to send it."""


@dataclass(frozen=True, slots=True)
class SmtpRelay:
    host: str
    port: int
    implicit_tls: bool
    starttls: str  # "auto", "require", "no"
    user: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpRelay:
        try:
            parts: SplitResult | None = urlsplit(url)
        except ValueError:  # an unclosed `[` of an IPv6 host
            parts = None
        if parts is None or parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("NURTURE_SMTP_URL: use smtp://[user:password@]host[:port] or "
                             "smtps://…")
        starttls = parse_qs(parts.query).get("starttls", ["auto"])[0]
        if starttls not in ("auto", "require", "no"):
            raise ValueError("NURTURE_SMTP_URL: starttls is auto, require or no")
        implicit = parts.scheme == "smtps"
        try:
            port = parts.port
        except ValueError:  # not a number, or out of range
            raise ValueError("NURTURE_SMTP_URL: the port is not a number from 1 to "
                             "65535") from None
        return cls(parts.hostname, port or (465 if implicit else 25), implicit, starttls,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


class _MailPolicy(EmailPolicy):
    """Python's default policy, but a `List-Unsubscribe` is written as it is, on one line.

    The default folds a header longer than 78 characters, and a URL has no space to fold at,
    so it would go out as RFC 2047 encoded words (`=?utf-8?q?=3Chttps=3A//…`), which is not
    the `<URL>` of RFC 2369 that mail clients and one-click unsubscribe read. A line may be
    up to 998 characters (RFC 5322), far more than the link takes."""

    def fold(self, name: str, value: str) -> str:
        if name.lower() == "list-unsubscribe" and _writable_as_is(value):
            return f"{name}: {value}{self.linesep}"
        folded: str = super().fold(name, value)
        return folded

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() == "list-unsubscribe" and _writable_as_is(value):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


def _writable_as_is(value: str) -> bool:
    return value.isascii() and len(value) < 950 and "\r" not in value and "\n" not in value


MAIL_POLICY = _MailPolicy()


def build_message(job: EmailJob, sender: str) -> EmailMessage:
    message = EmailMessage(policy=MAIL_POLICY)
    message["From"] = sender
    message["To"] = job.to
    message["Subject"] = " ".join(job.subject.split())  # one line, whatever the template made
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "nurture.invalid"
    message["Message-ID"] = f"<{job.message_id or job.key}@{domain}>"
    message["List-Unsubscribe"] = f"<{job.unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # (an HTML-only message gets a text part made from its HTML: see `plain_text`)
    text = job.text if job.text is not None or job.html is None else text_from_html(job.html)
    message.set_content(text or "")
    if job.html is not None:
        message.add_alternative(job.html, subtype="html")
    return message


def sender_problem(sender: str) -> str | None:
    """What is wrong with a `From` (`Shop <news@shop.example>` or a bare address), or None.

    Python's parser raises assorted errors for a malformed one (IndexError for `shop@`), and
    one without a domain parses as a local part: a relay would refuse every message."""
    address = parseaddr(sender)[1]
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return ("is not an address such as 'Shop <news@shop.example>'"
                + (" (a name with a comma is quoted: '\"Shop, Inc\" <news@shop.example>')"
                   if "," in sender else ""))
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError, HeaderParseError) as problem:
        return f"is not a valid address ({problem})"
    return None


class SmtpSender:
    def __init__(self, url: str, sender: str, *, timeout: float = 30.0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.relay = SmtpRelay.from_url(url)
        problem = sender_problem(sender)
        if problem is not None:  # refused early rather than by every relay
            raise ValueError(f"the sender {sender!r} {problem}")
        self.sender = sender
        self.timeout = timeout
        self.tls = tls or ssl.create_default_context()

    @overload
    def send_all(self, jobs: Sequence[EmailJob]) -> list[Outcome]: ...

    @overload
    def send_all(self, jobs: Sequence[EmailJob],
                 may_send: Callable[[EmailJob], bool]) -> list[Outcome | None]: ...

    def send_all(self, jobs: Sequence[EmailJob],
                 may_send: Callable[[EmailJob], bool] | None = None
                 ) -> list[Outcome | None] | list[Outcome]:
        """Send a batch over one connection (reconnecting if the relay drops it).

        `may_send` is asked just before each message: one it refuses is not sent (None).
        """
        outcomes: list[Outcome | None] = []
        connection: smtplib.SMTP | None = None
        try:
            for job in jobs:
                if may_send is not None and not may_send(job):
                    outcomes.append(None)
                    continue
                if connection is None:
                    try:
                        connection = self._connect()
                    except (OSError, smtplib.SMTPException) as problem:
                        outcomes.append(_temporary(problem))
                        continue
                try:
                    outcome = self._send(connection, job)
                except Exception as problem:  # unforeseen: this one is retried, not the batch
                    outcome = _temporary(problem)
                if outcome.kind == "retry" and outcome.status is None:
                    _close(connection)  # the connection is in doubt: a new one next time
                    connection = None
                outcomes.append(outcome)
        finally:
            if connection is not None:
                _close(connection)
        return outcomes

    def _connect(self) -> smtplib.SMTP:
        """A connection ready to send, or the error; one that fails half-way (a refused
        login, a failed TLS handshake) is closed, not left to the garbage collector: the
        dispatcher tries again and again while a password is wrong."""
        relay = self.relay
        connection: smtplib.SMTP
        if relay.implicit_tls:
            connection = smtplib.SMTP_SSL(relay.host, relay.port, timeout=self.timeout,
                                          context=self.tls)
        else:
            connection = smtplib.SMTP(relay.host, relay.port, timeout=self.timeout)
        try:
            if not relay.implicit_tls:
                connection.ehlo()
                offered = connection.has_extn("starttls")
                if relay.starttls == "require" and not offered:
                    raise smtplib.SMTPException("the relay does not offer STARTTLS")
                if offered and relay.starttls != "no":
                    connection.starttls(context=self.tls)
                    connection.ehlo()
            if relay.user is not None:
                connection.login(relay.user, relay.password or "")
        except BaseException:
            connection.close()
            raise
        return connection

    def _send(self, connection: smtplib.SMTP, job: EmailJob) -> Outcome:
        try:
            message = build_message(job, self.sender)
        except (ValueError, TypeError) as problem:  # an address no header can carry
            return Outcome("failed", None, f"cannot write this e-mail: {problem}"[:300])
        try:
            refused = connection.send_message(message, to_addrs=[job.to])
        except smtplib.SMTPRecipientsRefused as problem:
            code, text = next(iter(problem.recipients.values()))
            return _answer(code, text)
        except smtplib.SMTPResponseException as problem:
            return _answer(problem.smtp_code, problem.smtp_error)
        except smtplib.SMTPNotSupportedError:  # an address beyond ASCII: asking again is no use
            return Outcome("failed", None, "the relay does not take addresses beyond ASCII "
                                           "(it offers no SMTPUTF8)")
        except (OSError, smtplib.SMTPException) as problem:
            return _temporary(problem)
        if refused:
            code, text = next(iter(refused.values()))
            return _answer(code, text)
        return Outcome("delivered", 250, "accepted by the relay")


def address_refused(outcome: Outcome) -> bool:
    """Whether a failed e-mail was refused for its address (a hard bounce): `551`, `553`, or
    `550` with an enhanced status of `5.1.x` (no such mailbox, no such domain). A `550` for
    another reason (`5.7.1`, refused as spam) says nothing about the address."""
    if outcome.kind != "failed" or outcome.status not in (550, 551, 553):
        return False
    return outcome.status != 550 or outcome.detail.lstrip().startswith("5.1.")


def _answer(code: int, text: bytes | str) -> Outcome:
    detail = (text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text))[:300]
    if 500 <= code < 600:
        return Outcome("failed", code, detail)
    return Outcome("retry", code, detail)


def _temporary(problem: BaseException) -> Outcome:
    return Outcome("retry", None, f"{type(problem).__name__}: {problem}"[:300])


def _close(connection: smtplib.SMTP) -> None:
    try:
        connection.quit()
    except (OSError, smtplib.SMTPException):
        connection.close()
