"""The « Journal » page reads as sentences with names (ged/journal.py); these
template helpers give it the sentences and the filters' choices."""

from __future__ import annotations

from flask import Blueprint, request

from .. import journal

bp = Blueprint("journal", __name__)


@bp.app_template_global()
def journal_rows(events):
    return journal.sentences(list(events))


@bp.app_template_global()
def journal_filters(company_id: str) -> dict:
    return {"people": journal.people(company_id),
            "kinds": [(key, label) for key, (label, _p) in journal.KINDS.items()],
            "args": {k: request.args.get(k, "") for k in ("qui", "type", "du", "au")}}
