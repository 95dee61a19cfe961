"""The comment thread on the document page: the firm and the client write to each
other; firm users may add internal notes, which a client's page never contains."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user, login_required

from .. import comments, french, permissions
from ..errors import GedError

bp = Blueprint("comments", __name__)


@bp.app_template_global()
def comment_thread(doc) -> list:
    """The document's thread as the signed-in user may read it (a client: no internal notes)."""
    if not current_user.is_authenticated:
        return []
    return list(comments.visible(current_user, doc))


@bp.post("/documents/<document_id>/commentaires")
@login_required
def comment_add(document_id):
    doc = permissions.document_for(current_user, document_id)
    internal = permissions.is_firm_user(current_user) and request.form.get("internal") == "1"
    try:
        comments.add(current_user, doc, request.form.get("body", ""), internal)
        flash("Note interne ajoutée." if internal else "Message envoyé.", "success")
    except GedError as exc:
        flash(french.error(exc), "error")
    return redirect(url_for("web.documents.document_page", document_id=doc.id) + "#commentaires")
