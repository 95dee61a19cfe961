"""6. Forwarding throughput: queued deliveries to the local receiver, drained by one
`ged worker` process in each of the three forms an http connection can send (the
Standard Webhooks JSON envelope with the file inline in base64, the same envelope
with a signed link only, multipart/form-data), then by two processes; beside RQ's
non-forking worker running trivial jobs on the same Redis (one process, then two)."""

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
DRAIN_SECONDS = 35.0  # about how long the main timed runs may take in the full mode
FORMAT_SECONDS = 12.0  # the same for each of the other two formats
# (key, how the row names it, the connection's options)
FORMATS = [
    ("inline", "JSON envelope with the file inline (base64)", {}),
    ("link", "JSON envelope with a signed link only", {"inline_max_bytes": 0}),
    ("multipart", "multipart/form-data (file part)", {"format": "multipart"}),
]
SHORT = {"inline": "JSON inline", "link": "JSON link only", "multipart": "multipart"}


def _queue_deliveries(firm, target, count: int, offset: int) -> None:
    """``count`` small PDFs deposited into the switched folder: one delivery each, queued."""
    pdf = corpus.text_pdf("Facture fournisseur, relevé de livraison")
    for start in range(0, count, BATCH):
        files = [(f"facture-{offset + i}.pdf", corpus.variant(pdf, offset + i))
                 for i in range(start, min(start + BATCH, count))]
        world.deposit_bytes(firm, target, files)


def _set_format(firm, options: dict) -> None:
    """Give the company's http connection these options (and no other)."""
    from ged import integrations
    from ged.db import db
    from ged.models import Connection

    with db.connection_context():
        Connection.update(options=integrations.clean_options("http", options)).where(
            Connection.company == firm.company.id).execute()


def _drain(h, cfg, receiver: Receiver, count: int, workers: int, label: str) -> dict:
    """Start ``workers`` `ged worker` processes on the deliveries queue; time the arrivals."""
    receiver.reset()
    procs = [h.ged_worker(f"ged-worker-fwd-{label}{workers}-{n}", cfg, queues=["deliveries"])
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
            "peak": peak, "requests": receiver.requests,
            "body": receiver.bytes / max(receiver.requests, 1)}


def _sized(rate: float, seconds: float, low: int, high: int) -> int:
    """How many deliveries a drain at ``rate`` gets through in about ``seconds``."""
    return max(low, min(high, int(rate * seconds) // 10 * 10))


def run(h) -> Section:
    from ged import deliveries
    from ged.db import db
    from ged.models import Delivery

    wanted = 20 if h.quick else 2000
    section = Section(NUMBER, KEY, TITLE,
                      raw_label="trivial RQ jobs (`bench.jobs.noop`) drained by bare RQ "
                                "SimpleWorker processes on the same Redis (one, then two).")
    receiver = Receiver()
    offset = 0
    runs: dict[str, tuple[int, dict]] = {}
    try:
        cfg, firm, target = forwarding_world(h, "forwarding", receiver)
        count = wanted
        if not h.quick:
            # A probe sizes the runs, so a slow forwarding cannot blow the time budget.
            probe = 100
            with db.connection_context():
                _queue_deliveries(firm, target, probe, offset)
            offset += probe
            count = _sized(_drain(h, cfg, receiver, probe, 1, "probe")["rate"], DRAIN_SECONDS,
                           probe, wanted)
        for key, _label, options in FORMATS:
            _set_format(firm, options)
            n = count if key == "inline" or h.quick else _sized(
                runs["inline"][1]["rate"], FORMAT_SECONDS, 100, wanted // 2)
            with db.connection_context():
                t0 = time.monotonic()
                _queue_deliveries(firm, target, n, offset)
                if key == "inline":
                    queue_seconds = time.monotonic() - t0
            offset += n
            runs[key] = (n, _drain(h, cfg, receiver, n, 1, key))
        _set_format(firm, {})
        one = runs["inline"][1]
        count2 = count if h.quick else _sized(one["rate"] * 2, DRAIN_SECONDS, 100, wanted)
        with db.connection_context():
            _queue_deliveries(firm, target, count2, offset)
        offset += count2
        two = _drain(h, cfg, receiver, count2, 2, "inline")
        with db.connection_context():
            accepted = Delivery.select().where(Delivery.status == "accepted").count()
            # What limits it: the delivery job run in this process on a few more.
            _queue_deliveries(firm, target, 10, offset)
            queued = [d.id for d in Delivery.select(Delivery.id).where(
                Delivery.status == "queued")]
            profile = hotspots(lambda: [deliveries.run(i) for i in queued])
    finally:
        receiver.close()
    peaks = [r["peak"] for _n, r in runs.values()] + [two["peak"]]
    h.record_memory("worker", "ged worker (forwarding)", max(peaks))
    raw_one = h.results.get("rq_simple_rate") or rq_raw.drain(h, wanted, "simple")["rate"]
    raw_two = rq_raw.drain(h, wanted, "simple", workers=2)["rate"]
    for key, label, _options in FORMATS:
        n, result = runs[key]
        target_text, met = ("≥ 150 /s", result["rate"] >= 150) if key == "inline" else ("", None)
        section.add(f"1 worker process, {label}, {n} deliveries: deliveries/s",
                    result["rate"], "/s", raw_one, target_text, met)
    section.add(f"2 worker processes, {FORMATS[0][1]}, {count2} deliveries: deliveries/s",
                two["rate"], "/s", raw_two)
    sized = "" if h.quick or (count == wanted and count2 == wanted) else (
        f" Fewer than {wanted} deliveries per run: a probe of 100 showed a rate at which "
        f"{wanted} would not fit in the run's time budget (about {DRAIN_SECONDS:.0f} s per "
        f"main run, {FORMAT_SECONDS:.0f} s for the link-only and multipart runs); the rate "
        "does not depend on the queue's length.")
    bodies = ", ".join(f"{SHORT[k]} {runs[k][1]['body'] / 1000:.1f} KB" for k, _l, _o in FORMATS)
    total = sum(n for n, _r in runs.values()) + count2
    section.notes.append(
        f"Small PDFs (~{len(corpus.text_pdf('x')) // 1000 + 1} KB) deposited in batches of "
        f"{BATCH} into a folder switched on for one http connection ({queue_seconds:.1f} s to "
        f"deposit and queue {count}), then drained by `ged worker --queues deliveries`; the "
        "rate runs from the first arrival at the receiver to the last. Each request is signed "
        f"per Standard Webhooks; the mean request body was: {bodies}. "
        f"{accepted} of {offset} deliveries ended `accepted`; in the timed runs the receiver "
        f"saw {sum(r['requests'] for _n, r in runs.values()) + two['requests']} requests for "
        f"{total} deliveries (duplicates would show here). The raw rows drain {wanted} "
        "trivial jobs." + sized)
    section.limits.append(
        "Each delivery is a database round of its own (claim the delivery, read the document "
        "and connection, record the outcome and its hash-chained audit event, recompute the "
        "document's status) plus a signed HTTP request whose body is read twice (to sign, "
        "then to send); a trivial RQ job has none of this. On SQLite the outcome writes of "
        "two workers take turns on the single writer lock.")
    section.limits.append(f"Delivery job ({len(queued)} run in-process), {profile}.")
    return section
