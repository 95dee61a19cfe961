"""The firm's administration pages: users and invitations, companies and staff
assignment, integrations and per-company connections, the default folder template,
and the firm's brand. Views stay thin: every rule lives in the domain modules
(accounts, companies, integrations, firms, invitations, folders)."""

from __future__ import annotations

import datetime as dt

from flask import (abort, current_app, flash, jsonify, redirect, render_template, request,
                   url_for)
from flask_login import current_user, login_required

from .. import accounts, companies, firms, folders, invitations, permissions
from ..errors import GedError, Invalid
from ..models import Company, Connection, Integration, StaffAssignment, User
from ..storage import stage
from . import ERROR_FR, begin_session, bp, french, return_to

ERROR_FR.update({
    "email_taken": "Un utilisateur possède déjà cette adresse e-mail.",
    "invalid_email": "L'adresse e-mail n'est pas valide.",
    "weak_password": "Le mot de passe doit comporter au moins 10 caractères.",
    "invalid_password": "Le mot de passe est trop long.",
    "invalid_role": "Le rôle doit être administrateur, collaborateur ou client.",
    "company_required": "Un utilisateur client doit être rattaché à une entreprise.",
    "invalid_company": "Entreprise inconnue.",
    "invalid_siren": "Le SIREN doit comporter 9 chiffres valides.",
    "invalid_status": "Le statut doit être client ou prospect.",
    "invalid_user": "Utilisateur inconnu.",
    "not_staff": "Seuls les collaborateurs peuvent être affectés à une entreprise.",
    "cannot_disable_self": "Vous ne pouvez pas désactiver votre propre compte.",
    "invalid_color": "La couleur doit être au format #rrggbb.",
    "unsupported_logo": "Le logo doit être une image PNG ou JPEG.",
    "invalid_template": "Le modèle n'est pas valide (dossier sans nom, trop profond ou trop "
                        "grand, ou durée de conservation incorrecte).",
    "invalid_invitation": "Ce lien d'invitation n'est pas valide ou a déjà été utilisé.",
    "invitation_expired": "Ce lien d'invitation a expiré ; demandez-en un nouveau à votre cabinet.",
    "mail_failed": "L'e-mail d'invitation n'a pas pu être envoyé (serveur de messagerie "
                   "injoignable ou non configuré). Réessayez plus tard.",
    "forbidden": "Vous n'avez pas le droit de faire cela.",
})

ROLE_LABELS = {"admin": "Administrateur", "staff": "Collaborateur", "client": "Client"}


def _admin() -> None:
    permissions.require_role(current_user, "admin")


def _firm_user() -> None:
    permissions.require_role(current_user, "admin", "staff")


def _back(endpoint: str, **values):
    return redirect(url_for(endpoint, **values))


@bp.app_template_filter("role_label")
def _role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role)


def _paris():
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("Europe/Paris")
    except Exception:  # noqa: BLE001 - no time zone data: the server's local time
        return None


PARIS = _paris()


