"""The web pages (French, server-rendered). Views are thin: they call the domain
modules and render templates; every form carries a CSRF token."""

from __future__ import annotations

from flask import (Blueprint, abort, current_app, flash, g, jsonify, redirect, render_template,
                   request, url_for)
from flask_login import current_user, login_required, login_user, logout_user

from .. import accounts, audit, companies, documents, folders, permissions
from ..errors import GedError
from ..models import Firm, Folder
from ..storage import stage

bp = Blueprint("web", __name__)

ERROR_FR = {
    "bad_credentials": "Adresse e-mail ou mot de passe incorrect.",
    "account_disabled": "Ce compte est désactivé. Contactez votre cabinet.",
    "too_many_attempts": "Trop de tentatives échouées. Réessayez dans quelques minutes.",
    "file_too_large": "Le fichier dépasse la taille maximale autorisée.",
    "empty_file": "Le fichier est vide.",
    "unsupported_type": "Ce type de fichier n'est pas accepté (PDF, images, documents "
                        "bureautiques, XML, CSV ou texte).",
    "content_mismatch": "Le contenu du fichier ne correspond pas à son extension.",
    "invalid_name": "Ce nom n'est pas valide (caractères interdits ou trop long).",
    "image_too_large": "L'image est trop grande (nombre de pixels excessif).",
    "corrupt_file": "Le fichier est endommagé et ne peut pas être lu.",
    "encrypted_pdf": "Ce PDF est protégé par un mot de passe ; retirez la protection puis "
                     "déposez-le à nouveau.",
    "too_many_pages": "Ce document a trop de pages.",
    "no_file": "Aucun fichier n'a été envoyé.",
    "name_taken": "Un dossier porte déjà ce nom ici.",
    "not_found": "Introuvable, ou vous n'y avez pas accès.",
}


def french(exc: GedError) -> str:
    """The French sentence for a domain error shown on a page."""
    return ERROR_FR.get(exc.code, exc.message)


def return_to(default: str) -> str:
    """The form's ``next`` field when it is a path on this site, else ``default``
    (so a crafted form cannot send the user elsewhere)."""
    target = request.form.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def brand_firm() -> Firm | None:
    """The firm whose brand the page wears: the user's, else the install's first firm."""
    if current_user and current_user.is_authenticated:
        return current_user.firm
    if "brand_firm" not in g:
        g.brand_firm = Firm.select().order_by(Firm.created_at).first()
    return g.brand_firm


@bp.app_context_processor
def _inject():
    return {"brand": brand_firm(), "is_firm": (current_user.is_authenticated
                                               and permissions.is_firm_user(current_user))}


SESSION_REVOKED = "ged:session:revoked:"
SESSION_DAYS = 31  # Flask's permanent-session lifetime: a revoked id is kept that long


def begin_session(user) -> None:
    """Log ``user`` in with a fresh session id, which logging out revokes server-side
    (a signed cookie copied before the logout then stops working too)."""
    import secrets

    from flask import session

    session.clear()
    session["sid"] = secrets.token_hex(16)
    login_user(user)


def end_session() -> None:
    from flask import session

    from .. import queue

    sid = session.get("sid")
    if sid:
        try:
            queue.connection().set(SESSION_REVOKED + sid, "1", ex=SESSION_DAYS * 86400)
        except Exception:  # noqa: BLE001 - the cookie is cleared anyway
            pass
    logout_user()
    session.clear()


def session_revoked() -> bool:
    """True when the current session id was logged out (checked on every request)."""
    from flask import session

    from .. import queue

    sid = session.get("sid")
    if not sid:
        return True
    try:
        return bool(queue.connection().exists(SESSION_REVOKED + sid))
    except Exception:  # noqa: BLE001 - Redis down: sessions keep working, /readyz says why
        return False


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("web.home"))
    error = None
    if request.method == "POST":
        cfg = current_app.config["GED"]
        email = request.form.get("email", "")
        try:
            user = accounts.authenticate(email, request.form.get("password", ""),
                                         request.remote_addr, max_attempts=cfg.login_max_attempts,
                                         window=cfg.login_window_seconds)
        except GedError as exc:
            error = french(exc)
            return render_template("login.html", error=error, email=email), exc.status
        begin_session(user)
        audit.record(user, "login.succeeded", user, firm_only=True,
                     details={"ip": request.remote_addr})
        target = request.args.get("next", "")
        if not target.startswith("/") or target.startswith("//"):
            target = url_for("web.home")
        return redirect(target)
    return render_template("login.html", error=error, email="")


@bp.post("/logout")
@login_required
def logout():
    end_session()
    flash("Vous êtes déconnecté.", "info")
    return redirect(url_for("web.login"))


@bp.route("/")
@login_required
def home():
    if current_user.role == "client":
        return redirect(url_for("web.folder", folder_id=folders.root_of(current_user.company_id).id))
    return redirect(url_for("web.company_list"))


@bp.route("/entreprises")
@login_required
def company_list():
    permissions.require_role(current_user, "admin", "staff")
    status = request.args.get("statut")
    query = permissions.visible_companies(current_user)
    if status in companies.STATUSES:
        query = query.where(permissions.Company.status == status)
    rows = list(query.order_by(permissions.Company.name))
    roots = {f.company_id: f.id for f in Folder.select(Folder.id, Folder.company).where(
        Folder.company.in_([c.id for c in rows]) & Folder.parent.is_null())}
    return render_template("companies.html", companies=rows, roots=roots, status=status)


