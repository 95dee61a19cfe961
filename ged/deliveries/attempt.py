"""One attempt at a delivery, as the RQ job ``ged.jobs.deliver`` runs it: lease,
claim, send, record the outcome, schedule the next attempt.

A delivery moves ``queued`` → ``sending`` → ``sent`` (e-mail) or ``accepted``
(http, 2xx) → ``validated``/``rejected`` (the tool's verdict, see ``verdicts``), or
``failed``. Between attempts it is ``queued`` again with ``next_attempt_at`` set.
Every transition is a guarded UPDATE (``WHERE status IN (...)``), so a late retry
or a duplicate job never moves a delivery backwards.

The attempt after ``n`` attempts runs under the job id
``queue.delivery_job_id(id, n)``. A Redis lease (``fleet.delivery_lease_key``,
expiring a little after the longest an attempt may take) says a worker is sending
right now; ``reconcile`` relies on it to find deliveries whose worker died.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time

from .. import audit, fleet, notification_events, queue, runtime
from ..db import transaction
from ..models import Blob, Company, Connection, Delivery, Document, Folder, utcnow
from . import email, http
from .outcome import Outcome, fail, retry
from .status import IN_FLIGHT, mark_success, refresh_document_status

log = logging.getLogger(__name__)

ACTOR = "transmission"  # how the delivery worker appears in the audit trail


def enqueue(deliveries: list[Delivery]) -> None:
    """Put new deliveries on the ``deliveries`` queue (after their rows are committed)."""
    for delivery in deliveries:
        queue.schedule_delivery(delivery.id)


def enqueue_attempt(delivery_id: str, attempts: int, delay: float) -> None:
    """Schedule the attempt after ``attempts`` attempts; a Redis away is logged, and the
    reconciler finds the delivery in the database later."""
    try:
        queue.schedule_delivery(delivery_id, attempts, delay)
    except Exception:  # noqa: BLE001 - the reconciler finds it in the database
        log.exception("could not enqueue delivery %s; the reconciler will", delivery_id)


def lease_seconds(cfg) -> int:
    """How long a worker holds a delivery: the longest an attempt may take, and a margin."""
    return int(math.ceil(cfg.delivery_connect_timeout + cfg.delivery_timeout)) + 2


def retry_delay(schedule: list[float], attempts: int, retry_after: float | None) -> float:
    """Seconds before the next attempt after ``attempts`` attempts: the schedule's step,
    or longer if the tool said so with Retry-After (capped by the longest step)."""
    step = schedule[min(attempts, len(schedule)) - 1] if schedule else 0.0
    if retry_after is not None and schedule:
        step = max(step, min(retry_after, max(schedule)))
    return float(step)


def run(delivery_id: str) -> str:
    """The RQ job: make one attempt at a delivery and record its outcome; schedules the
    next attempt when the outcome calls for one. Safe to run twice."""
    cfg = runtime.config()
    delivery = Delivery.get_or_none(Delivery.id == delivery_id)
    if delivery is None:
        return "missing"
    if delivery.status not in IN_FLIGHT:
        return delivery.status
    if delivery.status == "queued" and delivery.next_attempt_at is not None:
        wait = (delivery.next_attempt_at - utcnow()).total_seconds()
        if wait > 1.0:
            return "early"  # a stray duplicate: the scheduled job will come at its time
        if wait > 0:
            # RQ schedules to the whole second, so a retry may fall due up to a second
            # early; waiting keeps the promised delay (and a tool's Retry-After).
            time.sleep(wait)
    lease = fleet.Lease(fleet.delivery_lease_key(delivery.id), lease_seconds(cfg))
    if not lease.acquire():
        return "busy"  # another worker is sending it right now
    try:
        claimed = Delivery.update(status="sending", attempts=Delivery.attempts + 1,
                                  next_attempt_at=None, updated_at=utcnow()).where(
            (Delivery.id == delivery.id) & (Delivery.status == delivery.status)
            & (Delivery.attempts == delivery.attempts)).execute()
        if not claimed:  # another worker moved it since we read it
            return Delivery.get_by_id(delivery.id).status
        # The row is now what we read plus the claim: no need to read it again.
        delivery.status, delivery.attempts = "sending", delivery.attempts + 1
        delivery.next_attempt_at = None
        outcome = _attempt(cfg, delivery, lease)
        return _record(cfg, delivery, outcome)
    finally:
        lease.release()


def _document(document_id: str) -> Document:
    """The document with its blob, company and folder, in one query."""
    return (Document.select(Document, Blob.sha256, Blob.facturx, Blob.text_status, Company,
                            Folder)
            .join(Blob, on=(Document.blob == Blob.sha256)).switch(Document)
            .join(Company, on=(Document.company == Company.id)).switch(Document)
            .join(Folder, on=(Document.folder == Folder.id))
            .where(Document.id == document_id).get())


def _attempt(cfg, delivery: Delivery, lease: fleet.Lease) -> Outcome:
    conn = Connection.get_by_id(delivery.connection_id)
    doc = _document(delivery.document_id)
    if conn.deleted_at is not None:
        return fail("La connexion a été supprimée.")
    if conn.paused:
        return fail("La connexion est en pause : rien n'a été envoyé. Après la reprise, "
                    "renvoyez le document à la main.")
    if doc.trashed_at is not None:
        return fail("Le document a été mis à la corbeille avant son envoi.")
    try:
        sender = http if conn.kind == "http" else email
        return sender.deliver(cfg, delivery, doc, conn, lease)
    except Exception as exc:  # noqa: BLE001 - any surprise is retried, then fails visibly
        log.exception("delivery %s: unexpected error", delivery.id)
        return retry(f"Erreur interne : {type(exc).__name__}: {exc}")


def _record(cfg, delivery: Delivery, outcome: Outcome) -> str:
    """Write an attempt's outcome (guarded: only a delivery still ``sending`` moves)."""
    now = utcnow()
    details = {"document_id": delivery.document_id, "connection_id": delivery.connection_id,
               "attempts": delivery.attempts, "status_code": outcome.status_code}
    sending = (Delivery.id == delivery.id) & (Delivery.status == "sending")
    if outcome.kind == "success":
        with transaction():
            moved = Delivery.update(status=outcome.status, last_error=None,
                                    updated_at=now).where(sending).execute()
            # Even when a verdict got here first (moved = 0): the tool did answer 2xx.
            mark_success(delivery, now)
            if moved:
                audit.record(ACTOR, f"delivery.{outcome.status}", delivery, details=details,
                             firm_only=True)
        return outcome.status
    schedule = cfg.delivery_retry_schedule
    if outcome.kind == "retry" and delivery.attempts <= len(schedule):
        delay = retry_delay(schedule, delivery.attempts, outcome.retry_after)
        with transaction():
            moved = Delivery.update(status="queued", last_error=outcome.error,
                                    next_attempt_at=now + dt.timedelta(seconds=delay),
                                    updated_at=now).where(sending).execute()
            if moved:
                audit.record(ACTOR, "delivery.retry_scheduled", delivery, firm_only=True,
                             details={**details, "error": outcome.error, "delay": delay})
        if moved:
            enqueue_attempt(delivery.id, delivery.attempts, delay)
        return "queued"
    error = outcome.error or "Échec."
    if outcome.kind == "retry":
        error = f"{error} (abandon après {delivery.attempts} tentatives)"
    with transaction():
        moved = Delivery.update(status="failed", last_error=error, updated_at=now).where(
            sending).execute()
        if moved:
            # The document's row is locked before the audit trail's (the order of every path).
            refresh_document_status(delivery.document_id)
            audit.record(ACTOR, "delivery.failed", delivery, firm_only=True,
                         details={**details, "error": error})
        if moved and outcome.pause:
            paused = Connection.update(paused=True, paused_reason=error).where(
                (Connection.id == delivery.connection_id) & (Connection.paused == False)  # noqa: E712
            ).execute()
            if paused:
                audit.record(ACTOR, "connection.paused", Connection.get_by_id(
                    delivery.connection_id), firm_only=True, details={"reason": error})
    if moved:
        notification_events.delivery_failed(delivery.id)  # who is told (never raises)
    return "failed"
