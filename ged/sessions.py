"""Browser sessions, kept in the database.

The signed session cookie carries a random session token; only its SHA-256 is
stored (``UserSession``). The secret key alone therefore forges nothing: a cookie
must name a session the server created and has not ended. Logging out, a new
password and disabling an account end sessions here, in the same database as the
user, so revocation never depends on Redis being intact.
"""

from __future__ import annotations

import datetime as dt
import secrets

from . import tokens
from .db import transaction
from .models import User, UserSession, utcnow

MAX_AGE = dt.timedelta(days=31)  # a session older than this ends, whatever its activity
IDLE = dt.timedelta(hours=12)  # and one unused for this long
_TOUCH_EVERY = 60  # seconds: last_seen_at is refreshed at most this often


def open_session(user: User) -> str:
    """Start a session for ``user``; returns the token to put in the signed cookie."""
    token = secrets.token_urlsafe(32)
    with transaction():
        UserSession.create(user=user.id, token_hash=tokens.digest(token))
    return token


def user_for(token: str | None, user_id: str | None) -> User | None:
    """The active user of a live session, or None. ``user_id`` (what flask-login
    stored beside the token) must match the session's owner."""
    if not token or not isinstance(token, str) or len(token) > 100:
        return None
    row = (UserSession.select(UserSession, User).join(User)
           .where(UserSession.token_hash == tokens.digest(token)).first())
    if row is None or row.revoked_at is not None or row.user_id != user_id:
        return None
    now = utcnow()
    if now - row.created_at > MAX_AGE or now - row.last_seen_at > IDLE:
        return None
    user = row.user
    if not user.active or user.erased_at is not None:
        return None
    if (now - row.last_seen_at).total_seconds() > _TOUCH_EVERY:
        UserSession.update(last_seen_at=now).where(UserSession.id == row.id).execute()
    return user


def end_session(token: str | None) -> None:
    """End one session (logging out)."""
    if token and isinstance(token, str):
        with transaction():
            UserSession.update(revoked_at=utcnow()).where(
                (UserSession.token_hash == tokens.digest(token))
                & UserSession.revoked_at.is_null()).execute()


def end_all(user_id: str) -> int:
    """End every open session of a user (new password, disabled, erased); call it
    inside the transaction that makes that change. Returns how many ended."""
    return (UserSession.update(revoked_at=utcnow())
            .where((UserSession.user == user_id) & UserSession.revoked_at.is_null())
            .execute())
