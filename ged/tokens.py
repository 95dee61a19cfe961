"""The secrets ged hands out (API tokens, session cookies, invitation and reset links,
recovery codes) are kept only as digests: one function computes them all."""

from __future__ import annotations

import hashlib


def digest(token: str) -> str:
    """The stored form of a secret: its SHA-256. Each carries enough random bits that a
    plain hash cannot be reversed by guessing; a recovery code is rate-limited too."""
    return hashlib.sha256(token.encode()).hexdigest()
