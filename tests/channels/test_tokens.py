"""Signed tokens: made for one purpose, refused when forged, altered or odd."""

from __future__ import annotations

import pytest

from channels.tokens import BadToken, Signer, webhook_signature

SIGNER = Signer(b"k" * 32)


def test_a_token_round_trips_for_its_purpose_only() -> None:
    token = SIGNER.sign("push", "12.3")
    assert SIGNER.verify("push", token) == "12.3"
    with pytest.raises(BadToken):
        SIGNER.verify("click", token)
    with pytest.raises(BadToken):
        Signer(b"q" * 32).verify("push", token)


@pytest.mark.parametrize("bad", ["", ".", "nodot", "MS4y.", ".abc", "MS4y.\u0080", "\u00e9.\u00e9",
                                 "MS4y.AAAA", "!!!.AAAA"])
def test_anything_else_is_refused_with_bad_token(bad: str) -> None:
    with pytest.raises(BadToken):
        SIGNER.verify("push", bad)


def test_the_secret_must_be_long_enough_and_webhooks_sign_timestamp_and_body() -> None:
    with pytest.raises(ValueError):
        Signer(b"short")
    assert webhook_signature(b"s", 1, b"{}") != webhook_signature(b"s", 2, b"{}")
    assert webhook_signature(b"s", 1, b"{}").startswith("sha256=")


def test_an_earlier_secret_still_verifies_but_never_signs() -> None:
    old, new = Signer(b"o" * 32), Signer(b"n" * 32, earlier=(b"o" * 32,))
    made_before = old.sign("unsubscribe", "ann")
    assert new.verify("unsubscribe", made_before) == "ann"
    assert new.sign("unsubscribe", "ann") != made_before
    with pytest.raises(BadToken):
        old.verify("unsubscribe", new.sign("unsubscribe", "ann"))
    with pytest.raises(BadToken):
        new.verify("click", made_before)  # still for its own purpose only
    assert new.fingerprints("erased", "ann") == (
        new.fingerprint("erased", "ann"), old.fingerprint("erased", "ann"))
    with pytest.raises(ValueError):
        Signer(b"n" * 32, earlier=(b"short",))
