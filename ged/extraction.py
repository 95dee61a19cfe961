"""Text extraction: the text of every blob, once, and its structured invoice data.

``extract_blob`` (run by the ``extract`` queue's job) reads a blob and stores on it:

- ``text``: the PDF text layer (pypdfium2); pages without a usable text layer
  are rendered and read by Tesseract. Images (JPEG, PNG, TIFF with all its
  pages, HEIC) go to Tesseract with their EXIF orientation applied, and pages
  that read badly are turned the way Tesseract's orientation detection says.
  Text, CSV and XML are read as text; office files (docx, xlsx, odt...) by their
  XML parts.
- ``facturx``: the key fields of a Factur-X / ZUGFeRD XML embedded in a PDF, or
  of a bare UBL or CII XML invoice (see invoices.py), read even when it fails the
  XSD, which is recorded in ``schema_valid``.
- ``text_status``: ``done``, ``partial`` (some pages could not be read: the
  others' text is kept), ``failed`` (reason in ``text_error``), ``encrypted`` (a
  PDF that needs a password) or ``unsupported``, mirrored on every document of the
  blob, which is then marked for indexing; documents carrying the same seller and
  invoice number within a company are flagged as probable duplicates.

A PDF that pdfium refuses is repaired by qpdf (pikepdf) into a temporary copy, as
common viewers repair it, and read from there.

Untrusted files are parsed in child processes with a memory limit and a time
limit, so an encrypted, corrupt or malicious file (a decompression bomb, a PDF
that crashes the parser) fails that one blob cleanly and never the worker.
Tesseract runs single-threaded (OMP_THREAD_LIMIT=1: its own threads are slower
on small machines) and the pages of a document are spread over a pool of
processes, one per core by default (GED_OCR_PROCESSES). Scanned pages are read on
the ``ocr`` queue, in slices shared fairly between firms, within a time budget per
page and per document (see the OCR section); every child dies with its worker.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import contextvars
import dataclasses
import logging
import multiprocessing
import os
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import filetypes, invoices, runtime
from .db import transaction
from .invoices import invoice_fields
from .models import Blob, Document

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 5_000_000  # text kept per blob (a 2,000-page PDF of dense text)
MAX_TEXT_FILE_BYTES = 20 * 1024 * 1024  # text, CSV and XML files read as text
MAX_OFFICE_XML_BYTES = 50 * 1024 * 1024  # uncompressed XML read from an office file
OCR_DPI = 300
MAX_RENDER_PIXELS = 40_000_000  # a page rendered bigger than this is rendered at lower dpi
USABLE_LAYER_CHARS = 25  # fewer letters and digits on a page with an image: OCR it
SCAN_MAX_LAYER_CHARS = 200  # a page with more text than this is never OCRed
CHILD_MEMORY_BYTES = 2 * 1024 ** 3  # address space of a parsing child (Tesseract included)
PROBE_TIMEOUT = 300  # seconds to read a file's structure and text layer
LOW_CONFIDENCE = 60  # mean Tesseract word confidence under which orientation is checked

OFFICE = {filetypes.DOCX, filetypes.XLSX, filetypes.PPTX, filetypes.ODT, filetypes.ODS}


class ExtractionFailed(Exception):
    """The file cannot be read; the message is the reason stored in text_error."""


@dataclass
class Extracted:
    """What one extraction found."""

    status: str  # done | partial | failed | encrypted | unsupported
    text: str | None = None
    pages: int | None = None
    facturx: dict | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


# --- the job -----------------------------------------------------------------------------


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
        _mirror(blob)
        return blob.text_status
    if blob.ocr_state is None:
        if not _begin_attempt(blob, "Extraction"):
            return "failed"
        plan = _OcrPlan()
        token = _PLAN.set(plan)
        try:
            with _local_copy(sha256) as path:
                plan.original = str(path)
                result = extract_file(path, blob.content_type)
        except ExtractionFailed as exc:
            result = Extracted("failed", error=str(exc))
        except FileNotFoundError:
            result = Extracted("failed", error="The stored file is missing.")
        except Exception as exc:
            _attempt_failed(sha256, exc)
            raise
        except BaseException:
            _attempt_returned(sha256)
            raise
        finally:
            _PLAN.reset(token)
        if not (plan.pages and result.status in ("done", "partial")):
            _store(sha256, result)
            return result.status
        if not _await_ocr(sha256, result, plan):
            return Blob.get_by_id(sha256).text_status  # another worker finished first
    return "ocr" if defer_ocr else _ocr_to_the_end(sha256)


def _begin_attempt(blob: Blob, what: str) -> bool:
    """Count an extraction attempt before it starts (a killed worker cannot count its
    own); False, with the blob marked failed, once the attempts are used up."""
    limit = runtime.config().extract_max_attempts
    if blob.extract_attempts >= limit:
        last = blob.text_error or "the worker stopped during it"
        _finish_failed(blob.sha256, f"{what} was tried {blob.extract_attempts} times without "
                                    f"finishing; the last error: {last}")
        return False
    Blob.update(extract_attempts=Blob.extract_attempts + 1).where(
        (Blob.sha256 == blob.sha256) & (Blob.text_status == "pending")).execute()
    return True


def _attempt_failed(sha256: str, exc: BaseException) -> None:
    """Keep an unexpected error of an attempt (the blob stays pending, to be tried again)."""
    log.warning("extraction of %s failed: %r", sha256, exc)
    # Users may read it: the kind of error, never a path or an address of the server.
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else None
    with contextlib.suppress(Exception):
        Blob.update(text_error=f"{type(exc).__name__}: {reason}" if reason
                    else type(exc).__name__).where(
            (Blob.sha256 == sha256) & (Blob.text_status == "pending")).execute()


def _attempt_returned(sha256: str) -> None:
    """A worker that stops (not a fault of this file) gives its attempt back."""
    with contextlib.suppress(Exception):
        Blob.update(extract_attempts=Blob.extract_attempts - 1).where(
            (Blob.sha256 == sha256) & (Blob.extract_attempts > 0)).execute()


def _finish_failed(sha256: str, error: str) -> None:
    with transaction():
        _store(sha256, Extracted("failed", error=error))
        Blob.update(ocr_state=None).where(Blob.sha256 == sha256).execute()


def extract_file(path: Path, content_type: str) -> Extracted:
    """Read one file by its (already verified) content type."""
    cfg = runtime.config()
    if content_type == filetypes.PDF:
        return _extract_pdf(path, cfg)
    if content_type in filetypes.IMAGE_TYPES:
        return _extract_image(path, cfg)
    if content_type in (filetypes.TEXT, filetypes.CSV, filetypes.JSON):
        return Extracted("done", text=_read_text(path))
    if content_type == filetypes.XML:
        return _extract_xml(path)
    if content_type in OFFICE:
        with _Children(1) as children:
            text = children.run(_office_text, str(path), timeout=PROBE_TIMEOUT)
        return Extracted("done", text=text)
    return Extracted("unsupported")


def _store(sha256: str, result: Extracted) -> None:
    """Record the result on the blob and its documents in one transaction."""
    from . import documents

    text = result.text[:MAX_TEXT_CHARS] if result.text else result.text
    error = result.error or ("; ".join(result.notes) if result.notes else None)
    with transaction():
        updated = (Blob.update(text=text, text_status=result.status, text_error=error,
                               pages=result.pages, facturx=result.facturx)
                   .where((Blob.sha256 == sha256) & (Blob.text_status == "pending")).execute())
        if not updated:
            return  # another worker finished first
        key = documents.invoice_key(result.facturx)
        Document.update(text_status=result.status, invoice_key=key, index_dirty=True).where(
            Document.blob == sha256).execute()
        if key:
            for company_id in {d.company_id for d in Document.select(Document.company).where(
                    Document.blob == sha256)}:
                flag_duplicates(company_id, key)


def _mirror(blob: Blob) -> None:
    """Documents deposited while the blob was being extracted get its final status."""
    from . import documents

    key = documents.invoice_key(blob.facturx)
    stale = Document.select(Document.id).where((Document.blob == blob.sha256)
                                               & (Document.text_status != blob.text_status))
    if stale.exists():
        with transaction():
            Document.update(text_status=blob.text_status, invoice_key=key, index_dirty=True).where(
                Document.blob == blob.sha256).execute()


def flag_duplicates(company_id: str, key: str) -> list[str]:
    """Within a company, every document with the same invoice key (seller + number)
    as an earlier one is a probable duplicate of the earliest; returns the ids flagged.
    Identical bytes were already flagged at deposit."""
    from . import audit

    docs = list(Document.select(Document.id, Document.firm, Document.company,
                                Document.duplicate_of, Document.deposited_at)
                .where((Document.company == company_id) & (Document.invoice_key == key)
                       & Document.trashed_at.is_null())
                .order_by(Document.deposited_at, Document.id))
    flagged = []
    for doc in docs[1:]:
        if doc.duplicate_of is None:
            Document.update(duplicate_of=docs[0].id).where(Document.id == doc.id).execute()
            audit.record("système", "document.duplicate_flagged", doc, firm=doc.firm_id,
                         firm_only=True, details={"duplicate_of": docs[0].id, "invoice_key": key})
            flagged.append(doc.id)
    return flagged


@contextlib.contextmanager
def _local_copy(sha256: str):
    """A filesystem path to the blob: in place on disk, or a temporary copy (S3)."""
    from .storage import copy_to, staging_dir

    store = runtime.store()
    local = getattr(store, "local_path", None)
    path = local(sha256) if local else None
    if path is not None and Path(path).exists():
        yield Path(path)
        return
    if path is not None and not store.exists(sha256):
        raise FileNotFoundError(sha256)
    fd, name = tempfile.mkstemp(prefix="extract-", dir=staging_dir(runtime.config().data_dir))
    try:
        with os.fdopen(fd, "wb") as out:
            copy_to(store, sha256, out)
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


# --- child processes ---------------------------------------------------------------------


def _child_init(memory_bytes: int, parent: int | None, cpu_seconds: float | None = None) -> None:
    """In each child: killed with its parent (a worker killed mid-OCR leaves nothing
    running), bounded memory (and CPU time when given), single-threaded Tesseract, no
    Pillow bomb."""
    import faulthandler
    import resource
    import signal

    from .processes import die_with_parent

    die_with_parent(signal.SIGKILL)
    if parent is not None and os.getppid() != parent:
        os._exit(1)  # the parent died before the request took effect
    faulthandler.disable()  # a parser crash is reported by the parent, once
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    if cpu_seconds:
        # CPU time, not wall time: a file costs the same whatever else the machine is
        # doing, so a busy server never refuses a good file for being slow to check.
        limit = max(1, int(cpu_seconds + 0.999))
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_CPU, (limit, limit + 1))
    os.environ["OMP_THREAD_LIMIT"] = "1"
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = filetypes.MAX_IMAGE_PIXELS


def _context():
    # fork: a child starts at once with everything imported, and runs only the
    # parsing function (RQ's own work-horses are forked the same way); a forkserver
    # would re-run the main script in every child.
    return multiprocessing.get_context("fork")


_checker_context = None


def checker_context():
    """The context for children started from a request thread: a fork server, started
    once per process from a single thread and preloaded with the parsers. Forking the
    threaded web process itself could copy a lock another thread held (a child stuck
    forever, a good file refused under load)."""
    global _checker_context
    if _checker_context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["ged.filetypes", "ged.extraction", "pypdfium2",
                                        "pikepdf", "PIL.Image"])
        _checker_context = context
    return _checker_context


class _Children:
    """A pool of parsing children for one extraction; a crash, a timeout or a memory
    error in a child becomes ExtractionFailed."""

    def __init__(self, processes: int, cpu_seconds: float | None = None, *,
                 mp_context=None):
        self.size = max(1, processes)
        context = mp_context or _context()
        # A forked child's parent is this process; a fork server's child's is the
        # server (which ends with this process).
        parent = os.getpid() if context.get_start_method() == "fork" else None
        self.pool = cf.ProcessPoolExecutor(max_workers=self.size, mp_context=context,
                                           initializer=_child_init,
                                           initargs=(CHILD_MEMORY_BYTES, parent,
                                                     cpu_seconds))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(kill=exc[0] is not None)

    def close(self, kill: bool = False) -> None:
        if kill:
            # Children we started and that are stuck or unwanted: end them now (their
            # Tesseract processes die with them, see _run_tesseract).
            for process in list((getattr(self.pool, "_processes", None) or {}).values()):
                with contextlib.suppress(Exception):
                    process.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def result(self, future, timeout: float):
        try:
            return future.result(timeout=timeout)
        except cf.TimeoutError:
            raise ExtractionFailed("Reading this file took too long.") from None
        except cf.process.BrokenProcessPool:
            raise ExtractionFailed("This file could not be read (the reader stopped on it; "
                                   "it may be damaged or malicious).") from None
        except MemoryError:
            raise ExtractionFailed("This file needs too much memory to be read "
                                   "(a possible decompression bomb).") from None
        except ExtractionFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - any parser error: this file only
            log.info("extraction error: %r", exc)
            raise ExtractionFailed(f"This file could not be read: {_short(exc)}") from None

    def run(self, fn, *args, timeout: float):
        return self.result(self.submit(fn, *args), timeout)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _processes(cfg, pages: int) -> int:
    wanted = cfg.ocr_processes or os.cpu_count() or 1
    return max(1, min(wanted, pages))


# --- PDF ------------------------------------------------------------------------------------


def _extract_pdf(path: Path, cfg) -> Extracted:
    """A PDF's text, page by page: a page that cannot be read leaves the others'
    (``partial``); a damaged file is read from a copy repaired by qpdf; a file that
    needs a password is ``encrypted``."""
    with spare_file() as spare:
        with _Children(1) as children:
            probe = children.run(_pdf_probe, str(path), str(spare), timeout=PROBE_TIMEOUT)
        if probe["encrypted"]:
            return Extracted("encrypted", error="This PDF is protected by a password.")
        source = spare if probe["repaired"] else path
        texts, scanned, failed = probe["texts"], probe["scanned"], probe["failed"]
        notes = ["the file was damaged and was read from a copy repaired by qpdf"] \
            if probe["repaired"] else []
        notes += [f"page {i + 1}: this page could not be read" for i in failed]
        ocr_notes = _ocr_pages(source, "pdf", scanned, texts, cfg) if scanned else []
    facturx = invoice_fields(probe["xml"], source="facturx") if probe.get("xml") else None
    status = "partial" if failed or ocr_notes else "done"
    return Extracted(status, text=_join_pages(texts), pages=len(texts), facturx=facturx,
                     notes=notes + ocr_notes)


@contextlib.contextmanager
def spare_file():
    """An empty temporary file in the data dir (never /tmp: these are clients' documents),
    removed afterwards: where a repaired copy of a PDF is written."""
    from .storage import staging_dir

    fd, name = tempfile.mkstemp(prefix="repaired-", suffix=".pdf",
                                dir=staging_dir(runtime.config().data_dir))
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


class PdfEncrypted(Exception):
    """The PDF opens only with a password."""


def open_pdf(path: str, spare: str):
    """In a child: ``(pdfium document, repaired)``. A PDF pdfium refuses is opened by
    qpdf (pikepdf), which repairs what common viewers get over (broken or missing
    cross-reference table, truncation, junk) and decrypts an empty user password; the
    repaired copy is written to ``spare`` and read from there. Raises PdfEncrypted, or
    ExtractionFailed when even qpdf cannot read it."""
    import pikepdf
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(path), False
    except pdfium.PdfiumError:
        pass
    try:
        with pikepdf.open(path, attempt_recovery=True) as repaired:
            if len(repaired.pages) == 0:
                raise ExtractionFailed("This PDF is damaged and cannot be read.")
            repaired.save(spare, encryption=False)
    except pikepdf.PasswordError:
        raise PdfEncrypted() from None
    except ExtractionFailed:
        raise
    except Exception:  # noqa: BLE001 - beyond repair
        raise ExtractionFailed("This PDF is damaged and cannot be read.") from None
    try:
        return pdfium.PdfDocument(spare), True
    except pdfium.PdfiumError:
        raise ExtractionFailed("This PDF is damaged and cannot be read.") from None


def _ocr_pages(path: Path, kind: str, indexes: list[int], texts: list[str], cfg) -> list[str]:
    """Pages to read with Tesseract. Within extract_blob they are left to the OCR slices
    (recorded in its plan; ``texts`` untouched); otherwise they are read here, within
    the budgets, into ``texts``. Returns notes on the pages not read."""
    plan = _PLAN.get()
    if plan is not None:
        plan.kind, plan.pages, plan.texts = kind, list(indexes), texts
        plan.repaired = plan.original is not None and str(path) != plan.original
        return []
    read, notes = _read_pages(str(path), kind, list(indexes), cfg)
    for i, text in read.items():
        texts[i] = text
    unread = [i for i in indexes if i not in read]
    return notes + ([_budget_note(unread, cfg)] if unread else [])


def _join_pages(texts: list[str]) -> str:
    return "\n\n".join(t.strip() for t in texts if t and t.strip())


def _pdf_probe(path: str, spare: str) -> dict:
    """In a child: each page's text layer (a page that fails is listed in ``failed``
    and left empty), which pages need OCR, whether the file needed a repair or a
    password, and an embedded Factur-X / ZUGFeRD XML."""
    try:
        pdf, repaired = open_pdf(path, spare)
    except PdfEncrypted:
        return {"encrypted": True}
    texts, scanned, failed = [], [], []
    try:
        pages = len(pdf)
        if pages > filetypes.MAX_PDF_PAGES:
            raise ExtractionFailed(f"This PDF has {pages} pages; the limit is "
                                   f"{filetypes.MAX_PDF_PAGES}.")
        for i in range(pages):
            try:
                text, needs_ocr = _page_text(pdf, i)
            except Exception:  # noqa: BLE001 - this page only: the others are kept
                texts.append("")
                failed.append(i)
                continue
            texts.append(text)
            if needs_ocr:
                scanned.append(i)
    finally:
        pdf.close()
    if pages and len(failed) == pages:
        raise ExtractionFailed("No page of this PDF could be read.")
    source = spare if repaired else path
    return {"encrypted": False, "repaired": repaired, "texts": texts, "scanned": scanned,
            "failed": failed, "xml": _embedded_invoice_xml(source)}


def _page_text(pdf, index: int) -> tuple[str, bool]:
    """One page's text layer and whether it needs OCR."""
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        text = textpage.get_text_range()
        textpage.close()
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
        try:
            needs_ocr = _looks_scanned(page, text)
        except Exception:  # noqa: BLE001 - odd image objects: keep the text layer
            needs_ocr = False
        return text, needs_ocr
    finally:
        page.close()


