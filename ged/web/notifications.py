"""The « Notifications » page (what the user is told by e-mail) and the one-click
unsubscribe link of every message (RFC 8058): its POST needs no sign-in and no
form token, the signed link is the authorisation."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import french, notifications
from ..errors import GedError

bp = Blueprint("notifications", __name__)


@bp.record
def _exempt_one_click(state) -> None:
    # A mail client's one-click POST carries no form token (RFC 8058).
    csrf = state.app.extensions.get("csrf")
    if csrf is not None:
        csrf.exempt(f"{__name__}.unsubscribe")


@bp.route("/notifications", methods=["GET", "POST"])
@login_required
def notifications_page():
    prefs = notifications.preferences(current_user)
    if request.method == "POST":
        form = request.form
        data = {}
        for key in prefs:
            if key in ("new_documents", "delivery_failures"):
                data[key] = form.get(key, "off")
            elif key == "rejections" and key not in form and current_user.role != "client":
                continue  # not on a firm user's form
            else:
                data[key] = form.get(key) == "1"
        try:
            notifications.set_preferences(current_user, data)
            flash("Vos préférences de notification sont enregistrées.", "success")
        except GedError as exc:
            flash(french.error(exc), "error")
        return redirect(url_for("web.notifications.notifications_page"))
    return render_template("notifications/settings.html", prefs=prefs)


@bp.route("/notifications/desabonnement/<token>", methods=["GET", "POST"])
def unsubscribe(token):
    """GET: a page with one button (a link opened by a mail scanner changes nothing);
    POST: unsubscribes at once, from that page or from the mail client (one click)."""
    try:
        user, topic = notifications.read_unsubscribe_token(token)
    except GedError as exc:
        return render_template("error.html", code=404, message=french.error(exc)), 404
    label = notifications.TOPIC_LABELS.get(topic, topic)
    if request.method == "POST":
        notifications.unsubscribe(token)
        return render_template("notifications/unsubscribed.html", label=label, done=True)
    return render_template("notifications/unsubscribed.html", label=label, done=False,
                           token=token, email=user.email)
