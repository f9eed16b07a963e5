"""Settings: environment variables, a `.env` file, and command-line flags over both (SPEC §5).

Secrets never come from the repository: the VAPID private key and the signing secret are read
from the environment or from files that `nurture keys` creates with owner-only permissions.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from channels.email import SmtpRelay, sender_problem
from channels.endpoints import EndpointError, allowed_host
from channels.tokens import new_secret
from channels.vapid import VapidKey, load_or_create
from dsl.addresses import split_address
from dsl.diagnostics import closest
from dsl.model import span_in_words
from dsl.text import NotUtf8Text, decode_utf8

KEYS_FOLDER = Path(".nurture")
log = logging.getLogger("nurture.config")


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    db: str = "sqlite:///nurture.db"
    workflows: str = "workflows/"
    api_key: str | None = None
    vapid_private_key: str | None = None
    """PEM text or the raw private value (base64url); else the key file is used."""
    vapid_key_file: Path = KEYS_FOLDER / "vapid.pem"
    vapid_subject: str = "mailto:nurture@localhost"
    secret: str | None = None
    """Signs tracking, unsubscribe and webhook tokens; else the secret file is used."""
    secret_file: Path = KEYS_FOLDER / "secret"
    previous_secrets: tuple[str, ...] = field(default_factory=tuple)
    """Secrets that signed earlier, still accepted (`NURTURE_SECRET_PREVIOUS`), as
    `nurture keys --rotate-secret` keeps them in a file for the secret file's users."""
    erasure_secrets: tuple[str, ...] = field(default_factory=tuple)
    """Secrets that were current when subscribers were erased (`NURTURE_ERASURE_SECRETS`),
    kept to recognise those erasures only, after they stopped verifying links."""
    smtp_url: str | None = None
    email_from: str = "nurture <nurture@localhost>"
    public_url: str = "http://localhost:8000"
    """Where browsers and mail readers reach the API (links in messages)."""
    push_allow_hosts: tuple[str, ...] = field(default_factory=tuple)
    webhook_allow_hosts: tuple[str, ...] = field(default_factory=tuple)
    """Hosts webhooks may reach although they are this machine's or link-local."""
    tick_seconds: float = 10.0
    state_cache: int = 20_000
    """How many subscribers' states the engine keeps in memory between batches
    (`NURTURE_STATE_CACHE`): about 9 KiB each for the example shop (`bench/soak.py`: 371 MiB
    once warm with 20,000, 238 MiB with 5,000). 0 keeps none: each batch reads its
    subscribers."""
    late_limit: timedelta | None = timedelta(days=1)
    """A push or e-mail that the engine reaches, or the dispatcher can send, only later than
    this after its time is dropped (`late`, `expired`) rather than sent stale: after an outage,
    or for events imported from the past. None: no limit."""
    retention: timedelta | None = None
    """Events and messages older than this are removed once a day (`engine.store.retention`);
    None (the default): everything is kept."""

    def with_flags(self, **flags: Any) -> Settings:
        """Command-line flags win over the environment (None means "not given")."""
        return replace(self, **{k: v for k, v in flags.items() if v is not None})

    def vapid_key(self, create: bool = False) -> VapidKey:
        if self.vapid_private_key:
            try:
                return VapidKey.from_text(self.vapid_private_key)
            except ValueError as problem:
                raise ConfigError(f"NURTURE_VAPID_PRIVATE_KEY: {problem}") from None
        if not create and not self.vapid_key_file.exists():
            raise ConfigError(f"no VAPID key: run `nurture keys` (creates "
                              f"{self.vapid_key_file}) or set NURTURE_VAPID_PRIVATE_KEY")
        return load_or_create(self.vapid_key_file)[0]

    def api_keys(self, create: bool = False) -> tuple[str, ...]:
        """Every key the API takes. `NURTURE_API_KEY` may list several, separated by commas,
        so that a key is replaced without a moment when the site's calls are refused: the
        new key is added, the site moves to it, the old one is removed. Without it, the key
        in `.nurture/api-key` (created when asked)."""
        if self.api_key:
            keys = tuple(key.strip() for key in self.api_key.split(","))
            if any(len(key) < 16 for key in keys):
                raise ConfigError("NURTURE_API_KEY: use at least 16 characters for each key "
                                  "(several keys are separated by commas)")
            return keys
        return (self._api_key_file(create),)

    def _api_key_file(self, create: bool) -> str:
        path = self.secret_file.with_name("api-key")
        if path.exists():
            return path.read_text(encoding="ascii").strip()
        if not create:
            raise ConfigError(f"no API key: set NURTURE_API_KEY (or run `nurture serve`, "
                              f"which creates {path})")
        key = secrets.token_urlsafe(24)
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as out:
            out.write(key)
        return key

    def signing_secret(self, create: bool = False) -> bytes:
        if self.secret:
            if len(self.secret) < 16:
                raise ConfigError("NURTURE_SECRET: use at least 16 characters")
            return self.secret.encode()
        path = self.secret_file
        if path.exists():
            return base64.b64decode(path.read_text(encoding="ascii"))
        if not create:
            raise ConfigError(f"no signing secret: run `nurture keys` (creates {path}) or "
                              "set NURTURE_SECRET")
        secret = new_secret()
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as out:
            out.write(base64.b64encode(secret).decode())
        return secret

    def key_files(self) -> dict[str, Path]:
        """Where each key of the service is kept as a file, by the name a backup gives it:
        a database restored without them is of little use (every browser subscription is
        tied to the VAPID key, every link sent to the signing secret)."""
        return {"vapid.pem": self.vapid_key_file, "secret": self.secret_file,
                "secret.previous": self.previous_secrets_file,
                "secret.erasures": self.erasure_secrets_file,
                "api-key": self.secret_file.with_name("api-key")}

    def keys_in_environment(self) -> list[str]:
        """The variables that give keys instead of the files (a backup cannot hold them)."""
        given = {"NURTURE_VAPID_PRIVATE_KEY": self.vapid_private_key,
                 "NURTURE_SECRET": self.secret,
                 "NURTURE_SECRET_PREVIOUS": self.previous_secrets,
                 "NURTURE_ERASURE_SECRETS": self.erasure_secrets,
                 "NURTURE_API_KEY": self.api_key}
        return [variable for variable, value in given.items() if value]

    @property
    def previous_secrets_file(self) -> Path:
        return self.secret_file.with_name(self.secret_file.name + ".previous")

    def earlier_secrets(self) -> tuple[bytes, ...]:
        """Secrets that signed before the current one (newest first): links, tokens and
        erasures they made are still honoured. Not used to sign anything new."""
        return _kept_secrets("NURTURE_SECRET_PREVIOUS", self.previous_secrets,
                             self.previous_secrets_file)

    @property
    def erasure_secrets_file(self) -> Path:
        return self.secret_file.with_name(self.secret_file.name + ".erasures")

    def retired_secrets(self) -> tuple[bytes, ...]:
        """Every secret rotated out, for recognising the erasures made under it (the keyed
        hashes of erased ids): removing a secret from the earlier ones ends its links, and
        must not bring erased people back. Never used to sign or verify anything."""
        return _kept_secrets("NURTURE_ERASURE_SECRETS", self.erasure_secrets,
                             self.erasure_secrets_file)

    def keep_for_erasures(self) -> None:
        """Copy into `erasure_secrets_file` the earlier secrets of `previous_secrets_file` it
        lacks: those of rotations made before nurture kept that file, so that retiring them
        later does not forget the erasures made under them."""
        previous = self.previous_secrets_file
        if not previous.exists():
            return
        kept = self.erasure_secrets_file
        have = set(kept.read_text(encoding="ascii").split()) if kept.exists() else set()
        missing = [line for line in previous.read_text(encoding="ascii").split()
                   if line not in have]
        if missing:
            _append_lines(kept, missing)

    def rotate_secret(self) -> Path:
        """Make a new signing secret; the one it replaces goes to `previous_secrets_file`,
        so that what it signed (unsubscribe links in e-mails already sent) keeps working, and
        to `erasure_secrets_file`, where it stays once retired from the first.
        Both files stay owner-only; the new secret replaces the old one in one rename."""
        if self.secret:
            raise ConfigError("NURTURE_SECRET is set: to rotate it, set NURTURE_SECRET to a "
                              "new secret and add the old one to NURTURE_SECRET_PREVIOUS "
                              "(comma-separated)")
        current = self.secret_file
        if not current.exists():
            raise ConfigError(f"no signing secret to rotate ({current}): `nurture keys` "
                              "creates one")
        old = current.read_text(encoding="ascii").strip()
        for kept in (self.previous_secrets_file, self.erasure_secrets_file):
            _append_lines(kept, [old])
        write_private(current, base64.b64encode(new_secret()))
        return self.previous_secrets_file


