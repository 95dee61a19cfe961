"""What a file really is, read from its bytes, and whether ged accepts it.

The type is never trusted from the client: a file is accepted only when its name's
extension is on the allow-list AND its bytes are of that type, so a ``.pdf`` that is
really an executable, an HTML page or a ``.bat`` is refused. A name without extension
is accepted when its bytes are unambiguously an accepted type, and gets its extension.
Text, CSV and XML files are scanned whole for HTML/SVG markup.

Everything here runs in the web request, so every check does bounded work whatever
the file: structure walks stop at a count and a time budget before a parser is given
the file, and no pixel or compressed part is decoded.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import filetype

from ..errors import Invalid, Unsupported
from ..names import control_character
from ..sandbox import MAX_IMAGE_PIXELS, Checkers, ExtractionFailed
from . import walks

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
TIFF = "image/tiff"
HEIC = "image/heic"
TEXT = "text/plain"
CSV = "text/csv"
XML = "application/xml"
JSON = "application/json"
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
    ".json": {JSON},
    ".docx": {DOCX}, ".xlsx": {XLSX}, ".pptx": {PPTX},
    ".odt": {ODT}, ".ods": {ODS},
    ".doc": {DOC}, ".xls": {XLS},
}
ALLOWED = set().union(*EXTENSIONS.values())
IMAGE_TYPES = {JPEG, PNG, TIFF, HEIC}
MAX_PDF_PAGES = 2000
MAX_ZIP_ENTRIES = 20_000  # parts of an office file (a large workbook has a few hundred)
MAX_HEADER_SEGMENTS = 10_000  # PNG chunks / JPEG segments before the image data
PARSE_SECONDS = 10.0  # CPU budget of a parser's look at a PDF or HEIC (in a child)
PARSE_WALL_SECONDS = 60.0  # its wall-clock bound, for a machine busy with other work
# The extension given to a file deposited without one.
CANONICAL_EXTENSION = {PDF: ".pdf", JPEG: ".jpg", PNG: ".png", TIFF: ".tif", HEIC: ".heic",
                       TEXT: ".txt", CSV: ".csv", XML: ".xml", JSON: ".json", DOCX: ".docx",
                       XLSX: ".xlsx", PPTX: ".pptx", ODT: ".odt", ODS: ".ods", DOC: ".doc",
                       XLS: ".xls"}

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
    if control_character(name) is not None:  # C0/C1 controls, U+2028/U+2029 (ged/names.py)
        raise Invalid("The file name holds control characters or line separators.",
                      "invalid_name")
    for ch in name:
        if ch in _BIDI:
            raise Invalid("The file name holds text-direction characters.", "invalid_name")
        if ch in _FORBIDDEN_IN_NAMES:
            raise Invalid(f"The file name must not contain {ch!r}.", "invalid_name")
    return name


# --- what the bytes are ----------------------------------------------------------------------

# Markup a browser (or a tool that opens the file in one) would run or render: looked
# for in the WHOLE of every text, CSV, JSON and XML file, and in the bytes a PDF header
# follows. A tag must follow "<" at once to be one; a prefixed XML tag (<h:script>) is
# markup only under the XHTML or SVG namespace, looked for as such. The pattern starts
# with a literal and is matched on lower-cased bytes: linear, and quick even on 50 MB of "<".
_MARKUP_TAG = re.compile(
    rb"<(?:script|html|svg|iframe|frameset|frame|embed|img|body|meta|link|base|form|style"
    rb"|foreignobject|!doctype\s+html)(?![\w.:-])")
_MARKUP_NAMESPACES = (b"www.w3.org/1999/xhtml", b"www.w3.org/2000/svg")
_SCAN_CHUNK = 1 << 20
_SCAN_OVERLAP = 64  # a tag or namespace cut by a chunk boundary is found in the overlap


def _markup_in(data: bytes) -> bool:
    lowered = data.lower()
    return bool(_MARKUP_TAG.search(lowered)) or any(ns in lowered for ns in _MARKUP_NAMESPACES)


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


def _holds_markup(path: Path) -> bool:
    """Whether HTML or SVG markup appears anywhere in the file (read in chunks: linear)."""
    tail = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(_SCAN_CHUNK):
            if _markup_in(tail + chunk):
                return True
            tail = chunk[-_SCAN_OVERLAP:]
    return False


def _ooxml_or_odf(path: Path) -> str | None:
    """DOCX/XLSX/PPTX/ODT/ODS from a ZIP's part names, reading no compressed data but
    100 bytes of ODF's ``mimetype``; Unsupported for documents that carry macros."""
    entries = walks.zip_entries(path)
    if entries is None:
        return None
    if entries > MAX_ZIP_ENTRIES:
        raise Invalid(f"This office file holds {entries} parts; the limit is {MAX_ZIP_ENTRIES}.",
                      "too_many_parts")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if any(n.lower().endswith("vbaproject.bin") or n.startswith(("Basic/", "Scripts/"))
                   for n in names):
                raise Unsupported("Office documents with macros are not accepted; save it "
                                  "without macros and deposit it again.", "unsupported_type")
            if "mimetype" in names:
                with zf.open("mimetype") as fh:
                    mimetype = fh.read(100).decode("ascii", "replace").strip()
                return mimetype if mimetype in {ODT, ODS} else None
            if "[Content_Types].xml" in names:
                for part, kind in (("word/document.xml", DOCX), ("xl/workbook.xml", XLSX),
                                   ("ppt/presentation.xml", PPTX)):
                    if part in names:
                        return kind
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        return None
    return None


