"""Pages for document requests (« demandes de pièces »).

The client's home (its company's root folder) shows its open requests first, with
their due dates, each with its own drop zone and camera capture. Firm users see
open and late requests per company and across the firm, with the documents that
answered each, create one for a company or for many at once, remind, cancel,
reopen with a reason, and move a date.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import document_requests as requests_
from .. import documents, folders, french, permissions
from ..errors import GedError, NotFound
from ..models import Company, DocumentRequest, Folder
from .folders import answer_deposit
from .links import return_to

bp = Blueprint("requests", __name__)

STATUS_LABELS = {"open": "Ouverte", "fulfilled": "Reçue", "cancelled": "Annulée"}


@bp.app_template_filter("request_status")
def _request_status(req) -> str:
    if requests_.is_late(req):
        return "En retard"
    return STATUS_LABELS.get(req.status, req.status)


@bp.app_template_global()
def client_open_requests(folder: Folder) -> list:
    """The open requests a client sees on its home page (its company's root folder),
    soonest due first."""
    if (not current_user.is_authenticated or permissions.is_firm_user(current_user)
            or folder.parent_id is not None):
        return []
    rows = list(requests_.visible(current_user).where(
        (DocumentRequest.company == folder.company_id) & (DocumentRequest.status == "open")))
    rows.sort(key=lambda r: (r.due_date is None, r.due_date or 0, r.created_at))
    return rows


def _sorted(query) -> list:
    return list(query.order_by(DocumentRequest.created_at.desc()).limit(500))


@bp.route("/demandes")
@login_required
def requests_page():
    """Every request the user sees: open and late first; ``entreprise`` and ``statut`` filter."""
    query = requests_.visible(current_user)
    company = None
    if request.args.get("entreprise"):
        company = permissions.company_for(current_user, request.args["entreprise"])
        query = query.where(DocumentRequest.company == company.id)
    status = request.args.get("statut", "open")
    if status == "late":
        query = query.where((DocumentRequest.status == "open")
                            & (DocumentRequest.due_date < requests_.today()))
    elif status in requests_.STATUSES:
        query = query.where(DocumentRequest.status == status)
    rows = _sorted(query)
    rows.sort(key=lambda r: (not requests_.is_late(r), r.due_date is None, r.due_date or 0))
    return render_template("requests/list.html", rows=rows, status=status, company=company,
                           answered=requests_.answered_documents([r.id for r in rows]),
                           root=folders.root_of(company) if company else None)


@bp.route("/entreprises/<company_id>/demandes", methods=["GET", "POST"])
@login_required
def company_requests(company_id):
    """A company's requests and the form asking it for documents (firm users)."""
    permissions.require_role(current_user, "admin", "staff")
    company = permissions.company_for(current_user, company_id)
    if request.method == "POST":
        try:
            req = requests_.create(current_user, company, title=request.form.get("title"),
                                   description=request.form.get("description"),
                                   folder_id=request.form.get("folder_id") or None,
                                   due_date=request.form.get("due_date") or None)
        except GedError as exc:
            flash(french.error(exc), "error")
            return redirect(url_for("web.requests.company_requests", company_id=company.id))
        flash("Demande envoyée au client.", "success")
        return redirect(url_for("web.requests.request_page", request_id=req.id))
    rows = _sorted(requests_.visible(current_user).where(DocumentRequest.company == company.id))
    choices = [f for f in folders.subtree(folders.root_of(company)).order_by(Folder.path)
               if f.trashed_at is None and not f.firm_only]
    paths = folders.display_paths(choices)
    return render_template("requests/company.html", company=company, rows=rows,
                           root=folders.root_of(company),
                           answered=requests_.answered_documents([r.id for r in rows]),
                           folder_choices=[(f.id, paths[f.id]) for f in choices])


@bp.route("/demandes/nouvelle", methods=["GET", "POST"])
@login_required
def bulk_request():
    """One request to many companies, the folder found by its path in each tree."""
    permissions.require_role(current_user, "admin", "staff")
    companies = list(permissions.visible_companies(current_user).order_by(Company.name))
    form = request.form
    if request.method == "POST":
        try:
            made = requests_.create_bulk(current_user, form.getlist("company_ids"),
                                         title=form.get("title"),
                                         description=form.get("description"),
                                         folder_path=form.get("folder_path"),
                                         due_date=form.get("due_date") or None)
        except GedError as exc:
            message = french.error(exc)
            if exc.code == "folder_path_not_found":
                message = ("Ce chemin de dossier n'existe pas (ou est réservé au cabinet) "
                           "dans : " + exc.message.partition(" in: ")[2])
            elif exc.code == "not_found":
                message = "Une des entreprises choisies est introuvable."
            flash(message, "error")
            return render_template("requests/bulk.html", companies=companies, form=form), 400
        flash(f"{len(made)} demande(s) envoyée(s).", "success")
        return redirect(url_for("web.requests.requests_page"))
    return render_template("requests/bulk.html", companies=companies, form={})


@bp.route("/demandes/<request_id>")
@login_required
def request_page(request_id):
    req = requests_.request_for(current_user, request_id)
    folder = requests_.deposit_folder(req)
    return render_template(
        "requests/detail.html", req=req, company=req.company,
        folder=folder, folder_path=folders.display_path(folder),
        documents=requests_.answered_documents([req.id]).get(req.id, []),
        max_upload_mb=current_app.config["GED"].max_upload_bytes // (1024 * 1024))


@bp.post("/demandes/<request_id>/depot")
@login_required
def request_deposit(request_id):
    """Deposit against a request (form or the drop zone's XHR, JSON per file)."""
    req = requests_.request_for(current_user, request_id)
    return answer_deposit(lambda uploads: requests_.deposit(current_user, req, uploads, "web"),
                          _back(req), "{n} document(s) déposé(s) : merci, votre cabinet est "
                          "prévenu.")


def _back(req) -> str:
    return return_to(url_for("web.requests.request_page", request_id=req.id))


@bp.post("/demandes/<request_id>/modifier")
@login_required
def request_update(request_id):
    """Cancel, reopen with a reason, mark received, or move the due date (firm users)."""
    req = requests_.request_for(current_user, request_id)
    permissions.require_role(current_user, "admin", "staff")
    action = request.form.get("action")
    data = {"cancel": {"status": "cancelled"}, "fulfil": {"status": "fulfilled"},
            "reopen": {"status": "open", "description": request.form.get("reason", "")},
            "date": {"due_date": request.form.get("due_date") or None}}.get(action)
    if data is None:
        raise NotFound("Unknown action.")
    try:
        requests_.update(current_user, req, data)
        flash({"cancel": "Demande annulée.", "fulfil": "Demande marquée comme reçue.",
               "reopen": "Demande rouverte : le client est prévenu.",
               "date": "Échéance modifiée."}[action], "success")

    except GedError as exc:
        flash(french.error(exc), "error")
    return redirect(url_for("web.requests.request_page", request_id=req.id))


@bp.post("/demandes/<request_id>/relancer")
@login_required
def request_remind(request_id):
    """« Relancer »: a reminder e-mail now."""
    req = requests_.request_for(current_user, request_id)
    permissions.require_role(current_user, "admin", "staff")
    try:
        requests_.remind(current_user, req)
        flash("Relance envoyée au client.", "success")
    except GedError as exc:
        flash(french.error(exc), "error")
    return redirect(url_for("web.requests.request_page", request_id=req.id))
