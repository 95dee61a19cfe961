"""The folder page (its tree, subfolders and documents; for the firm its switches and
the send form; the drop address and export that lead to it), the web deposit, and
creating a subfolder."""

from __future__ import annotations

from flask import (Blueprint, abort, current_app, flash, jsonify, redirect, render_template,
                   request, url_for)
from flask_login import current_user, login_required

from .. import documents, folders, french, permissions
from ..errors import GedError
from . import archive, filing, switches

bp = Blueprint("folders", __name__)


@bp.route("/dossiers/<folder_id>")
@login_required
def folder(folder_id):
    current = permissions.folder_for(current_user, folder_id)
    company = current.company
    chain = folders.ancestors(current)
    return render_template(
        "folder.html",
        folder=current,
        company=company,
        chain=chain,
        tree=folders.tree(current_user, company),
        children=folders.children_of(current_user, current),
        documents=documents.listing(current_user, current),
        max_upload_mb=current_app.config["GED"].max_upload_bytes // (1024 * 1024),
        **switches.folder_context(current_user, current, chain),
        **archive.folder_context(current_user, current, chain),
        **filing.folder_context(current_user, current, chain),
    )


@bp.post("/dossiers/<folder_id>/depot")
@login_required
def upload(folder_id):
    """Web deposit: one or more files from the form or the drag-and-drop uploader.
    XHR callers get JSON per request; a plain form post is redirected back."""
    current = permissions.folder_for(current_user, folder_id)
    return answer_deposit(
        lambda uploads: documents.deposit(current_user, current, uploads, "web"),
        url_for("web.folders.folder", folder_id=current.id), "{n} document(s) déposé(s).")


def answer_deposit(deposit, back: str, done: str):
    """Every web deposit (a folder's uploader, a request's drop zone): stage the form's
    files, ``deposit(uploads)``, then answer an XHR in JSON (documents and warnings) or
    a form post with flashed messages and a redirect to ``back``; ``done`` is the
    success message, ``{n}`` the number of documents."""
    wants_json = request.accept_mimetypes.best == "application/json"
    try:
        uploads = documents.stage_uploads((f.filename, f.stream)
                                          for f in request.files.getlist("file") if f.filename)
        docs = deposit(uploads)
    except GedError as exc:
        if wants_json:
            return jsonify({"error": {"code": exc.code, "message": french.error(exc)}}), exc.status
        flash(french.error(exc), "error")
        return redirect(back)
    warned = [french.warning(w) for w in documents.warnings_of(docs)]
    if wants_json:
        return jsonify({"items": [{"id": d.id, "name": d.name} for d in docs],
                        "warnings": warned}), 201
    flash(done.format(n=len(docs)), "success")
    for message in warned:
        flash(message, "warning")
    return redirect(back)


@bp.post("/dossiers/<folder_id>/sous-dossier")
@login_required
def create_subfolder(folder_id):
    current = permissions.folder_for(current_user, folder_id)
    is_firm = permissions.is_firm_user(current_user)
    if not is_firm and not current.clients_can_create:
        abort(403)
    try:
        created = folders.create_folder(current_user, current, request.form.get("name", ""),
                                        firm_only=is_firm and bool(request.form.get("firm_only")))
    except GedError as exc:
        flash(french.error(exc), "error")
        return redirect(url_for("web.folders.folder", folder_id=current.id))
    return redirect(url_for("web.folders.folder", folder_id=created.id))
