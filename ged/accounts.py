"""Firms, users, passwords, API tokens and login throttling."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from . import audit, sessions, throttle, tokens
from .db import transaction
from .errors import Conflict, Invalid, Unauthorized
from .models import ApiToken, Company, Firm, User, utcnow
from .names import control_character

ROLES = ("admin", "staff", "client")
FIRM_ROLES = ("admin", "staff")


def _password_hasher() -> PasswordHasher:
    """Argon2id at the library's default cost unless GED_PASSWORD_HASH_TIME_COST,
    GED_PASSWORD_HASH_MEMORY_KIB or GED_PASSWORD_HASH_PARALLELISM say otherwise (the
    test suite lowers them; production keeps the defaults). Read at import, so every
    process of one deployment hashes alike."""
    defaults = PasswordHasher()
    return PasswordHasher(
        time_cost=int(os.environ.get("GED_PASSWORD_HASH_TIME_COST") or defaults.time_cost),
        memory_cost=int(os.environ.get("GED_PASSWORD_HASH_MEMORY_KIB") or defaults.memory_cost),
        parallelism=int(os.environ.get("GED_PASSWORD_HASH_PARALLELISM") or defaults.parallelism),
    )


_hasher = _password_hasher()
_EMAIL = re.compile(r"^[^@\s<>\"']{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$|^[^@\s<>\"']{1,64}@localhost$")
# A hash to verify against when the e-mail is unknown, so timing does not reveal accounts.
_DUMMY_HASH = _hasher.hash("not-a-password")


def hash_password(password: str) -> str:
    """An Argon2id hash of the password."""
    return _hasher.hash(password)


def check_password(user: User, password: str) -> bool:
    if not user.password_hash:
        _hasher.hash(password)
        return False
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        with transaction():
            User.update(password_hash=hash_password(password)).where(
                User.id == user.id).execute()
    return True


def normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    if not _EMAIL.match(email):
        raise Invalid("The e-mail address is not valid.", "invalid_email")
    return email


MIN_PASSWORD_SCORE = 3  # zxcvbn's "safely unguessable" (about 10^8 guesses and more)


def validate_password(password: str | None, user_inputs: tuple = ()) -> str:
    """``password`` if it is long enough and not common or trivial, else Invalid.

    zxcvbn (a maintained estimator with lists of common passwords, names and words,
    keyboard patterns, repeats and sequences) judges it; ``user_inputs`` (the user's
    e-mail, name, firm) count as guessable too."""
    from zxcvbn import zxcvbn

    if password is None or len(password) < 10:
        raise Invalid("The password must have at least 10 characters.", "weak_password")
    if len(password) > 1000:
        raise Invalid("The password is too long.", "invalid_password")
    # zxcvbn's cost grows fast with length; 100 characters decide well enough.
    inputs = [str(part) for part in user_inputs if part]
    for part in list(inputs):
        inputs.extend(p for p in re.split(r"[@.\s_-]+", part) if len(p) > 2)
    if zxcvbn(password[:100], user_inputs=inputs)["score"] < MIN_PASSWORD_SCORE:
        raise Invalid("This password is too common or too easy to guess: choose a longer "
                      "one, for example a few unrelated words.", "common_password")
    return password


def clean_name(value: str | None, what: str = "name", max_length: int = 200) -> str:
    """A user-given name, stripped; Invalid when empty, too long, or holding a control
    character or line separator of any kind (see ged/names.py)."""
    value = (value or "").strip()
    if not value:
        raise Invalid(f"The {what} must not be empty.", "invalid_name")
    if len(value) > max_length or control_character(value) is not None:
        raise Invalid(f"The {what} is too long or holds control characters.", "invalid_name")
    return value


def create_firm(name: str, admin_email: str, admin_password: str, admin_name: str | None = None):
    """Create a firm and its first admin; returns (firm, admin)."""
    name = clean_name(name, "firm name")
    email = normalise_email(admin_email)
    validate_password(admin_password, (email, admin_name, name))
    with transaction():
        if User.select().where(User.email == email).exists():
            raise Conflict("A user with this e-mail already exists.", "email_taken")
        firm = Firm.create(name=name)
        admin = User.create(
            firm=firm,
            email=email,
            name=clean_name(admin_name or email.split("@")[0]),
            password_hash=hash_password(admin_password),
            role="admin",
        )
        audit.record("ged create-firm", "firm.created", firm, firm=firm, details={"name": name})
        audit.record("ged create-firm", "user.created", admin, firm=firm,
                     details={"role": "admin"})
    return firm, admin


def create_user(actor, firm: Firm, *, email: str, name: str, role: str,
                company: Company | None = None, password: str | None = None) -> User:
    """Create a user of ``firm``; a client user belongs to exactly one company of the firm."""
    if role not in ROLES:
        raise Invalid("The role must be admin, staff or client.", "invalid_role")
    email = normalise_email(email)
    name = clean_name(name)
    if role == "client":
        if company is None:
            raise Invalid("A client user needs a company_id.", "company_required")
    else:
        company = None
    if company is not None and company.firm_id != firm.id:
        raise Invalid("Unknown company.", "invalid_company")
    if password is not None:
        validate_password(password, (email, name, firm.name))
    with transaction():
        if User.select().where(User.email == email).exists():
            raise Conflict("A user with this e-mail already exists.", "email_taken")
        user = User.create(
            firm=firm, email=email, name=name, role=role, company=company,
            password_hash=hash_password(password) if password else None,
        )
        audit.record(actor, "user.created", user, firm=firm, company=company,
                     details={"role": role})
        from . import firm_settings

        firm_settings.apply_defaults(user)
    return user


def set_active(actor, user: User, active: bool) -> User:
    """Enable or disable a user. Disabling ends their sessions and revokes their API
    tokens for good: re-enabling them later brings neither back."""
    if not active and getattr(actor, "id", None) == user.id:
        raise Invalid("You cannot disable yourself.", "cannot_disable_self")
    with transaction():
        User.update(active=active, session_version=User.session_version + 1).where(
            User.id == user.id).execute()
        if not active:
            sessions.end_all(user.id)
            ApiToken.update(revoked_at=utcnow()).where(
                (ApiToken.user == user.id) & ApiToken.revoked_at.is_null()).execute()
        audit.record(actor, "user.enabled" if active else "user.disabled", user,
                     company=user.company_id)
    return User.get_by_id(user.id)


def rename(actor, user: User, name: str) -> User:
    """Change a user's display name."""
    name = clean_name(name)
    with transaction():
        User.update(name=name).where(User.id == user.id).execute()
        audit.record(actor, "user.renamed", user)
    return User.get_by_id(user.id)


