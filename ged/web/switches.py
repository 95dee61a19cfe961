"""A folder's switches, on its page (firm users only): one per connection of the
company, what applies and where it comes from, and the confirmation that says what
a change affects (a dialog when scripts run, a page of its own otherwise). Nothing
here is built for a client user."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import folders, french, permissions, switches
from ..errors import GedError
from ..models import Connection, Folder

bp = Blueprint("switches", __name__)


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def switch_messages(folder: Folder, connection: Connection, preview: dict) -> dict:
    """The confirmation sentence for each target state (shown by the dialog, or by the
    confirmation page when scripts are off)."""
    sub = preview["subfolders_affected"]
    docs = preview["existing_documents_not_sent"]
    where = f"« {folder.name} »" + (f" et {plural(sub, 'sous-dossier', 'sous-dossiers')}"
                                   if sub else "")
    on = (f"Les documents déposés à partir de maintenant dans {where} seront envoyés à "
          f"« {connection.name} ». ")
    if docs == 1:
        on += ("Le document déjà présent ne sera pas envoyé (vous pourrez l'envoyer à la "
               "main).")
    elif docs:
        on += (f"Les {docs} documents déjà présents ne seront pas envoyés (vous pourrez les "
               "envoyer à la main).")
    else:
        on += "Les documents déjà présents ne seront pas envoyés (il n'y en a aucun pour l'instant)."
    return {
        "on": on,
        "off": f"Plus aucun document déposé dans {where} ne sera envoyé à « {connection.name} ».",
        "inherit": (f"{where[0].upper() + where[1:]} suivront de nouveau l'état du dossier "
                    "parent pour « " + connection.name + " »."
                    if sub else f"« {folder.name} » suivra de nouveau l'état du dossier parent "
                    f"pour « {connection.name} »."),
    }


def switch_rows(folder: Folder, chain: list[Folder]) -> list[dict]:
    """One row per connection of the folder's company: its explicit state here, what
    applies and where it comes from, and what a change would affect."""
    conns = switches.company_connections(folder.company_id)
    states = switches.effective_switches(folder, conns, [f.id for f in chain])
    names = {f.id: f.name for f in chain}
    rows = []
    for conn in conns:
        eff = states[conn.id]
        preview = switches.preview(folder, conn)
        rows.append({
            "connection": conn,
            "state": eff.state,
            "effective": eff.effective,
            "source_name": names.get(eff.source_folder_id) if eff.source_folder_id else None,
            "inherited": eff.state == "inherit" and eff.source_folder_id is not None,
            "preview": preview,
            "messages": switch_messages(folder, conn, preview),
            "never_succeeded": conn.last_success_at is None,
        })
    return rows


def folder_context(user, folder: Folder, chain: list[Folder]) -> dict:
    """What the folder page shows of the switches and the send form: firm users only."""
    if not permissions.is_firm_user(user):
        return {}
    rows = switch_rows(folder, chain)
    return {"switch_rows": rows, "send_connections": [r["connection"] for r in rows]}


@bp.post("/dossiers/<folder_id>/interrupteurs/<connection_id>")
@login_required
def set_switch(folder_id, connection_id):
    """Change a folder's switch for a connection. Without ``confirm`` the confirmation
    page is shown first (the dialog does this in the page when scripts run)."""
    permissions.require_firm_user(current_user)
    folder = permissions.folder_for(current_user, folder_id)
    conn = permissions.connection_for(current_user, connection_id)
    back = redirect(url_for("web.folders.folder", folder_id=folder.id))
    if conn.company_id != folder.company_id:
        return back
    state = request.form.get("state", "")
    if state not in switches.STATES:
        flash(french.ERRORS["invalid_state"], "error")
        return back
    if not request.form.get("confirm"):
        chain = folders.ancestors(folder)
        row = next(r for r in switch_rows(folder, chain) if r["connection"].id == conn.id)
        return render_template("switch_confirm.html", folder=folder, row=row, state=state,
                               message=row["messages"][state])
    try:
        result = switches.set_switch(current_user, folder, conn, state)
    except GedError as exc:
        flash(french.error(exc), "error")
    else:
        label = {"on": "activé", "off": "désactivé", "inherit": "hérité du dossier parent"}[state]
        message = f"« {conn.name} » : {label} sur « {folder.name} »"
        existing = result["existing_documents_not_sent"]
        if state == "on" and existing:
            message += (f" ; {plural(existing, 'document déjà présent', 'documents déjà présents')}"
                        f" {'non envoyé' if existing == 1 else 'non envoyés'}")
        flash(message + ".", "success")
    return back
