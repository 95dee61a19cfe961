"""Answering a search: the query parsed, the scope computed, the engine asked, and
every hit read back from the database and checked against the scope again before
it is shown (an index behind the database never shows what it should not)."""

from __future__ import annotations

import logging
import time

import peewee as pw

from .. import queue
from ..errors import Invalid
from ..models import Blob, Document, Folder, User
from . import indexing
from .engine import backend
from .parsing import ParsedQuery, parse
from .scope import Scope, scope_for
from .source import folder_names

log = logging.getLogger(__name__)

MAX_OFFSET = 10_000


def _parse_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit() or int(cursor) > MAX_OFFSET:
        raise Invalid("cursor is not valid.", "invalid_cursor")
    return int(cursor)


def query(user: User, q: str, *, company_id=None, folder_id=None, date_from=None, date_to=None,
          type=None, limit: int = 20, cursor: str | None = None) -> dict:
    """Search what ``user`` may see: ``{"total", "items": [{document_id, name, company_id,
    folder_id, folder_path, snippet (HTML: escaped text and <mark> hits), score, ...}],
    "next_cursor"}``, best first."""
    parsed = parse(q)
    if parsed.empty and not (q or "").strip():
        raise Invalid("Type at least one word to search for.", "empty_query")
    limit = max(1, min(int(limit), 100))
    offset = _parse_cursor(cursor)
    scope = scope_for(user, company_id=company_id, folder_id=folder_id, date_from=date_from,
                      date_to=date_to, type=type)
    if parsed.empty or scope.company_ids == []:
        return {"total": 0, "items": [], "next_cursor": None}
    engine = backend()
    try:
        total, hits = engine.search(user.firm_id, parsed, scope, offset=offset, limit=limit)
    except engine.IndexUnavailable:
        # A firm whose documents were never indexed yet (its first deposits, the index
        # job still to run or building the first index) has nothing to find: an empty
        # answer, not an error. An index lost or damaged once documents were in it is
        # reported (503) and rebuilt.
        never_indexed = not engine.exists(user.firm_id) and _none_indexed(user.firm_id)
        _heal(user.firm_id)
        if never_indexed:
            return {"total": 0, "items": [], "next_cursor": None}
        raise
    if engine.stale(user.firm_id):
        _heal_stale(user.firm_id)  # meanwhile the old index answers
    items = _items(user, scope, parsed, hits)
    more = offset + limit < total and offset + limit <= MAX_OFFSET
    return {"total": total, "items": items, "next_cursor": str(offset + limit) if more else None}


def _none_indexed(firm_id: str) -> bool:
    """Whether no document of the firm was ever indexed: each is still marked dirty, or
    was taken by the writer now building the firm's first index (a sample suffices: an
    index lost later leaves documents neither dirty nor taken)."""
    indexed = [r[0] for r in Document.select(Document.id).where(
        (Document.firm == firm_id) & (Document.index_dirty == False))  # noqa: E712
        .limit(100).tuples()]
    if not indexed:
        return True
    try:
        return indexing.all_claimed(firm_id, indexed)
    except Exception:  # noqa: BLE001 - Redis away: say the index is unavailable (503)
        log.exception("could not read the search writer's claims of firm %s", firm_id)
        return False


def _heal(firm_id: str) -> None:
    """A missing or damaged index: have the index job rebuild it from the database."""
    queue.schedule_index(firm_id)


_stale_asked: dict[str, float] = {}
STALE_RETRY = 60.0  # seconds between two requests to rebuild the same stale index


def _heal_stale(firm_id: str) -> None:
    """An index built by an older analysis: have the index job rebuild it (it sees
    ``engine.stale``), asking at most once a minute per process."""
    now = time.monotonic()
    if now - _stale_asked.get(firm_id, -STALE_RETRY) < STALE_RETRY:
        return
    _stale_asked[firm_id] = now
    try:
        if not queue.job_pending(queue.index_job_id(firm_id)):
            _heal(firm_id)
    except Exception:  # noqa: BLE001 - Redis away: the next deposit's job rebuilds it
        log.exception("could not ask for a rebuild of the stale index of firm %s", firm_id)


def _items(user: User, scope: Scope, parsed: ParsedQuery, hits: list[tuple[str, float]]) -> list:
    """The API items of the hits, read from the database and checked against it again."""
    if not hits:
        return []
    engine = backend()
    ids = [doc_id for doc_id, _score in hits]
    rows = {r[0]: r for r in Document.select(
        Document.id, Document.name, Document.company, Document.folder, Document.content_type,
        Document.deposited_at, Document.trashed_at, Document.firm, Folder.path,
        pw.fn.SUBSTR(Blob.text, 1, engine.EXCERPT_CHARS))
        .join(Folder, on=(Document.folder == Folder.id))
        .switch(Document).join(Blob, on=(Document.blob == Blob.sha256))
        .where(Document.id.in_(ids)).tuples()}
    names = folder_names([r[8] for r in rows.values()])
    allowed = set(scope.company_ids) if scope.company_ids is not None else None
    items = []
    for doc_id, score in hits:
        row = rows.get(doc_id)
        if row is None:
            continue
        (_id, name, company, folder, ctype, deposited, trashed, firm, path, text) = row
        if (firm != user.firm_id or trashed is not None
                or (allowed is not None and company not in allowed)
                or any(path.startswith(p) for p in scope.hidden_prefixes)
                or (scope.folder_prefix and not path.startswith(scope.folder_prefix))):
            continue  # the index was behind the database: never show it
        ids_in_path = [part for part in path.split("/") if part]
        items.append({
            "document_id": doc_id,
            "name": name,
            "company_id": company,
            "folder_id": folder,
            "folder_path": "/" + "/".join(names.get(i, "") for i in ids_in_path[1:]),
            "content_type": ctype,
            "deposited_at": deposited.isoformat(),
            "snippet": engine.make_snippet(text, parsed, fallback=name),
            "score": round(float(score), 4),
        })
    return items
