"""OCR: scanned pages read by Tesseract on the ``ocr`` queue, in slices shared fairly
between firms, within a time budget per page and per document.

The cheap part of an extraction (see ``blob``) only notes which pages need Tesseract
(an ``OcrPlan``, saved on the blob as ``ocr_state``). Each ``ocr`` job (``ocr_next``)
then takes the waiting document of the firm served least recently, reads its next
pages for about ``ocr_slice_seconds`` over a pool of processes (one per core by
default, GED_OCR_PROCESSES), saves them on the blob and, while pages remain, leaves the
next turn to the next job: one client's long scan never holds the others back. A page
gets ``ocr_page_seconds`` and a document ``ocr_document_seconds`` of reading; past them
pages are skipped and the document ends ``partial`` with the text read. Every child
dies with its worker.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import contextvars
import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from peewee import JOIN, fn

from .. import fleet, runtime
from ..db import transaction
from ..models import Blob, Document
from ..sandbox import PROBE_TIMEOUT, Children, ExtractionFailed
from .pdf import repair_pdf, spare_file
from .result import (Extracted, attempt_failed, attempt_returned, join_pages, local_copy,
                     record)
from .tesseract import read_page

OCR_LEASE_SECONDS = 30  # a slice's claim on its blob, extended while it reads
OCR_GUARD_SECONDS = 15  # past a page's budget by this much, its child is stuck: killed


@dataclass
class OcrPlan:
    """What an extraction leaves to the OCR slices (filled by ocr_pages)."""

    original: str | None = None  # the blob's own file
    kind: str | None = None  # pdf | image
    pages: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # every page's text so far
    repaired: bool = False  # pages are read from a repaired copy of the PDF


# The plan of the extraction running in this context (see blob.extract_blob).
PLAN: contextvars.ContextVar = contextvars.ContextVar("ged_ocr_plan", default=None)


def ocr_pages(path: Path, kind: str, indexes: list[int], texts: list[str], cfg) -> list[str]:
    """Pages to read with Tesseract. Within extract_blob they are left to the OCR slices
    (recorded in its plan; ``texts`` untouched); otherwise they are read here, within
    the budgets, into ``texts``. Returns notes on the pages not read."""
    plan = PLAN.get()
    if plan is not None:
        plan.kind, plan.pages, plan.texts = kind, list(indexes), texts
        plan.repaired = plan.original is not None and str(path) != plan.original
        return []
    read, notes = _read_pages(str(path), kind, list(indexes), cfg)
    for i, text in read.items():
        texts[i] = text
    unread = [i for i in indexes if i not in read]
    return notes + ([_budget_note(unread, cfg)] if unread else [])


def await_ocr(sha256: str, result: Extracted, plan: OcrPlan) -> bool:
    """Save what the cheap part found and the pages left to read; False when the blob
    is no longer pending (another worker finished it)."""
    found = dataclasses.asdict(result)
    found.pop("text", None)
    state = {"kind": plan.kind, "repaired": plan.repaired, "todo": plan.pages,
             "texts": plan.texts, "notes": [], "spent": 0.0, "found": found}
    return bool(Blob.update(ocr_state=state, extract_attempts=0, text_error=None).where(
        (Blob.sha256 == sha256) & (Blob.text_status == "pending")).execute())


def ocr_next() -> tuple[str, str] | None:
    """The ``ocr`` job's work: one slice of the waiting document of the firm served least
    recently. Returns (sha256, status as in ocr_slice), or None when every waiting
    document is being read by another worker, or none waits."""
    for sha256, firm in _waiting_in_fair_order():
        status = ocr_slice(sha256, firm=firm)
        if status != "busy":
            return sha256, status
    return None


def _waiting_in_fair_order() -> list[tuple[str, str]]:
    """Blobs waiting for OCR with their firm, the firm served least recently first (a firm
    never served before comes first), each firm's oldest first."""
    rows = list(Blob.select(Blob.sha256, Blob.created_at, fn.MIN(Document.firm))
                .join(Document, JOIN.LEFT_OUTER, on=(Document.blob == Blob.sha256))
                .where((Blob.text_status == "pending") & Blob.ocr_state.is_null(False))
                .group_by(Blob.sha256, Blob.created_at).order_by(Blob.created_at)
                .limit(1000).tuples())
    if not rows:
        return []
    firms = sorted({firm or "" for _sha, _at, firm in rows})
    served = dict(zip(firms, fleet.connection().hmget(fleet.OCR_SERVED_KEY, firms)))
    rows.sort(key=lambda row: int(served.get(row[2] or "") or 0))  # stable: oldest first
    return [(sha, firm or "") for sha, _at, firm in rows]


