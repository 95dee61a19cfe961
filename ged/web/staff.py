"""Pages for the firm's staff (and the document page every user sees).

Folder pages get, for firm users only, one switch per connection of the company
and a form to send a selection of documents by hand; the document page shows its
deliveries to firm users; the delivery dashboard, a company's audit trail and its
trash complete the set. Nothing here renders integration data for a client user:
every firm-only piece is built only when ``permissions.is_firm_user`` says so.
"""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import deliveries, documents, folders, permissions, previews, switches
from ..errors import GedError, Invalid
from ..models import AuditEvent, Blob, Company, Connection, Delivery, Document, Folder
from . import ERROR_FR, bp, french, return_to

ERROR_FR.update({
    "invalid_state": "État d'interrupteur inconnu.",
    "invalid_connection": "Cette connexion n'appartient pas à l'entreprise du document.",
    "document_trashed": "Un document à la corbeille ne peut pas être envoyé.",
    "no_document": "Sélectionnez au moins un document.",
    "connection_paused": "Cette connexion est suspendue ; reprenez-la avant d'envoyer.",
    "already_replaced": "Ce document a déjà été remplacé ; remplacez plutôt sa version la "
                        "plus récente.",
    "one_file": "Choisissez un seul fichier pour remplacer ce document.",
})

DELIVERY_LABELS = {
    "queued": "En attente",
    "sending": "Envoi en cours",
    "sent": "Envoyé",
    "accepted": "Accepté",
    "validated": "Validé par l'outil",
    "rejected": "Rejeté par l'outil",
    "failed": "Échec",
}
# The dashboard shows what needs a person first.
DASHBOARD_ORDER = ["failed", "rejected", "sending", "queued", "accepted", "sent", "validated"]
# What a document's status says, to the client and the firm alike (never a tool's name).
DOCUMENT_LABELS = {
    "deposited": "Déposé",
    "sending": "En cours de traitement",
    "validated": "Validé",
    "rejected": "À remplacer",
    "replaced": "Remplacé",
}
TEXT_LABELS = {"pending": "Lecture en cours", "done": "Texte lu", "failed": "Illisible",
               "unsupported": "Sans texte", "partial": "Texte lu en partie (des pages illisibles)",
               "encrypted": "Protégé par mot de passe : texte illisible"}
CHANNEL_LABELS = {"web": "Site web", "api": "API", "email": "E-mail", "import": "Import"}


@bp.app_template_filter("delivery_label")
def _delivery_label(status: str) -> str:
    return DELIVERY_LABELS.get(status, status)


@bp.app_template_filter("document_status")
def _document_status(status: str) -> str:
    return DOCUMENT_LABELS.get(status, status)


@bp.app_template_filter("who")
def _who(label: str | None) -> str:
    """A depositor's name without the e-mail address the audit label carries."""
    if not label:
        return "—"
    name = label.split(" <", 1)[0].strip()
    return name or label


@bp.app_context_processor
def _labels():
    return {"TEXT_LABELS": TEXT_LABELS, "CHANNEL_LABELS": CHANNEL_LABELS}


def _firm_user() -> None:
    permissions.require_role(current_user, "admin", "staff")


# --- the folder page's firm-only toolbar ------------------------------------------------


