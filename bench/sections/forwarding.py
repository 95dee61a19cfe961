"""6. Forwarding throughput: 2,000 queued deliveries to the local receiver, drained by
one `ged worker` process, then by two; beside RQ's non-forking worker running
trivial jobs on the same Redis (one process, then two)."""

from __future__ import annotations

import time

from .. import corpus, world
from ..harness import peak_rss_mb
from ..profiling import hotspots
from ..receiver import Receiver
from ..report import Section
from . import rq_raw
from .delivery import forwarding_world, unavailable  # noqa: F401 - same feature as section 5

NUMBER, KEY, TITLE = 6, "forwarding", "Forwarding throughput"
BATCH = 100  # files per deposit() call when queueing the deliveries
DRAIN_SECONDS = 35.0  # about how long each timed run may take in the full mode


def _queue_deliveries(firm, target, count: int, offset: int) -> None:
    """``count`` small PDFs deposited into the switched folder: one delivery each, queued."""
    pdf = corpus.text_pdf("Facture fournisseur, relevé de livraison")
    for start in range(0, count, BATCH):
        files = [(f"facture-{offset + i}.pdf", corpus.variant(pdf, offset + i))
                 for i in range(start, min(start + BATCH, count))]
        world.deposit_bytes(firm, target, files)


def _drain(h, cfg, receiver: Receiver, count: int, workers: int) -> dict:
    """Start ``workers`` `ged worker` processes on the deliveries queue; time the arrivals."""
    receiver.reset()
    procs = [h.ged_worker(f"ged-worker-fwd{workers}-{n}", cfg, queues=["deliveries"])
             for n in range(workers)]
    started = time.monotonic()
    if not receiver.wait_count(count, 900 if not h.quick else 120):
        raise RuntimeError(f"only {len(receiver.arrivals)} of {count} deliveries arrived "
                           f"(worker log: {procs[0].log_path})")
    times = sorted(receiver.arrivals.values())
    peak = max(peak_rss_mb(p.pid) or 0 for p in procs)
    for proc in procs:
        h.stop(proc)
    return {"rate": (count - 1) / (times[-1] - times[0]), "first": times[0] - started,
            "peak": peak, "requests": receiver.requests}


def _sized(rate: float, seconds: float, low: int, high: int) -> int:
    """How many deliveries a drain at ``rate`` gets through in about ``seconds``."""
    return max(low, min(high, int(rate * seconds) // 10 * 10))


def run(h) -> Section:
    from ged import forwarding
    from ged.db import db
    from ged.models import Delivery

    wanted = 20 if h.quick else 2000
    section = Section(NUMBER, KEY, TITLE,
                      raw_label="trivial RQ jobs (`bench.jobs.noop`) drained by bare RQ "
                                "SimpleWorker processes on the same Redis (one, then two).")
    receiver = Receiver()
    offset = 0
    try:
        cfg, firm, target = forwarding_world(h, "forwarding", receiver)
        count = wanted
        if not h.quick:
            # A probe sizes the runs, so a slow forwarding cannot blow the time budget.
            probe = 100
            with db.connection_context():
                _queue_deliveries(firm, target, probe, offset)
            offset += probe
            count = _sized(_drain(h, cfg, receiver, probe, 1)["rate"], DRAIN_SECONDS, probe,
                           wanted)
        with db.connection_context():
            t0 = time.monotonic()
            _queue_deliveries(firm, target, count, offset)
            queue_seconds = time.monotonic() - t0
        offset += count
        one = _drain(h, cfg, receiver, count, 1)
        count2 = count if h.quick else _sized(one["rate"] * 2, DRAIN_SECONDS, 100, wanted)
        with db.connection_context():
            _queue_deliveries(firm, target, count2, offset)
        offset += count2
        two = _drain(h, cfg, receiver, count2, 2)
        with db.connection_context():
            accepted = Delivery.select().where(Delivery.status == "accepted").count()
            # What limits it: the delivery job run in this process on a few more.
            _queue_deliveries(firm, target, 10, offset)
            queued = [d.id for d in Delivery.select(Delivery.id).where(
                Delivery.status == "queued")]
            profile = hotspots(lambda: [forwarding.run(i) for i in queued])
    finally:
        receiver.close()
    h.record_memory("worker", "ged worker (forwarding)", max(one["peak"], two["peak"]))
    raw_one = h.results.get("rq_simple_rate") or rq_raw.drain(h, wanted, "simple")["rate"]
    raw_two = rq_raw.drain(h, wanted, "simple", workers=2)["rate"]
    section.add(f"1 worker process, {count} deliveries: deliveries/s", one["rate"], "/s",
                raw_one, "≥ 150 /s", one["rate"] >= 150)
    section.add(f"2 worker processes, {count2} deliveries: deliveries/s", two["rate"], "/s",
                raw_two)
    sized = "" if h.quick or (count == wanted and count2 == wanted) else (
        f" Fewer than {wanted} deliveries per run: a probe of 100 showed a rate at which "
        f"{wanted} would not fit in the run's time budget (about {DRAIN_SECONDS:.0f} s per "
        "run); the rate does not depend on the queue's length.")
    section.notes.append(
        f"Small PDFs (~{len(corpus.text_pdf('x')) // 1000 + 1} KB) deposited in batches of "
        f"{BATCH} into a folder switched on for one http connection ({queue_seconds:.1f} s to "
        f"deposit and queue {count}), then drained by `ged worker --queues deliveries`; the "
        "rate runs from the first arrival at the receiver to the last. "
        f"{accepted} of {offset} deliveries ended `accepted`; in the two timed runs the "
        f"receiver saw {one['requests'] + two['requests']} requests for {count + count2} "
        f"deliveries (duplicates would show here). The raw rows drain {wanted} trivial jobs."
        + sized)
    section.limits.append(
        "Each delivery is a database round of its own (claim the delivery, read the document "
        "and connection, record the outcome and its hash-chained audit event, mark the "
        "document validated) plus a signed HTTP request whose body is read twice (to sign, "
        "then to send); a trivial RQ job has none of this. On SQLite the outcome writes of "
        "two workers take turns on the single writer lock.")
    section.limits.append(f"Delivery job ({len(queued)} run in-process), {profile}.")
    return section
