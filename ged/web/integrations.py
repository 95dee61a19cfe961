"""Integrations and connections: the catalog of tools and the firm's installed ones
(admins), and each company's connections (admins and its staff): add one (its secret
is shown once), test, pause, rotate the secret, delete."""

from __future__ import annotations

from flask import (Blueprint, current_app, flash, jsonify, redirect, render_template, request,
                   url_for)
from flask_login import current_user, login_required

from .. import deliveries, folders, french, integrations, permissions, switches
from ..errors import GedError, Invalid
from ..models import Connection, Integration
from .links import return_to

bp = Blueprint("integrations", __name__)

SEND_CHOICES = {"original": {}, "both": {"send_invoice_xml": True},
                "xml": {"send_invoice_xml": True, "send_original": False}}


def _installed() -> list[Integration]:
    return list(Integration.select().where((Integration.firm == current_user.firm_id)
                                           & Integration.deleted_at.is_null())
                .order_by(Integration.name))


def _to_connections(company_id: str):
    return redirect(url_for("web.integrations.company_connections", company_id=company_id))


@bp.route("/admin/integrations", methods=["GET", "POST"])
@login_required
def admin_integrations():
    """The catalog of tools and the firm's installed integrations."""
    permissions.require_role(current_user, "admin")
    status = 200
    if request.method == "POST":
        try:
            integration = integrations.install(
                current_user, current_user.firm, preset=request.form.get("preset") or None,
                kind=request.form.get("kind") or None, name=request.form.get("name", ""))
        except GedError as exc:
            flash(french.error(exc), "error")
            status = exc.status
        else:
            flash(f"« {integration.name} » est installé. Activez-le maintenant pour les "
                  "entreprises concernées.", "success")
            return redirect(url_for("web.integrations.admin_integrations"))
    installed = _installed()
    counts: dict = {}
    for c in Connection.select(Connection.integration).where(
            Connection.integration.in_([i.id for i in installed]) & Connection.deleted_at.is_null()):
        counts[c.integration_id] = counts.get(c.integration_id, 0) + 1
    return render_template("admin/integrations.html", catalog=integrations.catalog(),
                           installed=installed, counts=counts), status