@bp.before_app_request
def _register_folder_extras():
    if request.endpoint == "web.folder":
        g.setdefault("folder_page_extras", []).append(folder_switches)


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def switch_messages(folder: Folder, connection: Connection, preview: dict) -> dict:
    """The confirmation sentence for each target state (shown by the dialog, or by the
    confirmation page when scripts are off)."""
    sub = preview["subfolders_affected"]
    docs = preview["existing_documents_not_sent"]
    where = f"« {folder.name} »" + (f" et {_plural(sub, 'sous-dossier', 'sous-dossiers')}"
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


def folder_switches(user, folder: Folder, chain: list[Folder]) -> dict:
    """Extra context of the folder page: firm users only."""
    if not permissions.is_firm_user(user):
        return {}
    rows = switch_rows(folder, chain)
    return {"switch_rows": rows, "send_connections": [r["connection"] for r in rows]}


@bp.post("/dossiers/<folder_id>/interrupteurs/<connection_id>")
@login_required
def set_switch(folder_id, connection_id):
    """Change a folder's switch for a connection. Without ``confirm`` the confirmation
    page is shown first (the dialog does this in the page when scripts run)."""
    _firm_user()
    folder = permissions.folder_for(current_user, folder_id)
    conn = permissions.connection_for(current_user, connection_id)
    if conn.company_id != folder.company_id:
        return redirect(url_for("web.folder", folder_id=folder.id))
    state = request.form.get("state", "")
    if state not in switches.STATES:
        flash(ERROR_FR["invalid_state"], "error")
        return redirect(url_for("web.folder", folder_id=folder.id))
    if not request.form.get("confirm"):
        chain = folders.ancestors(folder)
        row = next(r for r in switch_rows(folder, chain) if r["connection"].id == conn.id)
        return render_template("switch_confirm.html", folder=folder, row=row, state=state,
                               message=row["messages"][state])
    try:
        result = switches.set_switch(current_user, folder, conn, state)
    except GedError as exc:
        flash(french(exc), "error")
    else:
        label = {"on": "activé", "off": "désactivé", "inherit": "hérité du dossier parent"}[state]
        message = f"« {conn.name} » : {label} sur « {folder.name} »"
        existing = result["existing_documents_not_sent"]
        if state == "on" and existing:
            message += (f" ; {_plural(existing, 'document déjà présent', 'documents déjà présents')}"
                        f" {'non envoyé' if existing == 1 else 'non envoyés'}")
        flash(message + ".", "success")
    return redirect(url_for("web.folder", folder_id=folder.id))


@bp.post("/dossiers/<folder_id>/envoi-manuel")
@login_required
def send_selection(folder_id):
    """Send a selection of the folder's documents (or all of them, subfolders included
    when asked) to one connection, by hand: the same path as the API's. Documents the
    tool already has are skipped unless « Renvoyer aussi » is ticked."""
    from .. import forwarding

    _firm_user()
    folder = permissions.folder_for(current_user, folder_id)
    back = redirect(url_for("web.folder", folder_id=folder.id))
    try:
        conn = permissions.connection_for(current_user, request.form.get("connection_id", ""))
        if conn.company_id != folder.company_id:
            raise Invalid("Unknown connection.", "invalid_connection")
        scope = request.form.get("scope", "selection")
        if scope in ("folder", "subtree"):
            docs = forwarding.folder_documents(current_user, folder, below=scope == "subtree")
        else:
            ids = set(request.form.getlist("document_id")[:1000])
            docs = [d for d in forwarding.folder_documents(current_user, folder, below=False)
                    if d.id in ids]
        sent = forwarding.send_manual(current_user, docs, conn,
                                      resend=bool(request.form.get("resend")))
    except GedError as exc:
        flash(french(exc), "error")
        return back
    count, skipped = len(sent.deliveries), len(sent.skipped)
    if count:
        message = (f"{_plural(count, 'document envoyé', 'documents envoyés')} à « {conn.name} »."
                   " Suivez les envois sur le tableau des envois.")
    else:
        message = f"Aucun document envoyé à « {conn.name} »."
    if skipped:
        message += (f" {_plural(skipped, 'document ignoré', 'documents ignorés')} : "
                    f"{'déjà envoyé' if skipped == 1 else 'déjà envoyés'} à cet outil ou "
                    f"{'remplacé' if skipped == 1 else 'remplacés'} (cochez « Renvoyer aussi "
                    "les documents déjà envoyés » pour les renvoyer).")
    flash(message, "success" if count else "info")
    return back


# --- the document page --------------------------------------------------------------------


@bp.route("/documents/<document_id>")
@login_required
def document_page(document_id):
    """A document's details, preview and download; for firm users also its duplicate badge
    and its deliveries with "Envoyer" / "Renvoyer"."""
    is_firm = permissions.is_firm_user(current_user)
    doc = permissions.document_for(current_user, document_id, include_trashed=True)
    folder = doc.folder
    chain = folders.ancestors(folder)
    blob = Blob.get_by_id(doc.blob_id)
    # What the extraction found shows once this document's own text status is known
    # (a fresh deposit never shows what another company's copy of the bytes gave).
    known = doc.text_status != "pending"
    pages = blob.pages if known else None
    context = {
        "doc": doc, "folder": folder, "chain": chain, "company": doc.company,
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
    if is_firm:
        conns = switches.company_connections(doc.company_id)
        rows = list(Delivery.select().where(Delivery.document == doc.id)
                    .order_by(Delivery.created_at.desc()))
        conn_names = {c.id: c.name for c in Connection.select(Connection.id, Connection.name)
                      .where(Connection.id.in_({d.connection_id for d in rows} | {c.id for c in conns}))}
        delivered_to = {d.connection_id for d in rows}
        latest: dict = {}
        for d in rows:  # newest first: the first seen per connection is its latest
            if d.status != "failed":
                latest.setdefault(d.connection_id, d)
        context.update({
            "rejections": [d for d in latest.values() if d.status == "rejected"],
            "deliveries": rows, "conn_names": conn_names, "connections": conns,
            "delivered_to": delivered_to, "text_error": blob.text_error,
            "original": Document.get_or_none(Document.id == doc.duplicate_of)
            if doc.duplicate_of else None,
        })
    return render_template("document.html", **context)


def _may_trash(doc: Document) -> bool:
    if doc.trashed_at is not None:
        return False
    try:
        permissions.may_trash(current_user, doc)
    except GedError:
        return False
    return True


@bp.post("/documents/<document_id>/envois")
@login_required
def document_send(document_id):
    """"Envoyer aux intégrations" / "Renvoyer": a new manual delivery to one connection."""
    _firm_user()
    doc = permissions.document_for(current_user, document_id)
    back = redirect(return_to(url_for("web.document_page", document_id=doc.id)))
    try:
        conn = permissions.connection_for(current_user, request.form.get("connection_id", ""))
        deliveries.create_manual(current_user, doc, conn)
    except GedError as exc:
        flash(french(exc), "error")
        return back
    flash(f"« {doc.name} » part vers « {conn.name} ».", "success")
    return back


@bp.post("/documents/<document_id>/remplacer")
@login_required
def document_replace(document_id):
    """« Remplacer »: a new file for the document, deposited into its folder (a file
    form, no script needed); the page of the new document follows."""
    from flask import current_app

    from ..storage import stage

    doc = permissions.document_for(current_user, document_id)
    back = redirect(return_to(url_for("web.document_page", document_id=doc.id)))
    files = [f for f in request.files.getlist("file") if f.filename]
    if len(files) != 1:
        flash(ERROR_FR["one_file"], "error")
        return back
    cfg = current_app.config["GED"]
    try:
        upload = documents.Upload(files[0].filename, stage(files[0].stream, cfg.data_dir,
                                                           cfg.max_upload_bytes))
        new = documents.replace(current_user, doc, upload, "web")
    except GedError as exc:
        flash(french(exc), "error")
        return back
    flash(f"« {doc.name} » est remplacé par « {new.name} ».", "success")
    return redirect(return_to(url_for("web.document_page", document_id=new.id)))


@bp.post("/documents/<document_id>/corbeille")
@login_required
def document_trash(document_id):
    doc = permissions.document_for(current_user, document_id)
    try:
        documents.trash(current_user, doc)
    except GedError as exc:
        flash(french(exc), "error")
        return redirect(url_for("web.document_page", document_id=doc.id))
    flash(f"« {doc.name} » est dans la corbeille.", "success")
    return redirect(url_for("web.folder", folder_id=doc.folder_id))


@bp.post("/documents/<document_id>/restaurer")
@login_required
def document_restore(document_id):
    _firm_user()
    doc = permissions.document_for(current_user, document_id, include_trashed=True)
    documents.restore(current_user, doc)
    flash(f"« {doc.name} » est restauré dans son dossier.", "success")
    return redirect(return_to(url_for("web.company_trash", company_id=doc.company_id)))


# --- the delivery dashboard ---------------------------------------------------------------

PAGE = 100


@bp.route("/envois")
@login_required
def dashboard():
    """Deliveries of the companies the user sees: failures first, with one-click resend."""
    _firm_user()
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
    import peewee as pw

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
    _firm_user()
    delivery = permissions.delivery_for(current_user, delivery_id)
    back = redirect(return_to(url_for("web.dashboard")))
    try:
        doc = permissions.document_for(current_user, delivery.document_id)
        conn = permissions.connection_for(current_user, delivery.connection_id)
        deliveries.create_manual(current_user, doc, conn)
    except GedError as exc:
        flash(french(exc), "error")
        return back
    flash(f"« {doc.name} » renvoyé à « {conn.name} ».", "success")
    return back


# --- a company's audit trail and trash -------------------------------------------------------

AUDIT_LABELS = {
    "company.created": "Entreprise créée",
    "company.updated": "Entreprise modifiée",
    "company.staff_assigned": "Collaborateurs affectés",
    "company.drop_address_regenerated": "Adresse de dépôt renouvelée",
    "email.received": "E-mail reçu",
    "email.refused": "E-mail refusé",
    "user.created": "Utilisateur créé",
    "user.invited": "Invitation envoyée",
    "user.invitation_accepted": "Invitation acceptée",
    "user.enabled": "Utilisateur réactivé",
    "user.disabled": "Utilisateur désactivé",
    "user.password_set": "Mot de passe défini",
    "folder.created": "Dossier créé",
    "folder.renamed": "Dossier renommé",
    "folder.moved": "Dossier déplacé",
    "folder.trashed": "Dossier mis à la corbeille",
    "folder.restored": "Dossier restauré",
    "folder.firm_only": "Visibilité du dossier modifiée",
    "folder.retention_set": "Durée de conservation modifiée",
    "document.deposited": "Document déposé",
    "document.moved": "Document déplacé",
    "document.renamed": "Document renommé",
    "document.trashed": "Document mis à la corbeille",
    "document.restored": "Document restauré",
    "document.hold_set": "Conservation légale posée",
    "document.hold_released": "Conservation légale levée",
    "document.purged": "Document supprimé définitivement",
    "document.replaced": "Document remplacé",
    "switch.set": "Interrupteur modifié",
    "delivery.queued": "Envoi programmé",
    "delivery.sent": "Envoyé",
    "delivery.accepted": "Accepté par l'outil",
    "delivery.validated": "Validé par l'outil",
    "delivery.rejected": "Rejeté par l'outil",
    "delivery.failed": "Échec d'envoi",
    "connection.created": "Connexion ajoutée",
    "connection.updated": "Connexion modifiée",
    "connection.deleted": "Connexion supprimée",
    "connection.secret_rotated": "Secret renouvelé",
    "connection.tested": "Connexion testée",
    "connection.paused": "Connexion suspendue",
    "connection.resumed": "Connexion reprise",
}


@bp.app_template_filter("audit_label")
def _audit_label(action: str) -> str:
    return AUDIT_LABELS.get(action, action)


@bp.route("/entreprises/<company_id>/journal")
@login_required
def company_audit(company_id):
    """The company's audit trail, newest first, 100 events a page."""
    _firm_user()
    company = permissions.company_for(current_user, company_id)
    query = AuditEvent.select().where((AuditEvent.firm == current_user.firm_id)
                                      & (AuditEvent.company_id == company.id))
    from .. import journal

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
    _firm_user()
    company = permissions.company_for(current_user, company_id)
    rows = list(Document.select().where((Document.company == company.id)
                                        & Document.trashed_at.is_null(False))
                .order_by(Document.trashed_at.desc()).limit(500))
    paths = folders.display_paths(list({d.folder_id: d.folder for d in rows}.values()))
    return render_template("trash.html", company=company, documents=rows, paths=paths,
                           root=folders.root_of(company))
