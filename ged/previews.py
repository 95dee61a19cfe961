"""Page images for the document page: each page of a PDF or a TIFF scan rendered to a
PNG of a fixed width, so every browser (a phone's included, and those whose PDF viewer
is off) shows the document without running anything the file contains.

Rendering runs in a child process with bounded memory and time, like extraction: a
malicious file can fail its preview, never the web process. A damaged PDF is rendered
from the copy qpdf repairs (as extraction reads it); a PDF that needs a password, or
a file beyond repair, gets an image saying so in French instead of an error. Previews
are computed on request; the bytes of a document never change, so the browser may keep
them.
"""

from __future__ import annotations

import io
from pathlib import Path

from . import extraction, filetypes, sandbox
from .errors import NotFound

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
    """PNG of page ``page`` (1-based) of ``document``. Raises NotFound for a page that
    does not exist; a file that cannot be rendered gives an image of the reason."""
    kind = KINDS.get(document.content_type)
    if kind is None or page < 1 or page > MAX_PAGES:
        raise NotFound("This page has no preview.")
    try:
        with extraction.local_copy(document.blob_id) as path, extraction.spare_file() as spare, \
                sandbox.Children(1) as kids:
            png = kids.run(_render, str(path), str(spare), kind, page - 1, timeout=RENDER_TIMEOUT)
    except extraction.ExtractionFailed:
        return notice("Aperçu impossible : ce fichier est endommagé.",
                      "Téléchargez-le pour l'ouvrir avec votre logiciel habituel.")
    except FileNotFoundError:
        return notice("Aperçu impossible : le fichier est introuvable.",
                      "Le cabinet en a été averti par la vérification du stockage.")
    if png is None:
        raise NotFound("This page does not exist.")
    if png == ENCRYPTED:
        return notice("Aperçu impossible : ce PDF est protégé par un mot de passe.",
                      "Téléchargez-le et ouvrez-le avec son mot de passe.")
    return png


ENCRYPTED = b"encrypted"


def notice(title: str, detail: str) -> bytes:
    """A page-shaped PNG that says, in French, why there is no preview."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (WIDTH, WIDTH // 2), (246, 246, 246))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH - 1, WIDTH // 2 - 1), outline=(200, 200, 200), width=3)
    try:
        big = ImageFont.truetype("DejaVuSans.ttf", 30)
        small = ImageFont.truetype("DejaVuSans.ttf", 24)
    except OSError:  # no DejaVu on this machine: Pillow's own font
        big, small = ImageFont.load_default(30), ImageFont.load_default(24)
    draw.text((40, 180), title, fill=(60, 60, 60), font=big)
    draw.text((40, 240), detail, fill=(90, 90, 90), font=small)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _render(path: str, spare: str, kind: str, index: int) -> bytes | None:
    """In a child: the page as PNG bytes, None when the file has fewer pages, ENCRYPTED
    for a PDF that needs a password."""
    from PIL import Image, ImageOps

    if kind == "pdf":
        try:
            pdf, _repaired = extraction.open_pdf(path, spare)
        except extraction.PdfEncrypted:
            return ENCRYPTED
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
            try:
                source.seek(index)  # no frame count: that walks every page of the file
            except EOFError:
                return None
            image = ImageOps.exif_transpose(source.convert("RGB"))
            image.thumbnail((WIDTH, MAX_HEIGHT))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG", optimize=False, compress_level=3)
    return out.getvalue()
