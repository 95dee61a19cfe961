"""Files read as text: plain text, CSV and JSON as they are, XML by its text (with the
fields of a bare UBL or CII e-invoice), and office documents (docx, xlsx, pptx, odt,
ods) by their XML parts, bounded against zip bombs."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from ..sandbox import ExtractionFailed
from . import invoices
from .result import Extracted

MAX_TEXT_FILE_BYTES = 20 * 1024 * 1024  # text, CSV and XML files read as text
MAX_OFFICE_XML_BYTES = 50 * 1024 * 1024  # uncompressed XML read from an office file


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def read_text(path: Path) -> str:
    """A text file's text (its first MAX_TEXT_FILE_BYTES), whatever its encoding."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_TEXT_FILE_BYTES)
    return _decode(data).replace("\x00", "")


def extract_xml(path: Path) -> Extracted:
    """An XML file's text, and its invoice fields when it is a UBL or CII invoice."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_TEXT_FILE_BYTES + 1)
    if len(data) > MAX_TEXT_FILE_BYTES:
        return Extracted("done", text=_decode(data[:MAX_TEXT_FILE_BYTES]))
    root = invoices.parse(data)
    if root is None:
        return Extracted("done", text=_decode(data))
    facturx = invoices.invoice_fields(data) if invoices.flavor(root) else None
    text = " ".join(t.strip() for t in root.itertext() if t and t.strip())
    return Extracted("done", text=text, facturx=facturx)


def office_text(path: str) -> str:
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
