"""« Ouvrir l'exercice 2027 » (admins): a preview first (a dry run: companies,
folders, switches), then the run as a background job with a progress bar."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import fiscal_years, french, permissions
from ..errors import GedError

bp = Blueprint("fiscal", __name__)


SKIP_REASONS = {"already_open": "exercice déjà ouvert", "prospect": "prospect",
                "unknown_company": "entreprise inconnue"}


def _year() -> int:
    raw = request.values.get("annee", "")
    return int(raw) if raw.isdigit() else dt.date.today().year + 1


@bp.route("/admin/exercice", methods=["GET", "POST"])
@login_required
def admin_fiscal_year():
    permissions.require_role(current_user, "admin")
    year = _year()
    preview, error = None, None
    if request.method == "POST":
        try:
            if request.form.get("action") == "run":
                task = fiscal_years.start_task(current_user, year)
                return redirect(url_for("web.fiscal.admin_fiscal_task", task_id=task.id))
            preview = fiscal_years.open_year(current_user, year, dry_run=True)
        except GedError as exc:
            error = french.error(exc)
    return render_template("fiscal/year.html", year=year, preview=preview, error=error,
                           reasons=SKIP_REASONS, active="fiscal")


@bp.route("/admin/exercice/suivi/<task_id>")
@login_required
def admin_fiscal_task(task_id):
    permissions.require_role(current_user, "admin")
    view = fiscal_years.task_view(current_user, task_id)
    if request.accept_mimetypes.best == "application/json":
        return jsonify(view)
    return render_template("fiscal/task.html", task=view, reasons=SKIP_REASONS,
                           active="fiscal")
