"""Text extraction: the text of every blob, once, and its structured invoice data.

``extract_blob`` (run by the ``extract`` queue's job) reads a blob and stores on it:

- ``text``: the PDF text layer (pypdfium2); pages without a usable text layer
  are rendered and read by Tesseract. Images (JPEG, PNG, TIFF with all its
  pages, HEIC) go to Tesseract with their EXIF orientation applied, and pages
  that read badly are turned the way Tesseract's orientation detection says.
  Text, CSV and XML are read as text; office files (docx, xlsx, odt...) by their
  XML parts.
- ``facturx``: the key fields of a Factur-X / ZUGFeRD XML embedded in a PDF (read
  with the ``factur-x`` library even when it fails the XSD, which is recorded in
  ``schema_valid``), or of a bare UBL or CII XML invoice.
- ``text_status``: ``done``, ``failed`` (reason in ``text_error``) or
  ``unsupported``, mirrored on every document of the blob, which is then marked
  for indexing; documents carrying the same seller and invoice number within a
  company are flagged as probable duplicates.

Untrusted files are parsed in child processes with a memory limit and a time
limit, so an encrypted, corrupt or malicious file (a decompression bomb, a PDF
that crashes the parser) fails that one blob cleanly and never the worker.
Tesseract runs single-threaded (OMP_THREAD_LIMIT=1: its own threads are slower
on small machines) and the pages of a document are spread over a pool of
processes, one per core by default (GED_OCR_PROCESSES).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as dt
import logging
import multiprocessing
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import filetypes, runtime
from .db import transaction
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
PAGE_TIMEOUT = 300  # seconds to render and OCR one page
LOW_CONFIDENCE = 60  # mean Tesseract word confidence under which orientation is checked

OFFICE = {filetypes.DOCX, filetypes.XLSX, filetypes.PPTX, filetypes.ODT, filetypes.ODS}


class ExtractionFailed(Exception):
    """The file cannot be read; the message is the reason stored in text_error."""


@dataclass
class Extracted:
    """What one extraction found."""

    status: str  # done | failed | unsupported
    text: str | None = None
    pages: int | None = None
    facturx: dict | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


# --- the job -----------------------------------------------------------------------------


def extract_blob(sha256: str) -> str:
    """Extract a blob's text and invoice data once; mirror the status on its documents.
    Safe to run twice: a blob already extracted is left as it is."""
    blob = Blob.get_or_none(Blob.sha256 == sha256)
    if blob is None:
        return "missing"
    if blob.text_status != "pending":
        _mirror(blob)
        return blob.text_status
    try:
        with _local_copy(sha256) as path:
            result = extract_file(path, blob.content_type)
    except ExtractionFailed as exc:
        result = Extracted("failed", error=str(exc))
    except FileNotFoundError:
        result = Extracted("failed", error="The stored file is missing.")
    _store(sha256, result)
    return result.status


def extract_file(path: Path, content_type: str) -> Extracted:
    """Read one file by its (already verified) content type."""
    cfg = runtime.config()
    if content_type == filetypes.PDF:
        return _extract_pdf(path, cfg)
    if content_type in filetypes.IMAGE_TYPES:
        return _extract_image(path, cfg)
    if content_type in (filetypes.TEXT, filetypes.CSV):
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


def _child_init(memory_bytes: int) -> None:
    """In each child: bounded memory, single-threaded Tesseract, no Pillow bomb."""
    import faulthandler
    import resource

    faulthandler.disable()  # a parser crash is reported by the parent, once
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    os.environ["OMP_THREAD_LIMIT"] = "1"
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = filetypes.MAX_IMAGE_PIXELS


def _context():
    # fork: a child starts at once with everything imported, and runs only the
    # parsing function (RQ's own work-horses are forked the same way); a forkserver
    # would re-run the main script in every child.
    return multiprocessing.get_context("fork")


class _Children:
    """A pool of parsing children for one extraction; a crash, a timeout or a memory
    error in a child becomes ExtractionFailed."""

    def __init__(self, processes: int):
        self.pool = cf.ProcessPoolExecutor(max_workers=max(1, processes), mp_context=_context(),
                                           initializer=_child_init,
                                           initargs=(CHILD_MEMORY_BYTES,))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close(kill=exc[0] is not None)

    def close(self, kill: bool = False) -> None:
        if kill:
            # Children we started and that are stuck or unwanted: end them now.
            for process in list(getattr(self.pool, "_processes", {}).values()):
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
    with _Children(1) as children:
        probe = children.run(_pdf_probe, str(path), timeout=PROBE_TIMEOUT)
    texts, scanned = probe["texts"], probe["scanned"]
    notes = _ocr_pages(path, "pdf", scanned, texts, cfg) if scanned else []
    facturx = invoice_fields(probe["xml"], source="facturx") if probe.get("xml") else None
    return Extracted("done", text=_join_pages(texts), pages=len(texts), facturx=facturx,
                     notes=notes)


def _ocr_pages(path: Path, kind: str, indexes: list[int], texts: list[str], cfg) -> list[str]:
    """OCR pages over a pool of processes (one per core); fills ``texts``. A page that
    fails is noted and left empty, unless it is the only page."""
    notes = []
    with _Children(_processes(cfg, len(indexes))) as children:
        futures = {i: children.submit(_ocr_page, str(path), kind, i, cfg.ocr_languages)
                   for i in indexes}
        for i, future in futures.items():
            try:
                texts[i] = children.result(future, PAGE_TIMEOUT * len(indexes))
            except ExtractionFailed as exc:
                if len(texts) == 1:
                    raise
                notes.append(f"page {i + 1}: {exc}")
                texts[i] = ""
    return notes


def _join_pages(texts: list[str]) -> str:
    return "\n\n".join(t.strip() for t in texts if t and t.strip())


def _pdf_probe(path: str) -> dict:
    """In a child: page count, each page's text layer, which pages need OCR, and an
    embedded Factur-X / ZUGFeRD XML."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ExtractionFailed("This PDF is protected by a password.") from None
        raise ExtractionFailed("This PDF is damaged and cannot be read.") from None
    texts, scanned = [], []
    try:
        pages = len(pdf)
        if pages > filetypes.MAX_PDF_PAGES:
            raise ExtractionFailed(f"This PDF has {pages} pages; the limit is "
                                   f"{filetypes.MAX_PDF_PAGES}.")
        for i in range(pages):
            page = pdf[i]
            textpage = page.get_textpage()
            text = textpage.get_text_range()
            textpage.close()
            text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
            texts.append(text)
            if _looks_scanned(page, text):
                scanned.append(i)
            page.close()
    finally:
        pdf.close()
    return {"texts": texts, "scanned": scanned, "xml": _embedded_invoice_xml(path)}


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


