"""9. Export: the rate of `GET /api/v1/companies/{id}/export` (a ZIP built while it
streams) for a company of 1,000 documents, and the web process's peak memory
meanwhile; beside the raw rate of reading the same blobs from the store."""

from __future__ import annotations

import http.client
import time

from .. import corpus, world
from ..harness import rss_mb
from ..report import Section
from . import missing_module

NUMBER, KEY, TITLE = 9, "export", "Export"
FOLDERS = [("Dossier comptable annuel 2026", "Achats"), ("Dossier comptable annuel 2026", "Ventes"),
           ("Dossier comptable annuel 2026", "Banque", "Relevés bancaires"),
           ("Dossier comptable annuel 2026", "Notes de frais")]


def unavailable() -> str | None:
    return missing_module("ged.export", "build") or missing_module("ged.api.archive_routes")


def _raw_read(store, shas: list[str]) -> tuple[int, float]:
    """Read every blob from the store in 256 KB chunks; (bytes, seconds)."""
    from ged.blobs import iter_blob

    total = 0
    started = time.perf_counter()
    for sha in shas:
        for chunk in iter_blob(store, sha):
            total += len(chunk)
    return total, time.perf_counter() - started


def run(h) -> Section:
    from ged import runtime
    from ged.db import db
    from ged.models import Document

    count = 20 if h.quick else 1000
    section = Section(NUMBER, KEY, TITLE,
                      raw_label="reading the same blobs from the blob store, chunk by chunk "
                                "(`blobs.iter_blob`), in this process, after the export (page "
                                "cache as warm for both).")
    cfg = h.bind("export", h.database("export"))
    firm = world.make_firm()
    pdf = corpus.invoice_pdf()
    with db.connection_context():
        targets = [world.folder(firm.company, *names) for names in FOLDERS]
        for start in range(0, count, 100):
            files = [(f"piece-{i:05d}.pdf", corpus.variant(pdf, 500_000 + i))
                     for i in range(start, min(start + 100, count))]
            world.deposit_bytes(firm, targets[(start // 100) % len(targets)], files)
        shas = [d.blob_id for d in Document.select(Document.blob).where(
            Document.company == firm.company.id)]
    h.empty_queues()
    server = h.gunicorn("ged-web-export", "ged.wsgi:app", h.ged_env(cfg))
    try:
        baseline = max(rss_mb(p) or 0 for p in server.worker_pids())
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=300)
        started = time.perf_counter()
        conn.request("GET", f"/api/v1/companies/{firm.company.id}/export", headers=firm.headers)
        response = conn.getresponse()
        if response.status != 200:
            raise RuntimeError(f"export answered {response.status}: {response.read(300)!r}")
        received = 0
        while True:
            chunk = response.read(1024 * 1024)
            if not chunk:
                break
            received += len(chunk)
        seconds = time.perf_counter() - started
        conn.close()
        peak = server.peak_rss()
        h.record_memory("web", f"ged web (exporting {count} documents)", peak)
    finally:
        h.stop(server.proc)
    raw_bytes, raw_seconds = _raw_read(runtime.store(), shas)
    rate, raw_rate = received / seconds / 1e6, raw_bytes / raw_seconds / 1e6
    section.add(f"export of {count} documents: MB/s", rate, "MB/s", raw_rate)
    section.add("web process peak RSS while exporting", peak, "MB", None, "< 150 MB",
                peak is not None and peak < 150)
    section.notes.append(
        f"{count} distinct {len(pdf) // 1000} KB PDFs deposited into 4 folders of a nested "
        f"tree; the ZIP streamed through gunicorn was {received / 1e6:.0f} MB "
        f"({raw_bytes / 1e6:.0f} MB of documents) in {seconds:.1f} s. The web process held "
        f"{baseline:.0f} MB before the export (its peak includes start-up). MB = 10⁶ bytes.")
    section.limits.append(
        "The ZIP is written as it streams (no compression), in the web process: its rate is "
        "that of zipstream-ng's Python loop and the CRC-32 of every byte, on one core.")
    return section