def write_private(path: Path, data: bytes) -> None:
    """Write a key file that only its owner can read at any moment, replacing the file in
    one rename (a reader sees the old content or the new, never half of it)."""
    fresh = path.with_name(path.name + ".new")
    fresh.unlink(missing_ok=True)
    descriptor = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    fresh.replace(path)


def _append_lines(path: Path, lines: list[str]) -> None:
    """Add lines to an owner-only file of kept secrets (made if missing)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="ascii") as out:
        out.write("".join(line + "\n" for line in lines))


def _kept_secrets(variable: str, given: tuple[str, ...], path: Path) -> tuple[bytes, ...]:
    """Secrets given in `variable` (as they are), then those of the file `nurture keys
    --rotate-secret` appends to (base64, one per line), newest first."""
    kept = []
    for text in given:
        if len(text) < 16:
            raise ConfigError(f"{variable}: use at least 16 characters for each secret")
        kept.append(text.encode())
    if path.exists():
        lines = path.read_text(encoding="ascii").split()
        try:
            kept += [base64.b64decode(line, validate=True) for line in reversed(lines)]
        except ValueError:
            raise ConfigError(f"{path}: a line is not a secret as `nurture keys "
                              "--rotate-secret` writes it (base64)") from None
    return tuple(kept)


VARIABLES = {
    "NURTURE_DB": "db", "NURTURE_WORKFLOWS": "workflows", "NURTURE_API_KEY": "api_key",
    "NURTURE_VAPID_PRIVATE_KEY": "vapid_private_key", "NURTURE_VAPID_KEY_FILE": "vapid_key_file",
    "NURTURE_VAPID_SUBJECT": "vapid_subject", "NURTURE_SECRET": "secret",
    "NURTURE_SECRET_FILE": "secret_file", "NURTURE_SECRET_PREVIOUS": "previous_secrets",
    "NURTURE_ERASURE_SECRETS": "erasure_secrets",
    "NURTURE_SMTP_URL": "smtp_url",
    "NURTURE_EMAIL_FROM": "email_from", "NURTURE_PUBLIC_URL": "public_url",
    "NURTURE_PUSH_ALLOW_HOSTS": "push_allow_hosts", "NURTURE_TICK_SECONDS": "tick_seconds",
    "NURTURE_WEBHOOK_ALLOW_HOSTS": "webhook_allow_hosts",
    "NURTURE_LATE_LIMIT": "late_limit", "NURTURE_RETENTION": "retention",
    "NURTURE_STATE_CACHE": "state_cache",
}


NOT_SETTINGS = frozenset({"NURTURE_TEST_PG", "NURTURE_ORACLE_EXAMPLES"})
"""Variables of nurture's own test suite, not of the service: no warning for them."""