def _embedded_invoice_xml(path: str) -> bytes | None:
    """The Factur-X / ZUGFeRD / XRechnung XML attached to a PDF, read with the
    factur-x library WITHOUT its XSD check (which would silently skip an XML that
    fails the schema: validity is recorded separately)."""
    import logging as logging_

    from facturx import get_xml_from_pdf

    logging_.getLogger("factur-x").setLevel(logging_.ERROR)
    data = Path(path).read_bytes()
    try:
        _name, xml = get_xml_from_pdf(data, check_xsd=False)
    except Exception:  # noqa: BLE001 - no readable attachment: a plain PDF
        return None
    return xml or None


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


def _ocr_page(path: str, kind: str, index: int, languages: str) -> str:
    """In a child: render or load one page and read it. A page that reads badly may be
    upside down or sideways: turn it the way Tesseract's orientation detection says
    (or, when a short page leaves it unsure, each way) and keep the best reading."""
    image = _render_pdf_page(path, index) if kind == "pdf" else _load_image_frame(path, index)
    text, (confidence, count) = _tesseract(image, languages)
    if count >= 5 and confidence >= LOW_CONFIDENCE:
        return text
    best, best_score = text, confidence * count
    angle = _orientation(image)
    for turn in ([angle] if angle else [180, 90, 270]):
        turned, (confidence, count) = _tesseract(image.rotate(-turn, expand=True), languages)
        if confidence * count > best_score:
            best, best_score = turned, confidence * count
        if count and confidence >= LOW_CONFIDENCE:
            break
    return best


