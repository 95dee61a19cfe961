"""« Réglages du cabinet » (admins): the default profile of new users and the
two-factor policy; and a company's name and SIREN corrected from its page."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import companies, firm_settings, french, permissions
from ..errors import GedError
from ..models import Company

bp = Blueprint("settings", __name__)

POLICY_LABELS = {"none": "Facultative", "staff": "Obligatoire pour le cabinet (administrateurs "
                 "et collaborateurs)", "all": "Obligatoire pour tous, clients compris"}


@bp.app_template_global()
def new_user_defaults() -> dict:
    """What the new-user form proposes: the firm's default role."""
    return {"role": firm_settings.get(current_user.firm_id).default_role}


@bp.route("/admin/reglages", methods=["GET", "POST"])
@login_required
def admin_settings():
    permissions.require_role(current_user, "admin")
    if request.method == "POST":
        try:
            firm_settings.update(current_user, default_role=request.form.get("default_role"),
                                 default_company_ids=request.form.getlist("default_company_id"),
                                 require_totp=request.form.get("require_totp"))
        except GedError as exc:
            flash(french.error(exc), "error")
        else:
            flash("Réglages enregistrés.", "success")
        return redirect(url_for("web.settings.admin_settings"))
    rows = list(Company.select().where(Company.firm == current_user.firm_id)
                .order_by(Company.name))
    return render_template("settings/firm.html", settings=firm_settings.get(current_user.firm_id),
                           companies=rows, policies=POLICY_LABELS, active="settings")


@bp.post("/admin/entreprises/<company_id>/identite")
@login_required
def admin_company_identity(company_id):
    """Rename a company, or correct its SIREN."""
    permissions.require_role(current_user, "admin")
    company = permissions.company_for(current_user, company_id)
    try:
        companies.update_company(current_user, company, name=request.form.get("name"),
                                 siren=request.form.get("siren", ""))
    except GedError as exc:
        flash(french.error(exc), "error")
    else:
        flash("Entreprise mise à jour.", "success")
    return redirect(url_for("web.companies.admin_company", company_id=company_id))
