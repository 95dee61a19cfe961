"""One blob's extraction, the work of the ``extract`` job: the file read by its verified
type (PDF, image, text, XML, office), once, its pages to OCR left to the ``ocr`` queue,
the result recorded on the blob and its documents."""

from __future__ import annotations

from pathlib import Path

from .. import filetypes, runtime
from ..models import Blob
from ..sandbox import PROBE_TIMEOUT, Children, ExtractionFailed
from . import images, office, pdf
from .invoices import invoice_fields
from .ocr import PLAN, OcrPlan, await_ocr, ocr_pages, ocr_to_the_end
from .result import (Extracted, attempt_failed, attempt_returned, begin_attempt, join_pages,
                     local_copy, mirror, record)

OFFICE = {filetypes.DOCX, filetypes.XLSX, filetypes.PPTX, filetypes.ODT, filetypes.ODS}


def extract_blob(sha256: str, *, defer_ocr: bool = False) -> str:
    """Extract a blob's text and invoice data once; mirror the status on its documents.

    Pages that need Tesseract are not read here: the cheap part's findings and the
    pages to read are saved on the blob (``ocr_state``), then read in slices by
    ``ocr_slice``: by the ``ocr`` queue when ``defer_ocr`` (the ``extract`` job; it
    returns ``"ocr"``), else right away. Safe to run twice: a blob already extracted
    is left as it is. An attempt that crashes is counted; after
    ``extract_max_attempts`` of them the blob is marked failed with the last error."""
    blob = Blob.get_or_none(Blob.sha256 == sha256)
    if blob is None:
        return "missing"
    if blob.text_status != "pending":
        mirror(blob)
        return blob.text_status
    if blob.ocr_state is None:
        if not begin_attempt(blob, "Extraction"):
            return "failed"
        plan = OcrPlan()
        token = PLAN.set(plan)
        try:
            with local_copy(sha256) as path:
                plan.original = str(path)
                result = extract_file(path, blob.content_type)
        except ExtractionFailed as exc:
            result = Extracted("failed", error=str(exc))
        except FileNotFoundError:
            result = Extracted("failed", error="The stored file is missing.")
        except Exception as exc:
            attempt_failed(sha256, exc)
            raise
        except BaseException:
            attempt_returned(sha256)
            raise
        finally:
            PLAN.reset(token)
        if not (plan.pages and result.status in ("done", "partial")):
            record(sha256, result)
            return result.status
        if not await_ocr(sha256, result, plan):
            return Blob.get_by_id(sha256).text_status  # another worker finished first
    return "ocr" if defer_ocr else ocr_to_the_end(sha256)


def extract_file(path: Path, content_type: str) -> Extracted:
    """Read one file by its (already verified) content type."""
    cfg = runtime.config()
    if content_type == filetypes.PDF:
        return _extract_pdf(path, cfg)
    if content_type in filetypes.IMAGE_TYPES:
        return _extract_image(path, cfg)
    if content_type in (filetypes.TEXT, filetypes.CSV, filetypes.JSON):
        return Extracted("done", text=office.read_text(path))
    if content_type == filetypes.XML:
        return office.extract_xml(path)
    if content_type in OFFICE:
        with Children(1) as children:
            text = children.run(office.office_text, str(path), timeout=PROBE_TIMEOUT)
        return Extracted("done", text=text)
    return Extracted("unsupported")


def _extract_pdf(path: Path, cfg) -> Extracted:
    """A PDF's text, page by page: a page that cannot be read leaves the others'
    (``partial``); a damaged file is read from a copy repaired by qpdf; a file that
    needs a password is ``encrypted``."""
    with pdf.spare_file() as spare:
        with Children(1) as children:
            probe = children.run(pdf.probe, str(path), str(spare), timeout=PROBE_TIMEOUT)
        if probe["encrypted"]:
            return Extracted("encrypted", error="This PDF is protected by a password.")
        source = spare if probe["repaired"] else path
        texts, scanned, failed = probe["texts"], probe["scanned"], probe["failed"]
        notes = ["the file was damaged and was read from a copy repaired by qpdf"] \
            if probe["repaired"] else []
        notes += [f"page {i + 1}: this page could not be read" for i in failed]
        ocr_notes = ocr_pages(source, "pdf", scanned, texts, cfg) if scanned else []
    facturx = invoice_fields(probe["xml"], source="facturx") if probe.get("xml") else None
    status = "partial" if failed or ocr_notes else "done"
    return Extracted(status, text=join_pages(texts), pages=len(texts), facturx=facturx,
                     notes=notes + ocr_notes)


def _extract_image(path: Path, cfg) -> Extracted:
    """An image's text: every page (frame) goes to Tesseract."""
    with Children(1) as children:
        frames = children.run(images.frames, str(path), timeout=PROBE_TIMEOUT)
    texts = [""] * frames
    notes = ocr_pages(path, "image", list(range(frames)), texts, cfg)
    return Extracted("done", text=join_pages(texts), pages=frames, notes=notes)
