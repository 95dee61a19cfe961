"""The public HTTP API under /api/v1 (the contract is shared/API.md).

Each route is declared once with ``routing.route``: that registers the Flask view,
checks the bearer token, validates the JSON body against its schema, and adds the
operation to the route table ``ROUTES``, from which the OpenAPI document (served at
/api/v1/openapi.json) and the tenant isolation tests are built, so a new route is
covered without writing a new test. The route modules, one per area, are listed
here; importing them declares their routes.
"""

from __future__ import annotations

from flask import Flask

# The route modules, in the order the OpenAPI document lists their operations.
from . import (accounts_routes, folders_routes, integrations_routes,  # noqa: F401, I001
               search_routes, archive_routes, password_routes, totp_routes, filing_routes,
               fiscal_routes, firm_routes, requests_routes, comments_routes, openapi)
from .routing import ROUTES, api_error_for_path, bp, refuse_nul_bytes

__all__ = ["ROUTES", "api_error_for_path", "bp", "init_app"]


def init_app(app: Flask) -> None:
    """Register the API. It authenticates by bearer token, so it is exempt from the
    CSRF check of forms (the app's CSRFProtect, set up before); and every request,
    page or API, containing a NUL byte is refused before a view sees it."""
    app.register_blueprint(bp)
    app.extensions["csrf"].exempt(bp)
    app.before_request(refuse_nul_bytes)
