"""Who may see what: the scope of one search, as filters the engines apply apart from
the query text (companies, hidden folder subtrees, the caller's own filters). The
hits are checked against the database again (``search.results``), so a stale index
never shows what the caller may not see."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .. import permissions
from ..errors import Invalid
from ..models import User


@dataclass
class Scope:
    """What one search may return, as filters: companies (None: the whole firm),
    folder subtrees hidden from the caller, and the caller's own filters."""

    firm_id: str
    company_ids: list[str] | None
    hidden_folder_ids: list[str]
    hidden_prefixes: list[str]
    folder_id: str | None = None
    folder_prefix: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    type: str | None = None


TYPES = ("pdf", "image", "text", "xml", "office", "invoice")
# The kind of a document for the ``type`` filter, by content type (any other: "office";
# a document with invoice data is also of the kind "invoice").
KIND_OF = {
    "application/pdf": "pdf",
    "image/jpeg": "image", "image/png": "image", "image/tiff": "image", "image/heic": "image",
    "text/plain": "text", "text/csv": "text",
    "application/xml": "xml",
}


def scope_for(user: User, *, company_id=None, folder_id=None, date_from=None, date_to=None,
              type=None) -> Scope:
    """The scope of a search by ``user`` with the given filters (NotFound for a company
    or folder the user may not see, Invalid for a bad filter)."""
    if type is not None and type not in TYPES:
        raise Invalid(f"type must be one of: {', '.join(TYPES)}.", "invalid_type")
    if date_from and date_to and date_from > date_to:
        raise Invalid("from must not be after to.", "invalid_dates")
    folder = None
    if folder_id:
        folder = permissions.folder_for(user, folder_id)
        company_ids = [folder.company_id]
        if company_id and str(company_id) != folder.company_id:
            company_ids = []  # a folder of another company: nothing matches both
    elif company_id:
        company_ids = [permissions.company_for(user, company_id).id]
    elif user.role == "admin":
        company_ids = None
    else:
        company_ids = permissions.visible_company_ids(user)
    prefixes = permissions.hidden_prefixes_in(user, company_ids) if company_ids != [] else []
    return Scope(
        firm_id=user.firm_id,
        company_ids=company_ids,
        hidden_folder_ids=[p.rstrip("/").rsplit("/", 1)[-1] for p in prefixes],
        hidden_prefixes=prefixes,
        folder_id=folder.id if folder else None,
        folder_prefix=folder.path if folder else None,
        date_from=date_from,
        date_to=date_to,
        type=type,
    )
