"""Settings from the environment, a .env file and flags (SPEC §5); keys created safely."""

from __future__ import annotations

import logging
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from engine.config import ConfigError, Settings, load_settings


def test_defaults() -> None:
    settings = load_settings({}, dotenv=None)
    assert settings.db == "sqlite:///nurture.db"
    assert settings.workflows == "workflows/"
    assert settings.push_allow_hosts == ()
    assert settings.late_limit == timedelta(days=1)


@pytest.mark.parametrize(("value", "limit"), [
    ("2 days", timedelta(days=2)), ("1 week", timedelta(weeks=1)),
    ("36 hours", timedelta(hours=36)), ("90 Minutes", timedelta(minutes=90)),
    ("1.5 day", timedelta(hours=36)), ("off", None), ("OFF", None)])
def test_the_late_limit(value: str, limit: timedelta | None) -> None:
    assert load_settings({"NURTURE_LATE_LIMIT": value}, dotenv=None).late_limit == limit


def test_the_environment_wins_over_dotenv_and_flags_win_over_both(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("NURTURE_DB=sqlite:///from-dotenv.db\nNURTURE_SMTP_URL=smtp://relay\n"
                      "NURTURE_PUSH_ALLOW_HOSTS=127.0.0.1:8443, push.test\n", encoding="utf-8")
    settings = load_settings({"NURTURE_DB": "sqlite:///from-env.db"}, dotenv=dotenv)
    assert settings.db == "sqlite:///from-env.db"
    assert settings.smtp_url == "smtp://relay"
    assert settings.push_allow_hosts == ("127.0.0.1:8443", "push.test")
    hooks = load_settings({"NURTURE_WEBHOOK_ALLOW_HOSTS": "127.0.0.1:9000, crm.internal"},
                          dotenv=None)
    assert hooks.webhook_allow_hosts == ("127.0.0.1:9000", "crm.internal")
    assert settings.with_flags(db="sqlite:///flag.db", workflows=None).db == "sqlite:///flag.db"


@pytest.mark.parametrize(("value", "count"), [
    ("5000", 5000), ("20_000", 20_000), ("20,000", 20_000), ("0", 0)])
def test_the_state_cache(value: str, count: int) -> None:
    assert load_settings({}, dotenv=None).state_cache == 20_000
    assert load_settings({"NURTURE_STATE_CACHE": value}, dotenv=None).state_cache == count


@pytest.mark.parametrize(("variable", "value", "words"), [
    ("NURTURE_STATE_CACHE", "lots", "NURTURE_STATE_CACHE: a number of subscribers"),
    ("NURTURE_STATE_CACHE", "-1", "NURTURE_STATE_CACHE: 0 or more"),
    ("NURTURE_STATE_CACHE", "2e4", "NURTURE_STATE_CACHE: a number of subscribers"),
    ("NURTURE_TICK_SECONDS", "soon", "NURTURE_TICK_SECONDS: a number of seconds"),
    ("NURTURE_TICK_SECONDS", "0", "more than 0"),
    ("NURTURE_LATE_LIMIT", "86400", "NURTURE_LATE_LIMIT: a duration such as '24 hours'"),
    ("NURTURE_LATE_LIMIT", "1 fortnight", "NURTURE_LATE_LIMIT: a duration"),
    ("NURTURE_LATE_LIMIT", "30 seconds", "NURTURE_LATE_LIMIT: a duration"),
    ("NURTURE_LATE_LIMIT", "0.5 minutes", "NURTURE_LATE_LIMIT: at least 1 minute"),
    ("NURTURE_VAPID_SUBJECT", "ops@shop.example", "NURTURE_VAPID_SUBJECT: a mailto: or https:"),
    ("NURTURE_VAPID_SUBJECT", "mailto:", "NURTURE_VAPID_SUBJECT: a mailto: contact needs an"),
    ("NURTURE_VAPID_SUBJECT", "https://[shop.example",
     r"NURTURE_VAPID_SUBJECT: 'https://\[shop.example' is not a valid"),
    ("NURTURE_VAPID_SUBJECT", "https:shop.example",
     "NURTURE_VAPID_SUBJECT: 'https:shop.example' names no host"),
    ("NURTURE_SMTP_URL", "smtp://[mail.example", r"NURTURE_SMTP_URL: use smtp://\["),
    ("NURTURE_EMAIL_FROM", "shop@", "NURTURE_EMAIL_FROM: 'shop@' is not an address such as"),
    ("NURTURE_EMAIL_FROM", "news", "is not an address such as 'Shop <news@shop.example>'"),
    ("NURTURE_EMAIL_FROM", "Shop, Inc <news@shop.example>", "a name with a comma is quoted"),
    ("NURTURE_EMAIL_FROM", "Shop <ne ws@shop.example>", "is not a valid address"),
    ("NURTURE_PUBLIC_URL", "nurture.shop.example", "NURTURE_PUBLIC_URL: where browsers .* "
     "'nurture.shop.example' has no 'https://'"),
    ("NURTURE_PUBLIC_URL", "https://", "names no host"),
    ("NURTURE_PUBLIC_URL", "https://nurture.shop.example:0x50", "is not a valid address"),
    ("NURTURE_PUBLIC_URL", "https://nurture.shop.example/?a=1", "must not hold"),
    ("NURTURE_SMTP_URL", "http://mail.example", r"NURTURE_SMTP_URL: use smtp://\["),
    ("NURTURE_SMTP_URL", "smtp://", r"NURTURE_SMTP_URL: use smtp://\["),
    ("NURTURE_SMTP_URL", "smtp://ops:pw@mail.example:submission",
     "NURTURE_SMTP_URL: the port is not a number from 1 to 65535"),
    ("NURTURE_SMTP_URL", "smtps://mail.example:70000", "the port is not a number"),
    ("NURTURE_SMTP_URL", "smtp://mail.example?starttls=maybe", "starttls is auto, require or no"),
    ("NURTURE_PUSH_ALLOW_HOSTS", "127.0.0.1:8443, https://push.example",
     "NURTURE_PUSH_ALLOW_HOSTS: 'https://push.example': a host, not a URL"),
    ("NURTURE_WEBHOOK_ALLOW_HOSTS", "crm.internal/hook",
     "NURTURE_WEBHOOK_ALLOW_HOSTS: 'crm.internal/hook': a host, not a URL"),
])
def test_bad_settings_name_the_variable(variable: str, value: str, words: str) -> None:
    """Checked when the settings are read: a service never starts with one of these."""
    with pytest.raises(ConfigError, match=words) as raised:
        load_settings({variable: value}, dotenv=None)
    assert "pw" not in str(raised.value)  # a password in a URL is not repeated


def test_keys_are_created_readable_by_their_owner_only(tmp_path: Path) -> None:
    settings = Settings(vapid_key_file=tmp_path / "k" / "vapid.pem",
                        secret_file=tmp_path / "k" / "secret")
    with pytest.raises(ConfigError, match="nurture keys"):
        settings.vapid_key()
    key = settings.vapid_key(create=True)
    secret = settings.signing_secret(create=True)
    for path in (settings.vapid_key_file, settings.secret_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.vapid_key().public_key == key.public_key  # read back, not re-created
    assert settings.signing_secret() == secret and len(secret) == 32


def test_keys_from_the_environment() -> None:
    from channels.vapid import VapidKey

    key = VapidKey.generate()
    settings = load_settings({"NURTURE_VAPID_PRIVATE_KEY": key.pem().decode(),
                              "NURTURE_SECRET": "a-long-enough-secret"}, dotenv=None)
    assert settings.vapid_key().public_key == key.public_key
    assert settings.signing_secret() == b"a-long-enough-secret"
    with pytest.raises(ConfigError, match="NURTURE_SECRET"):
        load_settings({"NURTURE_SECRET": "short"}, dotenv=None).signing_secret()
    with pytest.raises(ConfigError, match="NURTURE_VAPID_PRIVATE_KEY"):
        load_settings({"NURTURE_VAPID_PRIVATE_KEY": "bogus"}, dotenv=None).vapid_key()


def test_usual_addresses_are_taken_as_written() -> None:
    settings = load_settings({
        "NURTURE_PUBLIC_URL": "https://shop.example/nurture",
        "NURTURE_EMAIL_FROM": '"Shop, Inc" <news@shop.example>',
        "NURTURE_VAPID_SUBJECT": "https://shop.example/contact"}, dotenv=None)
    assert settings.public_url == "https://shop.example/nurture"
    assert settings.email_from == '"Shop, Inc" <news@shop.example>'
    assert load_settings({"NURTURE_VAPID_SUBJECT": "mailto:ops@shop.example",
                          "NURTURE_EMAIL_FROM": "news@shop.example"},
                         dotenv=None).vapid_subject == "mailto:ops@shop.example"


def test_rotating_the_secret_file_keeps_the_one_before(tmp_path: Path) -> None:
    settings = Settings(secret_file=tmp_path / "k" / "secret")
    with pytest.raises(ConfigError, match="no signing secret to rotate"):
        settings.rotate_secret()
    first = settings.signing_secret(create=True)
    settings.rotate_secret()
    second = settings.signing_secret()
    settings.rotate_secret()
    assert settings.signing_secret() not in (first, second)
    assert settings.earlier_secrets() == (second, first)  # newest first
    assert settings.retired_secrets() == (second, first)  # kept for erasures, for good
    for path in (settings.secret_file, settings.previous_secrets_file,
                 settings.erasure_secrets_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings.previous_secrets_file.write_text("")  # both retired: their links end
    assert settings.earlier_secrets() == ()
    assert settings.retired_secrets() == (second, first)
    assert not list((tmp_path / "k").glob("*.new"))


def test_secrets_rotated_out_before_the_erasures_file_are_kept_for_erasures(
        tmp_path: Path) -> None:
    settings = Settings(secret_file=tmp_path / "k" / "secret")
    settings.signing_secret(create=True)
    settings.rotate_secret()
    settings.erasure_secrets_file.unlink()  # as a rotation made by an earlier nurture left it
    [first] = settings.earlier_secrets()
    assert settings.retired_secrets() == ()
    settings.keep_for_erasures()
    settings.keep_for_erasures()  # (nothing twice)
    assert settings.retired_secrets() == (first,)
    assert stat.S_IMODE(settings.erasure_secrets_file.stat().st_mode) == 0o600


def test_earlier_secrets_from_the_environment() -> None:
    settings = load_settings({"NURTURE_SECRET": "the-new-long-secret",
                              "NURTURE_SECRET_PREVIOUS": "the-old-long-secret, older-long-secret"},
                             dotenv=None)
    assert settings.earlier_secrets() == (b"the-old-long-secret", b"older-long-secret")
    with pytest.raises(ConfigError, match="NURTURE_SECRET is set: to rotate it"):
        settings.rotate_secret()
    with pytest.raises(ConfigError, match="NURTURE_SECRET_PREVIOUS: use at least 16"):
        load_settings({"NURTURE_SECRET_PREVIOUS": "short"}, dotenv=None).earlier_secrets()
    retiring = load_settings({"NURTURE_SECRET": "the-new-long-secret",
                              "NURTURE_ERASURE_SECRETS": "the-old-long-secret"}, dotenv=None)
    assert retiring.earlier_secrets() == ()
    assert retiring.retired_secrets() == (b"the-old-long-secret",)
    with pytest.raises(ConfigError, match="NURTURE_ERASURE_SECRETS: use at least 16"):
        load_settings({"NURTURE_ERASURE_SECRETS": "short"}, dotenv=None).retired_secrets()


@pytest.mark.parametrize(("text", "line", "sets"), [
    # an unterminated quote: python-dotenv only warned, and the service ran without the key
    ('NURTURE_DB=sqlite:///shop.db\n\n  NURTURE_API_KEY="k-7Hq2 secret-part\n'
     'NURTURE_TICK_SECONDS=5\n', 3, " (it sets NURTURE_API_KEY)"),
    ("NURTURE_DB=sqlite:///shop.db\nthe api key is below\n", 2, ""),
    ("# settings\n\n\n\nNURTURE_DB='sqlite:///shop.db\n", 5, " (it sets NURTURE_DB)"),
])
def test_a_dotenv_line_that_cannot_be_read_stops_with_its_place(
        tmp_path: Path, text: str, line: int, sets: str) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings({}, dotenv=dotenv)
    assert str(raised.value) == (
        f"{dotenv}:{line}: this line cannot be read{sets}: write NAME=value, and put a value "
        "that holds spaces, quotes, # or several lines (a PEM key) in double quotes")
    assert "secret" not in str(raised.value)  # the line may hold one: it is not shown


def test_a_dotenv_with_a_byte_order_mark_and_export_is_read(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_bytes(b"\xef\xbb\xbfNURTURE_DB=sqlite:///a.db\nexport NURTURE_TICK_SECONDS=5\n")
    settings = load_settings({}, dotenv=dotenv)
    assert (settings.db, settings.tick_seconds) == ("sqlite:///a.db", 5)


def test_a_variable_that_is_not_a_setting_is_a_warning(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("NURTURE_VAPID_KEY=vapid.pem\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="nurture.config"):
        load_settings({"NURTURE_API_KYE": "k", "NURTURE_LOG_LEVEL": "debug", "HOME": "/root",
                       "NURTURE_TEST_PG": "postgresql://…"}, dotenv=dotenv)
    assert [r.getMessage() for r in caplog.records] == [
        "NURTURE_API_KYE is not a setting of nurture, and is ignored; did you mean "
        "NURTURE_API_KEY?",
        "NURTURE_LOG_LEVEL is not a setting of nurture, and is ignored",
        "NURTURE_VAPID_KEY is not a setting of nurture, and is ignored; did you mean "
        "NURTURE_VAPID_KEY_FILE?"]


def test_a_dotenv_not_in_utf8_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_bytes(b'NURTURE_DB=sqlite:///a.db\nNURTURE_EMAIL_FROM="Sklep Zo\xbfka '
                       b'<s@shop.example>"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings({}, dotenv=dotenv)
    assert str(raised.value) == (
        f"{dotenv}:2:29: not UTF-8 text (byte 0xbf): save the file as UTF-8")
