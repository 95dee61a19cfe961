"""Image files (JPEG, PNG, TIFF with all its pages, HEIC): their pages, and a page as
an upright grey image for Tesseract. Functions said to run "in a child" parse the
untrusted file in a ``sandbox.Children`` process."""

from __future__ import annotations

MAX_RENDER_PIXELS = 40_000_000  # a page image bigger than this is scaled down for OCR


def _open(path: str):
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    return Image.open(path)


def frames(path: str) -> int:
    """In a child: how many pages (frames) the image has."""
    with _open(path) as img:
        return max(1, getattr(img, "n_frames", 1))


def load_frame(path: str, index: int):
    """In a child: page ``index`` of the image, upright (EXIF orientation), grey, within
    MAX_RENDER_PIXELS."""
    from PIL import ImageOps

    with _open(path) as img:
        if index:
            img.seek(index)
        # Phone photos are stored sideways with an EXIF orientation tag.
        img = ImageOps.exif_transpose(img)
        img = img.convert("L")
        if img.width * img.height > MAX_RENDER_PIXELS:
            ratio = (MAX_RENDER_PIXELS / (img.width * img.height)) ** 0.5
            img = img.resize((int(img.width * ratio), int(img.height * ratio)))
        return img
