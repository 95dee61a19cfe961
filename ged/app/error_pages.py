"""What an error looks like: a French page, or the API's JSON error shape under /api/."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from .. import api
from ..errors import GedError

log = logging.getLogger("ged")

MESSAGES_FR = {404: "Cette page n'existe pas ou vous n'y avez pas accès.",
               405: "Cette action n'est pas permise ici.",
               413: "Le fichier est trop volumineux.",
               403: "Vous n'avez pas le droit de faire cela."}


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _csrf_error(exc):
    return render_template("error.html", code=400,
                           message="Le formulaire a expiré ou n'est pas valide "
                                   "(jeton CSRF manquant). Rechargez la page et réessayez."), 400


def _ged_error(exc: GedError):
    if _wants_json():
        return api.api_error_for_path(exc)
    return render_template("error.html", code=exc.status, message=exc.message), exc.status


def _http_error(exc: HTTPException):
    if _wants_json():
        return api.api_error_for_path(exc)
    return render_template("error.html", code=exc.code,
                           message=MESSAGES_FR.get(exc.code, exc.description)), exc.code


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


def init_app(app: Flask) -> None:
    """The handlers, from the most precise to the catch-all."""
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(GedError, _ged_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
