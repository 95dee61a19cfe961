"""Forgotten and changed passwords: a single-use link valid 30 minutes, mailed
through the outgoing-mail seam; only the link's SHA-256 is stored (``ActionToken``,
purpose ``reset``). Using it sets the password and ends every web session of the
user (API tokens stay: they are revoked one by one).

Asking for a link does the same work whatever the address: the request only
enqueues ``mail_reset_link``; the job looks the address up, and mails a link only
to an active user. So neither the reply nor its timing tells whether an account
exists.

Requests are limited by the rules of sign-in (ged/throttle.py, scope ``reset``):
per address and client address, per client address, and past a few requests for one
address from anywhere, one per minute. The counts do not depend on whether the
address is an account's, so a refusal tells nothing either.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import secrets
from email.message import EmailMessage

from . import accounts, audit, permissions, queue, throttle, tokens
from .db import transaction
from .errors import Invalid, MailFailed
from .models import ActionToken, User, utcnow

log = logging.getLogger(__name__)

PURPOSE = "reset"
VALID = dt.timedelta(minutes=30)
# A second request within this time mails nothing new (a mailbox is not flooded).
QUIET = dt.timedelta(seconds=60)
# Requests for one address from one client address per window (four times that from
# one client address for any addresses); past this many for one address from anywhere,
# one per GATE.
PER_ADDRESS = 5
WINDOW_SECONDS = 3600
GATE_SECONDS = 60


def link(token: str) -> str:
    """The page where the link's holder chooses a new password (on GED_PUBLIC_URL,
    never on the request's Host header)."""
    from . import runtime

    return f"{runtime.config().public_url}/mot-de-passe/{token}"


def request_link(email: str, ip: str | None = None) -> None:
    """What ``POST /password-reset`` and the « Mot de passe oublié ? » form do: the
    same for any address (the job decides); RateLimited past the limits. ``ip``: the
    client's real address. Redis being down is logged."""
    address = (email or "").strip().lower()[:254]
    try:
        attempt = throttle.reserve(address, ip, max_attempts=PER_ADDRESS,
                                   window=WINDOW_SECONDS, scope="reset", account_factor=1,
                                   gate_seconds=GATE_SECONDS)
    except Exception:  # noqa: BLE001 - Redis down: the enqueue below fails and is logged too
        log.exception("could not count a password reset request")
        attempt = None
    if attempt is not None:
        if not attempt.allowed:
            raise attempt.refusal("reset requests")
        attempt.failed()  # every request counts, granted or not
    try:
        queue.schedule_reset_mail(address)
    except Exception:  # noqa: BLE001 - the same answer either way; the user may ask again
        log.exception("could not enqueue a password reset mail")


def mail_link_to(email: str) -> bool:
    """The job: create and mail a link when ``email`` is an active user's; True when
    one was sent."""
    user = User.get_or_none((User.email == email) & (User.active == True)  # noqa: E712
                            & User.erased_at.is_null())
    if user is None:
        return False
    recent = ActionToken.select().where(
        (ActionToken.user == user.id) & (ActionToken.purpose == PURPOSE)
        & ActionToken.used_at.is_null()
        & (ActionToken.expires_at > utcnow() + VALID - QUIET)).exists()
    if recent:
        return False
    _issue_and_mail(user, user, requested=True)
    return True


def send_by_admin(actor: User, user: User) -> str:
    """An admin sends a reset link to a user of their firm; returns the link."""
    permissions.require_role(actor, "admin")
    if user.firm_id != actor.firm_id:
        raise Invalid("Unknown user.", "invalid_user")
    if not user.active:
        raise Invalid("This account is disabled.", "account_disabled")
    return _issue_and_mail(actor, user, requested=False)


