"""Filing in the web pages: a selection of documents (ZIP for everyone; move and
trash for the firm), « Déplacer vers… » with the folder tree and where each folder
sends, drag and drop onto the tree, rename, folders to the trash and back. Every
action calls the same domain function as the API (ged/filing.py, ged/documents.py,
ged/folders.py)."""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, request, url_for
from flask_login import current_user, login_required

from .. import documents, downloads, filing, folders, french, permissions
from ..errors import GedError
from ..models import Company, Document

bp = Blueprint("filing", __name__)



def folder_context(user, folder, chain) -> dict:
    """The folder page's filing context: where a move into each folder sends (firm)."""
    sends = filing.switched_on_by_folder(folder.company_id) if permissions.is_firm_user(user) \
        else {}
    return {"filing": {"sends": sends}}


@bp.app_template_global()
def filing_context(company_id: str) -> dict:
    """For a document's page (firm users): the tree to move it into, and what sends."""
    if not permissions.is_firm_user(current_user):
        return {"tree": [], "sends": {}}
    company = permissions.company_for(current_user, company_id)
    return {"tree": folders.tree(current_user, company),
            "sends": filing.switched_on_by_folder(company.id)}


@bp.app_template_global()
def trashed_folders(company: Company) -> list[dict]:
    return filing.trashed_folders(current_user, company)


def _ids() -> list[str]:
    return request.form.getlist("document_id")[:filing.MAX_IDS]


def _report(result: dict, done_text: str) -> None:
    if result["done"]:
        flash(done_text.format(n=result["done"], s="s" if result["done"] > 1 else ""), "success")
    # Said by reason, never by the ids sent (a form may name ids it cannot see).
    reasons: dict[str, int] = {}
    for item in result["refused"]:
        text = french.error(GedError(item["error"]["message"], item["error"]["code"]))
        reasons[text] = reasons.get(text, 0) + 1
    for text, count in reasons.items():
        flash(f"{count} document{'s' if count > 1 else ''} non traité{'s' if count > 1 else ''} "
              f": {text}", "error")


# --- the selection -------------------------------------------------------------------------


@bp.post("/dossiers/<folder_id>/selection/zip")
@login_required
def selection_zip(folder_id):
    permissions.folder_for(current_user, folder_id)
    try:
        return downloads.zip_response(filing.zip_documents(current_user, _ids()))
    except GedError as exc:
        flash(french.error(exc), "error")
        return redirect(url_for("web.folders.folder", folder_id=folder_id))


@bp.route("/dossiers/<folder_id>/zip")
@login_required
def folder_zip(folder_id):
    return downloads.zip_response(filing.zip_folder(current_user, permissions.folder_for(current_user,
                                                                           folder_id)))


@bp.post("/dossiers/<folder_id>/selection/deplacer")
@login_required
def selection_move(folder_id):
    permissions.folder_for(current_user, folder_id)
    permissions.require_role(current_user, "admin", "staff")
    try:
        result = filing.bulk(current_user, "move", _ids(), request.form.get("folder_id"))
    except GedError as exc:
        flash(french.error(exc), "error")
        return redirect(url_for("web.folders.folder", folder_id=folder_id))
    if not _ids():
        flash(french.ERRORS["no_document"], "error")
    _report(result, "{n} document{s} déplacé{s}.")
    return redirect(url_for("web.folders.folder", folder_id=folder_id))


@bp.post("/dossiers/<folder_id>/selection/corbeille")
@login_required
def selection_trash(folder_id):
    permissions.folder_for(current_user, folder_id)
    permissions.require_role(current_user, "admin", "staff")
    if not _ids():
        flash(french.ERRORS["no_document"], "error")
    result = filing.bulk(current_user, "trash", _ids())
    _report(result, "{n} document{s} mis à la corbeille.")
    return redirect(url_for("web.folders.folder", folder_id=folder_id))


@bp.post("/entreprises/<company_id>/corbeille/restaurer")
@login_required
def trash_restore_selection(company_id):
    """« Restaurer la sélection » on the trash page: ``POST /documents/bulk``'s restore,
    each document as if restored alone; only this company's documents count."""
    company = permissions.company_for(current_user, company_id)
    permissions.require_role(current_user, "admin", "staff")
    ids = _ids()
    if not ids:
        flash(french.ERRORS["no_document"], "error")
        return redirect(url_for("web.companies.company_trash", company_id=company.id))
    mine = {d.id for d in Document.select(Document.id).where(
        (Document.company == company.id) & Document.id.in_(ids))}
    result = filing.bulk(current_user, "restore", [i for i in ids if i in mine])
    result["refused"] += [{"id": i, "error": {"code": "not_found",
                                              "message": "Document not found."}}
                          for i in ids if i not in mine]
    _report(result, "{n} document{s} restauré{s}.")
    return redirect(url_for("web.companies.company_trash", company_id=company.id))


