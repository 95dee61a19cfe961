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
import signal
import threading
from datetime import datetime, timedelta, timezone

from rq import SimpleWorker

from . import fleet, jobs, processes, queue, runtime

log = logging.getLogger(__name__)

# How often a worker looks for a free RQ scheduler lock (and cleans RQ's registries):
# RQ's default of ten minutes left scheduled retries that long without a scheduler
# after the worker holding the lock died.
MAINTENANCE_INTERVAL = 60


class JobAbandoned(BaseException):
    """Raised inside the job a stopping worker gives up on. A BaseException, so no
    ``except Exception`` in a job mistakes it for a failure of the job itself."""


class Worker(SimpleWorker):
    """RQ's SimpleWorker with a bounded stop. At SIGTERM or SIGINT an idle worker
    stops at once; a busy one lets its job run ``stop_grace`` more seconds, then (or
    at a second signal) abandons it: the job's transaction rolls back, the job goes
    back on its queue (every job is safe to run twice) and the worker exits."""

    stop_grace = 8.0
    _current = None
    _abandoning = False

    def execute_job(self, job, queue):
        self._current = job
        try:
            super().execute_job(job, queue)
        finally:
            self._current = None
        if self._abandoning:
            self._put_back(job)

    def _put_back(self, job) -> None:
        try:
            job.requeue(at_front=True)
            log.warning("job %s (%s) abandoned by the stopping worker: back on queue %s",
                        job.id, job.func_name, job.origin)
        except Exception:  # noqa: BLE001 - the reconciler enqueues it again from the database
            log.warning("job %s abandoned by the stopping worker; the reconciler will "
                        "enqueue it again", job.id)

    def request_stop(self, signum, frame):
        if self._current is None:
            return super().request_stop(signum, frame)  # idle: RQ stops the loop now
        self._shutdown_requested_date = datetime.now(timezone.utc)
        self._stop_requested = True
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        log.warning("stopping: job %s has %.0f s to finish before it is put back on its queue",
                    self._current.id, self.stop_grace)
        # Replaces the job's timeout alarm: the job ends within the grace either way.
        signal.signal(signal.SIGALRM, self._abandon)
        signal.setitimer(signal.ITIMER_REAL, max(0.01, self.stop_grace))

    def request_force_stop(self, signum, frame):
        # A group-wide signal reaches a process twice (once from the terminal, once
        # from its supervisor): the second copy within a second is the same request.
        if datetime.now(timezone.utc) - self._shutdown_requested_date < timedelta(seconds=1):
            return
        self._abandon(signum, frame)

    def _abandon(self, signum, frame):
        if self._current is None or self._abandoning:
            return  # between jobs: the loop is already ending
        self._abandoning = True
        raise JobAbandoned(f"the worker is stopping; job {self._current.id} abandoned")

    def handle_exception(self, job, *exc_info):
        if isinstance(exc_info[1], JobAbandoned):
            return  # not a failure of the job: no traceback in the log
        return super().handle_exception(job, *exc_info)

    def unsubscribe(self):
        # RQ's, with a bounded wait: redis-py 8's PubSubWorkerThread.stop() joins the
        # thread, which may be sitting out RQ's 60-second poll once unsubscribed, and
        # held a stopping worker for up to a minute.
        thread = self.pubsub_thread
        if not thread:
            return
        self.pubsub.unsubscribe()
        try:
            thread.stop(timeout=1)
        except TypeError:  # redis-py before 8: stop() does not wait
            thread.stop()
            thread.join(timeout=1)
        if not thread.is_alive():
            self.pubsub.close()


def _reconcile_loop(stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        try:
            if fleet.periodic_turn("reconcile", interval):
                jobs.reconcile()  # binds its own database connection
        except Exception:  # noqa: BLE001 - a failed pass is retried at the next tick
            log.exception("reconcile pass failed")


# An idle worker comes out of its blocking wait on the queues every WORKER_TTL - 15
# seconds to run its maintenance (taking over a dead worker's scheduler lock); RQ's
# default of 420 made that up to seven minutes.
WORKER_TTL = 35
BEAT_SECONDS = 5


def _beat_loop(stop: threading.Event, name: str) -> None:
    """Say this worker is alive every few seconds (see fleet.worker_alive): the jobs of
    a worker that stops saying so are taken up again by the reconciler."""
    while True:
        try:
            fleet.worker_beat(name)
        except Exception:  # noqa: BLE001 - Redis away: the next beat tries again
            log.warning("worker heartbeat failed", exc_info=True)
        if stop.wait(BEAT_SECONDS):
            return


def run(burst: bool = False, queues: list[str] | None = None) -> None:
    """Run a worker on ``queues`` (names or groups, see queue.queue_names; default:
    all) until stopped. It takes from its queues in turn (round robin), so a burst
    of deliveries never holds back indexing and extraction."""
    from rq.worker import DequeueStrategy

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Every process this worker forks (RQ's scheduler, OCR processes) ends with it, even
    # when it is killed outright: none keeps running, or holding a lock, on its own.
    os.register_at_fork(after_in_child=lambda: processes.die_with_parent(signal.SIGTERM))
    cfg = runtime.config()
    conn = fleet.connection()
    worker = Worker([queue.queue(name) for name in queue.queue_names(queues)],
                    connection=conn, maintenance_interval=MAINTENANCE_INTERVAL,
                    worker_ttl=WORKER_TTL)
    worker.stop_grace = cfg.worker_stop_grace
    stop = threading.Event()
    threading.Thread(target=_beat_loop, args=(stop, worker.name), daemon=True,
                     name="heartbeat").start()
    if not burst and cfg.reconcile_interval > 0:
        threading.Thread(target=_reconcile_loop, args=(stop, cfg.reconcile_interval),
                         daemon=True, name="reconciler").start()
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level="WARNING",
                    dequeue_strategy=DequeueStrategy.ROUND_ROBIN)
    finally:
        stop.set()
        processes.end_own_group()
