"""Two-factor sign-in: TOTP (RFC 6238, 30-second steps, one step of drift either
way, each code used once) with ``pyotp``, a QR code of the ``otpauth://`` URI as
inline SVG (``segno``), and ten recovery codes shown once, each usable once.

The firm's policy (``firm_settings.require_totp``: none, staff, all) makes it
mandatory: the next sign-in of a user without it goes through the set-up.

Guessing codes is limited by the rules of passwords (ged/throttle.py, scope
``totp``): per account and address, per address, and a browser that signed in
before counts only against itself. Past ``login_max_attempts`` failures on the
account from anywhere, a code is checked at most once per 30-second step, so one
who holds the password tries at most ~2,900 codes a day (three of a million are
valid at a time), each failure written to the audit trail (``login.failed``,
reason ``bad_totp``). A used step is kept in the database (``UserTotp.last_step``,
taken by a conditional UPDATE), so a code works once across all processes.
"""

from __future__ import annotations

import hmac
import secrets
import time

import pyotp

from . import audit, firm_settings, throttle, tokens
from .db import transaction
from .errors import Conflict, Invalid
from .models import RecoveryCode, User, UserTotp, utcnow

STEP = 30
# Past the account's allowance, a code is checked at most once per this many seconds.
GATE_SECONDS = STEP
RECOVERY_CODES = 10
ISSUER = "ged"


def _normalise(code: str | None) -> str:
    return "".join(ch for ch in (code or "") if ch.isalnum()).lower()[:32]


def is_enabled(user) -> bool:
    return UserTotp.select().where((UserTotp.user == user.id)
                                   & UserTotp.confirmed_at.is_null(False)).exists()


def required_for(user) -> bool:
    """True when the firm's policy requires two-factor sign-in of this user."""
    policy = firm_settings.get(user.firm_id).require_totp
    return policy == "all" or (policy == "staff" and user.role in ("admin", "staff"))


def _uri(user, secret: str) -> str:
    issuer = f"{user.firm.name} ({ISSUER})" if user.firm else ISSUER
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=issuer)


def start(user) -> tuple[str, str]:
    """A fresh secret not yet confirmed (replaces an earlier unconfirmed one); returns
    (secret, otpauth URI)."""
    if is_enabled(user):
        raise Conflict("Two-factor sign-in is already on.", "totp_already_on")
    secret = pyotp.random_base32()
    with transaction():
        UserTotp.delete().where(UserTotp.user == user.id).execute()
        UserTotp.create(user=user.id, secret=secret)
    return secret, _uri(user, secret)


def pending_secret(user) -> tuple[str, str]:
    row = UserTotp.get_or_none(UserTotp.user == user.id)
    if row is None or row.confirmed_at is not None:
        return start(user)
    return row.secret, _uri(user, row.secret)


def qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as an inline SVG element (no script, no external image)."""
    import segno

    return segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff",
                                                 title="QR code à scanner")


def _take_step(row: UserTotp, code: str, now: float | None = None) -> bool:
    """True when ``code`` is valid for a step (±1) newer than the last used one; that
    step is then taken, atomically, so the same code never works twice."""
    code = _normalise(code)
    if len(code) != 6 or not code.isdigit():
        return False
    now = time.time() if now is None else now
    current = int(now // STEP)
    otp = pyotp.TOTP(row.secret)
    for step in (current - 1, current, current + 1):
        if step <= row.last_step:
            continue
        if hmac.compare_digest(otp.at(step * STEP), code):
            taken = UserTotp.update(last_step=step).where(
                (UserTotp.user == row.user_id) & (UserTotp.last_step < step)).execute()
            return bool(taken)
    return False


def confirm(user, code: str) -> list[str]:
    """Turn two-factor sign-in on with a first code; returns the ten recovery codes
    (shown once)."""
    row = UserTotp.get_or_none(UserTotp.user == user.id)
    if row is None:
        raise Invalid("Start the set-up first (POST /me/totp).", "totp_not_started")
    if row.confirmed_at is not None:
        raise Conflict("Two-factor sign-in is already on.", "totp_already_on")
    codes = [f"{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}"
             for _ in range(RECOVERY_CODES)]
    with transaction():
        if not _take_step(row, code):
            raise Invalid("This code is not valid.", "bad_totp")
        UserTotp.update(confirmed_at=utcnow()).where(UserTotp.user == user.id).execute()
        RecoveryCode.delete().where(RecoveryCode.user == user.id).execute()
        for plain in codes:
            RecoveryCode.create(user=user.id, code_hash=tokens.digest(_normalise(plain)))
        audit.record(user, "user.totp_enabled", user, firm=user.firm_id,
                     company=user.company_id, firm_only=True)
    return codes


def _reserve(user, ip: str | None, device: str | None) -> throttle.Attempt:
    from . import runtime

    cfg = runtime.config()
    attempt = throttle.reserve(user.email, ip, max_attempts=cfg.login_max_attempts,
                               window=cfg.login_window_seconds, device=device, scope="totp",
                               account_factor=1, gate_seconds=GATE_SECONDS)
    if not attempt.allowed:
        raise attempt.refusal("failed codes")
    return attempt


def check_sign_in(user, code: str, *, ip: str | None = None,
                  device: str | None = None) -> str:
    """A TOTP code, or a recovery code (used up); returns which. Invalid otherwise,
    RateLimited past the limits. ``ip``: the client's real address; ``device``: the
    id of a device cookie issued to this very user."""
    row = UserTotp.get_or_none((UserTotp.user == user.id) & UserTotp.confirmed_at.is_null(False))
    if row is None:
        raise Invalid("Two-factor sign-in is not on.", "totp_not_on")
    attempt = _reserve(user, ip, device)
    with transaction():
        if _take_step(row, code):
            attempt.succeeded()
            return "totp"
        used = RecoveryCode.update(used_at=utcnow()).where(
            (RecoveryCode.user == user.id) & (RecoveryCode.code_hash == tokens.digest(_normalise(code)))
            & RecoveryCode.used_at.is_null()).execute()
        if used:
            audit.record(user, "user.recovery_code_used", user, firm=user.firm_id,
                         company=user.company_id, firm_only=True)
            attempt.succeeded()
            return "recovery"
    attempt.failed()
    with transaction():
        audit.record(user, "login.failed", user, firm=user.firm_id, firm_only=True,
                     details={"ip": ip, "reason": "bad_totp"})
    raise Invalid("This code is not valid or was already used.", "bad_totp")


def check_for_token(user, code: str | None, *, ip: str | None = None) -> None:
    """``POST /tokens``: a user with two-factor sign-in gives ``totp`` too."""
    if not is_enabled(user):
        if required_for(user):
            raise Invalid("Your firm requires two-factor sign-in: set it up in the web "
                          "pages (Mon compte) first.", "totp_setup_required")
        return
    if not code:
        raise Invalid("This account uses two-factor sign-in: send totp too.", "totp_required")
    check_sign_in(user, code, ip=ip)


def disable(user, code: str, *, ip: str | None = None) -> None:
    """Turn it off with a current code (or a recovery code); refused when the firm
    requires it."""
    if required_for(user):
        raise Invalid("Your firm requires two-factor sign-in.", "totp_policy")
    check_sign_in(user, code, ip=ip)
    with transaction():
        UserTotp.delete().where(UserTotp.user == user.id).execute()
        RecoveryCode.delete().where(RecoveryCode.user == user.id).execute()
        audit.record(user, "user.totp_disabled", user, firm=user.firm_id,
                     company=user.company_id, firm_only=True)


def remaining_recovery_codes(user) -> int:
    return RecoveryCode.select().where((RecoveryCode.user == user.id)
                                       & RecoveryCode.used_at.is_null()).count()
