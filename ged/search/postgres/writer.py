"""Writing the PostgreSQL engine's rows: plain transactions (searches see the old
rows until a write or a rebuild commits). The caller (``search.indexing``) holds the
firm's writer lock."""

from __future__ import annotations

import datetime as dt

import peewee as pw

from ...db import db, transaction
from ..folding import ANALYSIS_VERSION
from ..scope import KIND_OF
from . import schema
from .analysis import analysed, tsvector_sql
from .schema import NeedsRebuild

INDEX_CHARS = 400_000  # text indexed per document (a tsvector holds at most 1 MB)
BATCH = 200


def _invoice_text(facturx: dict | None) -> str:
    return " ".join(str(v) for k, v in sorted((facturx or {}).items())
                    if v and k not in ("source", "schema_valid"))


def _row(firm_id: str, doc) -> tuple:
    deposited = doc.deposited_at
    if deposited.tzinfo is not None:  # stored as naive UTC, like every ged timestamp
        deposited = deposited.astimezone(dt.timezone.utc).replace(tzinfo=None)
    path = "/" + "".join(f"{i}/" for i in doc.folder_ids)
    return (doc.id, firm_id, doc.company_id, path, KIND_OF.get(doc.content_type, "office"),
            bool(doc.facturx), deposited, analysed(doc.name), analysed(doc.folder_path),
            analysed(_invoice_text(doc.facturx)), analysed((doc.text or "")[:INDEX_CHARS]))


_UPSERT = f"""
INSERT INTO search_entry (document_id, firm_id, company_id, folder_path, kind, invoice,
                          deposited_at, tsv)
SELECT v.id, v.firm, v.company, v.path, v.kind, v.invoice, v.deposited::timestamp,
       setweight({tsvector_sql("v.name")}, 'A')
       || setweight({tsvector_sql("v.folders")}, 'B')
       || setweight({tsvector_sql("v.invoice_text")}, 'C')
       || setweight({tsvector_sql("v.body")}, 'D')
FROM (VALUES %s) AS v(id, firm, company, path, kind, invoice, deposited, name, folders,
                      invoice_text, body)
ON CONFLICT (document_id) DO UPDATE SET
    company_id = EXCLUDED.company_id, folder_path = EXCLUDED.folder_path,
    kind = EXCLUDED.kind, invoice = EXCLUDED.invoice, deposited_at = EXCLUDED.deposited_at,
    tsv = EXCLUDED.tsv
"""


def _insert(firm_id: str, docs, progress=None) -> int:
    from psycopg2.extras import execute_values

    count = 0
    batch: list[tuple] = []
    cursor = db.cursor()

    def flush():
        execute_values(cursor, _UPSERT, batch, page_size=len(batch))

    for doc in docs:
        batch.append(_row(firm_id, doc))
        if len(batch) >= BATCH:
            flush()
            count += len(batch)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        flush()
        count += len(batch)
        if progress:
            progress(len(batch))
    return count


def write(firm_id: str, docs, remove_ids: list[str]) -> None:
    """Add or replace ``docs`` and remove ``remove_ids``, in one transaction."""
    if not schema.exists(firm_id):
        raise NeedsRebuild()
    try:
        with transaction():
            for i in range(0, len(remove_ids), 1000):
                db.execute_sql("DELETE FROM search_entry WHERE firm_id = %s "
                               "AND document_id = ANY(%s)", (firm_id, list(remove_ids[i:i + 1000])))
            _insert(firm_id, docs)
    except pw.DatabaseError as exc:
        if not schema.missing_table(exc):
            raise
        schema.forget()
        raise NeedsRebuild() from exc


def rebuild(firm_id: str, docs, progress=None) -> int:
    """Replace the firm's rows by ``docs`` in one transaction: searches see the old
    rows until the new ones are all there."""
    if schema.kind() is None or schema.scalar("SELECT to_regclass('search_version')") is None:
        schema.init()
    with transaction():
        db.execute_sql("DELETE FROM search_entry WHERE firm_id = %s", (firm_id,))
        count = _insert(firm_id, docs, progress)
        db.execute_sql("INSERT INTO search_version (firm_id, analysis) VALUES (%s, %s) "
                       "ON CONFLICT (firm_id) DO UPDATE SET analysis = EXCLUDED.analysis",
                       (firm_id, ANALYSIS_VERSION))
    if count > 10_000:  # fresh statistics, so the planner knows how common words are
        db.execute_sql("ANALYZE search_entry")
    return count
