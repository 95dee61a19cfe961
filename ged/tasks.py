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


EXTRACT_JOB_TIMEOUT = 1200  # the cheap part only: OCR is on the ocr queue


def schedule_text(doc: Document) -> None:
    """After a deposit: extract the blob's text once, or just index when already known."""
    if doc.text_status == "pending":
        schedule_extract(doc.blob_id)
    else:
        schedule_index(doc.firm_id)


def schedule_extract(sha256: str) -> None:
    queue.enqueue("extract", "ged.tasks.extract_blob", sha256, job_id=f"extract-{sha256}",
                  job_timeout=EXTRACT_JOB_TIMEOUT)


def schedule_ocr(count: int = 1) -> None:
    """``count`` turns on the ``ocr`` queue: each reads one slice of whichever waiting
    document is fairest then (see extraction.ocr_next), so their order does not matter."""
    from . import extraction

    cfg = runtime.config()
    timeout = int(cfg.ocr_slice_seconds + cfg.ocr_page_seconds + extraction.OCR_GUARD_SECONDS
                  + 300)
    for _ in range(count):
        try:
            queue.enqueue(queue.OCR_QUEUE, "ged.tasks.ocr_next", job_timeout=timeout)
        except Exception:  # noqa: BLE001 - the reconciler tops the turns up
            log.exception("could not enqueue an OCR turn")
            return


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
    """Extract the text (and Factur-X data) of a blob, then index its documents; pages
    to OCR are left to the ``ocr`` queue."""
    from . import extraction

    status = extraction.extract_blob(sha256, defer_ocr=True)
    if status == "ocr":
        schedule_ocr()
    else:
        _index_documents_of(sha256)
    return status


@_bound
def ocr_next() -> str:
    """One OCR turn: a slice of the waiting document of the firm served least recently."""
    from . import extraction

    done = extraction.ocr_next()
    if done is None:
        return "idle"
    sha256, status = done
    if status == "ocr":
        schedule_ocr()  # its next slice, after the other firms' turns
    else:
        _index_documents_of(sha256)
    return status


def _index_documents_of(sha256: str) -> None:
    for firm_id in {d.firm_id for d in Document.select(Document.firm).where(Document.blob == sha256)}:
        schedule_index(firm_id)


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
    from . import extraction, forwarding

    result = forwarding.reconcile()
    pending = [b.sha256 for b in Blob.select(Blob.sha256).where(
        (Blob.text_status == "pending") & Blob.ocr_state.is_null()).limit(1000)]
    from .documents import blobs_to_copy

    pending += blobs_to_copy(1000)  # text known, its copy onto a new deposit lost
    requeued = 0
    for sha in pending:
        if not queue.job_pending(f"extract-{sha}"):
            schedule_extract(sha)  # each attempt counts: a file that keeps failing ends failed
            requeued += 1
    # Documents waiting for OCR that no worker reads need as many turns queued.
    missing = len(extraction.waiting_for_ocr()) - queue.queue(queue.OCR_QUEUE).count
    if missing > 0:
        schedule_ocr(missing)
    result["ocr_turns_added"] = max(missing, 0)
    for firm_id in {d.firm_id for d in Document.select(Document.firm).where(
            Document.index_dirty == True).distinct().limit(1000)}:  # noqa: E712
        if not queue.job_pending(f"index-{firm_id}"):
            schedule_index(firm_id)
    result["extractions_requeued"] = requeued
    result.update(_client_work_pass())  # issue 21: reminders, digests, notifications
    return result


def _client_work_pass(now=None) -> dict:
    """The periodic part of the work with clients (see ``client_work``); a failure is
    logged and leaves the reconciler's result intact."""
    from . import document_requests, notifications

    try:
        return {"reminders_sent": document_requests.reminders_pass(now),
                "digests_made": notifications.digest_pass(now),
                "notifications_requeued": notifications.requeue_pending(now)}
    except Exception:  # noqa: BLE001 - retried at the next pass
        log.exception("client work pass failed")
        return {}


@_bound
def client_work(now_iso: str | None = None) -> dict:
    """Reminders due, daily digests due, notifications to send again; ``now_iso`` is the
    injectable clock of tests (ISO 8601), default now."""
    import datetime as dt

    return _client_work_pass(dt.datetime.fromisoformat(now_iso) if now_iso else None)


@_bound
def send_notification(notification_id: str) -> str:
    """Send one notification e-mail (claimed first, retried on failure)."""
    from . import notifications

    return notifications.send(notification_id)


@_bound
def send_notifications(notification_ids: list[str]) -> dict:
    """Send a batch of notification e-mails, each claimed and retried on its own."""
    from . import notifications

    return notifications.send_many(notification_ids)