def _ole_kind(path: Path) -> str | None:
    """DOC or XLS by the stream an OLE2 file holds; None for any other OLE2 file
    (an installer, an e-mail, a password-protected OOXML...)."""
    names = walks.ole_streams(path)
    if "WordDocument" in names:
        return DOC
    if "Workbook" in names or "Book" in names:
        return XLS
    return None


def detect(path: Path, head: bytes) -> str | None:
    """The content type of a staged file, from its bytes; None when not recognised.
    ``text/html`` and ``image/svg+xml`` mean markup was found (never accepted)."""
    at = head.find(b"%PDF-", 0, 1024 + 5)
    if 0 <= at <= 1024:
        # Viewers skip up to 1 KB before the header; that prefix must not be markup.
        return "text/html" if _markup_in(head[:at]) else PDF
    kind = filetype.guess(head)
    mime = kind.mime if kind else None
    if mime in {JPEG, PNG, TIFF}:
        return mime
    if mime in {"image/heic", "image/heif", "image/avif"}:
        return HEIC
    if mime == "application/zip" or head.startswith(b"PK\x03\x04"):
        return _ooxml_or_odf(path)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return _ole_kind(path)
    if mime is not None:
        return mime
    text = _looks_like_text(head)
    if text is None:
        return None
    if _holds_markup(path):
        return "image/svg+xml" if "<svg" in text.lower() else "text/html"
    lowered = text.lstrip("\ufeff \t\r\n")
    if lowered.startswith("<"):
        return XML
    if lowered.startswith(("{", "[")):
        return JSON
    return TEXT


# --- the verdict -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What ged accepts a file as: its verified content type, the name to store it
    under, and what the depositor should be told (codes of WARNINGS)."""

    content_type: str
    name: str
    warnings: tuple[str, ...] = ()


WARNINGS = {
    "encrypted_pdf": "This PDF is protected by a password: it was kept, but the firm may "
                     "not be able to read it. Deposit a copy without the password if you can.",
}
_ACCEPTED = ("Accepted: PDF, JPEG, PNG, TIFF, HEIC, Word, Excel, PowerPoint, OpenDocument, "
             "XML, JSON, CSV and text files.")


def extension(name: str) -> str:
    """The extension of ``name``, lower-case; "" when it has none (a suffix of digits or
    with spaces, as in "Relevé 12.2024" or "Facture M. Dupont", is not an extension)."""
    ext = Path(name).suffix.lower()
    if re.fullmatch(r"\.[a-z0-9]{1,10}", ext) and not ext[1:].isdigit():
        return ext
    return ""


def inspect(path: Path, head: bytes, name: str) -> Verdict:
    """Accept a staged file named ``name`` only when its extension is on the allow-list
    and its bytes are of that type (a name without extension gets the extension of
    what its bytes unambiguously are). Raises Unsupported or Invalid otherwise. Every
    check does bounded work whatever the file."""
    ext = extension(name)
    if ext and ext not in EXTENSIONS:
        raise Unsupported(f"Files named {ext} are not accepted. {_ACCEPTED}", "unsupported_type")
    detected = detect(path, head)
    if detected in {"text/html", "image/svg+xml"}:
        raise Unsupported("HTML and SVG files are not accepted (they can carry scripts).",
                          "unsupported_type")
    if detected is None or detected not in ALLOWED:
        raise Unsupported(f"This type of file is not accepted. {_ACCEPTED}", "unsupported_type")
    if not ext:
        name = f"{name.rstrip('.')}{CANONICAL_EXTENSION[detected]}"
        if len(name) > 255:
            raise Invalid("The file name is longer than 255 characters.", "invalid_name")
    elif detected in (TEXT, XML, JSON) and ext in (".txt", ".text", ".csv"):
        # Plain text that happens to start with "<" or "{" (markup was refused above).
        detected = CSV if ext == ".csv" else TEXT
    elif detected not in EXTENSIONS[ext]:
        raise Unsupported(
            f"The content of this file ({detected}) does not match its name ({ext}).",
            "content_mismatch")
    found: tuple[str, ...] = ()
    if detected in IMAGE_TYPES:
        _check_image(path, detected)
    elif detected == PDF:
        found = _check_pdf(path)
    return Verdict(detected, name, found)


def name_for(name: str, content_type: str) -> str:
    """``name`` for a document whose bytes are ``content_type`` (a rename): its extension
    must be one that type may carry; a name without one gets the type's extension."""
    ext = extension(name)
    if not ext:
        name = f"{name.rstrip('.')}{CANONICAL_EXTENSION.get(content_type, '')}"
        if len(name) > 255:
            raise Invalid("The file name is longer than 255 characters.", "invalid_name")
        return name
    if content_type not in EXTENSIONS.get(ext, ()) and not (
            ext in (".txt", ".text", ".csv") and content_type in (TEXT, CSV, JSON)):
        raise Invalid(f"This document's content ({content_type}) cannot be named {ext}.",
                      "content_mismatch")
    return name


