"""7. OCR: pages per second on a generated scanned PDF through
`extraction.extract_blob`; beside the `tesseract` command on the same page images,
single-threaded (OMP_THREAD_LIMIT=1), one process per core."""

from __future__ import annotations

import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from .. import corpus, world
from ..report import Section
from . import missing_module

NUMBER, KEY, TITLE = 7, "ocr", "OCR"


def unavailable() -> str | None:
    return missing_module("ged.extraction", "extract_blob")


def _recall(expected: list[str], found: str) -> float:
    """The share of the pages' words (4 letters or more) found in the OCR text."""
    words = {w for text in expected for w in re.findall(r"\w{4,}", text.lower())}
    got = set(re.findall(r"\w{4,}", found.lower()))
    return len(words & got) / len(words) if words else 0.0


def _tesseract(paths, languages: str) -> tuple[float, str]:
    """Raw Tesseract: one single-threaded process per page, as many at once as cores."""
    env = dict(os.environ, OMP_THREAD_LIMIT="1")

    def one(path):
        return subprocess.run(["tesseract", str(path), "stdout", "-l", languages],
                              capture_output=True, text=True, env=env, check=True).stdout

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        texts = list(pool.map(one, paths))
    return time.perf_counter() - started, "\n".join(texts)


def run(h) -> Section:
    from ged import extraction
    from ged.db import db
    from ged.models import Blob

    pages = 1 if h.quick else 10
    section = Section(NUMBER, KEY, TITLE,
                      raw_label="the `tesseract` command on the same page images (PNG, 300 dpi), "
                                "OMP_THREAD_LIMIT=1, one process per core at a time "
                                f"({os.cpu_count()} here), default page segmentation.")
    lines = 8 if h.quick else 38
    paths, texts = corpus.scanned_pages(pages, h.tmp / "ocr-pages", line_count=lines)
    pdf = corpus.scanned_pdf(paths)
    cfg = h.bind("ocr", h.database("ocr"))
    languages = cfg.ocr_languages
    _tesseract(paths[:1], languages)  # warm the page cache with the language data
    raw_seconds, raw_text = _tesseract(paths, languages)
    firm = world.make_firm()
    with db.connection_context():
        doc = world.deposit_bytes(firm, world.achats(firm.company), [("releve-scanne.pdf", pdf)])[0]
        started = time.perf_counter()
        status = extraction.extract_blob(doc.blob_id)
        ged_seconds = time.perf_counter() - started
        blob = Blob.get_by_id(doc.blob_id)
    if blob.text_status != "done":
        raise RuntimeError(f"extraction ended {blob.text_status!r} ({status}): {blob.text_error}")
    ged_rate, raw_rate = pages / ged_seconds, pages / raw_seconds
    section.add(f"{pages}-page scanned PDF: pages/s", ged_rate, "/s", raw_rate,
                "within 10 % of raw", ged_rate >= 0.9 * raw_rate)
    section.add("seconds for the document", ged_seconds, "s", raw_seconds)
    section.add("words found (4+ letters)", _recall(texts, blob.text or "") * 100, "%",
                _recall(texts, raw_text) * 100)
    section.notes.append(
        f"A {pages}-page image-only PDF ({len(pdf) // 1000} KB) of generated French bank "
        f"statement pages ({lines + 1} lines of text each) rendered at 300 dpi (DejaVu Sans "
        "11 pt), deposited, then "
        "`extraction.extract_blob` run in this process; the raw command reads the page PNGs "
        f"the PDF was made from. Languages: {languages}. The last row checks both read the "
        "same text: a faster OCR that reads less is no win.")
    section.limits.append(
        "ged renders each page from the PDF (pypdfium2) before Tesseract reads it, and may run "
        "orientation detection; the raw command reads the page images directly.")
    return section
