"""How a web sign-in begins and ends: a session is a row of the database
(ged/sessions.py), not just a signed cookie; the cookie names it by a random token,
and logging out ends it server-side. Every sign-in (a password alone, or a password
then a second factor) ends in ``finish_sign_in``."""

from __future__ import annotations

from flask import current_app, request, session, url_for
from flask_login import login_user, logout_user

from .. import audit, sessions, throttle
from ..db import transaction


def begin_session(user) -> None:
    """Log ``user`` in with a fresh server-side session."""
    session.clear()
    session["sid"] = sessions.open_session(user)
    login_user(user)


def end_session() -> None:
    """Log out: the session ends server-side, so a copy of the cookie stops working."""
    sessions.end_session(session.get("sid"))
    logout_user()
    session.clear()


def session_user(user_id: str):
    """flask-login's user loader: the user of the cookie's live session, or None."""
    return sessions.user_for(session.get("sid"), user_id.partition(":")[0])


def finish_sign_in(user, device: str | None, respond, **details):
    """The end of every web sign-in: a fresh session, ``login.succeeded`` in the audit
    trail, and the device cookie (ged/throttle.py) issued unless the browser's
    ``device`` is already this user's. ``respond()`` makes the reply once the new
    session exists."""
    begin_session(user)
    with transaction():
        audit.record(user, "login.succeeded", user, firm_only=True,
                     details={"ip": request.remote_addr, **details})
    response = current_app.make_response(respond())
    if throttle.device_owner(device) != user.id:
        response.set_cookie(throttle.DEVICE_COOKIE, throttle.remember_device(user.id),
                            max_age=throttle.DEVICE_DAYS * 86400, httponly=True,
                            samesite="Lax", path=url_for("web.auth.login"),
                            secure=bool(current_app.config["SESSION_COOKIE_SECURE"]))
    return response
