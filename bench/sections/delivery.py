"""5. Deposit to delivered: with an idle `ged worker` and a local HTTP receiver, the
time from the upload's reply to the receiver having the file; beside an RQ job
posting the same bytes to the same receiver from an idle bare SimpleWorker."""

from __future__ import annotations

import json
import sys
import time

from .. import corpus, world
from ..harness import percentile
from ..load import multipart, upload_load
from ..receiver import Receiver
from ..report import Section
from . import missing_module

NUMBER, KEY, TITLE = 5, "delivered", "Deposit to delivered"
RAW_QUEUE = "bench-raw"


def unavailable() -> str | None:
    return (missing_module("ged.deliveries", "run")
            or missing_module("ged.integrations", "install", "connect"))


def forwarding_world(h, name: str, receiver: Receiver):
    """A phase's database with a firm whose Achats folder forwards to ``receiver``."""
    from ged import switches
    from ged.db import db

    cfg = h.bind(name, h.database(name))
    firm = world.make_firm()
    target = world.achats(firm.company)
    conn = world.http_connection(firm, firm.company, receiver.url)
    with db.connection_context():
        switches.set_switch(firm.admin, target, conn, "on")
    return cfg, firm, target


def wait_idle(h, queues: list[str], timeout: float = 60) -> None:
    """Wait until nothing is queued or running on ``queues``."""
    from rq import Queue
    from rq.registry import StartedJobRegistry

    conn = h.redis_conn()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(Queue(q, connection=conn).count == 0
               and StartedJobRegistry(q, connection=conn).count == 0 for q in queues):
            return
        time.sleep(0.02)


def _ged_latencies(h, count: int, warm: int, queues: list[str] | None = None) -> list[float]:
    """Deposit then wait for the delivery, one at a time, with one idle `ged worker` on
    ``queues`` (None: all of them, as `ged serve` runs it)."""
    from ged import queue

    name = "delivered" if queues is None else "delivered-" + "-".join(queues)
    watched = queues or queue.QUEUES
    receiver = Receiver()
    try:
        cfg, firm, target = forwarding_world(h, name, receiver)
        server = h.gunicorn(f"ged-web-{name}", "ged.wsgi:app", h.ged_env(cfg))
        worker = h.ged_worker(f"ged-worker-{name}", cfg, queues=queues)
        pdf = corpus.invoice_pdf()
        path = f"/api/v1/folders/{target.id}/documents"
        latencies = []
        for i in range(warm + count):
            result = upload_load(server.port, path,
                                 lambda _n, i=i: multipart(corpus.variant(pdf, i), f"f-{i}.pdf"),
                                 1, 1, firm.headers, 201, keep_replies=True)
            if result.errors:
                raise RuntimeError(f"upload failed: {result.errors[0]}")
            replied, body = result.replies[0]
            doc_id = json.loads(body)["items"][0]["id"]
            arrived = receiver.wait_for(doc_id, 60)
            if arrived is None:
                raise RuntimeError(f"document {doc_id} never reached the receiver "
                                   f"(worker log: {worker.log_path})")
            if i >= warm:
                latencies.append(arrived - replied)
            # idle again (extraction and indexing of this document done) before the next
            wait_idle(h, watched, 60)
            time.sleep(0.05)
        if queues is None:
            h.record_memory("worker", "ged worker (deposit to delivered, extraction, indexing)",
                            _peak(worker.pid))
            h.record_memory("web", "ged web (deposit to delivered)", server.peak_rss())
        h.stop(worker)
        h.stop(server.proc)
        h.empty_queues()
        return latencies
    finally:
        receiver.close()


def _peak(pid: int):
    from ..harness import peak_rss_mb

    return peak_rss_mb(pid)


def _raw_latencies(h, count: int, warm: int) -> list[float]:
    from rq import Queue

    receiver = Receiver()
    try:
        pdf_path = h.tmp / "raw-delivery.pdf"
        pdf_path.write_bytes(corpus.invoice_pdf())
        worker = h.spawn("rq-raw-idle", [sys.executable, "-m", "bench.rqworker", "--class",
                                         "simple", "--queue", RAW_QUEUE], h.plain_env())
        queue = Queue(RAW_QUEUE, connection=h.redis_conn())
        latencies = []
        for i in range(warm + count):
            key = f"raw-{i}"
            t0 = time.monotonic()
            queue.enqueue("bench.jobs.post_file", receiver.url, str(pdf_path), key,
                          result_ttl=600, failure_ttl=86400)
            arrived = receiver.wait_for(key, 60)
            if arrived is None:
                raise RuntimeError(f"the raw job never reached the receiver ({worker.log_path})")
            if i >= warm:
                latencies.append(arrived - t0)
            wait_idle(h, [RAW_QUEUE], 30)
            time.sleep(0.05)
        h.stop(worker)
        return latencies
    finally:
        receiver.close()


def run(h) -> Section:
    count, warm = (3, 1) if h.quick else (30, 3)
    section = Section(NUMBER, KEY, TITLE,
                      raw_label="an idle bare RQ SimpleWorker running a job that posts the same "
                                "200 KB file (multipart file + metadata, httpx) to the same "
                                "receiver; timed from the enqueue to the receiver having it.")
    ged = _ged_latencies(h, count, warm)
    dedicated = _ged_latencies(h, count, warm, ["deliveries"])
    raw = _raw_latencies(h, count, warm)
    p50, p95 = percentile(ged, 50) * 1000, percentile(ged, 95) * 1000
    section.add("upload reply → receiver has the file, p50", p50, "ms",
                percentile(raw, 50) * 1000, "< 250 ms", p50 < 250)
    section.add("upload reply → receiver has the file, p95", p95, "ms",
                percentile(raw, 95) * 1000)
    section.add("with a worker for deliveries only, p50", percentile(dedicated, 50) * 1000, "ms",
                percentile(raw, 50) * 1000)
    section.add("with a worker for deliveries only, p95", percentile(dedicated, 95) * 1000, "ms",
                percentile(raw, 95) * 1000)
    section.notes.append(
        f"{count} deposits of the 200 KB PDF through the API into Achats, whose switch is on "
        "for one http connection to a local receiver (`bench/receiver.py`), one at a time "
        f"with the worker idle in between (after {warm} warm-up deposits). One `ged worker` "
        "(all queues, as `ged serve` starts it) also extracts and indexes each document: "
        "the extraction job is queued first, so it runs before the delivery. The last two "
        "rows run the same with `ged worker --queues deliveries` (extraction left queued), "
        "as a deployment with a worker dedicated to forwarding would.")
    reason = missing_module("ged.extraction", "extract_blob")
    if reason:
        section.notes.append(f"Text extraction is not in this run ({reason}): the worker's "
                             "extraction jobs failed at once, so this figure will grow when "
                             "extraction lands.")
    section.limits.append(
        "An idle worker picks the extraction job first (queued before the delivery at the "
        "commit), so a delivery waits for the document's text extraction; the delivery job "
        "itself signs the body (reading the file twice, to sign then send) and records the "
        "outcome with its audit event; section 6 profiles the delivery job.")
    return section
