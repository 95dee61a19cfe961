"""The deliveries' part of the reconciler: the database holds the truth, Redis only
the jobs, and what Redis lost is enqueued again."""

from __future__ import annotations

import datetime as dt
import logging

from .. import fleet, queue
from ..models import Delivery, utcnow
from .attempt import enqueue_attempt

log = logging.getLogger(__name__)


def reconcile(min_age: float = 10.0, limit: int = 1000) -> dict:
    """Re-enqueue deliveries the database says are pending and Redis does not hold:
    ``queued`` ones whose job is gone (Redis restarted empty, a process died between
    commit and enqueue) and ``sending`` ones whose worker died (lease lapsed).
    ``min_age`` leaves alone rows changed in the last seconds (their job is on its way)."""
    now = utcnow()
    cutoff = now - dt.timedelta(seconds=min_age)
    requeued = recovered = 0
    for d in (Delivery.select(Delivery.id, Delivery.attempts, Delivery.next_attempt_at)
              .where((Delivery.status == "queued") & (Delivery.updated_at <= cutoff))
              .order_by(Delivery.updated_at).limit(limit)):
        if queue.job_pending(queue.delivery_job_id(d.id, d.attempts)):
            continue
        delay = 0.0
        if d.next_attempt_at is not None:
            delay = max((d.next_attempt_at - now).total_seconds(), 0.0)
        enqueue_attempt(d.id, d.attempts, delay)
        requeued += 1
    for d in (Delivery.select(Delivery.id, Delivery.attempts)
              .where((Delivery.status == "sending") & (Delivery.updated_at <= cutoff))
              .order_by(Delivery.updated_at).limit(limit)):
        if (fleet.held(fleet.delivery_lease_key(d.id))
                or queue.job_pending(queue.delivery_job_id(d.id, d.attempts))):
            continue
        enqueue_attempt(d.id, d.attempts, 0.0)
        recovered += 1
    if requeued or recovered:
        log.warning("reconcile: %s queued and %s interrupted deliveries re-enqueued",
                    requeued, recovered)
    return {"deliveries_requeued": requeued, "deliveries_recovered": recovered}
