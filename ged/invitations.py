"""Invitations: a one-time link, sent by e-mail, with which a new user sets their
password. Only the link's SHA-256 is stored (``ActionToken``); it expires, and it
works once."""

from __future__ import annotations

import datetime as dt
import secrets
from email.message import EmailMessage

from . import accounts, audit, mail, permissions, runtime, tokens
from .db import transaction
from .errors import Invalid, MailFailed
from .models import ActionToken, User, utcnow

VALID_DAYS = 7
PURPOSE = "invite"


def link(token: str) -> str:
    """The page where the invited user sets their password (on GED_PUBLIC_URL, never on
    the request's Host header, so a forged Host cannot redirect the link)."""
    return f"{runtime.config().public_url}/invitation/{token}"


def invite(actor, user: User) -> str:
    """Create a fresh invitation for ``user`` (earlier unused ones stop working) and
    e-mail it; returns the link. Raises MailFailed when the relay refuses: the
    invitation stays valid and can be sent again."""
    permissions.require_role(actor, "admin")
    if user.firm_id != actor.firm_id:
        raise Invalid("Unknown user.", "invalid_user")
    if not user.active:
        raise Invalid("This account is disabled.", "account_disabled")
    token = secrets.token_urlsafe(32)
    with transaction():
        ActionToken.update(used_at=utcnow()).where(
            (ActionToken.user == user.id) & (ActionToken.purpose == PURPOSE)
            & ActionToken.used_at.is_null()).execute()
        ActionToken.create(user=user, purpose=PURPOSE, token_hash=tokens.digest(token),
                           expires_at=utcnow() + dt.timedelta(days=VALID_DAYS))
        audit.record(actor, "user.invited", user, company=user.company_id,
                     details={"email": user.email})
    url = link(token)
    try:
        mail.send(_message(user, url))
    except Exception as exc:  # noqa: BLE001 - any relay failure is reported the same way
        raise MailFailed(f"The invitation e-mail could not be sent: {exc}") from exc
    return url


def _message(user: User, url: str) -> EmailMessage:
    firm = user.firm.name
    msg = EmailMessage()
    msg["From"] = runtime.config().mail_from
    msg["To"] = user.email
    msg["Subject"] = f"{firm} vous invite dans son espace documentaire"
    msg.set_content(
        f"Bonjour {user.name},\n\n"
        f"{firm} vous a ouvert un accès à son espace documentaire, où vous pourrez "
        f"déposer vos pièces comptables et retrouver vos documents.\n\n"
        f"Pour choisir votre mot de passe, ouvrez ce lien (valable {VALID_DAYS} jours, "
        f"utilisable une seule fois) :\n\n{url}\n\n"
        f"Votre identifiant est votre adresse e-mail : {user.email}\n\n"
        f"Si vous n'attendiez pas ce message, ignorez-le.\n")
    return msg


def pending(token: str) -> User:
    """The user a valid, unused invitation is for; Invalid otherwise."""
    row = _token_row(token)
    return row.user


def _token_row(token: str) -> ActionToken:
    if not token or len(token) > 100:
        raise Invalid("This invitation link is not valid.", "invalid_invitation")
    row = (ActionToken.select(ActionToken, User).join(User)
           .where((ActionToken.token_hash == tokens.digest(token)) & (ActionToken.purpose == PURPOSE))
           .first())
    if row is None or row.used_at is not None:
        raise Invalid("This invitation link is not valid or was already used.",
                      "invalid_invitation")
    if row.expires_at <= utcnow():
        raise Invalid("This invitation link has expired.", "invitation_expired")
    if not row.user.active:
        raise Invalid("This account is disabled.", "account_disabled")
    return row


def accept(token: str, password: str) -> User:
    """Set the invited user's password and use up the link."""
    accounts.validate_password(password)
    with transaction():
        row = _token_row(token)
        used = ActionToken.update(used_at=utcnow()).where(
            (ActionToken.id == row.id) & ActionToken.used_at.is_null()).execute()
        if not used:  # another request used it first
            raise Invalid("This invitation link was already used.", "invalid_invitation")
        accounts.set_password(row.user, row.user, password)
        audit.record(row.user, "user.invitation_accepted", row.user, company=row.user.company_id)
    return User.get_by_id(row.user_id)


def has_pending(user: User) -> bool:
    """True while the user was invited and has not set a password yet."""
    return user.password_hash is None and ActionToken.select().where(
        (ActionToken.user == user.id) & (ActionToken.purpose == PURPOSE)
        & ActionToken.used_at.is_null() & (ActionToken.expires_at > utcnow())).exists()