def _looks_scanned(page, text: str) -> bool:
    """A page to OCR: images and (almost) no text layer, or images covering most of
    it with little text (a scan with a stamp or a few typed words on it)."""
    import pypdfium2.raw as pdfium_c

    letters = sum(ch.isalnum() for ch in text)
    if letters >= SCAN_MAX_LAYER_CHARS:
        return False
    width, height = page.get_size()
    covered = 0.0
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3):
        left, bottom, right, top = obj.get_bounds()
        covered += max(0.0, right - left) * max(0.0, top - bottom)
    share = covered / max(1.0, width * height)
    return share >= 0.5 or (letters < USABLE_LAYER_CHARS and share >= 0.05)


INVOICE_ATTACHMENTS = ("factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml")
MAX_INVOICE_XML_BYTES = 20 * 1024 * 1024


def _embedded_invoice_xml(path: str) -> bytes | None:
    """The Factur-X / ZUGFeRD / XRechnung XML attached to a PDF (by its standard file
    name, whatever the case), read with pikepdf WITHOUT any XSD check (validity is
    recorded separately); pikepdf reads only the objects it needs, so a large PDF is
    never held whole, and it decrypts an empty user password. No repair here (callers
    outside a child, e.g. forwarding, must not run qpdf's reconstruction): extraction
    passes the copy it already repaired."""
    import pikepdf

    try:
        with pikepdf.open(path, attempt_recovery=False) as pdf:
            for name, spec in pdf.attachments.items():
                if str(name).lower() not in INVOICE_ATTACHMENTS:
                    continue
                stream = spec.get_file().obj
                length = int(stream.get("/Length", 0) or 0)
                if length > MAX_INVOICE_XML_BYTES:
                    return None
                data = spec.get_file().read_bytes()
                return data[:MAX_INVOICE_XML_BYTES] or None
    except Exception:  # noqa: BLE001 - no readable attachment: a plain PDF
        return None
    return None