def _options_from_form(kind: str) -> dict | None:
    """Connector options from the form: what is sent (the file, the invoice XML, or
    both); e-mail may attach the metadata JSON; http has its format, file field, inline
    size (in MB) and headers given one per line as ``Name: value``. A field left empty
    keeps the tool's default (a preset's, else ged's)."""
    form = request.form
    if (form.get("send") or "original") not in SEND_CHOICES:
        raise Invalid("Choose what the connection sends.", "invalid_options")
    options = dict(SEND_CHOICES[form.get("send") or "original"])
    if kind == "email":
        if form.get("attach_metadata"):
            options["attach_metadata"] = True
        return options or None
    headers = {}
    for number, line in enumerate(form.get("headers", "").splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise Invalid(f"Line {number} of the headers must read Name: value.", "invalid_headers")
        headers[name.strip()] = value.strip()
    if headers:
        options["headers"] = headers
    if form.get("format"):
        options["format"] = form["format"]
    if form.get("file_field", "").strip():
        options["file_field"] = form["file_field"].strip()
    if form.get("inline_max_mb", "").strip():
        try:
            megabytes = float(form["inline_max_mb"].replace(",", "."))
        except ValueError:
            raise Invalid("The inline size is a number of MB.", "invalid_options") from None
        options["inline_max_bytes"] = int(round(megabytes * 1024 * 1024))
    return options or None


@bp.route("/entreprises/<company_id>/connexions", methods=["GET", "POST"])
@login_required
def company_connections(company_id):
    """A company's connections, and the form that adds one."""
    permissions.require_firm_user(current_user)
    company = permissions.company_for(current_user, company_id)
    available = _installed()
    status = 200
    form = {}
    if request.method == "POST":
        form = request.form
        integration = next((i for i in available if i.id == form.get("integration_id")), None)
        try:
            if integration is None:
                raise Invalid("Choose an installed integration.", "invalid_integration")
            conn, secret = integrations.connect(
                current_user, company, integration, name=form.get("name") or None,
                address=form.get("address") or None, url=form.get("url") or None,
                options=_options_from_form(integration.kind))
        except GedError as exc:
            flash(french.error(exc), "error")
            status = exc.status
        else:
            if secret:
                return _show_secret(conn, secret, created=True)
            flash(f"Connexion « {conn.name} » ajoutée. Activez-la sur les dossiers voulus "
                  "depuis leur page.", "success")
            return _to_connections(company.id)
    conns = switches.company_connections(company.id)
    names = {i.id: i.name for i in Integration.select(Integration.id, Integration.name)
             .where(Integration.firm == current_user.firm_id)}
    # What each connection sends, defaults filled in; header values never reach the page.
    options = {c.id: deliveries.effective_options(c) for c in conns}
    hints = [(i, integrations.catalog_entry(i.preset)) for i in available if i.preset]
    hints = [(i, e) for i, e in hints if e and (e.get("url_hint") or e.get("options"))]
    return render_template("connections.html", company=company, connections=conns,
                           integration_names=names, available=available, form=form,
                           options=options, hints=hints, megabyte=1024 * 1024,
                           root=folders.root_of(company)), status


def _show_secret(conn: Connection, secret: str, *, created: bool):
    """The one page that ever shows a connection's signing secret."""
    response = current_app.make_response(render_template(
        "connection_secret.html", connection=conn, secret=secret, created=created,
        company=conn.company))
    response.headers["Cache-Control"] = "no-store"
    return response


def _connection(connection_id: str) -> Connection:
    permissions.require_firm_user(current_user)
    return permissions.connection_for(current_user, connection_id)


@bp.post("/connexions/<connection_id>/tester")
@login_required
def connection_test(connection_id):
    """Run the connection test now; JSON for the page's script, else a message."""
    conn = _connection(connection_id)
    result = deliveries.test_connection(current_user, conn)
    if result.get("ok"):
        message = f"Connexion « {conn.name} » : test réussi"
        if result.get("status_code"):
            message += f" (réponse {result['status_code']})"
        message += f", en {result.get('elapsed_ms', 0)} ms."
    else:
        message = (f"Connexion « {conn.name} » : échec du test — "
                   f"{result.get('error') or 'erreur inconnue'}.")
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"ok": bool(result.get("ok")), "message": message})
    flash(message, "success" if result.get("ok") else "error")
    return redirect(return_to(url_for("web.integrations.company_connections",
                                      company_id=conn.company_id)))


@bp.post("/connexions/<connection_id>/secret")
@login_required
def connection_rotate(connection_id):
    conn = _connection(connection_id)
    try:
        secret = integrations.rotate_secret(current_user, conn)
    except GedError as exc:
        flash(french.error(exc), "error")
        return _to_connections(conn.company_id)
    return _show_secret(conn, secret, created=False)


@bp.post("/connexions/<connection_id>/pause")
@login_required
def connection_pause(connection_id):
    conn = _connection(connection_id)
    paused = request.form.get("paused") == "1"
    try:
        integrations.update_connection(current_user, conn, paused=paused)
    except GedError as exc:
        flash(french.error(exc), "error")
    else:
        flash(f"Connexion « {conn.name} » "
              + ("suspendue : plus aucun envoi automatique." if paused else
                 "reprise : les prochains dépôts seront envoyés ; ce qui est arrivé pendant la "
                 "pause peut être envoyé à la main."), "success")
    return redirect(return_to(url_for("web.integrations.company_connections",
                                      company_id=conn.company_id)))


@bp.route("/connexions/<connection_id>/supprimer", methods=["GET", "POST"])
@login_required
def connection_delete(connection_id):
    """Deleting asks for confirmation on its own page (no script needed)."""
    conn = _connection(connection_id)
    if request.method == "POST":
        try:
            integrations.delete_connection(current_user, conn)
        except GedError as exc:
            flash(french.error(exc), "error")
        else:
            flash(f"Connexion « {conn.name} » supprimée ; son historique d'envois est conservé.",
                  "success")
        return _to_connections(conn.company_id)
    return render_template("connection_delete.html", connection=conn, company=conn.company)
