"""The application's settings, from ged's configuration (cookies, limits, CSRF)."""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from config import Config

# The CSRF token every form carries; the API, authenticated by tokens, is exempted.
csrf = CSRFProtect()


def init_app(app: Flask, cfg: Config) -> None:
    """Flask's settings: secure cookies (behind https), upload and form limits, JSON,
    and CSRF protection."""
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
    csrf.init_app(app)
