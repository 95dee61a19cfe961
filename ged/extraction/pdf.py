"""PDF files: the text layer page by page and which pages are scans to OCR, a damaged
file repaired by qpdf (pikepdf) as common viewers repair it, the Factur-X / ZUGFeRD XML
a PDF carries, and a page as an image for Tesseract. Functions said to run "in a child"
parse the untrusted file in a ``sandbox.Children`` process."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .. import filetypes, runtime
from ..blobs import staging_dir
from ..sandbox import ExtractionFailed
from .images import MAX_RENDER_PIXELS

OCR_DPI = 300
USABLE_LAYER_CHARS = 25  # fewer letters and digits on a page with an image: OCR it
SCAN_MAX_LAYER_CHARS = 200  # a page with more text than this is never OCRed
INVOICE_ATTACHMENTS = ("factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml")
MAX_INVOICE_XML_BYTES = 20 * 1024 * 1024


@contextlib.contextmanager
def spare_file():
    """An empty temporary file in the data dir (never /tmp: these are clients' documents),
    removed afterwards: where a repaired copy of a PDF is written."""
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


def repair_pdf(path: str, spare: str) -> bool:
    """In a child: write the repaired copy of a damaged PDF to ``spare`` (see open_pdf);
    whether it needed one."""
    pdf, repaired = open_pdf(path, spare)
    pdf.close()
    return repaired


def probe(path: str, spare: str) -> dict:
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
            "failed": failed, "xml": embedded_invoice_xml(source)}


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


def embedded_invoice_xml(path: str) -> bytes | None:
    """The Factur-X / ZUGFeRD / XRechnung XML attached to a PDF (by its standard file
    name, whatever the case), read with pikepdf WITHOUT any XSD check (validity is
    recorded separately); pikepdf reads only the objects it needs, so a large PDF is
    never held whole, and it decrypts an empty user password. No repair here (callers
    outside a child, e.g. deliveries, must not run qpdf's reconstruction): extraction
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


def render_page(path: str, index: int):
    """In a child: page ``index`` as a grey image for Tesseract (its scan as it is, or
    rendered at OCR_DPI within MAX_RENDER_PIXELS)."""
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
