"""The search page: a box, filters (company, folder, dates, type), highlighted snippets
and pages of results. The rules live in ged.search; this view only reads the form."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required
from markupsafe import Markup

from .. import folders, french, permissions, search
from ..errors import GedError
from ..models import Company

bp = Blueprint("search", __name__)

TYPE_LABELS = {"pdf": "PDF", "image": "Images et photos", "text": "Texte et CSV", "xml": "XML",
               "office": "Bureautique", "invoice": "Factures électroniques"}
PAGE_SIZE = 20


def _date(name: str) -> dt.date | None:
    raw = request.args.get(name) or ""
    try:
        return dt.date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


@bp.route("/recherche")
@login_required
def search_page():
    """Search what the user may see. Parameters: q, entreprise, dossier, du, au, type, suite."""
    q = (request.args.get("q") or "").strip()
    company_id = request.args.get("entreprise") or None
    folder_id = request.args.get("dossier") or None
    kind = request.args.get("type") or None
    if kind not in search.TYPES:
        kind = None
    date_from, date_to = _date("du"), _date("au")
    cursor = request.args.get("suite") or None
    companies = (list(permissions.visible_companies(current_user).order_by(Company.name))
                 if permissions.is_firm_user(current_user) else [])
    folder = folder_label = None
    if folder_id:
        try:
            folder = permissions.folder_for(current_user, folder_id)
            folder_label = f"{folder.company.name} {folders.display_path(folder)}"
        except GedError:
            folder_id = None
    result, error, status = None, None, 200
    if q:
        try:
            result = search.query(current_user, q, company_id=company_id, folder_id=folder_id,
                                  date_from=date_from, date_to=date_to, type=kind,
                                  limit=PAGE_SIZE, cursor=cursor)
        except GedError as exc:
            error, status = french.error(exc), exc.status
    names = {c.id: c.name for c in companies}
    if result:
        for item in result["items"]:
            # The snippet is already HTML-escaped; only its <mark> tags are markup.
            item["snippet_html"] = Markup(item["snippet"])
            item["company_name"] = names.get(item["company_id"], "")
    offset = int(cursor) if cursor and cursor.isdigit() else 0
    return render_template(
        "search.html", q=q, result=result, error=error, companies=companies,
        company_id=company_id, folder_id=folder_id, folder_label=folder_label, kind=kind,
        date_from=date_from, date_to=date_to, type_labels=TYPE_LABELS, offset=offset,
        page_size=PAGE_SIZE, page_args=_page_args,
        everywhere_args={k: v for k, v in _page_args(None).items() if k != "dossier"}), status


def _page_args(cursor: int | None) -> dict:
    """The current search's parameters with another page."""
    args = {k: v for k, v in request.args.items() if k != "suite" and v}
    if cursor:
        args["suite"] = str(cursor)
    return args