@bp.app_template_filter("datetime_fr")
def _datetime_fr(value) -> str:
    """A stored UTC time shown in French time (the users are French firms), French style."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")
    return value.strftime("%d/%m/%Y")


# --- users and invitations -------------------------------------------------------------


@bp.route("/admin/")
@login_required
def admin_home():
    _admin()
    return _back("web.admin_users")


@bp.route("/admin/utilisateurs", methods=["GET", "POST"])
@login_required
def admin_users():
    """The firm's users; the form creates a staff or client user, with a password or an
    e-mailed invitation."""
    _admin()
    firm = current_user.firm
    form = {}
    status = 200
    if request.method == "POST":
        form = request.form
        role = form.get("role", "")
        company = None
        try:
            if role == "client" and form.get("company_id"):
                company = permissions.company_for(current_user, form["company_id"])
            invite = form.get("mode") == "invite"
            password = None if invite else form.get("password", "")
            user = accounts.create_user(current_user, firm, email=form.get("email", ""),
                                        name=form.get("name", ""), role=role, company=company,
                                        password=password)
        except GedError as exc:
            flash(french(exc), "error")
            status = exc.status
        else:
            if invite:
                _send_invitation(user)
            else:
                flash(f"Utilisateur {user.email} créé.", "success")
            return _back("web.admin_users")
    users = list(User.select().where((User.firm == firm.id) & User.erased_at.is_null())
                 .order_by(User.role, User.name))
    company_names = {c.id: c.name for c in Company.select(Company.id, Company.name)
                     .where(Company.firm == firm.id)}
    pending = {u.id for u in users if u.password_hash is None and invitations.has_pending(u)}
    return render_template("admin/users.html", users=users, company_names=company_names,
                           pending=pending, form=form,
                           companies=_companies_of(firm)), status


def _companies_of(firm):
    return list(Company.select().where(Company.firm == firm.id).order_by(Company.name))


def _send_invitation(user: User) -> None:
    try:
        invitations.invite(current_user, user)
    except GedError as exc:
        flash(f"{user.email} : {french(exc)}", "error")
    else:
        flash(f"Invitation envoyée à {user.email}.", "success")


@bp.post("/admin/utilisateurs/<user_id>/invitation")
@login_required
def admin_invite(user_id):
    _admin()
    _send_invitation(_firm_member(user_id))
    return _back("web.admin_users")


@bp.post("/admin/utilisateurs/<user_id>/actif")
@login_required
def admin_set_active(user_id):
    _admin()
    user = _firm_member(user_id)
    active = request.form.get("active") == "1"
    try:
        accounts.set_active(current_user, user, active)
    except GedError as exc:
        flash(french(exc), "error")
    else:
        flash(f"{user.email} {'réactivé' if active else 'désactivé'}.", "success")
    return _back("web.admin_users")


def _firm_member(user_id: str) -> User:
    user = User.get_or_none((User.id == user_id) & (User.firm == current_user.firm_id))
    if user is None:
        abort(404)
    return user


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token):
    """The invited user chooses a password, then is logged in."""
    error = None
    try:
        user = invitations.pending(token)
    except GedError as exc:
        return render_template("error.html", code=400, message=french(exc)), 400
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            error = "Les deux mots de passe ne sont pas identiques."
        else:
            try:
                user = invitations.accept(token, password)
            except GedError as exc:
                error = french(exc)
            else:
                begin_session(user)
                flash("Votre mot de passe est enregistré. Bienvenue !", "success")
                return _back("web.home")
    return render_template("invitation.html", invited=user, error=error), (400 if error else 200)


# --- companies and staff assignment -------------------------------------------------------


@bp.route("/admin/entreprises", methods=["GET", "POST"])
@login_required
def admin_companies():
    _admin()
    firm = current_user.firm
    form = {}
    status = 200
    if request.method == "POST":
        form = request.form
        try:
            year = int(form.get("year") or dt.date.today().year)
            company = companies.create_company(
                current_user, firm, name=form.get("name", ""), siren=form.get("siren"),
                status=form.get("status", "client"),
                template="annual" if form.get("template") else None, year=year)
        except ValueError:
            flash("L'année doit être un nombre.", "error")
            status = 400
        except GedError as exc:
            flash(french(exc), "error")
            status = exc.status
        else:
            flash(f"Entreprise « {company.name} » créée.", "success")
            return _back("web.admin_company", company_id=company.id)
    rows = _companies_of(firm)
    staff_counts = {}
    for a in StaffAssignment.select(StaffAssignment.company).where(
            StaffAssignment.company.in_([c.id for c in rows])):
        staff_counts[a.company_id] = staff_counts.get(a.company_id, 0) + 1
    return render_template("admin/companies.html", companies=rows, staff_counts=staff_counts,
                           form=form, this_year=dt.date.today().year), status


@bp.route("/admin/entreprises/<company_id>")
@login_required
def admin_company(company_id):
    _admin()
    company = permissions.company_for(current_user, company_id)
    staff = list(User.select().where((User.firm == current_user.firm_id) & (User.role == "staff")
                                     & User.erased_at.is_null()).order_by(User.name))
    assigned = {u.id for u in companies.assigned_staff(company)}
    clients = list(User.select().where(User.company == company.id).order_by(User.name))
    return render_template("admin/company.html", company=company, staff=staff,
                           assigned=assigned, clients=clients,
                           root=folders.root_of(company))


@bp.post("/admin/entreprises/<company_id>/statut")
@login_required
def admin_company_status(company_id):
    _admin()
    company = permissions.company_for(current_user, company_id)
    try:
        company = companies.update_company(current_user, company,
                                           status=request.form.get("status"))
    except GedError as exc:
        flash(french(exc), "error")
    else:
        flash(f"« {company.name} » est maintenant "
              f"{'un client' if company.status == 'client' else 'un prospect'}.", "success")
    return _back("web.admin_company", company_id=company.id)


@bp.post("/admin/entreprises/<company_id>/collaborateurs")
@login_required
def admin_company_staff(company_id):
    _admin()
    company = permissions.company_for(current_user, company_id)
    try:
        companies.assign_staff(current_user, company, request.form.getlist("user_id"))
    except GedError as exc:
        flash(french(exc), "error")
    else:
        flash("Affectation des collaborateurs enregistrée.", "success")
    return _back("web.admin_company", company_id=company.id)


# --- integrations and connections ---------------------------------------------------------

CONNECTION_ERRORS = {
    "invalid_url": "Cette adresse web n'est pas acceptée : elle doit commencer par https:// et "
                   "ne pas contenir d'identifiants ni d'espaces.",
    "target_not_allowed": "Cette adresse web désigne un serveur privé ou réservé ; ged n'envoie "
                          "qu'à des adresses publiques.",
    "unresolvable_host": "Le nom de serveur de cette adresse web est introuvable.",
    "invalid_address": "Indiquez l'adresse e-mail de collecte de l'outil (nom@domaine).",
    "invalid_options": "Une option de la connexion n'est pas valide (en-tête interdit ou mal "
                       "formé, format, nom de champ ou taille maximale incorrects).",
    "nothing_to_send": "Choisissez ce que la connexion envoie : le fichier déposé, le XML de "
                       "la facture, ou les deux.",
    "unknown_preset": "Cet outil n'existe pas dans le catalogue.",
    "kind_mismatch": "Le type de connecteur ne correspond pas à cet outil.",
    "invalid_kind": "Le type de connecteur doit être e-mail ou http.",
    "invalid_integration": "Choisissez un outil installé.",
    "not_http": "Seules les connexions http ont un secret de signature.",
    "integration_in_use": "Des connexions utilisent encore cet outil ; supprimez-les d'abord.",
}
ERROR_FR.update(CONNECTION_ERRORS)


@bp.route("/admin/integrations", methods=["GET", "POST"])
@login_required
def admin_integrations():
    """The catalog of tools and the firm's installed integrations."""
    from .. import integrations

    _admin()
    status = 200
    if request.method == "POST":
        try:
            integration = integrations.install(
                current_user, current_user.firm, preset=request.form.get("preset") or None,
                kind=request.form.get("kind") or None, name=request.form.get("name", ""))
        except GedError as exc:
            flash(french(exc), "error")
            status = exc.status
        else:
            flash(f"« {integration.name} » est installé. Activez-le maintenant pour les "
                  "entreprises concernées.", "success")
            return _back("web.admin_integrations")
    installed = list(Integration.select().where((Integration.firm == current_user.firm_id)
                                                & Integration.deleted_at.is_null())
                     .order_by(Integration.name))
    counts = {}
    for c in Connection.select(Connection.integration).where(
            Connection.integration.in_([i.id for i in installed]) & Connection.deleted_at.is_null()):
        counts[c.integration_id] = counts.get(c.integration_id, 0) + 1
    return render_template("admin/integrations.html", catalog=integrations.catalog(),
                           installed=installed, counts=counts), status


