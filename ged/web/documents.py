"""The document page every user sees (details, preview, download; for the firm also
its duplicate badge and deliveries), and what can be done from it: replace, trash,
restore."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import documents, downloads, folders, french, permissions, previews, switches
from ..errors import GedError
from ..models import Blob, Connection, Delivery, Document
from .links import return_to

bp = Blueprint("documents", __name__)


@bp.route("/documents/<document_id>")
@login_required
def document_page(document_id):
    """A document's details, preview and download; for firm users also its duplicate badge
    and its deliveries with "Envoyer" / "Renvoyer"."""
    doc = permissions.document_for(current_user, document_id, include_trashed=True)
    folder = doc.folder
    blob = Blob.get_by_id(doc.blob_id)
    # What the extraction found shows once this document's own text status is known
    # (a fresh deposit never shows what another company's copy of the bytes gave).
    known = doc.text_status != "pending"
    pages = blob.pages if known else None
    context = {
        "doc": doc, "folder": folder, "chain": folders.ancestors(folder), "company": doc.company,
        "facturx": blob.facturx if known else None, "pages": pages,
        "page_images": previews.shown_pages(pages)
        if previews.previewable(doc.content_type) else 0,
        "may_trash": _may_trash(doc),
        "may_replace": doc.trashed_at is None and doc.replaced_by_id is None,
        "replaced_by": Document.get_or_none(Document.id == doc.replaced_by_id)
        if doc.replaced_by_id else None,
        "replaces": Document.get_or_none(Document.id == doc.replaces_id)
        if doc.replaces_id else None,
    }
    if permissions.is_firm_user(current_user):
        context.update(_firm_context(doc, blob))
    return render_template("document.html", **context)


def _firm_context(doc: Document, blob: Blob) -> dict:
    """The document's deliveries, the tools' rejections and its original (firm users)."""
    conns = switches.company_connections(doc.company_id)
    rows = list(Delivery.select().where(Delivery.document == doc.id)
                .order_by(Delivery.created_at.desc()))
    conn_names = {c.id: c.name for c in Connection.select(Connection.id, Connection.name)
                  .where(Connection.id.in_({d.connection_id for d in rows} | {c.id for c in conns}))}
    latest: dict = {}
    for d in rows:  # newest first: the first seen per connection is its latest
        if d.status != "failed":
            latest.setdefault(d.connection_id, d)
    return {
        "rejections": [d for d in latest.values() if d.status == "rejected"],
        "deliveries": rows, "conn_names": conn_names, "connections": conns,
        "delivered_to": {d.connection_id for d in rows}, "text_error": blob.text_error,
        "original": Document.get_or_none(Document.id == doc.duplicate_of)
        if doc.duplicate_of else None,
    }


def _may_trash(doc: Document) -> bool:
    if doc.trashed_at is not None:
        return False
    try:
        permissions.may_trash(current_user, doc)
    except GedError:
        return False
    return True


@bp.route("/documents/<document_id>/telecharger")
@login_required
def download(document_id):
    return downloads.file_response(permissions.document_for(current_user, document_id))


@bp.route("/documents/<document_id>/apercu")
@login_required
def preview(document_id):
    """Inline preview of PDFs and images only, sandboxed by the CSP."""
    doc = permissions.document_for(current_user, document_id)
    inline = doc.content_type in {"application/pdf", "image/jpeg", "image/png"}
    response = downloads.file_response(doc, inline=inline)
    if inline and doc.content_type == "application/pdf":
        # Chromium's PDF viewer does not run inside a sandboxed CSP; scripts stay off.
        response.headers["Content-Security-Policy"] = ("default-src 'none'; object-src 'self'; "
                                                       "frame-ancestors 'self'")
    return response


@bp.route("/documents/<document_id>/apercu/<int:page>.png")
@login_required
def preview_page(document_id, page):
    """Page ``page`` of a PDF or TIFF rendered to PNG (see ged/previews.py)."""
    doc = permissions.document_for(current_user, document_id, include_trashed=True)
    response = current_app.response_class(previews.render(doc, page), mimetype="image/png")
    # A document's bytes never change; its permissions might, hence private and bounded.
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["Content-Security-Policy"] = "default-src 'none'"
    return response


@bp.post("/documents/<document_id>/remplacer")
@login_required
def document_replace(document_id):
    """« Remplacer »: a new file for the document, deposited into its folder (a file
    form, no script needed); the page of the new document follows."""
    doc = permissions.document_for(current_user, document_id)
    back = redirect(return_to(url_for("web.documents.document_page", document_id=doc.id)))
    files = [f for f in request.files.getlist("file") if f.filename]
    if len(files) != 1:
        flash(french.ERRORS["one_file"], "error")
        return back
    try:
        (upload,) = documents.stage_uploads([(files[0].filename, files[0].stream)])
        new = documents.replace(current_user, doc, upload, "web")
    except GedError as exc:
        flash(french.error(exc), "error")
        return back
    flash(f"« {doc.name} » est remplacé par « {new.name} ».", "success")
    return redirect(return_to(url_for("web.documents.document_page", document_id=new.id)))


@bp.post("/documents/<document_id>/corbeille")
@login_required
def document_trash(document_id):
    doc = permissions.document_for(current_user, document_id)
    try:
        documents.trash(current_user, doc)
    except GedError as exc:
        flash(french.error(exc), "error")
        return redirect(url_for("web.documents.document_page", document_id=doc.id))
    flash(f"« {doc.name} » est dans la corbeille.", "success")
    return redirect(url_for("web.folders.folder", folder_id=doc.folder_id))


@bp.post("/documents/<document_id>/restaurer")
@login_required
def document_restore(document_id):
    permissions.require_firm_user(current_user)
    doc = permissions.document_for(current_user, document_id, include_trashed=True)
    documents.restore(current_user, doc)
    flash(f"« {doc.name} » est restauré dans son dossier.", "success")
    return redirect(return_to(url_for("web.companies.company_trash", company_id=doc.company_id)))