def _scanned_image(page):
    """The page's one image when the page is a plain scan (a single upright image
    covering it at 150 to 600 dpi): taken as it is, it costs a tenth of a render."""
    import pypdfium2.raw as pdfium_c

    if page.get_rotation() % 360:
        return None
    images = list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=1))
    if len(images) != 1:
        return None
    image = images[0]
    a, b, c, d, _e, _f = image.get_matrix().get()
    if b or c or a <= 0 or d <= 0:
        return None  # turned or mirrored: let the renderer place it
    width, height = page.get_size()
    left, bottom, right, top = image.get_bounds()
    if (right - left) * (top - bottom) < 0.9 * width * height:
        return None
    pixels_wide, pixels_high = image.get_px_size()
    dpi = pixels_wide / max(1.0, (right - left) / 72)
    if not 150 <= dpi <= 600 or pixels_wide * pixels_high > MAX_RENDER_PIXELS:
        return None
    picture = image.get_bitmap(render=False).to_pil()
    return picture.convert("L") if picture.mode != "L" else picture.copy()


def _render_pdf_page(path: str, index: int):
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        page = pdf[index]
        try:
            scanned = _scanned_image(page)
        except Exception:  # noqa: BLE001 - an unusual image: render the page instead
            scanned = None
        if scanned is not None:
            page.close()
            return scanned
        width, height = page.get_size()  # points
        scale = OCR_DPI / 72
        pixels = width * scale * height * scale
        if pixels > MAX_RENDER_PIXELS:
            scale *= (MAX_RENDER_PIXELS / pixels) ** 0.5
        bitmap = page.render(scale=scale, grayscale=True)
        image = bitmap.to_pil()
        image = image.convert("L") if image.mode != "L" else image.copy()
        bitmap.close()
        page.close()
        return image
    finally:
        pdf.close()