def set_password(actor, user: User, password: str) -> None:
    """Set a user's password (invitation, reset, admin); ends every open session."""
    validate_password(password, (user.email, user.name))
    with transaction():
        User.update(password_hash=hash_password(password),
                    session_version=User.session_version + 1).where(User.id == user.id).execute()
        sessions.end_all(user.id)
        audit.record(actor, "user.password_set", user, company=user.company_id)


# --- API tokens -----------------------------------------------------------------

TOKEN_PREFIX = "ged_"


def create_token(actor, user: User, name: str, expires_in_days: int | None = None):
    """Create an API token for ``user``; returns (ApiToken, the token shown once)."""
    name = clean_name(name, "token name")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(days=expires_in_days) if expires_in_days else None
    with transaction():
        token = ApiToken.create(user=user, name=name, token_hash=tokens.digest(plain),
                                expires_at=expires)
        audit.record(actor, "token.created", token, firm=user.firm_id, company=user.company_id,
                     details={"name": name, "user_id": user.id})
    return token, plain


def revoke_token(actor, token: ApiToken) -> None:
    with transaction():
        ApiToken.update(revoked_at=utcnow()).where(ApiToken.id == token.id).execute()
        audit.record(actor, "token.revoked", token, firm=token.user.firm_id)


def user_for_token(plain: str) -> User:
    """The active user behind a bearer token, or Unauthorized with the reason."""
    if not plain or not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        raise Unauthorized("Missing or malformed bearer token.", "invalid_token")
    token = (ApiToken.select(ApiToken, User).join(User)
             .where(ApiToken.token_hash == tokens.digest(plain)).first())
    if token is None:
        raise Unauthorized("Unknown bearer token.", "invalid_token")
    now = utcnow()
    if not token.user.active:
        raise Unauthorized("This account is disabled.", "account_disabled")
    if token.revoked_at is not None:
        raise Unauthorized("This token was revoked.", "token_revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthorized("This token has expired.", "token_expired")
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        # Throttled so that a busy script does not write on every request.
        ApiToken.update(last_used_at=now).where(ApiToken.id == token.id).execute()
    return token.user


# --- Password login, throttled (see ged/throttle.py) -------------------------------------


def authenticate(email: str, password: str, ip: str | None, *, max_attempts: int = 5,
                 window: int = 900, device: str | None = None) -> User:
    """The user for an e-mail and password, or an error whose message is safe to show.

    ``ip`` is the client's real address; ``device`` the id of the browser's device
    cookie, if any. The attempt's place is reserved before the password is checked
    (ged/throttle.py says which limits apply); an unknown e-mail costs the same hash
    and counts the same, so answers do not reveal which accounts exist."""
    email = (email or "").strip().lower()
    user = User.select().where(User.email == email).first()
    known_device = None
    if user is not None and throttle.device_owner(device) == user.id:
        known_device = device
    attempt = throttle.reserve(email, ip, max_attempts=max_attempts, window=window,
                               device=known_device)
    if not attempt.allowed:
        raise attempt.refusal("failed attempts")
    ok = check_password(user, password or "") if user else (_verify_dummy(password) and False)
    if not ok or not user.active:
        attempt.failed()
        if user is not None:
            with transaction():
                audit.record(email, "login.failed", user, firm=user.firm_id,
                             details={"ip": ip, "reason": "disabled" if ok else "bad_password"},
                             firm_only=True)
        if ok and not user.active:
            raise Unauthorized("This account is disabled.", "account_disabled")
        raise Unauthorized("Wrong e-mail or password.", "bad_credentials")
    attempt.succeeded()
    with transaction():
        User.update(last_login_at=utcnow()).where(User.id == user.id).execute()
    return user


def _verify_dummy(password: str | None) -> bool:
    try:
        _hasher.verify(_DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        pass
    return False


def user_dict(user: User) -> dict:
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "firm": {"id": user.firm.id, "name": user.firm.name},
        "company_id": user.company_id,
        "active": user.active,
    }
