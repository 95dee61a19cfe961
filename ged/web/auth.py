"""Signing in and out, where a signed-in user lands, and accepting an invitation.

Sessions begin and end in ged/web/signing.py; a user with two-factor sign-in
gives a code next (ged/web/account.py).
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import accounts, folders, french, invitations, throttle
from ..errors import GedError, RateLimited
from . import account
from .links import safe_target
from .signing import begin_session, end_session, finish_sign_in

bp = Blueprint("auth", __name__)


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
    gate = account.second_factor_redirect(user, request.args.get("next"), device)
    if gate is not None:  # two-factor sign-in: the code (or its set-up) comes next
        return gate
    target = safe_target(request.args.get("next"), url_for("web.auth.home"))
    return finish_sign_in(user, device, lambda: redirect(target))


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