# --- images ---------------------------------------------------------------------------------


def _extract_image(path: Path, cfg) -> Extracted:
    with _Children(1) as children:
        frames = children.run(_image_frames, str(path), timeout=PROBE_TIMEOUT)
    texts = [""] * frames
    notes = _ocr_pages(path, "image", list(range(frames)), texts, cfg)
    return Extracted("done", text=_join_pages(texts), pages=frames, notes=notes)


def _open_image(path: str):
    from PIL import Image

    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - optional
        pass
    return Image.open(path)


def _image_frames(path: str) -> int:
    with _open_image(path) as img:
        return max(1, getattr(img, "n_frames", 1))


def _load_image_frame(path: str, index: int):
    from PIL import ImageOps

    with _open_image(path) as img:
        if index:
            img.seek(index)
        # Phone photos are stored sideways with an EXIF orientation tag.
        img = ImageOps.exif_transpose(img)
        img = img.convert("L")
        if img.width * img.height > MAX_RENDER_PIXELS:
            ratio = (MAX_RENDER_PIXELS / (img.width * img.height)) ** 0.5
            img = img.resize((int(img.width * ratio), int(img.height * ratio)))
        return img


# --- OCR --------------------------------------------------------------------------------------
#
# Scanned pages are read on the ``ocr`` queue, in slices, never in the ``extract`` job:
# each ``ocr`` job (``ocr_next``) takes the waiting document of the firm served least
# recently, reads its next pages for about ``ocr_slice_seconds`` over a pool of
# processes, saves them on the blob (``ocr_state``) and, while pages remain, leaves the
# next turn to the next job: one client's long scan never holds the others back. A page
# gets ``ocr_page_seconds`` and a document ``ocr_document_seconds`` of reading; past
# them pages are skipped and the document ends ``partial`` with the text read.

