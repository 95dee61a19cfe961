"""The firm's users (admins): the list, creating a staff or client user with a
password or an e-mailed invitation, sending an invitation again, disabling and
enabling. The invited user's own page is in ged/web/auth.py."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import accounts, french, invitations, permissions
from ..errors import GedError
from ..models import Company, User
from .companies import companies_of

bp = Blueprint("users", __name__)


def _admin() -> None:
    permissions.require_role(current_user, "admin")


@bp.route("/admin/")
@login_required
def admin_home():
    _admin()
    return redirect(url_for("web.users.admin_users"))


@bp.route("/admin/utilisateurs", methods=["GET", "POST"])
@login_required
def admin_users():
    """The firm's users; the form creates a staff or client user, with a password or an
    e-mailed invitation."""
    _admin()
    firm = current_user.firm
    form = {}
    status = 200
    if request.method == "POST":
        form = request.form
        role = form.get("role", "")
        company = None
        try:
            if role == "client" and form.get("company_id"):
                company = permissions.company_for(current_user, form["company_id"])
            invite = form.get("mode") == "invite"
            password = None if invite else form.get("password", "")
            user = accounts.create_user(current_user, firm, email=form.get("email", ""),
                                        name=form.get("name", ""), role=role, company=company,
                                        password=password)
        except GedError as exc:
            flash(french.error(exc), "error")
            status = exc.status
        else:
            if invite:
                _send_invitation(user)
            else:
                flash(f"Utilisateur {user.email} créé.", "success")
            return redirect(url_for("web.users.admin_users"))
    users = list(User.select().where((User.firm == firm.id) & User.erased_at.is_null())
                 .order_by(User.role, User.name))
    company_names = {c.id: c.name for c in Company.select(Company.id, Company.name)
                     .where(Company.firm == firm.id)}
    pending = {u.id for u in users if u.password_hash is None and invitations.has_pending(u)}
    return render_template("admin/users.html", users=users, company_names=company_names,
                           pending=pending, form=form,
                           companies=companies_of(firm)), status


def _send_invitation(user: User) -> None:
    try:
        invitations.invite(current_user, user)
    except GedError as exc:
        flash(f"{user.email} : {french.error(exc)}", "error")
    else:
        flash(f"Invitation envoyée à {user.email}.", "success")


def _firm_member(user_id: str) -> User:
    user = User.get_or_none((User.id == user_id) & (User.firm == current_user.firm_id))
    if user is None:
        abort(404)
    return user


@bp.post("/admin/utilisateurs/<user_id>/invitation")
@login_required
def admin_invite(user_id):
    _admin()
    _send_invitation(_firm_member(user_id))
    return redirect(url_for("web.users.admin_users"))


@bp.post("/admin/utilisateurs/<user_id>/actif")
@login_required
def admin_set_active(user_id):
    _admin()
    user = _firm_member(user_id)
    active = request.form.get("active") == "1"
    try:
        accounts.set_active(current_user, user, active)
    except GedError as exc:
        flash(french.error(exc), "error")
    else:
        flash(f"{user.email} {'réactivé' if active else 'désactivé'}.", "success")
    return redirect(url_for("web.users.admin_users"))
