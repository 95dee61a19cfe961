"""Pages for keeping and handing back the archive, and for the e-mail drop.

The folder page gets the drop address that leads to it (with a copy button, for
clients and firm users alike) and, for firm users, "Exporter le dossier". Each
company has an "Archivage" page for the firm: its drop addresses (regenerate, one
per folder), the export of the whole company, and the legal hold (admins). The
trash page lives with the other company pages (ged/web/companies.py).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import archive, downloads, drops, export, folders, french, permissions
from ..errors import GedError, NotFound
from ..models import DropAddress, Folder

bp = Blueprint("archive", __name__)


def folder_context(user, folder: Folder, chain: list[Folder]) -> dict:
    """What the folder page shows of the archive: the drop address that leads to this
    folder (its own, or the company's for the root folder) and, for firm users, where
    "Exporter le dossier" points."""
    own = drops.active(folder.company, folder if folder.parent_id else None)
    context = {"archive_drop": drops.address_of(own) if own else None,
               "archive_company_drop": None, "archive_export_url": None}
    if own is None:
        company_drop = drops.active(folder.company)
        context["archive_company_drop"] = drops.address_of(company_drop) if company_drop else None
        context["archive_root_name"] = chain[0].name if chain else folders.ROOT_NAME
    if permissions.is_firm_user(user):
        context["archive_export_url"] = url_for(
            "web.archive.company_export", company_id=folder.company_id,
            folder_id=folder.id if folder.parent_id else None)
    return context


def _to_archive(company_id: str):
    return redirect(url_for("web.archive.company_archive", company_id=company_id))


@bp.route("/entreprises/<company_id>/export")
@login_required
def company_export(company_id):
    """Download the company (or ``?folder_id=`` and below) as a ZIP, streamed."""
    permissions.require_firm_user(current_user)
    return downloads.zip_response(export.prepare(
        current_user, company_id, request.args.get("folder_id"),
        for_client=request.args.get("pour") == "client"))


@bp.route("/entreprises/<company_id>/archivage")
@login_required
def company_archive(company_id):
    """Drop addresses, export and legal hold of one company (firm users)."""
    permissions.require_firm_user(current_user)
    company = permissions.company_for(current_user, company_id)
    shown = drops.visible(current_user, company)
    root = folders.root_of(company)
    folder_rows = [f for f in folders.subtree(root).order_by(Folder.path)
                   if f.trashed_at is None and f.parent_id is not None]
    paths = folders.display_paths(folder_rows)
    with_address = {d.folder_id for d in shown if d.folder_id}
    return render_template(
        "archive/company.html", company=company, root=root,
        drops=[{"drop": d, "address": drops.address_of(d),
                "path": paths.get(d.folder_id, "/") if d.folder_id else None} for d in shown],
        folder_choices=[(f.id, paths[f.id]) for f in folder_rows if f.id not in with_address],
        trashed=archive.trash_listing(current_user, company).count(),
        is_admin=current_user.role == "admin")


@bp.post("/entreprises/<company_id>/adresse-de-depot")
@login_required
def company_drop_regenerate(company_id):
    """A new address for the company, or for one folder (``folder_id``)."""
    permissions.require_firm_user(current_user)
    company = permissions.company_for(current_user, company_id)
    folder = None
    if request.form.get("folder_id"):
        folder = permissions.folder_for(current_user, request.form["folder_id"])
        if folder.company_id != company.id or folder.parent_id is None:
            raise NotFound("Folder not found.")
    first = drops.active(company, folder) is None  # nothing to replace yet
    drop = drops.rotate(current_user, company, folder)
    flash(f"Nouvelle adresse de dépôt : {drops.address_of(drop)}."
          + ("" if first else " L'ancienne ne fonctionne plus."), "success")
    return _to_archive(company.id)


@bp.post("/entreprises/<company_id>/adresse-de-depot/<drop_id>/supprimer")
@login_required
def company_drop_revoke(company_id, drop_id):
    """Stop a folder's own address (the company's address can only be replaced)."""
    permissions.require_firm_user(current_user)
    company = permissions.company_for(current_user, company_id)
    drop = DropAddress.get_or_none((DropAddress.id == drop_id) & (DropAddress.company == company.id)
                                   & DropAddress.revoked_at.is_null()
                                   & DropAddress.folder.is_null(False))
    if drop is None:
        raise NotFound("Drop address not found.")
    drops.revoke(current_user, drop)
    flash("L'adresse de dépôt du dossier est supprimée.", "success")
    return _to_archive(company.id)


@bp.post("/entreprises/<company_id>/conservation-legale")
@login_required
def company_hold(company_id):
    """Set or release the legal hold on the whole company (admins)."""
    company = permissions.company_for(current_user, company_id)
    hold = request.form.get("legal_hold") == "1"
    try:
        archive.set_company_hold(current_user, company, hold, request.form.get("reason"))
    except GedError as exc:
        if exc.status == 403:
            raise
        flash(french.error(exc), "error")
    else:
        flash("Conservation légale activée : aucun document de l'entreprise ne peut être "
              "supprimé définitivement." if hold else "Conservation légale levée.", "success")
    return _to_archive(company.id)
