"""VAPID (RFC 8292): the application server's key pair and the signed header per push service.

Signing a JWT costs tens of microseconds; at thousands of pushes per second that matters. A
header is signed once per push-service origin (`aud`) for 12 hours and reused until less than
an hour is left (a push service refuses an `exp` more than 24 hours ahead).
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

SIGNED_FOR = timedelta(hours=12)
RENEW_BEFORE = timedelta(hours=1)


class VapidKey:
    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError("a VAPID key must be on the P-256 curve")
        self._vapid = Vapid02()
        self._vapid.private_key = private_key
        self.public_key = base64.urlsafe_b64encode(private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint,
        )).rstrip(b"=").decode()
        """The application server key browsers subscribe with (base64url, uncompressed)."""
        self._headers: dict[str, _Signed] = {}

    @classmethod
    def generate(cls) -> VapidKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_text(cls, text: str) -> VapidKey:
        """A PEM private key, or the raw 32-byte private value in base64url."""
        text = text.strip()
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError("the VAPID key is not an elliptic-curve key")
            return cls(key)
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        if len(raw) != 32:
            raise ValueError("a raw VAPID private key is 32 bytes (base64url)")
        return cls(ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1()))

    def pem(self) -> bytes:
        key: ec.EllipticCurvePrivateKey = self._vapid.private_key
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def authorization(self, origin: str, subject: str, now: datetime) -> str:
        """`vapid t=…,k=…` for a push service origin, from the cache while it is fresh."""
        signed = self._headers.get(origin)
        if signed is None or signed.expires - now < RENEW_BEFORE:
            expires = now + SIGNED_FOR
            headers = self._vapid.sign({"aud": origin, "sub": subject,
                                        "exp": int(expires.timestamp())})
            signed = self._headers[origin] = _Signed(headers["Authorization"], expires)
        return signed.header


@dataclass(frozen=True, slots=True)
class _Signed:
    header: str
    expires: datetime


def load_or_create(path: Path) -> tuple[VapidKey, bool]:
    """The key in `path`, created (readable by its owner only) when missing; True if new."""
    if path.exists():
        return VapidKey.from_text(path.read_text(encoding="ascii")), False
    key = VapidKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(key.pem())
    return key, True
