"""The Flask application. ``create_app`` only assembles it: each piece registers
itself with an ``init_app(app)`` (settings, CSRF, the API and the pages, logins, the
database per request, security headers, error pages, health probes)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from config import Config

from .. import api, runtime, web
from ..proxies import TrustedProxies
from . import database, error_pages, headers, logins, probes, settings

TOP = Path(__file__).resolve().parents[2]


def create_app(cfg: Config | None = None) -> Flask:
    """The Flask application: web pages, the API under /api/v1, health probes."""
    cfg = runtime.setup(cfg)
    app = Flask("ged", template_folder=str(TOP / "templates"),
                static_folder=str(TOP / "static"))
    settings.init_app(app, cfg)
    web.init_app(app)
    logins.init_app(app)
    database.init_app(app)
    # The API; it also refuses NUL bytes on every route (API and pages) before any view.
    api.init_app(app)
    # The client's address as the trusted reverse proxies report it (GED_TRUSTED_PROXIES).
    app.wsgi_app = TrustedProxies(app.wsgi_app, cfg)
    headers.init_app(app)
    error_pages.init_app(app)
    probes.init_app(app)
    return app
