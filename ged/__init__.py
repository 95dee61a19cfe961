"""ged: a document-management server for accounting firms and their client companies."""

from __future__ import annotations

import logging
import os
import sys

from flask import Flask, jsonify, render_template, request

# config.py lives at the project's top level; make it importable from anywhere.
_TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _TOP not in sys.path:
    sys.path.insert(0, _TOP)

from config import Config  # noqa: E402

log = logging.getLogger(__name__)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "font-src 'self'; connect-src 'self'; frame-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'self'")


def create_app(cfg: Config | None = None) -> Flask:
    """The Flask application: web pages, the API under /api/v1, health probes."""
    from flask_login import LoginManager
    from flask_wtf.csrf import CSRFError, CSRFProtect

    from . import runtime
    from .api import api_error_for_path, bp as api_bp, refuse_nul_bytes, register_all
    from .db import db
    from .errors import GedError
    from .proxies import TrustedProxies
    from .web import bp as web_bp, session_user

    cfg = runtime.setup(cfg)
    app = Flask(__name__, template_folder=os.path.join(_TOP, "templates"),
                static_folder=os.path.join(_TOP, "static"))
    secure = cfg.session_cookie_secure
    if secure is None:
        secure = cfg.public_url.startswith("https://")
    app.config.update(
        GED=cfg,
        SECRET_KEY=cfg.secret_key,
        MAX_CONTENT_LENGTH=cfg.max_upload_bytes * 4 + 1024 * 1024,
        MAX_FORM_MEMORY_SIZE=1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_NAME="ged_session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure,
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=secure,
        TESTING=cfg.testing,
        JSON_SORT_KEYS=False,
    )
    app.json.ensure_ascii = False

    csrf = CSRFProtect(app)
    register_all()
    csrf.exempt(api_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(web_bp)

    login = LoginManager(app)
    login.login_view = "web.login"
    login.login_message = "Connectez-vous pour accéder à cette page."

    # A session is a row of the database (ged/sessions.py), not just a signed cookie.
    login.user_loader(session_user)

    @app.before_request
    def _open_db():
        db.connect(reuse_if_open=True)

    # Every entry point refuses NUL bytes before any view sees them (API and pages).
    app.before_request(refuse_nul_bytes)
    # The client's address as the trusted reverse proxies report it (GED_TRUSTED_PROXIES).
    app.wsgi_app = TrustedProxies(app.wsgi_app, cfg)

    @app.teardown_request
    def _close_db(_exc):
        if not db.is_closed():
            db.close()

    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    def _wants_json() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(CSRFError)
    def _csrf_error(exc):
        return render_template("error.html", code=400,
                               message="Le formulaire a expiré ou n'est pas valide "
                                       "(jeton CSRF manquant). Rechargez la page et réessayez."), 400

    @app.errorhandler(GedError)
    def _ged_error(exc):
        if _wants_json():
            return api_error_for_path(exc)
        from .web import french

        return render_template("error.html", code=exc.status, message=french(exc)), exc.status

    from werkzeug.exceptions import HTTPException

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        if _wants_json():
            return api_error_for_path(exc)
        messages = {404: "Cette page n'existe pas ou vous n'y avez pas accès.",
                    405: "Cette action n'est pas permise ici.",
                    413: "Le fichier est trop volumineux.",
                    403: "Vous n'avez pas le droit de faire cela."}
        return render_template("error.html", code=exc.code,
                               message=messages.get(exc.code, "La demande n'a pas pu aboutir.")), exc.code

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            response = jsonify({"error": {"code": "internal_error",
                                          "message": "An unexpected error occurred; it was logged."}})
            response.status_code = 500
            return response
        return render_template("error.html", code=500,
                               message="Une erreur inattendue s'est produite ; elle a été "
                                       "enregistrée."), 500

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz():
        from . import health

        checks = health.checks()
        ok = all(v == "ok" for v in checks.values())
        return jsonify(checks), (200 if ok else 503)

    return app
