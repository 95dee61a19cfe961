"""Sending by hand (a folder's selection, one document, a resend from the dashboard)
and the delivery dashboard: firm users only. Every send goes through
``deliveries.send_manual``, the same path as the API's."""

from __future__ import annotations

import peewee as pw
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import deliveries, french, permissions
from ..errors import GedError, Invalid
from ..models import Company, Connection, Delivery, Document
from .labels import DELIVERY_LABELS
from .links import return_to
from .switches import plural

bp = Blueprint("deliveries", __name__)

# The dashboard shows what needs a person first.
DASHBOARD_ORDER = ["failed", "rejected", "sending", "queued", "accepted", "sent", "validated"]
PAGE = 100


@bp.post("/dossiers/<folder_id>/envoi-manuel")
@login_required
def send_selection(folder_id):
    """Send a selection of the folder's documents (or all of them, subfolders included
    when asked) to one connection, by hand. Documents the tool already has are skipped
    unless « Renvoyer aussi » is ticked."""
    permissions.require_firm_user(current_user)
    folder = permissions.folder_for(current_user, folder_id)
    back = redirect(url_for("web.folders.folder", folder_id=folder.id))
    try:
        conn = permissions.connection_for(current_user, request.form.get("connection_id", ""))
        if conn.company_id != folder.company_id:
            raise Invalid("Unknown connection.", "invalid_connection")
        scope = request.form.get("scope", "selection")
        only = (None if scope in ("folder", "subtree")
                else request.form.getlist("document_id")[:1000])
        sent = deliveries.send_manual(current_user, conn, folder=folder,
                                      below=scope == "subtree", only=only,
                                      resend=bool(request.form.get("resend")))
    except GedError as exc:
        flash(french.error(exc), "error")
        return back
    count, skipped = len(sent.deliveries), len(sent.skipped)
    if count:
        message = (f"{plural(count, 'document envoyé', 'documents envoyés')} à « {conn.name} »."
                   " Suivez les envois sur le tableau des envois.")
    else:
        message = f"Aucun document envoyé à « {conn.name} »."
    if skipped:
        message += (f" {plural(skipped, 'document ignoré', 'documents ignorés')} : "
                    f"{'déjà envoyé' if skipped == 1 else 'déjà envoyés'} à cet outil ou "
                    f"{'remplacé' if skipped == 1 else 'remplacés'} (cochez « Renvoyer aussi "
                    "les documents déjà envoyés » pour les renvoyer).")
    flash(message, "success" if count else "info")
    return back


@bp.post("/documents/<document_id>/envois")
@login_required
def document_send(document_id):
    """"Envoyer aux intégrations" / "Renvoyer": a new manual delivery to one connection."""
    permissions.require_firm_user(current_user)
    doc = permissions.document_for(current_user, document_id)
    back = redirect(return_to(url_for("web.documents.document_page", document_id=doc.id)))
    try:
        conn = permissions.connection_for(current_user, request.form.get("connection_id", ""))
        deliveries.send_manual(current_user, conn, documents=[doc], resend=True)
    except GedError as exc:
        flash(french.error(exc), "error")
        return back
    flash(f"« {doc.name} » part vers « {conn.name} ».", "success")
    return back


@bp.route("/envois")
@login_required
def dashboard():
    """Deliveries of the companies the user sees: failures first, with one-click resend."""
    permissions.require_firm_user(current_user)
    visible = permissions.visible_companies(current_user)
    company_list = list(visible.order_by(Company.name))
    query = Delivery.select(Delivery, Document, Connection, Company).join(
        Document, on=(Delivery.document == Document.id)).switch(Delivery).join(
        Connection, on=(Delivery.connection == Connection.id)).switch(Delivery).join(
        Company, on=(Delivery.company == Company.id)).where(
        Delivery.firm == current_user.firm_id)
    company_id = request.args.get("entreprise") or None
    if company_id:
        permissions.company_for(current_user, company_id)
        query = query.where(Delivery.company == company_id)
    elif current_user.role != "admin":
        query = query.where(Delivery.company.in_([c.id for c in company_list]))
    status = request.args.get("statut") or None
    if status in DELIVERY_LABELS:
        query = query.where(Delivery.status == status)
    try:
        page = max(int(request.args.get("page", 1)), 1)
    except ValueError:
        page = 1
    rank = pw.Case(Delivery.status, [(s, i) for i, s in enumerate(DASHBOARD_ORDER)], 99)
    rows = list(query.order_by(rank, Delivery.updated_at.desc())
                .offset((page - 1) * PAGE).limit(PAGE + 1))
    counts = dict(Delivery.select(Delivery.status, pw.fn.COUNT(Delivery.id))
                  .where(Delivery.id.in_(query.select(Delivery.id)))
                  .group_by(Delivery.status).tuples()) if not status else None
    to_replace, to_replace_more = _awaiting_replacement(
        [company_id] if company_id else
        (None if current_user.role == "admin" else [c.id for c in company_list]))
    return render_template("dashboard.html", rows=rows[:PAGE], more=len(rows) > PAGE, page=page,
                           companies=company_list, company_id=company_id, status=status,
                           counts=counts, order=DASHBOARD_ORDER, to_replace=to_replace,
                           to_replace_more=to_replace_more)


def _awaiting_replacement(company_ids: list[str] | None) -> tuple[list[dict], bool]:
    """Documents a tool rejected that wait for a replacement (oldest first), each with
    the tools that rejected it and their words; ``company_ids`` None = the whole firm."""
    query = (Document.select(Document, Company)
             .join(Company, on=(Document.company == Company.id))
             .where((Document.firm == current_user.firm_id) & (Document.status == "rejected")
                    & Document.trashed_at.is_null()))
    if company_ids is not None:
        query = query.where(Document.company.in_(company_ids))
    docs = list(query.order_by(Document.deposited_at).limit(PAGE + 1))
    verdicts: dict = {}
    for d in (Delivery.select(Delivery, Connection)
              .join(Connection, on=(Delivery.connection == Connection.id))
              .where(Delivery.document.in_([doc.id for doc in docs[:PAGE]])
                     & (Delivery.status == "rejected"))
              .order_by(Delivery.updated_at.desc())):
        verdicts.setdefault(d.document_id, {}).setdefault(d.connection_id, d)
    return ([{"doc": doc, "verdicts": list(verdicts.get(doc.id, {}).values())}
             for doc in docs[:PAGE]], len(docs) > PAGE)


@bp.post("/envois/<delivery_id>/renvoyer")
@login_required
def delivery_resend(delivery_id):
    """One-click resend from the dashboard: a new manual delivery to the same connection."""
    permissions.require_firm_user(current_user)
    delivery = permissions.delivery_for(current_user, delivery_id)
    back = redirect(return_to(url_for("web.deliveries.dashboard")))
    try:
        doc = permissions.document_for(current_user, delivery.document_id)
        conn = permissions.connection_for(current_user, delivery.connection_id)
        deliveries.send_manual(current_user, conn, documents=[doc], resend=True)
    except GedError as exc:
        flash(french.error(exc), "error")
        return back
    flash(f"« {doc.name} » renvoyé à « {conn.name} ».", "success")
    return back