SEND_CHOICES = {"original": {}, "both": {"send_invoice_xml": True},
                "xml": {"send_invoice_xml": True, "send_original": False}}


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


ERROR_FR.setdefault("invalid_headers", "Chaque en-tête s'écrit sur une ligne : Nom: valeur.")


@bp.route("/entreprises/<company_id>/connexions", methods=["GET", "POST"])
@login_required
def company_connections(company_id):
    """A company's connections (admins and its staff): add one (its secret is shown once),
    test, pause, rotate the secret, delete."""
    from .. import integrations, switches

    _firm_user()
    company = permissions.company_for(current_user, company_id)
    available = list(Integration.select().where((Integration.firm == current_user.firm_id)
                                                & Integration.deleted_at.is_null())
                     .order_by(Integration.name))
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
            flash(french(exc), "error")
            status = exc.status
        else:
            if secret:
                return _show_secret(conn, secret, created=True)
            flash(f"Connexion « {conn.name} » ajoutée. Activez-la sur les dossiers voulus "
                  "depuis leur page.", "success")
            return _back("web.company_connections", company_id=company.id)
    conns = switches.company_connections(company.id)
    names = {i.id: i.name for i in Integration.select(Integration.id, Integration.name)
             .where(Integration.firm == current_user.firm_id)}
    # What each connection sends, defaults filled in; header values never reach the page.
    options = {c.id: integrations.effective_options(c) for c in conns}
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
    _firm_user()
    return permissions.connection_for(current_user, connection_id)


