"""The comment thread on the document page: the firm and the client write to each
other; firm users may add internal notes, which a client's page never contains."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_login import current_user, login_required

from .. import comments, permissions
from ..errors import GedError
from . import ERROR_FR, bp, french

ERROR_FR.update({
    "body_required": "Écrivez un message avant de l'envoyer.",
    "body_too_long": "Ce message est trop long (10 000 caractères au plus).",
})


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
        flash(french(exc), "error")
    return redirect(url_for("web.document_page", document_id=doc.id) + "#commentaires")
