"""Standard Webhooks signatures: HMAC-SHA256 over ``id.timestamp.body`` with the
connection's ``whsec_`` secret, on every request ged sends and every verdict a tool
sends back."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from typing import Iterable

from ..models import Connection, utcnow


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def signing_secrets(conn: Connection, now: dt.datetime | None = None) -> list[str]:
    """The secrets that sign (and verify) for a connection: the current one, plus the
    previous one during the grace period after a rotation."""
    now = now or utcnow()
    found = [conn.secret] if conn.secret else []
    if conn.previous_secret and conn.previous_secret_until and conn.previous_secret_until > now:
        found.append(conn.previous_secret)
    return found


def sign(secrets_: list[str], msg_id: str, timestamp: int, chunks: Iterable[bytes]) -> str:
    """The ``webhook-signature`` header: ``v1,<base64 HMAC>`` per secret, space-separated."""
    prefix = f"{msg_id}.{timestamp}.".encode()
    macs = [hmac.new(_key(s), prefix, hashlib.sha256) for s in secrets_]
    for chunk in chunks:
        for mac in macs:
            mac.update(chunk)
    return " ".join("v1," + base64.b64encode(mac.digest()).decode() for mac in macs)


def signature_matches(secrets_: list[str], msg_id: str, timestamp: str, body: bytes,
                      header: str) -> bool:
    """True if one of the header's ``v1`` signatures is that of one of the secrets."""
    given = []
    for part in header.split(" "):
        version, _, value = part.partition(",")
        if version == "v1" and value:
            try:
                given.append(base64.b64decode(value, validate=True))
            except ValueError:
                continue
    for secret in secrets_:
        expected = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body,
                            hashlib.sha256).digest()
        if any(hmac.compare_digest(expected, g) for g in given):
            return True
    return False