@bp.post("/connexions/<connection_id>/tester")
@login_required
def connection_test(connection_id):
    """Run the connection test now; JSON for the page's script, else a message."""
    from .. import integrations

    conn = _connection(connection_id)
    result = integrations.test_connection(current_user, conn)
    if result.get("ok"):
        message = f"Connexion « {conn.name} » : test réussi"
        if result.get("status_code"):
            message += f" (réponse {result['status_code']})"
        message += f", en {result.get('elapsed_ms', 0)} ms."
    else:
        message = f"Connexion « {conn.name} » : échec du test — {result.get('error') or 'erreur inconnue'}."
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"ok": bool(result.get("ok")), "message": message})
    flash(message, "success" if result.get("ok") else "error")
    return redirect(return_to(url_for("web.company_connections", company_id=conn.company_id)))


@bp.post("/connexions/<connection_id>/secret")
@login_required
def connection_rotate(connection_id):
    from .. import integrations

    conn = _connection(connection_id)
    try:
        secret = integrations.rotate_secret(current_user, conn)
    except GedError as exc:
        flash(french(exc), "error")
        return _back("web.company_connections", company_id=conn.company_id)
    return _show_secret(conn, secret, created=False)


@bp.post("/connexions/<connection_id>/pause")
@login_required
def connection_pause(connection_id):
    from .. import integrations

    conn = _connection(connection_id)
    paused = request.form.get("paused") == "1"
    try:
        integrations.update_connection(current_user, conn, paused=paused)
    except GedError as exc:
        flash(french(exc), "error")
    else:
        flash(f"Connexion « {conn.name} » "
              + ("suspendue : plus aucun envoi automatique." if paused else
                 "reprise : les prochains dépôts seront envoyés ; ce qui est arrivé pendant la "
                 "pause peut être envoyé à la main."), "success")
    return redirect(return_to(url_for("web.company_connections", company_id=conn.company_id)))


@bp.route("/connexions/<connection_id>/supprimer", methods=["GET", "POST"])
@login_required
def connection_delete(connection_id):
    """Deleting asks for confirmation on its own page (no script needed)."""
    from .. import integrations

    conn = _connection(connection_id)
    if request.method == "POST":
        try:
            integrations.delete_connection(current_user, conn)
        except GedError as exc:
            flash(french(exc), "error")
        else:
            flash(f"Connexion « {conn.name} » supprimée ; son historique d'envois est conservé.",
                  "success")
        return _back("web.company_connections", company_id=conn.company_id)
    return render_template("connection_delete.html", connection=conn, company=conn.company)


# --- the default folder template ---------------------------------------------------------