@bp.route("/dossiers/<folder_id>")
@login_required
def folder(folder_id):
    current = permissions.folder_for(current_user, folder_id)
    company = current.company
    chain = folders.ancestors(current)
    context = {
        "folder": current,
        "company": company,
        "chain": chain,
        "tree": folders.tree(current_user, company),
        "children": folders.children_of(current_user, current),
        "documents": documents.listing(current_user, current),
        "max_upload_mb": current_app.config["GED"].max_upload_bytes // (1024 * 1024),
    }
    extra = g.get("folder_page_extras")
    if extra:
        for fn in extra:
            context.update(fn(current_user, current, chain) or {})
    return render_template("folder.html", **context)


@bp.post("/dossiers/<folder_id>/depot")
@login_required
def upload(folder_id):
    """Web deposit: one or more files from the form or the drag-and-drop uploader.
    XHR callers get JSON per request; a plain form post is redirected back."""
    current = permissions.folder_for(current_user, folder_id)
    cfg = current_app.config["GED"]
    wants_json = request.accept_mimetypes.best == "application/json"
    uploads = []
    try:
        for f in request.files.getlist("file"):
            if f.filename:
                uploads.append(documents.Upload(f.filename, stage(f.stream, cfg.data_dir,
                                                                  cfg.max_upload_bytes)))
        docs = documents.deposit(current_user, current, uploads, "web")
    except GedError as exc:
        for u in uploads:
            u.staged.discard()
        if wants_json:
            return jsonify({"error": {"code": exc.code, "message": french(exc)}}), exc.status
        flash(french(exc), "error")
        return redirect(url_for("web.folder", folder_id=current.id))
    if wants_json:
        return jsonify({"items": [{"id": d.id, "name": d.name} for d in docs]}), 201
    flash(f"{len(docs)} document(s) déposé(s).", "success")
    return redirect(url_for("web.folder", folder_id=current.id))


@bp.post("/dossiers/<folder_id>/sous-dossier")
@login_required
def create_subfolder(folder_id):
    current = permissions.folder_for(current_user, folder_id)
    if not permissions.is_firm_user(current_user) and not current.clients_can_create:
        abort(403)
    try:
        created = folders.create_folder(current_user, current, request.form.get("name", ""),
                                        firm_only=permissions.is_firm_user(current_user)
                                        and bool(request.form.get("firm_only")))
    except GedError as exc:
        flash(french(exc), "error")
        return redirect(url_for("web.folder", folder_id=current.id))
    return redirect(url_for("web.folder", folder_id=created.id))


@bp.route("/documents/<document_id>/telecharger")
@login_required
def download(document_id):
    from ..api.folders_routes import file_response

    return file_response(permissions.document_for(current_user, document_id))


@bp.route("/documents/<document_id>/apercu")
@login_required
def preview(document_id):
    """Inline preview of PDFs and images only, sandboxed by the CSP."""
    from ..api.folders_routes import file_response

    doc = permissions.document_for(current_user, document_id)
    inline = doc.content_type in {"application/pdf", "image/jpeg", "image/png"}
    response = file_response(doc, inline=inline)
    if inline and doc.content_type == "application/pdf":
        # Chromium's PDF viewer does not run inside a sandboxed CSP; scripts stay off.
        response.headers["Content-Security-Policy"] = "default-src 'none'; object-src 'self'; frame-ancestors 'self'"
    return response


@bp.route("/documents/<document_id>/apercu/<int:page>.png")
@login_required
def preview_page(document_id, page):
    """Page ``page`` of a PDF or TIFF rendered to PNG (see ged/previews.py)."""
    from .. import previews

    doc = permissions.document_for(current_user, document_id, include_trashed=True)
    response = current_app.response_class(previews.render(doc, page), mimetype="image/png")
    # A document's bytes never change; its permissions might, hence private and bounded.
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["Content-Security-Policy"] = "default-src 'none'"
    return response


@bp.route("/marque/theme.css")
def theme():
    """The firm's colours as CSS variables (the CSP forbids inline styles)."""
    import re

    from ..firms import ink_for

    firm = brand_firm()
    color = firm.primary_color if firm and re.fullmatch(r"#[0-9a-fA-F]{6}", firm.primary_color or "") else "#1f4e79"
    # --brand-ink: the text colour that stays readable on the brand colour.
    css = f":root {{ --brand: {color}; --brand-ink: {ink_for(color)}; }}\n"
    return current_app.response_class(css, mimetype="text/css",
                                      headers={"Cache-Control": "no-cache"})


@bp.route("/marque/logo")
def logo():
    from ..api.folders_routes import Response
    from .. import runtime
    from ..storage import iter_blob

    firm = brand_firm()
    if firm is None or not firm.logo_sha256:
        abort(404)
    response = Response(iter_blob(runtime.store(), firm.logo_sha256),
                        mimetype=firm.logo_content_type)
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Content-Security-Policy"] = "default-src 'none'"
    return response


def register_pages() -> None:
    """Import the page modules that extend this blueprint."""
    import importlib

    for name in ("admin", "staff", "search", "archive"):
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise


register_pages()