def _tesseract(image, languages: str) -> tuple[str, tuple[float, int]]:
    """Text and (mean word confidence, words) of one image, Tesseract single-threaded."""
    import pytesseract

    # PGM is written raw (a PNG encode would cost a tenth of the OCR time).
    image.format = "PPM"
    data = pytesseract.image_to_data(image, lang=languages, config="--psm 3",
                                     output_type=pytesseract.Output.DICT,
                                     timeout=PAGE_TIMEOUT)
    lines: dict[tuple, list[str]] = {}
    confidences = []
    for i, word in enumerate(data["text"]):
        word = (word or "").strip()
        if not word:
            continue
        key = (data["page_num"][i], data["block_num"][i], data["par_num"][i], data["line_num"][i])
        lines.setdefault(key, []).append(word)
        try:
            confidences.append(float(data["conf"][i]))
        except (TypeError, ValueError):
            pass
    out, last_par = [], None
    for key in sorted(lines):
        if last_par is not None and key[:3] != last_par:
            out.append("")
        out.append(" ".join(lines[key]))
        last_par = key[:3]
    mean = sum(confidences) / len(confidences) if confidences else 0.0
    return "\n".join(out), (mean, len(confidences))


def _orientation(image) -> int:
    """Degrees clockwise the page must turn to be upright (0, 90, 180, 270), by
    Tesseract's orientation detection; 0 when it cannot tell."""
    import pytesseract

    try:
        osd = pytesseract.image_to_osd(image, config="--psm 0",
                                       output_type=pytesseract.Output.DICT, timeout=PAGE_TIMEOUT)
    except Exception:  # noqa: BLE001 - too little text to tell
        return 0
    if float(osd.get("orientation_conf", 0)) < 1.0:
        return 0
    return int(osd.get("rotate", 0)) % 360


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
    root = _parse_xml(data)
    if root is None:
        return Extracted("done", text=_decode(data))
    facturx = invoice_fields(data) if _invoice_flavor(root) else None
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
            root = etree.fromstring(data, _safe_parser())
            parts.append(" ".join(t.strip() for t in root.itertext() if t and t.strip()))
    return "\n".join(p for p in parts if p)


# --- structured invoices: Factur-X / ZUGFeRD (CII), UBL -----------------------------------------


def _safe_parser():
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                           remove_comments=True, remove_pis=True)


def _parse_xml(data: bytes):
    from lxml import etree

    try:
        return etree.fromstring(data, _safe_parser())
    except (etree.XMLSyntaxError, ValueError):
        return None


def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _invoice_flavor(root) -> str | None:
    """cii (Factur-X, ZUGFeRD 2, XRechnung CII), zugferd1, ubl, or None."""
    name = _local(root.tag)
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if name == "CrossIndustryInvoice":
        return "cii"
    if name == "CrossIndustryDocument":
        return "zugferd1"
    if name in ("Invoice", "CreditNote") and "ubl" in ns.lower():
        return "ubl"
    return None


def _find(node, path: str):
    """The first element under ``node`` along a path of local names ("A/B/C"),
    whatever the namespaces; None when absent."""
    current = [node]
    for part in path.split("/"):
        found = []
        for element in current:
            found.extend(child for child in element if _local(child.tag) == part)
        if not found:
            return None
        current = found
    return current[0]


def _findall(node, path: str) -> list:
    current = [node]
    for part in path.split("/"):
        current = [child for element in current for child in element if _local(child.tag) == part]
    return current


def _text(node, *paths: str) -> str | None:
    for path in paths:
        element = _find(node, path) if path else node
        if element is not None and element.text and element.text.strip():
            return " ".join(element.text.split())
    return None