# --- one document ------------------------------------------------------------------------------


@bp.post("/documents/<document_id>/deplacer")
@login_required
def document_move(document_id):
    """The form of the document page, and the drag and drop onto the tree (JSON)."""
    wants_json = request.accept_mimetypes.best == "application/json"
    doc = permissions.document_for(current_user, document_id)
    permissions.require_role(current_user, "admin", "staff")
    origin = doc.folder_id
    try:
        target = permissions.folder_for(current_user, request.form.get("folder_id", ""))
        doc = documents.move(current_user, doc, target)
    except GedError as exc:
        if wants_json:
            return jsonify({"error": {"code": exc.code, "message": french.error(exc)}}), exc.status
        flash(french.error(exc), "error")
        return redirect(url_for("web.documents.document_page", document_id=document_id))
    sends = filing.switched_on_by_folder(target.company_id).get(target.id, [])
    message = f"« {doc.name} » déplacé dans « {target.name} »" + (
        f" ; il est envoyé à {', '.join(sends)}." if sends else ".")
    if wants_json:
        return jsonify({"id": doc.id, "folder_id": target.id, "message": message})
    flash(message, "success")
    back = request.form.get("retour") == "dossier"
    return redirect(url_for("web.folders.folder", folder_id=origin) if back
                    else url_for("web.documents.document_page", document_id=doc.id))


@bp.post("/documents/<document_id>/renommer")
@login_required
def document_rename(document_id):
    doc = permissions.document_for(current_user, document_id)
    permissions.require_role(current_user, "admin", "staff")
    try:
        doc = documents.rename(current_user, doc, request.form.get("name", ""))
    except GedError as exc:
        flash(french.error(exc), "error")
    else:
        flash(f"Document renommé « {doc.name} ».", "success")
    return redirect(url_for("web.documents.document_page", document_id=document_id))


# --- folders ----------------------------------------------------------------------------------


@bp.post("/dossiers/<folder_id>/renommer")
@login_required
def folder_rename(folder_id):
    folder = permissions.folder_for(current_user, folder_id)
    permissions.may_change_tree(current_user)
    try:
        folder = folders.rename(current_user, folder, request.form.get("name", ""))
    except GedError as exc:
        flash(french.error(exc), "error")
    else:
        flash(f"Dossier renommé « {folder.name} ».", "success")
    return redirect(url_for("web.folders.folder", folder_id=folder_id))


@bp.post("/dossiers/<folder_id>/deplacer")
@login_required
def folder_move(folder_id):
    folder = permissions.folder_for(current_user, folder_id)
    permissions.may_change_tree(current_user)
    try:
        target = permissions.folder_for(current_user, request.form.get("parent_id", ""))
        folders.move(current_user, folder, target)
    except GedError as exc:
        flash(french.error(exc), "error")
    else:
        flash(f"Dossier « {folder.name} » déplacé dans « {target.name} ».", "success")
    return redirect(url_for("web.folders.folder", folder_id=folder_id))


@bp.post("/dossiers/<folder_id>/corbeille")
@login_required
def folder_trash(folder_id):
    folder = permissions.folder_for(current_user, folder_id)
    permissions.may_change_tree(current_user)
    try:
        folders.trash(current_user, folder)
    except GedError as exc:
        flash(french.error(exc), "error")
        return redirect(url_for("web.folders.folder", folder_id=folder_id))
    flash(f"Dossier « {folder.name} » mis à la corbeille avec son contenu.", "success")
    return redirect(url_for("web.folders.folder", folder_id=folder.parent_id))


@bp.post("/dossiers/<folder_id>/restaurer")
@login_required
def folder_restore(folder_id):
    folder = filing.trashed_folder_for(current_user, folder_id)  # 404 for anyone else
    try:
        folders.restore(current_user, folder)
    except GedError as exc:
        flash(french.error(exc), "error")
        return redirect(url_for("web.companies.company_trash", company_id=folder.company_id))
    flash(f"Dossier « {folder.name} » restauré avec son contenu.", "success")
    return redirect(url_for("web.folders.folder", folder_id=folder.id))
