"""4. Memory: the peak resident memory (VmHWM) of the web processes and of the
workers, read from /proc while each section's load ran; beside the same gunicorn
serving the trivial route and a bare RQ worker running trivial jobs."""

from __future__ import annotations

from ..report import Section

NUMBER, KEY, TITLE = 4, "memory", "Memory (peak RSS)"


def run(h) -> Section:
    section = Section(NUMBER, KEY, TITLE,
                      raw_label="the peak RSS of a gunicorn worker serving the trivial deposit "
                                "route under the same load, and of a bare RQ SimpleWorker "
                                "draining trivial jobs.")
    seen = {kind: [(label, mb) for k, label, mb in h.memory if k == kind]
            for kind in ("web", "worker", "raw-web", "raw-worker")}
    if not seen["web"] and not seen["worker"]:
        section.not_measured = "no section that runs ged's server or worker ran"
        return section
    raw_web = max((mb for _l, mb in seen["raw-web"]), default=None)
    raw_worker = max((mb for _l, mb in seen["raw-worker"]), default=None)
    if seen["web"]:
        label, web = max(seen["web"], key=lambda x: x[1])
        section.add("web process (gunicorn worker), largest peak", web, "MB", raw_web,
                    "< 150 MB", web < 150)
    if seen["worker"]:
        label, worker = max(seen["worker"], key=lambda x: x[1])
        section.add("worker process, largest peak", worker, "MB", raw_worker, "< 250 MB",
                    worker < 250)
    for kind in ("web", "worker", "raw-web", "raw-worker"):
        for label, mb in seen[kind]:
            section.notes.append(f"{label}: {mb:.0f} MB")
    section.notes.append(
        "VmHWM of each process just before it was stopped: the most it held at any moment "
        "of its run, start-up included. A worker's child processes (OCR isolation) are not "
        "counted in the worker's figure.")
    section.limits.append(
        "The largest peaks come from the sections named above; a web process holds Flask, "
        "peewee, pypdfium2 (content checks) and, once a search has run, the firm's Whoosh "
        "searcher and its cached filter sets.")
    return section