def template_to_text(template: dict) -> str:
    """The template as the editor shows it: one folder a line, two spaces per level,
    ``[cabinet]`` for a firm-only folder, ``[10 ans]`` for a retention period."""
    lines = []

    def walk(node, depth):
        marks = ""
        if node.get("retention_years") is not None:
            marks += f" [{node['retention_years']} ans]"
        if node.get("firm_only"):
            marks += " [cabinet]"
        lines.append("  " * depth + node["name"] + marks)
        for child in node.get("children", []):
            walk(child, depth + 1)

    walk(template, 0)
    return "\n".join(lines) + "\n"


class TemplateSyntax(Exception):
    """A line of the editor's text that cannot be read (the message is shown as is)."""


def template_from_text(text: str) -> dict:
    """Read the editor's text back into a template (the inverse of template_to_text)."""
    import re

    stack: list[tuple[int, dict]] = []
    root = None
    for number, raw in enumerate(text.replace("\t", "  ").splitlines(), 1):
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        name = raw.strip()
        node: dict = {}
        while True:
            m = re.search(r"\s*\[(cabinet|(\d{1,3}) ans?)\]\s*$", name, re.IGNORECASE)
            if not m:
                break
            if m.group(2):
                node["retention_years"] = int(m.group(2))
            else:
                node["firm_only"] = True
            name = name[:m.start()].rstrip()
        if not name:
            raise TemplateSyntax(f"Ligne {number} : le nom du dossier est vide.")
        try:
            folders.clean_folder_name(name.replace("{year}", "2000"))
        except GedError:
            raise TemplateSyntax(f"Ligne {number} : « {name} » n'est pas un nom de dossier "
                                 "valide.") from None
        node = {"name": name, **node}
        if root is None:
            if indent:
                raise TemplateSyntax(f"Ligne {number} : le premier dossier ne doit pas être "
                                     "indenté.")
            root = node
            stack = [(0, node)]
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if not stack:
            raise TemplateSyntax(f"Ligne {number} : un seul dossier de premier niveau est "
                                 "permis ; indentez les sous-dossiers.")
        stack[-1][1].setdefault("children", []).append(node)
        stack.append((indent, node))
    if root is None:
        raise TemplateSyntax("Le modèle est vide.")
    return root


@bp.route("/admin/modele", methods=["GET", "POST"])
@login_required
def admin_template():
    _admin()
    firm = current_user.firm
    text = template_to_text(folders.firm_template(firm))
    status = 200
    if request.method == "POST":
        if request.form.get("reset"):
            firms.set_folder_template(current_user, firm, None)
            flash("Le modèle par défaut de ged est rétabli.", "success")
            return _back("web.admin_template")
        text = request.form.get("template", "")
        try:
            firms.set_folder_template(current_user, firm, template_from_text(text))
        except TemplateSyntax as exc:
            flash(str(exc), "error")
            status = 400
        except GedError as exc:
            flash(french(exc), "error")
            status = exc.status
        else:
            flash("Modèle enregistré : il s'appliquera aux prochaines entreprises créées "
                  "avec l'arborescence annuelle.", "success")
            return _back("web.admin_template")
    return render_template("admin/template.html", text=text,
                           custom=firm.folder_template is not None), status


# --- branding -------------------------------------------------------------------------------


@bp.route("/admin/marque", methods=["GET", "POST"])
@login_required
def admin_branding():
    """The firm's name, primary colour and logo: every page and the login page wear them."""
    _admin()
    firm = current_user.firm
    status = 200
    if request.method == "POST":
        cfg = current_app.config["GED"]
        try:
            firm = firms.update_branding(current_user, firm, name=request.form.get("name"),
                                         primary_color=request.form.get("primary_color"))
            logo = request.files.get("logo")
            if request.form.get("remove_logo"):
                firm = firms.remove_logo(current_user, firm)
            elif logo is not None and logo.filename:
                staged = stage(logo.stream, cfg.data_dir, firms.MAX_LOGO_BYTES + 1)
                firm = firms.set_logo(current_user, firm, staged, logo.filename)
        except GedError as exc:
            flash(french(exc), "error")
            status = exc.status
        else:
            flash("Identité visuelle enregistrée.", "success")
            return _back("web.admin_branding")
    return render_template("admin/branding.html", firm=firm), status
