"""Background work: the RQ job entry points and the helpers that enqueue them.

Jobs are thin: each binds the process (``runtime``) and calls into the module of
its noun. Every job is safe to run twice (the reconciler may re-enqueue).
"""

from __future__ import annotations

import logging

from . import queue, runtime
from .db import db
from .models import Blob, Document

log = logging.getLogger(__name__)


def _bound(fn):
    """Run a job with a database connection open, closed afterwards."""

    def wrapper(*args, **kwargs):
        runtime.config()
        with db.connection_context():
            return fn(*args, **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# --- enqueueing -------------------------------------------------------------------


def schedule_text(doc: Document) -> None:
    """After a deposit: extract the blob's text once, or just index when already known."""
    if doc.text_status == "pending":
        queue.enqueue("extract", "ged.tasks.extract_blob", doc.blob_id,
                      job_id=f"extract-{doc.blob_id}", job_timeout=3600)
    else:
        schedule_index(doc.firm_id)


def schedule_index(firm_id: str) -> None:
    """Index the firm's documents marked dirty (one writer per firm index)."""
    try:
        queue.enqueue("index", "ged.tasks.index_firm", firm_id, job_id=f"index-{firm_id}")
    except Exception:  # noqa: BLE001 - the dirty flag stays; the reconciler re-enqueues
        log.exception("could not enqueue indexing for firm %s", firm_id)


def schedule_unindex(firm_id: str, document_id: str) -> None:
    try:
        queue.enqueue("index", "ged.tasks.unindex_document", firm_id, document_id)
    except Exception:  # noqa: BLE001
        log.exception("could not enqueue removal of %s from the index", document_id)


# --- jobs -------------------------------------------------------------------------


@_bound
def extract_blob(sha256: str) -> str:
    """Extract the text (and Factur-X data) of a blob, then index its documents."""
    from . import extraction

    status = extraction.extract_blob(sha256)
    for firm_id in {d.firm_id for d in Document.select(Document.firm).where(Document.blob == sha256)}:
        schedule_index(firm_id)
    return status


@_bound
def index_firm(firm_id: str) -> int:
    from . import search

    return search.index_dirty(firm_id)


@_bound
def unindex_document(firm_id: str, document_id: str) -> None:
    from . import search

    search.remove_document(firm_id, document_id)


@_bound
def deliver(delivery_id: str) -> str:
    from . import forwarding

    return forwarding.run(delivery_id)


@_bound
def reconcile() -> dict:
    """Re-enqueue what the database says is pending and Redis does not hold."""
    from . import forwarding

    result = forwarding.reconcile()
    pending = [b.sha256 for b in Blob.select(Blob.sha256).where(Blob.text_status == "pending").limit(1000)]
    for sha in pending:
        if not queue.job_pending(f"extract-{sha}"):
            queue.enqueue("extract", "ged.tasks.extract_blob", sha, job_id=f"extract-{sha}",
                          job_timeout=3600)
    for firm_id in {d.firm_id for d in Document.select(Document.firm).where(
            Document.index_dirty == True).distinct().limit(1000)}:  # noqa: E712
        if not queue.job_pending(f"index-{firm_id}"):
            schedule_index(firm_id)
    result["extractions_requeued"] = len(pending)
    return result