OCR_LEASE_SECONDS = 30  # a slice's claim on its blob, extended while it reads
OCR_GUARD_SECONDS = 15  # past a page's budget by this much, its child is stuck: killed
_SERVED_KEY = "ged:ocr:served"  # firm id -> the turn it was last served at
_TURN_KEY = "ged:ocr:turn"


@dataclass
class _OcrPlan:
    """What an extraction leaves to the OCR slices (filled by _ocr_pages)."""

    original: str | None = None  # the blob's own file
    kind: str | None = None  # pdf | image
    pages: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # every page's text so far
    repaired: bool = False  # pages are read from a repaired copy of the PDF


_PLAN: contextvars.ContextVar = contextvars.ContextVar("ged_ocr_plan", default=None)


class _OutOfTime(Exception):
    """A page's reading budget is spent."""


class _TesseractError(Exception):
    """Tesseract ended with an error (an unreadable image, too little text for OSD)."""


def _await_ocr(sha256: str, result: Extracted, plan: _OcrPlan) -> bool:
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
    from peewee import JOIN, fn

    from . import queue

    rows = list(Blob.select(Blob.sha256, Blob.created_at, fn.MIN(Document.firm))
                .join(Document, JOIN.LEFT_OUTER, on=(Document.blob == Blob.sha256))
                .where((Blob.text_status == "pending") & Blob.ocr_state.is_null(False))
                .group_by(Blob.sha256, Blob.created_at).order_by(Blob.created_at)
                .limit(1000).tuples())
    if not rows:
        return []
    firms = sorted({firm or "" for _sha, _at, firm in rows})
    served = dict(zip(firms, queue.connection().hmget(_SERVED_KEY, firms)))
    rows.sort(key=lambda row: int(served.get(row[2] or "") or 0))  # stable: oldest first
    return [(sha, firm or "") for sha, _at, firm in rows]


