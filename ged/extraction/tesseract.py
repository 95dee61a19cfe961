"""Tesseract: one page read within its time, in the child that reads it. Tesseract runs
single-threaded (OMP_THREAD_LIMIT=1, see sandbox: its own threads are slower on small
machines) as a ``tesseract`` command killed at its deadline and with its parent. A page
that reads badly gets a second look: turned upright by orientation detection, or
cleaned of speckles."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time

from .. import runtime
from ..blobs import staging_dir
from ..processes import die_with_parent
from ..sandbox import ExtractionFailed
from .images import load_frame
from .pdf import render_page

LOW_CONFIDENCE = 60  # mean Tesseract word confidence under which orientation is checked


class _OutOfTime(Exception):
    """A page's reading budget is spent."""


class _TesseractError(Exception):
    """Tesseract ended with an error (an unreadable image, too little text for OSD)."""


def read_page(path: str, kind: str, index: int, languages: str, seconds: float) -> str:
    """In a child: render or load one page and read it within ``seconds``. A page read
    well needs one Tesseract pass. One that reads badly gets orientation detection: a
    page it finds turned is read turned; one it finds upright is read again cleaned of
    speckles (a noisy scan); when it cannot tell (a short page), each turn is tried.
    The best reading is kept; the budget cuts the extra passes short."""
    deadline = time.monotonic() + seconds
    image = render_page(path, index) if kind == "pdf" else load_frame(path, index)
    try:
        text, (confidence, count) = _tesseract(image, languages, deadline)
    except _OutOfTime:
        raise ExtractionFailed(f"not read: it took more than the {seconds:g} s a page "
                               "may take") from None
    except _TesseractError as exc:
        raise ExtractionFailed(f"Tesseract could not read this page: {exc}") from None
    if count >= 5 and confidence >= LOW_CONFIDENCE:
        return text
    best, best_score = text, confidence * count
    try:
        for candidate in _second_looks(image, deadline):
            again, (confidence, count) = _tesseract(candidate, languages, deadline)
            if confidence * count > best_score:
                best, best_score = again, confidence * count
            if count and confidence >= LOW_CONFIDENCE:
                break
    except (_OutOfTime, _TesseractError):
        pass  # the budget is spent (or a pass failed): the best reading so far stands
    return best


def _second_looks(image, deadline: float):
    """The images worth another pass when a page read badly (see read_page)."""
    from PIL import ImageFilter

    angle, sure = _orientation(image, deadline)
    if angle:
        yield image.rotate(-angle, expand=True)
    elif sure:
        yield image.filter(ImageFilter.MedianFilter(3))
    else:
        for turn in (180, 90, 270):
            yield image.rotate(-turn, expand=True)


def _run_tesseract(image, args: list[str], deadline: float) -> str:
    """The ``tesseract`` command on one image, killed at ``deadline`` (_OutOfTime) and
    with this process: it never outlives the worker that wanted it."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _OutOfTime()
    # In the data dir, never /tmp: these are clients' documents. PGM/PPM is written raw
    # (a PNG encode would cost a tenth of the OCR time).
    with tempfile.TemporaryDirectory(prefix="ocr-",
                                     dir=staging_dir(runtime.config().data_dir)) as tmp:
        source = os.path.join(tmp, "page.pnm")
        image.save(source, "PPM")
        process = subprocess.Popen(["tesseract", source, "stdout", *args],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   preexec_fn=_tesseract_child)
        try:
            out, err = process.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise _OutOfTime() from None
    if process.returncode:
        raise _TesseractError(err.decode("utf-8", "replace").strip()[-300:]
                              or f"exit status {process.returncode}")
    return out.decode("utf-8", "replace")


def _tesseract_child() -> None:
    """In the forked Tesseract process, before exec: SIGKILL when its parent dies."""
    die_with_parent(signal.SIGKILL)


def _tesseract(image, languages: str, deadline: float) -> tuple[str, tuple[float, int]]:
    """Text and (mean word confidence, words) of one image, Tesseract single-threaded."""
    tsv = _run_tesseract(image, ["-l", languages, "--psm", "3", "tsv"], deadline)
    lines: dict[tuple, list[str]] = {}
    confidences = []
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":
            continue  # not a word
        word = cols[11].strip()
        if not word:
            continue
        key = tuple(int(c) for c in cols[1:5])  # page, block, paragraph, line
        lines.setdefault(key, []).append(word)
        with contextlib.suppress(ValueError):
            confidences.append(float(cols[10]))
    out, last_par = [], None
    for key in sorted(lines):
        if last_par is not None and key[:3] != last_par:
            out.append("")
        out.append(" ".join(lines[key]))
        last_par = key[:3]
    mean = sum(confidences) / len(confidences) if confidences else 0.0
    return "\n".join(out), (mean, len(confidences))


def _orientation(image, deadline: float) -> tuple[int, bool]:
    """(degrees clockwise the page must turn to be upright: 0, 90, 180, 270; whether
    Tesseract's orientation detection is sure of it). (0, False) when it cannot tell."""
    try:
        osd = _run_tesseract(image, ["--psm", "0"], deadline)
    except _TesseractError:
        return 0, False  # too little text to tell
    rotate = re.search(r"Rotate:\s*(\d+)", osd)
    confidence = re.search(r"Orientation confidence:\s*([\d.]+)", osd)
    if not rotate or not confidence or float(confidence.group(1)) < 1.0:
        return 0, False
    return int(rotate.group(1)) % 360, True
