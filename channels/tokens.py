"""Signed tokens: tracking links, unsubscribe links, push click reports, webhook signatures.

A token is `PAYLOAD.SIGNATURE`, both base64url, the signature an HMAC-SHA256 of the purpose and
the payload. The purpose is part of what is signed, so a token made to track a click cannot be
used to unsubscribe someone. Verification compares in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


class BadToken(ValueError):
    """A token that was not made by us for this purpose (forged, altered or truncated)."""


class Signer:
    """Signs with one secret; verifies with it and with `earlier` ones, so that a secret can
    be replaced (rotated) without breaking the links already sent. `retired` secrets verify
    nothing any more; they only recognise the fingerprints made with them (`fingerprints`):
    an erasure is remembered for good, whatever secret was current when it was made."""

    def __init__(self, secret: bytes, earlier: tuple[bytes, ...] = (),
                 retired: tuple[bytes, ...] = ()) -> None:
        if any(len(key) < 16 for key in (secret, *earlier, *retired)):
            raise ValueError("the signing secret must be at least 16 bytes")
        self._secret = secret
        self._secrets = (secret, *earlier)
        self._fingerprint_secrets = tuple(dict.fromkeys((*self._secrets, *retired)))

    def sign(self, purpose: str, payload: str) -> str:
        body = _encode(payload.encode())
        return f"{body}.{self._mac(purpose, body)}"

    def verify(self, purpose: str, token: str) -> str:
        """The payload of a token made for `purpose`; BadToken otherwise."""
        body, dot, mac = token.partition(".")
        given = mac.encode("utf-8", "replace")
        if not dot or not any(hmac.compare_digest(given, expected.encode())
                              for expected in (self._mac(purpose, body, secret)
                                               for secret in self._secrets)):
            raise BadToken("the token's signature does not match")
        try:
            return _decode(body).decode()
        except (ValueError, UnicodeDecodeError):
            raise BadToken("the token is malformed") from None

    def fingerprint(self, purpose: str, text: str) -> str:
        """A keyed hash of `text` (64 hex characters): the same text gives the same value,
        and without the secret nobody can tell which text it was made from."""
        return self.fingerprints(purpose, text)[0]

    def fingerprints(self, purpose: str, text: str) -> tuple[str, ...]:
        """`fingerprint` with the current secret, then with each earlier and retired one:
        what was kept under an earlier secret is still recognised."""
        return tuple(hmac.new(secret, f"{purpose}.{text}".encode(), hashlib.sha256).hexdigest()
                     for secret in self._fingerprint_secrets)

    def _mac(self, purpose: str, body: str, secret: bytes | None = None) -> str:
        digest = hmac.new(secret or self._secret, f"{purpose}.{body}".encode(),
                          hashlib.sha256).digest()
        return _encode(digest)


def webhook_signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=` and the hex HMAC of `TIMESTAMP.BODY` (the receiver recomputes it)."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def new_secret() -> bytes:
    return secrets.token_bytes(32)


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