def waiting_for_ocr(limit: int = 1000) -> list[str]:
    """Blobs waiting for OCR that no worker is reading now (for the reconciler)."""
    from . import queue

    shas = [b.sha256 for b in Blob.select(Blob.sha256).where(
        (Blob.text_status == "pending") & Blob.ocr_state.is_null(False)).limit(limit)]
    if not shas:
        return []
    held = queue.connection().mget([_lease_key(sha) for sha in shas])
    return [sha for sha, lease in zip(shas, held) if lease is None]


def _lease_key(sha256: str) -> str:
    return f"ged:ocr-lease:{sha256}"


def ocr_slice(sha256: str, firm: str | None = None) -> str:
    """Read a waiting blob's next pages for about one slice and save them. Returns
    ``"ocr"`` while pages remain, the blob's final status once it is done, ``"busy"``
    when another process is reading it. ``firm``: the firm whose turn this is."""
    from . import queue

    cfg = runtime.config()
    lease = queue.Lease(_lease_key(sha256), OCR_LEASE_SECONDS)
    if not lease.acquire():
        return "busy"
    try:
        blob = Blob.get_or_none(Blob.sha256 == sha256)
        if blob is None:
            return "missing"
        if blob.text_status != "pending" or blob.ocr_state is None:
            return blob.text_status
        if firm is not None:
            connection = queue.connection()
            connection.hset(_SERVED_KEY, firm, connection.incr(_TURN_KEY))
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
            _attempt_failed(sha256, exc)
            raise
        except BaseException:
            _attempt_returned(sha256)
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


