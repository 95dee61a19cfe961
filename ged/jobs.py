"""The RQ job entry points: the only functions named in job strings ("ged.jobs.<name>").

Jobs are thin: each binds the process (``runtime``), opens a database connection and
calls into the module of its noun; the domain asks for them through the
``queue.schedule_*`` functions and never imports this module. Every job is safe to
run twice (the reconciler may re-enqueue).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging

from . import (deliveries, document_requests, documents, extraction, fiscal_years,
               notification_events, notifications, passwords, queue, runtime, search)
from .db import db
from .models import Blob, Document

log = logging.getLogger(__name__)


def _bound(fn):
    """Run a job with a database connection open, closed afterwards."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        runtime.config()
        with db.connection_context():
            return fn(*args, **kwargs)

    return wrapper


def _schedule_ocr(count: int = 1) -> None:
    cfg = runtime.config()
    timeout = int(cfg.ocr_slice_seconds + cfg.ocr_page_seconds + extraction.OCR_GUARD_SECONDS
                  + 300)
    queue.schedule_ocr(count, timeout)


def _index_documents_of(sha256: str) -> None:
    for firm_id in {d.firm_id for d in Document.select(Document.firm).where(Document.blob == sha256)}:
        queue.schedule_index(firm_id)


@_bound
def extract_blob(sha256: str) -> str:
    """Extract the text (and Factur-X data) of a blob, then index its documents; pages
    to OCR are left to the ``ocr`` queue."""
    status = extraction.extract_blob(sha256, defer_ocr=True)
    if status == "ocr":
        _schedule_ocr()
    else:
        _index_documents_of(sha256)
    return status


@_bound
def ocr_next() -> str:
    """One OCR turn: a slice of the waiting document of the firm served least recently."""
    done = extraction.ocr_next()
    if done is None:
        return "idle"
    sha256, status = done
    if status == "ocr":
        _schedule_ocr()  # its next slice, after the other firms' turns
    else:
        _index_documents_of(sha256)
    return status


@_bound
def index_firm(firm_id: str) -> int:
    return search.index_dirty(firm_id)


@_bound
def unindex_document(firm_id: str, document_id: str) -> None:
    search.remove_document(firm_id, document_id)


@_bound
def deliver(delivery_id: str) -> str:
    return deliveries.run(delivery_id)


@_bound
def reconcile() -> dict:
    """Re-enqueue what the database says is pending and Redis does not hold."""
    result = deliveries.reconcile()
    pending = [b.sha256 for b in Blob.select(Blob.sha256).where(
        (Blob.text_status == "pending") & Blob.ocr_state.is_null()).limit(1000)]
    pending += documents.blobs_to_copy(1000)  # text known, its copy onto a new deposit lost
    requeued = 0
    for sha in pending:
        if not queue.job_pending(queue.extract_job_id(sha)):
            queue.schedule_extract(sha)  # each attempt counts: a file that keeps failing ends failed
            requeued += 1
    # Documents waiting for OCR that no worker reads need as many turns queued.
    missing = len(extraction.waiting_for_ocr()) - queue.queue(queue.OCR_QUEUE).count
    if missing > 0:
        _schedule_ocr(missing)
    result["ocr_turns_added"] = max(missing, 0)
    for firm_id in {d.firm_id for d in Document.select(Document.firm).where(
            Document.index_dirty == True).distinct().limit(1000)}:  # noqa: E712
        if not queue.job_pending(queue.index_job_id(firm_id)):
            queue.schedule_index(firm_id)
    result["extractions_requeued"] = requeued
    result.update(_client_work_pass())  # reminders, digests, notifications
    return result


def _client_work_pass(now=None) -> dict:
    """The periodic part of the work with clients (see ``client_work``); a failure is
    logged and leaves the reconciler's result intact."""
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
    return _client_work_pass(dt.datetime.fromisoformat(now_iso) if now_iso else None)


@_bound
def notify_deposited(document_ids: list[str]) -> list[str]:
    """Record (and send) the notices of documents just deposited."""
    docs = list(Document.select().where(Document.id.in_(document_ids)))
    return notification_events.documents_deposited(docs)


@_bound
def send_notification(notification_id: str) -> str:
    """Send one notification e-mail (claimed first, retried on failure)."""
    return notifications.send(notification_id)


@_bound
def send_notifications(notification_ids: list[str]) -> dict:
    """Send a batch of notification e-mails, each claimed and retried on its own."""
    return notifications.send_many(notification_ids)


@_bound
def mail_reset_link(email: str) -> bool:
    """Mail a password-reset link when ``email`` is a user's (silently nothing else)."""
    return passwords.mail_link_to(email)


@_bound
def open_fiscal_year(task_id: str) -> dict:
    """Open a fiscal year for the firm's companies (see fiscal_years.run_task)."""
    return fiscal_years.run_task(task_id)
