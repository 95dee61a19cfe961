"""3. Raw RQ: trivial jobs through RQ's forking Worker and its non-forking
SimpleWorker on the same Redis: the ceiling any RQ-based forwarding can reach, and
why ged's worker does not fork per job."""

from __future__ import annotations

import json
import sys

from ..report import Section

NUMBER, KEY, TITLE = 3, "rq", "Raw RQ: forking vs non-forking worker"
QUEUE = "bench"


def drain(h, count: int, worker_class: str, workers: int = 1) -> dict:
    """Enqueue ``count`` trivial jobs, then time ``workers`` bare RQ workers draining them
    (from the first worker's start to the last one's end)."""
    from rq import Queue

    queue = Queue(QUEUE, connection=h.redis_conn())
    queue.empty()
    jobs = [Queue.prepare_data("bench.jobs.noop", result_ttl=600, failure_ttl=86400)
            for _ in range(count)]
    for start in range(0, count, 500):
        queue.enqueue_many(jobs[start:start + 500])
    procs = [h.spawn(f"rq-{worker_class}-{n}",
                     [sys.executable, "-m", "bench.rqworker", "--class", worker_class,
                      "--queue", QUEUE, "--burst"], h.plain_env())
             for n in range(workers)]
    results = []
    for proc in procs:
        proc.wait(timeout=900)
        lines = [ln for ln in proc.log_path.read_text().splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"rq worker ({worker_class}) failed: "
                               f"{proc.log_path.read_text()[-500:]}")
        h.stop(proc)
        results.append(json.loads(lines[-1]))
    left = queue.count
    if left:
        raise RuntimeError(f"{left} jobs were left in the queue")
    seconds = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return {"seconds": seconds, "rate": count / seconds,
            "peak_rss_mb": max(r["peak_rss_mb"] or 0 for r in results)}


def run(h) -> Section:
    count = 100 if h.quick else 2000
    section = Section(NUMBER, KEY, TITLE,
                      raw_label=f"{count} trivial jobs (`bench.jobs.noop`) drained in burst mode "
                                "by a bare RQ worker in its own process; this whole section is a "
                                "raw limit (for the forwarding figures).")
    simple = drain(h, count, "simple")
    fork = drain(h, count, "fork")
    h.results["rq_simple_rate"] = simple["rate"]
    h.results["rq_fork_rate"] = fork["rate"]
    h.record_memory("raw-worker", "bare RQ SimpleWorker (trivial jobs)", simple["peak_rss_mb"])
    section.add("SimpleWorker (non-forking, as ged's worker): jobs/s", simple["rate"], "/s")
    section.add("Worker (forks a child per job): jobs/s", fork["rate"], "/s", simple["rate"])
    section.notes.append(
        "The ratio on the forking row is forking / non-forking: the price of a fork per job. "
        "ged's worker (`ged/worker.py`) is a SimpleWorker and isolates only the risky part "
        "of extraction in a child process.")
    return section