def _ocr_to_the_end(sha256: str) -> str:
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
    text = _join_pages(state["texts"])
    status = found["status"]
    if unread or state["notes"] or stopped:
        status = "partial" if text else "failed"
    found.update(status=status, text=text, notes=notes)
    with transaction():
        _store(sha256, Extracted(**found))
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
    with _local_copy(sha256) as path:
        if not state.get("repaired"):
            yield str(path)
            return
        with spare_file() as spare:
            with _Children(1) as children:
                repaired = children.run(_repair_pdf, str(path), str(spare),
                                        timeout=PROBE_TIMEOUT)
            yield str(spare) if repaired else str(path)


def _repair_pdf(path: str, spare: str) -> bool:
    """In a child: write the repaired copy of a damaged PDF to ``spare`` (see open_pdf)."""
    pdf, repaired = open_pdf(path, spare)
    pdf.close()
    return repaired


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
    with _Children(_processes(cfg, len(todo))) as children:

        def fill() -> None:
            while todo and len(running) < children.size:
                elapsed = time.monotonic() - start
                if elapsed >= budget or (slice_seconds is not None and elapsed >= slice_seconds):
                    return
                seconds = min(cfg.ocr_page_seconds, budget - elapsed)
                try:
                    future = children.submit(_ocr_page, path, kind, todo[0], cfg.ocr_languages,
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


def _ocr_page(path: str, kind: str, index: int, languages: str, seconds: float) -> str:
    """In a child: render or load one page and read it within ``seconds``. A page read
    well needs one Tesseract pass. One that reads badly gets orientation detection: a
    page it finds turned is read turned; one it finds upright is read again cleaned of
    speckles (a noisy scan); when it cannot tell (a short page), each turn is tried.
    The best reading is kept; the budget cuts the extra passes short."""
    deadline = time.monotonic() + seconds
    image = _render_pdf_page(path, index) if kind == "pdf" else _load_image_frame(path, index)
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
    """The images worth another pass when a page read badly (see _ocr_page)."""
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
    import subprocess

    from .storage import staging_dir

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
    import signal

    from .processes import die_with_parent

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


# --- text, XML and office files -----------------------------------------------------------------


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _read_text(path: Path) -> str:
    with open(path, "rb") as fh:
        data = fh.read(MAX_TEXT_FILE_BYTES)
    return _decode(data).replace("\x00", "")


def _extract_xml(path: Path) -> Extracted:
    with open(path, "rb") as fh:
        data = fh.read(MAX_TEXT_FILE_BYTES + 1)
    if len(data) > MAX_TEXT_FILE_BYTES:
        return Extracted("done", text=_decode(data[:MAX_TEXT_FILE_BYTES]))
    root = invoices.parse(data)
    if root is None:
        return Extracted("done", text=_decode(data))
    facturx = invoice_fields(data) if invoices.flavor(root) else None
    text = " ".join(t.strip() for t in root.itertext() if t and t.strip())
    return Extracted("done", text=text, facturx=facturx)


def _office_text(path: str) -> str:
    """In a child: the text of an OOXML or ODF file, from its XML parts (bounded)."""
    from lxml import etree

    parts, budget = [], MAX_OFFICE_XML_BYTES
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist()
                 if n == "content.xml" or re.fullmatch(
                     r"(word/(document|header\d*|footer\d*)|xl/sharedStrings|"
                     r"xl/worksheets/sheet\d+|ppt/slides/slide\d+)\.xml", n)]
        for name in names:
            info = zf.getinfo(name)
            if info.file_size > budget:
                raise ExtractionFailed("This office file expands to too much data "
                                       "(a possible zip bomb).")
            budget -= info.file_size
            with zf.open(name) as fh:
                data = fh.read(info.file_size + 1)
            root = etree.fromstring(data, invoices.safe_parser())
            parts.append(" ".join(t.strip() for t in root.itertext() if t and t.strip()))
    return "\n".join(p for p in parts if p)


__all__ = ["extract_blob", "extract_file", "invoice_fields", "flag_duplicates", "Extracted",
           "ExtractionFailed"]
