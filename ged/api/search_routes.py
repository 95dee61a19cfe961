"""API route for full-text search (the engine sits behind ged.search)."""

from __future__ import annotations

import datetime as dt

from flask import jsonify, request

from .. import search
from ..errors import Invalid
from .routing import ERROR_SCHEMA, page_params, route

S = {"type": "string"}
SEARCH_SCHEMA = {
    "type": "object",
    "required": ["total", "items", "next_cursor"],
    "properties": {
        "total": {"type": "integer"},
        "next_cursor": {"type": ["string", "null"]},
        "items": {"type": "array", "items": {
            "type": "object",
            "required": ["document_id", "name", "company_id", "folder_path", "snippet", "score"],
            "properties": {"document_id": S, "name": S, "company_id": S, "folder_id": S,
                           "folder_path": S, "content_type": S, "deposited_at": S,
                           "snippet": {"type": "string",
                                       "description": "HTML: escaped text, hits in <mark>"},
                           "score": {"type": "number"}}}},
    },
}


def parse_date(name: str) -> dt.date | None:
    """A YYYY-MM-DD query parameter, or None; Invalid when malformed."""
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise Invalid(f"{name} must be a date (YYYY-MM-DD).", "invalid_date") from None


@route("GET", "/search", summary="Full-text search in what the caller may see", tag="search",
       query={"q": {"type": "string", "minLength": 1, "x-required": True,
                    "description": "words, \"exact phrases\", prefix*, -excluded, a OU b; "
                                   "fields nom:, dossier:, facture:; case, accents and "
                                   "elisions ignored (l’échéance: échéance)"},
              "company_id": {"type": "string", "description": "only this company"},
              "folder_id": {"type": "string", "description": "this folder and below"},
              "from": {"type": "string", "format": "date", "description": "deposited on or after"},
              "to": {"type": "string", "format": "date", "description": "deposited on or before"},
              "type": {"enum": list(search.TYPES)},
              "limit": {"type": "integer", "minimum": 1, "maximum": 100},
              "cursor": {"type": "string", "pattern": "^[0-9]{1,9}$"}},
       responses={200: SEARCH_SCHEMA, 503: ERROR_SCHEMA})  # 503: index being rebuilt
def search_documents(user):
    limit, cursor = page_params(default=20)
    result = search.query(
        user, request.args.get("q", ""),
        company_id=request.args.get("company_id") or None,
        folder_id=request.args.get("folder_id") or None,
        date_from=parse_date("from"), date_to=parse_date("to"),
        type=request.args.get("type") or None,
        limit=min(limit, 100), cursor=cursor)
    return jsonify(result)