def load_settings(environ: Mapping[str, str] | None = None,
                  dotenv: str | Path | None = ".env") -> Settings:
    """The environment over a `.env` file (if any) over the defaults."""
    values: dict[str, str] = {}
    if dotenv is not None and Path(dotenv).is_file():
        values.update(_read_dotenv(Path(dotenv)))
    values.update(os.environ if environ is None else environ)
    for unknown in sorted(set(values) - set(VARIABLES) - NOT_SETTINGS):
        if unknown.startswith("NURTURE_"):
            meant = _meant(unknown)
            log.warning("%s is not a setting of nurture, and is ignored%s", unknown,
                        f"; did you mean {meant}?" if meant else "",
                        extra={"variable": unknown})
    chosen: dict[str, Any] = {}
    for variable, name in VARIABLES.items():
        text = values.get(variable)
        if text is None or text == "":
            continue
        chosen[name] = _convert(variable, name, text)
    settings = Settings(**chosen)
    if settings.smtp_url:  # checked here, so that a service never starts with a broken one
        try:
            SmtpRelay.from_url(settings.smtp_url)
        except ValueError as problem:
            raise ConfigError(str(problem)) from None
    wrong_sender = sender_problem(settings.email_from)
    if wrong_sender is not None:
        raise ConfigError(f"NURTURE_EMAIL_FROM: {settings.email_from!r} {wrong_sender}")
    wrong_base = _web_address_problem(settings.public_url)
    if wrong_base is not None:
        raise ConfigError(f"NURTURE_PUBLIC_URL: where browsers and mail readers reach the "
                          f"service, such as 'https://nurture.shop.example'; "
                          f"{settings.public_url!r} {wrong_base}")
    _check_vapid_subject(settings.vapid_subject)
    return settings


def _meant(unknown: str) -> str | None:
    """The setting a misspelt variable most likely meant: among those of its first word
    first (`NURTURE_VAPID_KEY`: a VAPID setting, not `NURTURE_API_KEY`), words compared
    without the `NURTURE_` every one shares."""
    word = unknown.removeprefix("NURTURE_")
    names = {variable.removeprefix("NURTURE_"): variable for variable in VARIABLES}
    family = [name for name in names if name.split("_")[0] == word.split("_")[0]]
    meant = closest(word, family) or closest(word, names)
    return names[meant] if meant else None


