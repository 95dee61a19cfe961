"""Companies: the firm's list, each company's audit trail and trash (firm users), and
the admin pages that create companies, convert prospects and assign staff."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import companies, folders, french, journal, permissions
from ..errors import GedError
from ..models import AuditEvent, Company, Document, Folder, StaffAssignment, User

bp = Blueprint("companies", __name__)

PAGE = 100


def companies_of(firm) -> list[Company]:
    """Every company of the firm, by name (the admin pages)."""
    return list(Company.select().where(Company.firm == firm.id).order_by(Company.name))


@bp.route("/entreprises")
@login_required
def company_list():
    permissions.require_firm_user(current_user)
    status = request.args.get("statut")
    query = permissions.visible_companies(current_user)
    if status in companies.STATUSES:
        query = query.where(Company.status == status)
    rows = list(query.order_by(Company.name))
    roots = {f.company_id: f.id for f in Folder.select(Folder.id, Folder.company).where(
        Folder.company.in_([c.id for c in rows]) & Folder.parent.is_null())}
    return render_template("companies.html", companies=rows, roots=roots, status=status)


@bp.route("/entreprises/<company_id>/journal")
@login_required
def company_audit(company_id):
    """The company's audit trail, newest first, 100 events a page."""
    permissions.require_firm_user(current_user)
    company = permissions.company_for(current_user, company_id)
    query = AuditEvent.select().where((AuditEvent.firm == current_user.firm_id)
                                      & (AuditEvent.company_id == company.id))
    query = journal.filtered(query, request.args, company.id)  # person, kind, dates
    before = request.args.get("avant", "")
    if before.isdigit():
        query = query.where(AuditEvent.seq < int(before))
    rows = list(query.order_by(AuditEvent.seq.desc()).limit(PAGE + 1))
    return render_template("audit.html", company=company, events=rows[:PAGE],
                           next_before=rows[PAGE - 1].seq if len(rows) > PAGE else None,
                           root=folders.root_of(company))


@bp.route("/entreprises/<company_id>/corbeille")
@login_required
def company_trash(company_id):
    """The company's trashed documents, newest first, each with "Restaurer"."""
    permissions.require_firm_user(current_user)
    company = permissions.company_for(current_user, company_id)
    rows = list(Document.select().where((Document.company == company.id)
                                        & Document.trashed_at.is_null(False))
                .order_by(Document.trashed_at.desc()).limit(500))
    paths = folders.display_paths(list({d.folder_id: d.folder for d in rows}.values()))
    return render_template("trash.html", company=company, documents=rows, paths=paths,
                           root=folders.root_of(company))


# --- administration (admins) ----------------------------------------------------------------


@bp.route("/admin/entreprises", methods=["GET", "POST"])
@login_required
def admin_companies():
    permissions.require_role(current_user, "admin")
    firm = current_user.firm
    form = {}
    status = 200
    if request.method == "POST":
        form = request.form
        try:
            year = int(form.get("year") or dt.date.today().year)
            company = companies.create_company(
                current_user, firm, name=form.get("name", ""), siren=form.get("siren"),
                status=form.get("status", "client"),
                template="annual" if form.get("template") else None, year=year)
        except ValueError:
            flash("L'année doit être un nombre.", "error")
            status = 400
        except GedError as exc:
            flash(french.error(exc), "error")
            status = exc.status
        else:
            flash(f"Entreprise « {company.name} » créée.", "success")
            return redirect(url_for("web.companies.admin_company", company_id=company.id))
    rows = companies_of(firm)
    staff_counts: dict = {}
    for a in StaffAssignment.select(StaffAssignment.company).where(
            StaffAssignment.company.in_([c.id for c in rows])):
        staff_counts[a.company_id] = staff_counts.get(a.company_id, 0) + 1
    return render_template("admin/companies.html", companies=rows, staff_counts=staff_counts,
                           form=form, this_year=dt.date.today().year), status


@bp.route("/admin/entreprises/<company_id>")
@login_required
def admin_company(company_id):
    permissions.require_role(current_user, "admin")
    company = permissions.company_for(current_user, company_id)
    staff = list(User.select().where((User.firm == current_user.firm_id) & (User.role == "staff")
                                     & User.erased_at.is_null()).order_by(User.name))
    assigned = {u.id for u in companies.assigned_staff(company)}
    clients = list(User.select().where(User.company == company.id).order_by(User.name))
    return render_template("admin/company.html", company=company, staff=staff,
                           assigned=assigned, clients=clients,
                           root=folders.root_of(company))


@bp.post("/admin/entreprises/<company_id>/statut")
@login_required
def admin_company_status(company_id):
    permissions.require_role(current_user, "admin")
    company = permissions.company_for(current_user, company_id)
    try:
        company = companies.update_company(current_user, company,
                                           status=request.form.get("status"))
    except GedError as exc:
        flash(french.error(exc), "error")
    else:
        flash(f"« {company.name} » est maintenant "
              f"{'un client' if company.status == 'client' else 'un prospect'}.", "success")
    return redirect(url_for("web.companies.admin_company", company_id=company.id))


@bp.post("/admin/entreprises/<company_id>/collaborateurs")
@login_required
def admin_company_staff(company_id):
    permissions.require_role(current_user, "admin")
    company = permissions.company_for(current_user, company_id)
    try:
        companies.assign_staff(current_user, company, request.form.getlist("user_id"))
    except GedError as exc:
        flash(french.error(exc), "error")
    else:
        flash("Affectation des collaborateurs enregistrée.", "success")
    return redirect(url_for("web.companies.admin_company", company_id=company.id))
