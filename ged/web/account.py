"""Pages of one's own account: « Mot de passe oublié ? », the reset link's page,
« Mon compte » (change the password, two-factor sign-in), the second step of the
sign-in, and the admin's « Envoyer un lien de réinitialisation »."""

from __future__ import annotations

import time

from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request,
                   session, url_for)
from flask_login import current_user, login_required

from .. import french, passwords, permissions, throttle, totp
from ..errors import GedError
from ..models import User
from .links import safe_target
from .signing import begin_session, finish_sign_in

bp = Blueprint("account", __name__)


RESET_SENT = ("Si cette adresse correspond à un compte, un lien pour choisir un nouveau mot "
              "de passe vient d'y être envoyé. Il est valable 30 minutes.")
# The second step of a sign-in must follow the first within this time.
PENDING_SECONDS = 300
MAX_CODE_TRIES = 5


# --- forgotten password -------------------------------------------------------------------


@bp.route("/mot-de-passe-oublie", methods=["GET", "POST"])
def forgot_password():
    """The same answer whatever the address (the mail is decided by a job)."""
    if request.method == "POST":
        try:
            passwords.request_link(request.form.get("email", ""), request.remote_addr)
        except GedError as exc:  # too many requests (the same for any address)
            return _too_many(exc, "account/forgot.html",
                             "Trop de demandes de lien. Réessayez dans quelques minutes.")
        flash(RESET_SENT, "info")
        return redirect(url_for("web.auth.login"))
    return render_template("account/forgot.html")


def _too_many(exc: GedError, template: str, long_wait: str, **context):
    """A page refused by a rate limit: 429, its Retry-After, a French sentence."""
    if exc.status != 429:
        return render_template(template, error=french.error(exc), **context), exc.status
    wait = getattr(exc, "retry_after", 0)
    error = f"Trop de tentatives. Réessayez dans {wait} secondes." if 0 < wait <= 60 \
        else long_wait
    response = current_app.make_response((render_template(template, error=error, **context),
                                          429))
    if wait:
        response.headers["Retry-After"] = str(wait)
    return response


@bp.route("/mot-de-passe/<token>", methods=["GET", "POST"])
def reset_password(token):
    """The link's page: choose a new password; every browser session of the user ends."""
    try:
        user = passwords.pending(token)
    except GedError as exc:
        return render_template("error.html", code=400, message=french.error(exc)), 400
    error = None
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            error = "Les deux mots de passe ne sont pas identiques."
        else:
            try:
                passwords.confirm(token, password)
            except GedError as exc:
                error = french.error(exc)
            else:
                session.clear()
                flash("Votre mot de passe est changé. Connectez-vous avec le nouveau.",
                      "success")
                return redirect(url_for("web.auth.login"))
    return render_template("account/reset.html", user=user, error=error), (400 if error else 200)


# --- « Mon compte » -------------------------------------------------------------------------


@bp.route("/mon-compte")
@login_required
def my_account():
    return render_template("account/me.html", totp_on=totp.is_enabled(current_user),
                           policy_requires=totp.required_for(current_user))


@bp.post("/mon-compte/mot-de-passe")
@login_required
def change_my_password():
    """Other sessions end; this browser gets a fresh one."""
    new = request.form.get("new_password", "")
    if new != request.form.get("confirm", ""):
        flash("Les deux nouveaux mots de passe ne sont pas identiques.", "error")
        return redirect(url_for("web.account.my_account"))
    try:
        user = passwords.change(current_user._get_current_object(),
                                request.form.get("current_password", ""), new)
    except GedError as exc:
        flash(french.error(exc), "error")
        return redirect(url_for("web.account.my_account"))
    begin_session(user)
    flash("Mot de passe changé. Vos autres sessions sont fermées.", "success")
    return redirect(url_for("web.account.my_account"))


@bp.post("/admin/utilisateurs/<user_id>/reinitialisation")
@login_required
def admin_send_reset(user_id):
    permissions.require_role(current_user, "admin")
    user = User.get_or_none((User.id == user_id) & (User.firm == current_user.firm_id))
    if user is None:
        abort(404)
    try:
        passwords.send_by_admin(current_user, user)
    except GedError as exc:
        flash(f"{user.email} : {french.error(exc)}", "error")
    else:
        flash(f"Lien de réinitialisation envoyé à {user.email}.", "success")
    return redirect(url_for("web.users.admin_users"))


