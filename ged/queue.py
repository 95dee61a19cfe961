"""The seam around RQ: the queues, enqueueing, and the ``schedule_*`` functions by which
the domain asks for background work.

Nothing else in ged imports rq to enqueue. Jobs are named by string,
``ged.jobs.<function>``, so this module never imports the job entry points (nor the
domain they call): the domain imports ``queue``, and ``ged.jobs`` imports the domain.
Queues: ``deliveries`` (forwarding), ``index`` (search index writes, one writer per
firm), ``extract`` (the cheap part of text extraction: text layers, XML, office
files), ``default``: the light queues, whose jobs take seconds; and ``ocr``
(Tesseract, minutes per document), taken by workers of its own so that deliveries
and indexing never wait behind a scan.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from rq import Queue

from .fleet import connection, worker_alive
from .models import Document

log = logging.getLogger(__name__)

LIGHT_QUEUES = ["deliveries", "index", "extract", "default"]
OCR_QUEUE = "ocr"
QUEUES = [*LIGHT_QUEUES, OCR_QUEUE]
# Names `ged worker --queues` accepts besides the queues themselves.
QUEUE_GROUPS = {"light": LIGHT_QUEUES, "all": QUEUES}


def queue_names(names: list[str] | None) -> list[str]:
    """The queues named (``light`` and ``all`` expanded; none = all), in priority order;
    ValueError for an unknown name."""
    chosen: list[str] = []
    for name in names or ["all"]:
        name = name.strip()
        if name not in QUEUES and name not in QUEUE_GROUPS:
            raise ValueError(f"unknown queue {name!r}: choose among "
                             f"{', '.join([*QUEUES, *QUEUE_GROUPS])}")
        chosen += [q for q in QUEUE_GROUPS.get(name, [name]) if q not in chosen]
    return sorted(chosen, key=QUEUES.index)


def queue(name: str = "default") -> Queue:
    return Queue(name, connection=connection())


def enqueue(queue_name: str, func: str, *args, job_id: str | None = None, **kwargs):
    """Enqueue ``func`` (a dotted path) on a queue; returns the RQ job."""
    return queue(queue_name).enqueue(
        func,
        *args,
        job_id=job_id,
        result_ttl=600,
        failure_ttl=86400,
        job_timeout=kwargs.pop("job_timeout", 600),
        **kwargs,
    )


def enqueue_in(seconds: float, queue_name: str, func: str, *args, job_id: str | None = None,
               **kwargs):
    """Enqueue ``func`` to run after ``seconds`` (needs a worker with its scheduler on)."""
    if seconds <= 0:
        return enqueue(queue_name, func, *args, job_id=job_id, **kwargs)
    return queue(queue_name).enqueue_in(
        timedelta(seconds=seconds), func, *args, job_id=job_id, result_ttl=600,
        failure_ttl=86400, **kwargs
    )


# A job RQ still calls queued, scheduled or started is believed pending for this long
# at least; past it, only if something will really run it (see job_pending).
STALE_SECONDS = 30


def job_pending(job_id: str) -> bool:
    """True while a job with this id will still run: waiting on its queue, scheduled with
    a scheduler moving due jobs, or running in a live worker. A job taken by a worker
    that was then killed (dequeued or started), or left scheduled by a scheduler that
    died, is not pending: the reconciler enqueues it again at once instead of waiting
    for RQ's own cleanup, which takes minutes (issue 16)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus
    from rq.registry import ScheduledJobRegistry

    conn = connection()
    try:
        job = Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    now = time.time()
    if status == JobStatus.STARTED:
        return worker_alive(job.worker_name)
    if status == JobStatus.SCHEDULED:
        due = conn.zscore(ScheduledJobRegistry(job.origin, connection=conn).key, job.id)
        return due is not None and due > now - STALE_SECONDS
    if status == JobStatus.QUEUED:
        enqueued = job.enqueued_at or job.created_at
        if enqueued is not None and _timestamp(enqueued) > now - STALE_SECONDS:
            return True
        # Still on its queue (or between the queue and a worker that holds it).
        from rq.intermediate_queue import IntermediateQueue

        key = Queue(job.origin, connection=conn).key
        return any(conn.lpos(k, job.id) is not None
                   for k in (key, IntermediateQueue.get_intermediate_queue_key(key)))
    return status == JobStatus.DEFERRED


def _timestamp(moment) -> float:
    from datetime import timezone

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # RQ stores UTC
    return moment.timestamp()


