"""What a file really is, read from its bytes, and whether ged accepts it.

The type is never trusted from the client or the extension: it is detected from
the content, then checked against the name's extension so that a ``.pdf`` that
is really an executable or an HTML page is refused.
"""

from __future__ import annotations

import unicodedata
import warnings
import zipfile
from pathlib import Path

import filetype

from .errors import Invalid, Unsupported

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
TIFF = "image/tiff"
HEIC = "image/heic"
TEXT = "text/plain"
CSV = "text/csv"
XML = "application/xml"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
DOC = "application/msword"
XLS = "application/vnd.ms-excel"

# Extension -> the content types its bytes may have.
EXTENSIONS = {
    ".pdf": {PDF},
    ".jpg": {JPEG}, ".jpeg": {JPEG}, ".jpe": {JPEG},
    ".png": {PNG},
    ".tif": {TIFF}, ".tiff": {TIFF},
    ".heic": {HEIC}, ".heif": {HEIC},
    ".txt": {TEXT}, ".text": {TEXT},
    ".csv": {CSV, TEXT},
    ".xml": {XML},
    ".docx": {DOCX}, ".xlsx": {XLSX}, ".pptx": {PPTX},
    ".odt": {ODT}, ".ods": {ODS},
    ".doc": {DOC}, ".xls": {XLS},
}
ALLOWED = set().union(*EXTENSIONS.values())
IMAGE_TYPES = {JPEG, PNG, TIFF, HEIC}
MAX_IMAGE_PIXELS = 120_000_000  # about 12,000 x 10,000: far above a 600 dpi A3 scan
MAX_PDF_PAGES = 2000

_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
         "\u200e", "\u200f"}
_FORBIDDEN_IN_NAMES = set('/\\<>:"|?*')


def clean_filename(name: str | None) -> str:
    """A document name as given, or Invalid if it could mislead or break a file system."""
    name = unicodedata.normalize("NFC", (name or "").strip())
    if not name:
        raise Invalid("The file name is empty.", "invalid_name")
    if len(name) > 255:
        raise Invalid("The file name is longer than 255 characters.", "invalid_name")
    if name in {".", ".."} or name.startswith("."):
        raise Invalid("The file name must not start with a dot.", "invalid_name")
    for ch in name:
        if ord(ch) < 32 or ord(ch) == 127 or unicodedata.category(ch) == "Cc":
            raise Invalid("The file name holds control characters.", "invalid_name")
        if ch in _BIDI:
            raise Invalid("The file name holds text-direction characters.", "invalid_name")
        if ch in _FORBIDDEN_IN_NAMES:
            raise Invalid(f"The file name must not contain {ch!r}.", "invalid_name")
    return name


def _looks_like_text(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            try:
                text = head.decode("cp1252")
            except UnicodeDecodeError:
                return None
        else:
            text = head[: exc.start].decode("utf-8")
    return text


def _ooxml_or_odf(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "mimetype" in names:
                mimetype = zf.read("mimetype")[:100].decode("ascii", "replace").strip()
                return mimetype if mimetype in {ODT, ODS} else None
            if "[Content_Types].xml" in names:
                if any(n.startswith("word/") for n in names):
                    return DOCX
                if any(n.startswith("xl/") for n in names):
                    return XLSX
                if any(n.startswith("ppt/") for n in names):
                    return PPTX
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    return None


def detect(path: Path, head: bytes) -> str | None:
    """The content type of a staged file, from its bytes; None when not recognised."""
    if head.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return PDF
    kind = filetype.guess(head)
    mime = kind.mime if kind else None
    if mime in {JPEG, PNG, TIFF}:
        return mime
    if mime in {"image/heic", "image/heif", "image/avif"}:
        return HEIC
    if mime == "application/zip" or head.startswith(b"PK\x03\x04"):
        return _ooxml_or_odf(path)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return DOC  # OLE2: .doc or .xls, told apart by the extension below
    if mime is not None:
        return mime
    text = _looks_like_text(head)
    if text is None:
        return None
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    if lowered.startswith(("<!doctype html", "<html")) or "<script" in lowered[:4096]:
        return "text/html"
    if lowered.startswith("<svg") or "<svg" in lowered[:1024]:
        return "image/svg+xml"
    if lowered.startswith("<?xml") or lowered.startswith("<"):
        return XML
    return TEXT


def check(path: Path, head: bytes, name: str) -> str:
    """The accepted content type of a staged file named ``name``, or Unsupported/Invalid."""
    ext = Path(name).suffix.lower()
    detected = detect(path, head)
    if detected in {"text/html", "image/svg+xml"}:
        raise Unsupported("HTML and SVG files are not accepted (they can carry scripts).",
                          "unsupported_type")
    if detected == DOC and ext == ".xls":
        detected = XLS
    if detected is None or detected not in ALLOWED:
        raise Unsupported(
            "This type of file is not accepted. Accepted: PDF, JPEG, PNG, TIFF, HEIC, "
            "office documents, XML, CSV and text.", "unsupported_type")
    expected = EXTENSIONS.get(ext)
    if expected is None:
        # No or unknown extension: the content decides.
        pass
    elif detected not in expected and not (detected == TEXT and CSV in expected):
        raise Unsupported(
            f"The content of this file ({detected}) does not match its name ({ext}).",
            "content_mismatch")
    if detected == TEXT and ext == ".csv":
        detected = CSV
    if detected in IMAGE_TYPES:
        _check_image(path)
    elif detected == PDF:
        _check_pdf(path)
    return detected


def _check_image(path: Path) -> None:
    from PIL import Image

    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - optional
        pass
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise Image.DecompressionBombError("too many pixels")
                frames = getattr(img, "n_frames", 1)
                if frames > MAX_PDF_PAGES:
                    raise Invalid("This image has too many pages.", "too_many_pages")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Invalid("This image is too large in pixels (a possible decompression bomb).",
                      "image_too_large") from None
    except Invalid:
        raise
    except Exception:
        raise Invalid("This image is damaged and cannot be read.", "corrupt_file") from None


def _check_pdf(path: Path) -> None:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise Invalid("This PDF is protected by a password; remove the protection and "
                          "deposit it again.", "encrypted_pdf") from None
        raise Invalid("This PDF is damaged and cannot be read.", "corrupt_file") from None
    try:
        pages = len(pdf)
        if pages == 0:
            raise Invalid("This PDF has no pages.", "corrupt_file")
        if pages > MAX_PDF_PAGES:
            raise Invalid(f"This PDF has {pages} pages; the limit is {MAX_PDF_PAGES}.",
                          "too_many_pages")
    finally:
        pdf.close()
