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
                        "bureautiques, XML, JSON, CSV ou texte).",
    "content_mismatch": "Le contenu du fichier ne correspond pas à son extension.",
    "invalid_name": "Ce nom n'est pas valide (caractères interdits ou trop long).",
    "image_too_large": "L'image est trop grande (nombre de pixels excessif).",
    "corrupt_file": "Le fichier est endommagé et ne peut pas être lu.",
    "too_many_parts": "Ce document bureautique contient trop d'éléments pour être accepté.",
    "too_many_pages": "Ce document a trop de pages.",
    "no_file": "Aucun fichier n'a été envoyé.",
    "name_taken": "Un dossier porte déjà ce nom ici.",
    "not_found": "Introuvable, ou vous n'y avez pas accès.",
    "common_password": "Ce mot de passe est trop courant ou trop facile à deviner : "
                       "choisissez-en un plus long, par exemple quelques mots sans rapport.",
    "invalid_input": "La requête contient un caractère nul, interdit dans tous les champs.",
}

# What a depositor is told about a file that was kept (filetypes.WARNINGS), by code.
WARNING_FR = {
    "encrypted_pdf": "« {name} » est protégé par un mot de passe : il a été déposé, mais le "
                     "cabinet pourrait ne pas pouvoir le lire. Déposez si possible une version "
                     "sans mot de passe.",
}


def french(exc: GedError) -> str:
    """The French sentence for a domain error shown on a page."""
    return ERROR_FR.get(exc.code, exc.message)


def safe_target(target: str | None, default: str) -> str:
    """``target`` when it is a page of this application, else ``default``: parsed
    (no scheme, no host, one leading slash) and matched against the app's routes, so
    no crafted ``next`` (``//evil``, ``/\\t/evil``, ``https:evil``) sends the user away."""
    from urllib.parse import urlsplit, urlunsplit

    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import RequestRedirect

    from ..names import control_character

    if not target or len(target) > 2000:
        return default
    # Browsers drop tabs and newlines from URLs and read a backslash as "/": such a
    # target is refused rather than guessed at.
    if "\\" in target or control_character(target) or any(ch.isspace() for ch in target):
        return default
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not parts.path.startswith("/")
            or parts.path.startswith("//")):
        return default
    try:
        current_app.url_map.bind("ged.invalid").match(parts.path, method="GET")
    except (HTTPException, RequestRedirect):
        return default
    return urlunsplit(("", "", parts.path, parts.query, ""))


def return_to(default: str) -> str:
    """The form's ``next`` field when it is a page of this site, else ``default``."""
    return safe_target(request.form.get("next"), default)


def brand_firm() -> Firm | None:
    """The firm whose brand the page wears: the signed-in user's; before sign-in,
    the firm GED_FIRM_HOSTS names for this host name, else the only firm of the
    install; None (a neutral page) when several firms share the server."""
    if current_user and current_user.is_authenticated:
        return current_user.firm
    if "brand_firm" not in g:
        import re

        hosts = current_app.config["GED"].firm_hosts or {}
        firm_id = hosts.get(re.sub(r":\d+$", "", request.host.lower()))
        if firm_id:
            g.brand_firm = Firm.get_or_none(Firm.id == firm_id)
        else:
            firms = list(Firm.select(Firm).limit(2))
            g.brand_firm = firms[0] if len(firms) == 1 else None
    return g.brand_firm


@bp.app_context_processor
def _inject():
    return {"brand": brand_firm(), "is_firm": (current_user.is_authenticated
                                               and permissions.is_firm_user(current_user))}


def begin_session(user) -> None:
    """Log ``user`` in with a fresh server-side session (see ged/sessions.py): the
    cookie names it by a random token, and logging out ends it in the database."""
    from flask import session

    from .. import sessions

    session.clear()
    session["sid"] = sessions.open_session(user)
    login_user(user)


def end_session() -> None:
    """Log out: the session ends server-side, so a copy of the cookie stops working."""
    from flask import session

    from .. import sessions

    sessions.end_session(session.get("sid"))
    logout_user()
    session.clear()


def session_user(user_id: str):
    """flask-login's user loader: the user of the cookie's live session, or None."""
    from flask import session

    from .. import sessions

    return sessions.user_for(session.get("sid"), user_id.partition(":")[0])


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form. ``request.remote_addr`` is the client's real address
    (ged/proxies.py); a browser that signed in before carries its device cookie
    (ged/throttle.py), so others' failed guesses never keep its owner out."""
    from .. import throttle
    from ..db import transaction

    if current_user.is_authenticated:
        return redirect(url_for("web.home"))
    error = None
    if request.method == "POST":
        cfg = current_app.config["GED"]
        email = request.form.get("email", "")
        device = request.cookies.get(throttle.DEVICE_COOKIE)
        try:
            user = accounts.authenticate(email, request.form.get("password", ""),
                                         request.remote_addr, max_attempts=cfg.login_max_attempts,
                                         window=cfg.login_window_seconds, device=device)
        except GedError as exc:
            error = french(exc)
            wait = getattr(exc, "retry_after", 0)
            if exc.code == "too_many_attempts" and 0 < wait <= 60:
                error = f"Trop de tentatives. Réessayez dans {wait} secondes."
            response = current_app.make_response(
                (render_template("login.html", error=error, email=email), exc.status))
            if wait:
                response.headers["Retry-After"] = str(wait)
            return response
        begin_session(user)
        with transaction():
            audit.record(user, "login.succeeded", user, firm_only=True,
                         details={"ip": request.remote_addr})
        response = redirect(safe_target(request.args.get("next"), url_for("web.home")))
        if throttle.device_owner(device) != user.id:
            response.set_cookie(throttle.DEVICE_COOKIE, throttle.remember_device(user.id),
                                max_age=throttle.DEVICE_DAYS * 86400, httponly=True,
                                samesite="Lax", path=url_for("web.login"),
                                secure=bool(current_app.config["SESSION_COOKIE_SECURE"]))
        return response
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
    warned = [WARNING_FR[w["code"]].format(name=w["name"]) for w in documents.warnings_of(docs)]
    if wants_json:
        return jsonify({"items": [{"id": d.id, "name": d.name} for d in docs],
                        "warnings": warned}), 201
    flash(f"{len(docs)} document(s) déposé(s).", "success")
    for message in warned:
        flash(message, "warning")
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
    # private: which firm's logo this URL answers depends on who asks (and the host).
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Content-Security-Policy"] = "default-src 'none'"
    return response


def register_pages() -> None:
    """Import the page modules that extend this blueprint."""
    import importlib

    for name in ("admin", "staff", "search", "archive", "requests", "comments", "notifications"):
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise


register_pages()