def _read_dotenv(path: Path) -> dict[str, str]:
    """The variables a `.env` file sets. A line that cannot be read stops the command: the
    setting it was meant to make (an API key, a database) would otherwise be left out with
    only a warning, and the service run without it. The line is not shown: it may hold a
    secret."""
    try:
        text = decode_utf8(path.read_bytes())
    except NotUtf8Text as problem:
        raise ConfigError(f"{path}:{problem.line}:{problem.column}: {problem}: save the file "
                          "as UTF-8") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            written = binding.original.string
            # the blank lines before a statement are part of it: count from its text
            line = binding.original.line + written[:len(written) - len(written.lstrip())].count(
                "\n")
            name = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", written)
            raise ConfigError(
                f"{path}:{line}: this line cannot be read"
                f"{f' (it sets {name.group(1)})' if name else ''}: write NAME=value, and put a "
                "value that holds spaces, quotes, # or several lines (a PEM key) in double "
                "quotes")
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def _web_address_problem(url: str) -> str | None:
    """Why a base for the links of messages (tracking, unsubscribe) is unusable, or None:
    every e-mail's unsubscribe link is built on it, so a mistake is refused at start-up."""
    parts = split_address(url.strip())
    if parts is None:
        return "is not a valid address (check its host and port)"
    if parts.scheme not in ("http", "https"):
        return "has no 'https://'"
    if not parts.hostname:
        return "names no host"
    if parts.username is not None or parts.query or parts.fragment:
        return "must not hold a user, a query or a fragment"
    return None


def _check_vapid_subject(subject: str) -> None:
    """The `sub` contact of VAPID tokens: push services refuse tokens without a usable one."""
    scheme, _, rest = subject.partition(":")
    if scheme == "mailto":
        if not rest.partition("@")[2]:
            raise ConfigError("NURTURE_VAPID_SUBJECT: a mailto: contact needs an address "
                              f"('mailto:ops@shop.example'), got {subject!r}")
    elif scheme == "https":
        problem = _web_address_problem(subject)
        if problem is not None:
            raise ConfigError(f"NURTURE_VAPID_SUBJECT: {subject!r} {problem}")
    else:
        raise ConfigError(f"NURTURE_VAPID_SUBJECT: a mailto: or https: contact, got {subject!r}")


def _convert(variable: str, name: str, text: str) -> Any:
    if name in ("push_allow_hosts", "webhook_allow_hosts"):
        hosts = tuple(host.strip() for host in text.split(",") if host.strip())
        try:  # checked now; the policy reads them when it is made
            for host in hosts:
                allowed_host(host)
        except EndpointError as problem:
            raise ConfigError(f"{variable}: {problem}") from None
        return hosts
    if name in ("previous_secrets", "erasure_secrets"):
        return tuple(secret.strip() for secret in text.split(",") if secret.strip())
    if name in ("vapid_key_file", "secret_file"):
        return Path(text)
    if name == "tick_seconds":
        try:
            seconds = float(text)
        except ValueError:
            raise ConfigError(f"{variable}: a number of seconds, got {text!r}") from None
        if seconds <= 0:
            raise ConfigError(f"{variable}: must be more than 0")
        return seconds
    if name == "state_cache":
        try:
            count = int(text.replace("_", "").replace(",", ""))
        except ValueError:
            raise ConfigError(f"{variable}: a number of subscribers (such as 20000; 0 keeps "
                              f"none), got {text!r}") from None
        if count < 0:
            raise ConfigError(f"{variable}: 0 or more subscribers, got {count}")
        return count
    if name == "late_limit":
        return _late_limit(variable, text)
    if name == "retention":
        return retention_period(variable, text)
    return text


SHORTEST_RETENTION = timedelta(days=30)
"""The shortest retention period: frequency caps read the sends of the last week (their
longest period), and a month leaves room for the outbox's retries and late sends."""


def retention_period(variable: str, text: str) -> timedelta | None:
    """`400 days`, `26 weeks`; `off` keeps everything. At least `SHORTEST_RETENTION`."""
    return _span_or_off(variable, text, "'400 days' or '26 weeks'", SHORTEST_RETENTION,
                        f"{SHORTEST_RETENTION.days} days (frequency caps read the last week's "
                        "sends)")


def _late_limit(variable: str, text: str) -> timedelta | None:
    """`30 minutes`, `24 hours`, `2 days`, `1 week`; `off` for no limit."""
    return _span_or_off(variable, text, "'24 hours' or '2 days'", timedelta(minutes=1),
                        "1 minute (or 'off')")


def _span_or_off(variable: str, text: str, examples: str, shortest: timedelta,
                 shortest_text: str) -> timedelta | None:
    """A duration setting in the language's words, at least `shortest`; `off` is None."""
    if text.strip().lower() == "off":
        return None
    span = span_in_words(text)
    if span is None:
        raise ConfigError(f"{variable}: a duration such as {examples}, or 'off'; "
                          f"got {text!r}")
    if span < shortest:
        raise ConfigError(f"{variable}: at least {shortest_text}, got {text!r}")
    return span
