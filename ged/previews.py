"""Page images for the document page: each page of a PDF or a TIFF scan rendered to a
PNG of a fixed width, so every browser (a phone's included, and those whose PDF viewer
is off) shows the document without running anything the file contains.

Rendering runs in a child process with bounded memory and time, like extraction: a
malicious file can fail its preview, never the web process. Previews are computed on
request; the bytes of a document never change, so the browser may keep them.
"""

from __future__ import annotations

import io
from pathlib import Path

from . import extraction, filetypes
from .errors import GedError, NotFound

WIDTH = 1000  # pixels: sharp on a laptop, light on a phone
MAX_HEIGHT = 4000  # a page of an extreme shape is scaled down to this height
MAX_PAGES = 20  # pages shown on the document page; the file holds the rest
RENDER_TIMEOUT = 20.0
KINDS = {"application/pdf": "pdf", filetypes.TIFF: "tiff"}


def previewable(content_type: str) -> bool:
    """Whether the document page shows rendered pages for this type."""
    return content_type in KINDS


def shown_pages(pages: int | None) -> int:
    """How many page images the document page shows (at least the first)."""
    return max(1, min(pages or 1, MAX_PAGES))


def render(document, page: int) -> bytes:
    """PNG of page ``page`` (1-based) of ``document``. Raises GedError (404) for a page
    that does not exist, GedError (422) for a file that cannot be rendered."""
    kind = KINDS.get(document.content_type)
    if kind is None or page < 1 or page > MAX_PAGES:
        raise NotFound("This page has no preview.")
    try:
        with extraction._local_copy(document.blob_id) as path, extraction._Children(1) as kids:
            png = kids.run(_render, str(path), kind, page - 1, timeout=RENDER_TIMEOUT)
    except extraction.ExtractionFailed as exc:
        raise GedError(str(exc), "preview_failed", 422) from None
    if png is None:
        raise NotFound("This page does not exist.")
    return png


def _render(path: str, kind: str, index: int) -> bytes | None:
    """In a child: the page as PNG bytes, or None when the file has fewer pages."""
    from PIL import Image, ImageOps

    if kind == "pdf":
        import pypdfium2 as pdfium

        pdf = pdfium.PdfDocument(path)
        try:
            if index >= len(pdf):
                return None
            page = pdf[index]
            width, height = page.get_size()
            scale = min(WIDTH / max(width, 1), MAX_HEIGHT / max(height, 1))
            image = page.render(scale=scale).to_pil()
        finally:
            pdf.close()
    else:
        with Image.open(Path(path)) as source:
            frames = getattr(source, "n_frames", 1)
            if index >= frames:
                return None
            source.seek(index)
            image = ImageOps.exif_transpose(source.convert("RGB"))
            image.thumbnail((WIDTH, MAX_HEIGHT))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG", optimize=False, compress_level=3)
    return out.getvalue()