def _issue_and_mail(actor, user: User, *, requested: bool) -> str:
    token = secrets.token_urlsafe(32)
    with transaction():
        ActionToken.update(used_at=utcnow()).where(
            (ActionToken.user == user.id) & (ActionToken.purpose == PURPOSE)
            & ActionToken.used_at.is_null()).execute()
        ActionToken.create(user=user, purpose=PURPOSE, token_hash=tokens.digest(token),
                           expires_at=utcnow() + VALID)
        audit.record(actor, "user.password_reset_sent", user, firm=user.firm_id,
                     company=user.company_id, firm_only=True,
                     details={"by_admin": not requested})
    url = link(token)
    try:
        from . import mail

        mail.send(_message(user, url, by_admin=not requested))
    except Exception as exc:  # noqa: BLE001 - any relay failure is reported the same way
        raise MailFailed(f"The password reset e-mail could not be sent: {exc}") from exc
    return url


def _message(user: User, url: str, *, by_admin: bool) -> EmailMessage:
    from . import formats, runtime

    firm = user.firm.name
    until = formats.datetime_long(utcnow() + VALID)
    msg = EmailMessage()
    msg["From"] = runtime.config().mail_from
    msg["To"] = user.email
    msg["Subject"] = f"{firm} : choisissez un nouveau mot de passe"
    why = ("Votre cabinet vous envoie ce lien pour choisir un nouveau mot de passe."
           if by_admin else
           "Vous avez demandé à choisir un nouveau mot de passe pour votre espace documentaire.")
    msg.set_content(
        f"Bonjour {user.name},\n\n{why}\n\n"
        f"Ouvrez ce lien (valable 30 minutes, jusqu'au {until}, utilisable une seule "
        f"fois) :\n\n{url}\n\n"
        "Une fois le mot de passe changé, vos sessions ouvertes dans les navigateurs se "
        "ferment.\n\n"
        "Si vous n'avez rien demandé, ignorez ce message : votre mot de passe ne change pas.\n")
    return msg


def _token_row(token: str) -> ActionToken:
    if not token or not isinstance(token, str) or len(token) > 100:
        raise Invalid("This reset link is not valid.", "invalid_reset_token")
    row = (ActionToken.select(ActionToken, User).join(User)
           .where((ActionToken.token_hash == tokens.digest(token)) & (ActionToken.purpose == PURPOSE))
           .first())
    # Found by its SHA-256 (an index lookup on a digest tells nothing of the token);
    # compared again in constant time.
    if row is None or not hmac.compare_digest(row.token_hash, tokens.digest(token)) \
            or row.used_at is not None:
        raise Invalid("This reset link is not valid or was already used.",
                      "invalid_reset_token")
    if row.expires_at <= utcnow():
        raise Invalid("This reset link has expired.", "reset_token_expired")
    if not row.user.active:
        raise Invalid("This account is disabled.", "account_disabled")
    return row


def pending(token: str) -> User:
    """The user a valid, unused reset link is for; Invalid otherwise."""
    return _token_row(token).user


def confirm(token: str, password: str) -> User:
    """Set the new password with the link, once; every web session of the user ends."""
    row = _token_row(token)
    accounts.validate_password(password, (row.user.email, row.user.name))
    with transaction():
        used = ActionToken.update(used_at=utcnow()).where(
            (ActionToken.id == row.id) & ActionToken.used_at.is_null()
            & (ActionToken.expires_at > utcnow())).execute()
        if not used:  # another request used it first
            raise Invalid("This reset link was already used.", "invalid_reset_token")
        accounts.set_password(row.user, row.user, password)
        audit.record(row.user, "user.password_reset", row.user, company=row.user.company_id,
                     firm_only=True)
    return User.get_by_id(row.user_id)


def change(user: User, current: str, new: str) -> User:
    """The signed-in user changes their password: the current one is checked, and
    every session ends (the caller opens a fresh one for the browser it came from)."""
    if not accounts.check_password(user, current or ""):
        raise Invalid("The current password is wrong.", "bad_password")
    if current == new:
        raise Invalid("The new password must differ from the current one.", "same_password")
    with transaction():
        accounts.set_password(user, user, new)
        audit.record(user, "user.password_changed", user, company=user.company_id,
                     firm_only=True)
    return User.get_by_id(user.id)
