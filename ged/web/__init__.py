"""The web pages (French, server-rendered): one small blueprint per area, nested in
the ``web`` blueprint so every page's endpoint reads ``web.<area>.<view>``. Views are
thin: they call the domain modules and render templates; every form carries a CSRF
token."""

from __future__ import annotations

from flask import Blueprint, Flask

from . import (account, archive, auth, comments, companies, deliveries, documents, filing, firm,
               fiscal, folders, integrations, journal, labels, notifications, requests, search,
               settings, switches, users)

AREAS = (auth, firm, companies, folders, switches, documents, deliveries, archive, search, users,
         integrations, requests, comments, notifications, account, filing, fiscal, settings,
         journal)

bp = Blueprint("web", __name__)
for area in AREAS:
    bp.register_blueprint(area.bp)


def init_app(app: Flask) -> None:
    """Register the pages and the label filters their templates use."""
    app.register_blueprint(bp)
    labels.init_app(app)
