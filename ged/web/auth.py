"""Signing in and out, where a signed-in user lands, and accepting an invitation.

A session is a row of the database (ged/sessions.py), not just a signed cookie:
the cookie names it by a random token, and logging out ends it server-side.
"""

from __future__ import annotations

from flask import (Blueprint, current_app, flash, redirect, render_template, request, session,
                   url_for)
from flask_login import current_user, login_required, login_user, logout_user

from .. import accounts, audit, folders, french, invitations, sessions, throttle
from ..db import transaction
from ..errors import GedError, RateLimited
from .links import safe_target

bp = Blueprint("auth", __name__)


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


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form. ``request.remote_addr`` is the client's real address
    (ged/proxies.py); a browser that signed in before carries its device cookie
    (ged/throttle.py), so others' failed guesses never keep its owner out."""
    if current_user.is_authenticated:
        return redirect(url_for("web.auth.home"))
    if request.method == "GET":
        return render_template("login.html", error=None, email="")
    cfg = current_app.config["GED"]
    email = request.form.get("email", "")
    device = request.cookies.get(throttle.DEVICE_COOKIE)
    try:
        user = accounts.authenticate(email, request.form.get("password", ""),
                                     request.remote_addr, max_attempts=cfg.login_max_attempts,
                                     window=cfg.login_window_seconds, device=device)
    except GedError as exc:
        error = french.error(exc)
        wait = exc.retry_after if isinstance(exc, RateLimited) else 0
        if exc.code == "too_many_attempts" and 0 < wait <= 60:
            error = f"Trop de tentatives. Réessayez dans {wait} secondes."
        response = current_app.make_response(
            (render_template("login.html", error=error, email=email), exc.status))
        if wait:
            response.headers["Retry-After"] = str(wait)
        return response
    begin_session(user)
    with transaction():
        audit.record(user, "login.succeeded", user, firm_only=True,
                     details={"ip": request.remote_addr})
    response = redirect(safe_target(request.args.get("next"), url_for("web.auth.home")))
    if throttle.device_owner(device) != user.id:
        response.set_cookie(throttle.DEVICE_COOKIE, throttle.remember_device(user.id),
                            max_age=throttle.DEVICE_DAYS * 86400, httponly=True,
                            samesite="Lax", path=url_for("web.auth.login"),
                            secure=bool(current_app.config["SESSION_COOKIE_SECURE"]))
    return response


@bp.post("/logout")
@login_required
def logout():
    end_session()
    flash("Vous êtes déconnecté.", "info")
    return redirect(url_for("web.auth.login"))


@bp.route("/")
@login_required
def home():
    """A client lands in their company's folders, the firm on its list of companies."""
    if current_user.role == "client":
        return redirect(url_for("web.folders.folder",
                                folder_id=folders.root_of(current_user.company_id).id))
    return redirect(url_for("web.companies.company_list"))


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token):
    """The invited user chooses a password, then is logged in."""
    error = None
    try:
        user = invitations.pending(token)
    except GedError as exc:
        return render_template("error.html", code=400, message=french.error(exc)), 400
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            error = "Les deux mots de passe ne sont pas identiques."
        else:
            try:
                user = invitations.accept(token, password)
            except GedError as exc:
                error = french.error(exc)
            else:
                begin_session(user)
                flash("Votre mot de passe est enregistré. Bienvenue !", "success")
                return redirect(url_for("web.auth.home"))
    return render_template("invitation.html", invited=user, error=error), (400 if error else 200)
