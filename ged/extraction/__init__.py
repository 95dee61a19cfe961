"""Text extraction: the text of every blob, once, and its structured invoice data.

``extract_blob`` (run by the ``extract`` queue's job) reads a blob and stores on it:

- ``text``: the PDF text layer (pypdfium2, ``pdf``); pages without a usable text layer
  are rendered and read by Tesseract (``tesseract``). Images (JPEG, PNG, TIFF with all
  its pages, HEIC: ``images``) go to Tesseract with their EXIF orientation applied,
  and pages that read badly are turned the way Tesseract's orientation detection says.
  Text, CSV and XML are read as text; office files (docx, xlsx, odt...) by their XML
  parts (``office``).
- ``facturx``: the key fields of a Factur-X / ZUGFeRD XML embedded in a PDF, or of a
  bare UBL or CII XML invoice (``invoices``), read even when it fails the XSD, which is
  recorded in ``schema_valid``.
- ``text_status``: ``done``, ``partial`` (some pages could not be read: the others'
  text is kept), ``failed`` (reason in ``text_error``), ``encrypted`` (a PDF that needs
  a password) or ``unsupported``, mirrored on every document of the blob, which is then
  marked for indexing; documents carrying the same seller and invoice number within a
  company are flagged as probable duplicates (``result``).

A PDF that pdfium refuses is repaired by qpdf (pikepdf) into a temporary copy, as
common viewers repair it, and read from there.

Untrusted files are parsed in child processes with a memory limit and a time limit
(``ged.sandbox``), so an encrypted, corrupt or malicious file (a decompression bomb, a
PDF that crashes the parser) fails that one blob cleanly and never the worker. Scanned
pages are read on the ``ocr`` queue, in slices shared fairly between firms, within a
time budget per page and per document (``ocr``).

This module is the package's face: the names other modules use.
"""

from __future__ import annotations

from ..sandbox import ExtractionFailed
from .blob import extract_blob, extract_file
from .invoices import invoice_fields, invoice_key
from .ocr import OCR_GUARD_SECONDS, ocr_next, ocr_slice, waiting_for_ocr
from .pdf import PdfEncrypted, embedded_invoice_xml, open_pdf, spare_file
from .result import Extracted, flag_duplicates, local_copy

__all__ = ["OCR_GUARD_SECONDS", "Extracted", "ExtractionFailed", "PdfEncrypted",
           "embedded_invoice_xml", "extract_blob", "extract_file", "flag_duplicates",
           "invoice_fields", "invoice_key", "local_copy", "ocr_next", "ocr_slice",
           "open_pdf", "spare_file", "waiting_for_ocr"]