# --- two-factor sign-in ----------------------------------------------------------------------


def second_factor_redirect(user, next_url: str | None, device: str | None = None):
    """Called by the sign-in form once the password is right: None when the user may
    be signed in now, else the redirect to the code (or the forced set-up) step. The
    session then holds only who passed the first step, when, and the browser's device
    id when it is this user's (its cookie is sent to /login only): codes tried from
    that browser count against it alone, as passwords do."""
    if not (totp.is_enabled(user) or totp.required_for(user)):
        return None
    session.clear()
    session["mfa_user"] = user.id
    session["mfa_at"] = int(time.time())
    session["mfa_tries"] = 0
    session["mfa_next"] = next_url or ""
    session["mfa_device"] = device if throttle.device_owner(device) == user.id else None
    if totp.is_enabled(user):
        return redirect(url_for("web.account.login_code"))
    return redirect(url_for("web.account.login_totp_setup"))


def _pending_user() -> User | None:
    user_id, at = session.get("mfa_user"), session.get("mfa_at", 0)
    if not user_id or time.time() - at > PENDING_SECONDS:
        return None
    user = User.get_or_none(User.id == user_id)
    return user if user is not None and user.active else None


def _finish(user, respond=None, **details):
    """Signed in after the second step: the same end as a password-only sign-in
    (``login.succeeded``, the device cookie); the pending state is cleared."""
    target = safe_target(session.get("mfa_next"), url_for("web.auth.home"))
    device = session.get("mfa_device")
    return finish_sign_in(user, device, respond or (lambda: redirect(target)), **details)


@bp.route("/connexion/code", methods=["GET", "POST"])
def login_code():
    user = _pending_user()
    if user is None:
        flash("Reconnectez-vous.", "info")
        return redirect(url_for("web.auth.login"))
    error = None
    if request.method == "POST":
        session["mfa_tries"] = session.get("mfa_tries", 0) + 1
        if session["mfa_tries"] > MAX_CODE_TRIES:
            session.clear()
            flash("Trop de codes erronés : reconnectez-vous.", "error")
            return redirect(url_for("web.auth.login"))
        try:
            kind = totp.check_sign_in(user, request.form.get("code", ""),
                                      ip=request.remote_addr, device=session.get("mfa_device"))
        except GedError as exc:
            if exc.status == 429:
                return _too_many(exc, "account/code.html",
                                 "Trop de codes erronés. Réessayez dans quelques minutes.")
            error = french.error(exc)
        else:
            return _finish(user, second_factor=kind)
    return render_template("account/code.html", error=error), (400 if error else 200)


@bp.route("/connexion/double-authentification", methods=["GET", "POST"])
def login_totp_setup():
    """The firm requires two-factor sign-in and this user has none: set it up now."""
    user = _pending_user()
    if user is None:
        flash("Reconnectez-vous.", "info")
        return redirect(url_for("web.auth.login"))
    return _setup_page(user, forced=True)


@bp.route("/mon-compte/double-authentification", methods=["GET", "POST"])
@login_required
def my_totp():
    return _setup_page(current_user._get_current_object(), forced=False)


def _setup_page(user, *, forced: bool):
    error = None
    if request.method == "POST":
        try:
            codes = totp.confirm(user, request.form.get("code", ""))
        except GedError as exc:
            error = french.error(exc)
        else:
            if forced:
                return _finish(user, lambda: render_template("account/recovery_codes.html",
                                                             codes=codes),
                               second_factor="setup")
            return render_template("account/recovery_codes.html", codes=codes)
    if totp.is_enabled(user):
        flash(french.ERRORS["totp_already_on"], "info")
        return redirect(url_for("web.account.my_account"))
    secret, uri = totp.start(user) if request.method == "GET" else totp.pending_secret(user)
    return render_template("account/totp_setup.html", secret=secret, qr_svg=totp.qr_svg(uri),
                           forced=forced, error=error), (400 if error else 200)


@bp.post("/mon-compte/double-authentification/desactiver")
@login_required
def my_totp_off():
    try:
        totp.disable(current_user._get_current_object(), request.form.get("code", ""),
                     ip=request.remote_addr)
    except GedError as exc:
        flash(french.error(exc), "error")
    else:
        flash("Double authentification désactivée.", "success")
    return redirect(url_for("web.account.my_account"))