def _iso_date(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip()
    for fmt in ("%Y%m%d", "%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(value[:10] if "-" in value else value[:8], fmt).date().isoformat()
        except ValueError:
            continue
    return value[:20]


def _amount(nodes: list, currency: str | None) -> str | None:
    """The amount among ``nodes`` in the invoice currency (CII repeats some totals in
    the accounting currency)."""
    chosen = None
    for node in nodes:
        if node.text is None or not node.text.strip():
            continue
        if chosen is None or (currency and node.get("currencyID") == currency):
            chosen = node
    return chosen.text.strip() if chosen is not None else None


def _siren(*candidates: tuple[str | None, str | None]) -> str | None:
    """A SIREN from (identifier, scheme) pairs: scheme 0002 is a SIREN, 0009 a SIRET."""
    for value, scheme in candidates:
        if not value:
            continue
        digits = re.sub(r"\s", "", value)
        if scheme in ("0002", None, "") and re.fullmatch(r"\d{9}", digits):
            return digits
        if scheme in ("0009", None, "") and re.fullmatch(r"\d{14}", digits):
            return digits[:9]
    return None


def _siren_from_vat(vat: str | None) -> str | None:
    if vat and re.fullmatch(r"FR[0-9A-Z]{2}\d{9}", vat.replace(" ", "").upper()):
        return vat.replace(" ", "")[4:13]
    return None


def invoice_fields(xml: bytes, source: str | None = None) -> dict | None:
    """The key fields of a CII (Factur-X, ZUGFeRD) or UBL invoice, read even when the
    XML is not schema-valid; ``schema_valid`` says whether it passes the XSD (None:
    no schema to check against)."""
    root = _parse_xml(xml)
    if root is None:
        return None
    flavor = _invoice_flavor(root)
    if flavor is None:
        return None
    if flavor == "ubl":
        fields_ = _ubl_fields(root)
    elif flavor == "cii":
        fields_ = _cii_fields(root)
    else:
        fields_ = _zugferd1_fields(root)
    fields_["source"] = source or ("ubl" if flavor == "ubl" else "cii")
    fields_["schema_valid"] = _schema_valid(root, flavor)
    if not any(fields_.get(k) for k in ("number", "seller_name", "total_with_tax")):
        return None
    return fields_


def _schema_valid(root, flavor: str) -> bool | None:
    import logging as logging_

    from facturx import xml_check_xsd

    logging_.getLogger("factur-x").setLevel(logging_.CRITICAL)
    if flavor == "ubl":
        lib_flavor = "ubl-2.1-creditnote" if _local(root.tag) == "CreditNote" else "ubl-2.1-invoice"
    elif flavor == "cii":
        lib_flavor = "factur-x"
    else:
        lib_flavor = "zugferd"
    try:
        return bool(xml_check_xsd(root, flavor=lib_flavor))
    except Exception:  # noqa: BLE001 - invalid, or a level the library cannot tell
        return False


def _cii_fields(root) -> dict:
    agreement = "SupplyChainTradeTransaction/ApplicableHeaderTradeAgreement"
    seller = _find(root, f"{agreement}/SellerTradeParty")
    buyer = _find(root, f"{agreement}/BuyerTradeParty")
    settlement = "SupplyChainTradeTransaction/ApplicableHeaderTradeSettlement"
    currency = _text(root, f"{settlement}/InvoiceCurrencyCode")
    totals = f"{settlement}/SpecifiedTradeSettlementHeaderMonetarySummation"
    vat = None
    if seller is not None:
        for reg in _findall(seller, "SpecifiedTaxRegistration/ID"):
            if (reg.get("schemeID") or "VA") == "VA" and reg.text:
                vat = reg.text.strip()
                break
    siren = None
    if seller is not None:
        legal = _find(seller, "SpecifiedLegalOrganization/ID")
        ids = [(legal.text, legal.get("schemeID")) if legal is not None else (None, None)]
        ids += [(g.text, g.get("schemeID")) for g in _findall(seller, "GlobalID")]
        ids += [(g.text, g.get("schemeID")) for g in _findall(seller, "ID")]
        siren = _siren(*ids)
    return {
        "number": _text(root, "ExchangedDocument/ID"),
        "issue_date": _iso_date(_text(root, "ExchangedDocument/IssueDateTime/DateTimeString")),
        "due_date": _iso_date(_text(root, f"{settlement}/SpecifiedTradePaymentTerms/"
                                          "DueDateDateTime/DateTimeString")),
        "seller_name": _text(seller, "Name") if seller is not None else None,
        "seller_siren": siren or _siren_from_vat(vat),
        "seller_vat": vat,
        "buyer_name": _text(buyer, "Name") if buyer is not None else None,
        "total_without_tax": _amount(_findall(root, f"{totals}/TaxBasisTotalAmount"), currency),
        "tax_total": _amount(_findall(root, f"{totals}/TaxTotalAmount"), currency),
        "total_with_tax": _amount(_findall(root, f"{totals}/GrandTotalAmount"), currency),
        "currency": currency,
    }


def _zugferd1_fields(root) -> dict:
    transaction_ = "SpecifiedSupplyChainTradeTransaction"
    agreement = f"{transaction_}/ApplicableSupplyChainTradeAgreement"
    seller = _find(root, f"{agreement}/SellerTradeParty")
    buyer = _find(root, f"{agreement}/BuyerTradeParty")
    settlement = f"{transaction_}/ApplicableSupplyChainTradeSettlement"
    currency = _text(root, f"{settlement}/InvoiceCurrencyCode")
    totals = f"{settlement}/SpecifiedTradeSettlementMonetarySummation"
    vat = _text(seller, "SpecifiedTaxRegistration/ID") if seller is not None else None
    return {
        "number": _text(root, "HeaderExchangedDocument/ID"),
        "issue_date": _iso_date(_text(root, "HeaderExchangedDocument/IssueDateTime/DateTimeString")),
        "due_date": _iso_date(_text(root, f"{settlement}/SpecifiedTradePaymentTerms/"
                                          "DueDateDateTime/DateTimeString")),
        "seller_name": _text(seller, "Name") if seller is not None else None,
        "seller_siren": _siren_from_vat(vat),
        "seller_vat": vat,
        "buyer_name": _text(buyer, "Name") if buyer is not None else None,
        "total_without_tax": _amount(_findall(root, f"{totals}/TaxBasisTotalAmount"), currency),
        "tax_total": _amount(_findall(root, f"{totals}/TaxTotalAmount"), currency),
        "total_with_tax": _amount(_findall(root, f"{totals}/GrandTotalAmount"), currency),
        "currency": currency,
    }


def _ubl_party_name(party) -> str | None:
    if party is None:
        return None
    return _text(party, "PartyLegalEntity/RegistrationName", "PartyName/Name")


def _ubl_fields(root) -> dict:
    seller = _find(root, "AccountingSupplierParty/Party")
    buyer = _find(root, "AccountingCustomerParty/Party")
    currency = _text(root, "DocumentCurrencyCode")
    vat = None
    siren = None
    if seller is not None:
        for scheme in _findall(seller, "PartyTaxScheme"):
            company = _find(scheme, "CompanyID")
            if company is not None and company.text:
                vat = company.text.strip()
                break
        ids = [(e.text, e.get("schemeID")) for e in _findall(seller, "PartyLegalEntity/CompanyID")]
        ids += [(e.text, e.get("schemeID")) for e in _findall(seller, "PartyIdentification/ID")]
        siren = _siren(*[(v, s) for v, s in ids if s in ("0002", "0009")]) or _siren(*ids)
    tax_totals = [_find(t, "TaxAmount") for t in _findall(root, "TaxTotal")]
    return {
        "number": _text(root, "ID"),
        "issue_date": _iso_date(_text(root, "IssueDate")),
        "due_date": _iso_date(_text(root, "DueDate", "PaymentMeans/PaymentDueDate")),
        "seller_name": _ubl_party_name(seller),
        "seller_siren": siren or _siren_from_vat(vat),
        "seller_vat": vat,
        "buyer_name": _ubl_party_name(buyer),
        "total_without_tax": _amount(_findall(root, "LegalMonetaryTotal/TaxExclusiveAmount"), currency),
        "tax_total": _amount([t for t in tax_totals if t is not None], currency),
        "total_with_tax": _amount(_findall(root, "LegalMonetaryTotal/TaxInclusiveAmount")
                                  or _findall(root, "LegalMonetaryTotal/PayableAmount"), currency),
        "currency": currency,
    }


__all__ = ["extract_blob", "extract_file", "invoice_fields", "flag_duplicates", "Extracted",
           "ExtractionFailed"]