def check(path: Path, head: bytes, name: str) -> str:
    """The accepted content type of a staged file named ``name``, or Unsupported/Invalid
    (see ``inspect``, which also gives the stored name and the warnings)."""
    return inspect(path, head, name).content_type


# --- images: bounded structure walks before Pillow reads a header ----------------------------


def _check_image(path: Path, kind: str) -> None:
    """Refuse an image whose header is inconsistent, whose pixels (any page) exceed
    MAX_IMAGE_PIXELS or whose pages exceed MAX_PDF_PAGES; no pixel is decoded."""
    from PIL import Image

    try:
        if kind == TIFF:
            pages = walks.tiff_pages(path, MAX_PDF_PAGES, MAX_IMAGE_PIXELS)
            if pages > MAX_PDF_PAGES:
                raise Invalid(f"This image has more than {MAX_PDF_PAGES} pages.", "too_many_pages")
        elif kind == PNG:
            walks.walk_png(path, MAX_HEADER_SEGMENTS)
        elif kind == JPEG:
            walks.walk_jpeg(path, MAX_HEADER_SEGMENTS)
    except walks.Damaged:
        raise Invalid("This image is damaged and cannot be read.", "corrupt_file") from None
    if kind == HEIC:
        code = _in_child(_heic_problem, str(path))
        if code == "image_too_large":
            raise walks.too_large()
        if code == "too_many_pages":
            raise Invalid("This image has too many pages.", "too_many_pages")
        if code:
            raise Invalid("This image is damaged and cannot be read.", "corrupt_file")
        return
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    formats = {JPEG: ["JPEG"], PNG: ["PNG"], TIFF: ["TIFF"]}.get(kind)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=formats) as img:
                width, height = img.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise walks.too_large()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise walks.too_large() from None
    except Invalid:
        raise
    except Exception:
        raise Invalid("This image is damaged and cannot be read.", "corrupt_file") from None


def _heic_problem(path: str) -> str | None:
    """In a child: None for a HEIC/HEIF libheif reads within the limits, else the error
    code (image_too_large, too_many_pages, corrupt_file)."""
    from PIL import Image

    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        with Image.open(path) as img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                return "image_too_large"
            if getattr(img, "n_frames", 1) > MAX_PDF_PAGES:
                return "too_many_pages"
    except Exception:  # noqa: BLE001 - libheif could not read it
        return "corrupt_file"
    return None


# --- PDF -------------------------------------------------------------------------------------


_checkers = Checkers(2)


def _in_child(fn, *args):
    """``fn(*args)`` in a checking child with bounded memory and PARSE_SECONDS of CPU:
    pdfium, qpdf and libheif each have inputs that keep them busy for long seconds
    (45 MB of nested arrays, millions of tiny objects), which no request may cost."""
    try:
        return _checkers.run(fn, *args, cpu_seconds=PARSE_SECONDS,
                             wall_seconds=PARSE_WALL_SECONDS)
    except ExtractionFailed:
        raise Invalid("This file could not be checked (its reader gave up on it: it may be "
                      "damaged or malicious).", "corrupt_file") from None


def _pdf_facts(path: str) -> tuple[str, int]:
    """In a child: ("ok", pages) for a PDF a common viewer opens (directly, with an
    empty user password, or once repaired by qpdf), ("encrypted", 0) for one that
    needs a password, ("damaged", 0) for one beyond repair."""
    import pikepdf
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError:
        pdf = None
    if pdf is not None:
        try:
            return "ok", len(pdf)
        finally:
            pdf.close()
    # pdfium refused it: a password, or damage that a repairing reader may get over.
    try:
        with pikepdf.open(path, attempt_recovery=True) as repaired:
            return "ok", len(repaired.pages)
    except pikepdf.PasswordError:
        return "encrypted", 0
    except Exception:  # noqa: BLE001 - qpdf could not repair it either
        return "damaged", 0


def _check_pdf(path: Path) -> tuple[str, ...]:
    """Accept a PDF a common viewer opens; one that needs a password is kept with a
    warning. Returns the warnings."""
    state, pages = _in_child(_pdf_facts, str(path))
    if state == "encrypted":
        return ("encrypted_pdf",)
    if state == "damaged":
        raise Invalid("This PDF is damaged and cannot be read.", "corrupt_file")
    if pages == 0:
        raise Invalid("This PDF has no pages.", "corrupt_file")
    if pages > MAX_PDF_PAGES:
        raise Invalid(f"This PDF has {pages} pages; the limit is {MAX_PDF_PAGES}.",
                      "too_many_pages")
    return ()