def waiting_for_ocr(limit: int = 1000) -> list[str]:
    """Blobs waiting for OCR that no worker is reading now (for the reconciler)."""
    shas = [b.sha256 for b in Blob.select(Blob.sha256).where(
        (Blob.text_status == "pending") & Blob.ocr_state.is_null(False)).limit(limit)]
    if not shas:
        return []
    held = fleet.connection().mget([fleet.ocr_lease_key(sha) for sha in shas])
    return [sha for sha, lease in zip(shas, held) if lease is None]


def ocr_slice(sha256: str, firm: str | None = None) -> str:
    """Read a waiting blob's next pages for about one slice and save them. Returns
    ``"ocr"`` while pages remain, the blob's final status once it is done, ``"busy"``
    when another process is reading it. ``firm``: the firm whose turn this is."""
    cfg = runtime.config()
    lease = fleet.Lease(fleet.ocr_lease_key(sha256), OCR_LEASE_SECONDS)
    if not lease.acquire():
        return "busy"
    try:
        blob = Blob.get_or_none(Blob.sha256 == sha256)
        if blob is None:
            return "missing"
        if blob.text_status != "pending" or blob.ocr_state is None:
            return blob.text_status
        if firm is not None:
            connection = fleet.connection()
            connection.hset(fleet.OCR_SERVED_KEY, firm, connection.incr(fleet.OCR_TURN_KEY))
        state = blob.ocr_state
        if blob.extract_attempts >= cfg.extract_max_attempts:
            return _finish_ocr(sha256, state, cfg, stopped=(
                f"reading stopped after {blob.extract_attempts} attempts that did not finish; "
                f"the last error: {blob.text_error or 'the worker stopped during it'}"))
        budget = cfg.ocr_document_seconds - state["spent"]
        if not state["todo"] or budget <= 0:
            return _finish_ocr(sha256, state, cfg)
        Blob.update(extract_attempts=Blob.extract_attempts + 1).where(
            Blob.sha256 == sha256).execute()
        started = time.monotonic()
        try:
            with _ocr_source(sha256, state) as path:
                read, notes = _read_pages(path, state["kind"], state["todo"], cfg,
                                          slice_seconds=cfg.ocr_slice_seconds,
                                          budget=budget, lease=lease)
        except FileNotFoundError:
            return _finish_ocr(sha256, state, cfg, stopped="The stored file is missing.")
        except Exception as exc:
            attempt_failed(sha256, exc)
            raise
        except BaseException:
            attempt_returned(sha256)
            raise
        state["spent"] += time.monotonic() - started
        for i, text in read.items():
            state["texts"][i] = text
        state["todo"] = [i for i in state["todo"] if i not in read]
        state["notes"] += notes
        if not state["todo"] or state["spent"] >= cfg.ocr_document_seconds:
            return _finish_ocr(sha256, state, cfg)
        Blob.update(ocr_state=state, extract_attempts=0).where(
            (Blob.sha256 == sha256) & (Blob.text_status == "pending")).execute()
        return "ocr"
    finally:
        lease.release()


def ocr_to_the_end(sha256: str) -> str:
    """Read a waiting blob's pages here, slice after slice, until it is done."""
    status = "ocr"
    while status == "ocr":
        status = ocr_slice(sha256)
    return "ocr" if status == "busy" else status


