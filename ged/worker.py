"""The RQ worker: deliveries, text extraction and indexing, plus the reconciler.

A non-forking worker (RQ's SimpleWorker) runs jobs in-process: about four times
the throughput of the forking one on small machines. Jobs that parse untrusted
files (extraction) isolate the risky part in a child process themselves, so a
crash there never takes the worker down. The reconciler runs on a timer in every
worker, but a Redis lock with expiry makes it run once across the fleet.
"""

from __future__ import annotations

import logging
import os
import threading

from rq import SimpleWorker

from . import queue, runtime

log = logging.getLogger(__name__)


def once_across_fleet(name: str, interval: float) -> bool:
    """True for the one process of the fleet that should run the periodic job ``name``
    now: a Redis key with expiry (SET NX EX) lets at most one pass start per
    ``interval``, whatever the number of workers and hosts. A holder killed mid-pass
    blocks nobody past the expiry; a pass outliving it may overlap the next one,
    which is harmless because periodic jobs are idempotent (see ged.tasks)."""
    return bool(queue.connection().set(f"ged:periodic:{name}", os.getpid(), nx=True,
                                       ex=max(int(interval), 1)))


def _reconcile_loop(stop: threading.Event, interval: float) -> None:
    from . import tasks

    while not stop.wait(interval):
        try:
            if once_across_fleet("reconcile", interval):
                tasks.reconcile()  # binds its own database connection
        except Exception:  # noqa: BLE001 - a failed pass is retried at the next tick
            log.exception("reconcile pass failed")


def run(burst: bool = False, queues: list[str] | None = None) -> None:
    """Run a worker on ``queues`` (default: all) until stopped."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = runtime.config()
    conn = queue.connection()
    worker = SimpleWorker([queue.queue(name) for name in (queues or queue.QUEUES)],
                          connection=conn)
    stop = threading.Event()
    if not burst and cfg.reconcile_interval > 0:
        threading.Thread(target=_reconcile_loop, args=(stop, cfg.reconcile_interval),
                         daemon=True, name="reconciler").start()
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
    finally:
        stop.set()