# --- what the domain asks for -------------------------------------------------------
# Every job is safe to run twice (the reconciler may re-enqueue): the ids below only
# keep one copy of a job waiting at a time.


def extract_job_id(sha256: str) -> str:
    return f"extract-{sha256}"


def index_job_id(firm_id: str) -> str:
    return f"index-{firm_id}"


def delivery_job_id(delivery_id: str, attempts: int = 0) -> str:
    """The RQ job id of the attempt that follows ``attempts`` attempts: each attempt has
    its own, so scheduling a retry from inside a running job never reuses that job's id."""
    return f"delivery-{delivery_id}" if not attempts else f"delivery-{delivery_id}-{attempts}"


EXTRACT_JOB_TIMEOUT = 1200  # the cheap part only: OCR is on the ocr queue
DELIVERY_JOB_TIMEOUT = 300  # an attempt is bounded by the delivery timeouts well below


def schedule_text(doc: Document) -> None:
    """After a deposit: extract the blob's text once, or just index when already known."""
    if doc.text_status == "pending":
        schedule_extract(doc.blob_id)
    else:
        schedule_index(doc.firm_id)


def schedule_extract(sha256: str) -> None:
    enqueue("extract", "ged.jobs.extract_blob", sha256, job_id=extract_job_id(sha256),
            job_timeout=EXTRACT_JOB_TIMEOUT)


def schedule_ocr(count: int, job_timeout: int) -> None:
    """``count`` turns on the ``ocr`` queue: each reads one slice of whichever waiting
    document is fairest then (see extraction.ocr_next), so their order does not matter."""
    for _ in range(count):
        try:
            enqueue(OCR_QUEUE, "ged.jobs.ocr_next", job_timeout=job_timeout)
        except Exception:  # noqa: BLE001 - the reconciler tops the turns up
            log.exception("could not enqueue an OCR turn")
            return


def schedule_index(firm_id: str) -> None:
    """Index the firm's documents marked dirty (one writer per firm index)."""
    try:
        enqueue("index", "ged.jobs.index_firm", firm_id, job_id=index_job_id(firm_id))
    except Exception:  # noqa: BLE001 - the dirty flag stays; the reconciler re-enqueues
        log.exception("could not enqueue indexing for firm %s", firm_id)


def schedule_index_later(firm_id: str, seconds: float) -> None:
    """Come back to the firm's index after ``seconds`` (a rebuild holds it now). Called
    from the running index job, so under no job id: that one is still in use."""
    enqueue_in(seconds, "index", "ged.jobs.index_firm", firm_id)


def schedule_unindex(firm_id: str, document_id: str) -> None:
    try:
        enqueue("index", "ged.jobs.unindex_document", firm_id, document_id)
    except Exception:  # noqa: BLE001
        log.exception("could not enqueue removal of %s from the index", document_id)


def schedule_delivery(delivery_id: str, attempts: int = 0, delay: float = 0.0) -> None:
    """The attempt at a delivery that follows ``attempts`` attempts, in ``delay`` seconds
    (raises when Redis is away: the caller's row stays queued for the reconciler)."""
    enqueue_in(delay, "deliveries", "ged.jobs.deliver", delivery_id,
               job_id=delivery_job_id(delivery_id, attempts), job_timeout=DELIVERY_JOB_TIMEOUT)


def notification_job_id(notification_id: str) -> str:
    return f"notify-{notification_id}"


def schedule_deposit_notices(document_ids: list[str]) -> None:
    """Tell who follows a company about documents just deposited there."""
    if document_ids:
        enqueue("default", "ged.jobs.notify_deposited", document_ids)


def schedule_notification(notification_id: str, delay: float = 0.0) -> None:
    """Send one notification e-mail (in ``delay`` seconds: a retry)."""
    enqueue_in(delay, "default", "ged.jobs.send_notification", notification_id,
               job_id=notification_job_id(notification_id))


def schedule_notifications(notification_ids: list[str], batch_id: str) -> None:
    """Send a batch of notification e-mails in one job."""
    enqueue("default", "ged.jobs.send_notifications", notification_ids,
            job_id=f"notify-batch-{batch_id}")


def schedule_reset_mail(email: str) -> None:
    """A password reset asked for ``email`` (known or not: the job decides)."""
    enqueue("default", "ged.jobs.mail_reset_link", email)


def schedule_fiscal_year(task_id: str) -> None:
    """Open a fiscal year as a background task (its progress is on the task row)."""
    enqueue("default", "ged.jobs.open_fiscal_year", task_id, job_id=f"fiscal-year-{task_id}",
            job_timeout=3600)