def _finish_ocr(sha256: str, state: dict, cfg, stopped: str | None = None) -> str:
    """Store the text read: ``partial`` when pages were skipped or failed (``failed``
    when that left no text at all), else what the cheap part said."""
    found = dict(state["found"])
    notes = list(found.get("notes") or []) + list(state["notes"])
    unread = list(state["todo"])
    if unread:
        notes.append(f"{_pages_label(unread)} not read: {stopped}" if stopped
                     else _budget_note(unread, cfg))
    elif stopped:
        notes.append(stopped)
    text = join_pages(state["texts"])
    status = found["status"]
    if unread or state["notes"] or stopped:
        status = "partial" if text else "failed"
    found.update(status=status, text=text, notes=notes)
    with transaction():
        record(sha256, Extracted(**found))
        Blob.update(ocr_state=None, extract_attempts=0).where(Blob.sha256 == sha256).execute()
    return Blob.get_by_id(sha256).text_status


def _pages_label(indexes: list[int]) -> str:
    """"page 3" or "pages 2-4, 7" (numbered from 1)."""
    spans: list[list[int]] = []
    for i in sorted(indexes):
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    text = ", ".join(f"{a + 1}" if a == b else f"{a + 1}-{b + 1}" for a, b in spans)
    return f"page {text}" if len(indexes) == 1 else f"pages {text}"


def _budget_note(unread: list[int], cfg) -> str:
    return (f"{_pages_label(unread)} not read: the {cfg.ocr_document_seconds:g} s of "
            "reading a document may take were spent")


@contextlib.contextmanager
def _ocr_source(sha256: str, state: dict):
    """The file the pages are read from: the blob, or a repaired copy of a damaged PDF
    (made again as the cheap part made it)."""
    with local_copy(sha256) as path:
        if not state.get("repaired"):
            yield str(path)
            return
        with spare_file() as spare:
            with Children(1) as children:
                repaired = children.run(repair_pdf, str(path), str(spare),
                                        timeout=PROBE_TIMEOUT)
            yield str(spare) if repaired else str(path)


def _read_pages(path: str, kind: str, indexes: list[int], cfg, *,
                slice_seconds: float | None = None, budget: float | None = None,
                lease=None) -> tuple[dict[int, str], list[str]]:
    """Read pages over a pool of processes (one per core): ``{page: text}`` for the pages
    done (a page that failed or ran out of time is noted and left empty), and the notes.
    No page starts after ``slice_seconds`` or past the document's ``budget``; the pages
    left are for the next slice."""
    budget = cfg.ocr_document_seconds if budget is None else budget
    start = time.monotonic()
    todo = list(indexes)
    read: dict[int, str] = {}
    notes: list[str] = []
    running: dict = {}  # future -> (page, when its child counts as stuck)
    with Children(_processes(cfg, len(todo))) as children:

        def fill() -> None:
            while todo and len(running) < children.size:
                elapsed = time.monotonic() - start
                if elapsed >= budget or (slice_seconds is not None and elapsed >= slice_seconds):
                    return
                seconds = min(cfg.ocr_page_seconds, budget - elapsed)
                try:
                    future = children.submit(read_page, path, kind, todo[0], cfg.ocr_languages,
                                             seconds)
                except cf.process.BrokenProcessPool:
                    return  # a child crashed: the pages left wait for the next slice
                running[future] = (todo.pop(0), time.monotonic() + seconds + OCR_GUARD_SECONDS)

        fill()
        while running:
            done, _ = cf.wait(running, timeout=5, return_when=cf.FIRST_COMPLETED)
            if lease is not None:
                lease.extend()
            for future in done:
                page, _deadline = running.pop(future)
                try:
                    read[page] = children.result(future, 0)
                except ExtractionFailed as exc:
                    read[page] = ""
                    notes.append(f"page {page + 1}: {exc}")
            now = time.monotonic()
            stuck = [f for f, (_page, deadline) in running.items() if now > deadline]
            if stuck:
                # Tesseract's own time limit did not end it (a render that hangs): kill
                # the pool; the other pages it was reading wait for the next slice.
                for future in stuck:
                    page, _deadline = running.pop(future)
                    read[page] = ""
                    notes.append(f"page {page + 1}: reading it did not end within its time")
                children.close(kill=True)
                running.clear()
                break
            fill()
    return read, notes


def _processes(cfg, pages: int) -> int:
    wanted = cfg.ocr_processes or os.cpu_count() or 1
    return max(1, min(wanted, pages))
