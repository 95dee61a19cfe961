"""What ged accepts: an extension on the allow-list AND content of that type; a file
without extension when its content is unambiguous (the extension is then added);
dangerous files refused whatever they contain; a PDF that needs a password kept with a
warning to the depositor; and every check bounded whatever the file (a TIFF of 50,000
pages, a PNG or JPEG of endless headers, a ZIP of countless parts)."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import pytest

from conftest import png_bytes
from fixtures import pdfs
from fixtures.documents import docx_bytes, image_bytes, ole2_bytes

ANNUAL = "Dossier comptable annuel 2026"
HTML = b"<!DOCTYPE html><html><body><script>fetch('/api/v1/me')</script></body></html>"


def inspect(tmp_path, name: str, data: bytes):
    """filetypes.inspect on ``data`` staged under ``name``."""
    from ged import filetypes

    path = tmp_path / "staged"
    path.write_bytes(data)
    return filetypes.inspect(path, data[:8192], name)


def refused(tmp_path, name: str, data: bytes) -> str:
    """The error code ``data`` named ``name`` is refused with."""
    from ged.errors import GedError

    with pytest.raises(GedError) as exc:
        inspect(tmp_path, name, data)
    return exc.value.code


def _xlsx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
    return buf.getvalue()


def _odt() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        zf.writestr("content.xml", "<office:document-content/>")
    return buf.getvalue()


def _jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 20, 30)).save(buf, "JPEG")
    return buf.getvalue()


def _heic() -> bytes:
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 20, 30)).save(buf, "HEIF")
    return buf.getvalue()


GOOD = [  # (name, bytes, content type, name stored when deposited without extension)
    ("releve.pdf", pdfs.text_pdf(1), "application/pdf", "releve.pdf"),
    ("photo.jpg", _jpeg(), "image/jpeg", "photo.jpg"),
    ("scan.png", png_bytes(), "image/png", "scan.png"),
    ("photo.heic", _heic(), "image/heic", "photo.heic"),
    ("scan.tiff", image_bytes(["Page"], fmt="TIFF", pages=2), "image/tiff", "scan.tif"),
    ("contrat.docx", docx_bytes("Contrat"), "application/vnd.openxmlformats-officedocument."
     "wordprocessingml.document", "contrat.docx"),
    ("tableau.xlsx", _xlsx(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
     "tableau.xlsx"),
    ("lettre.odt", _odt(), "application/vnd.oasis.opendocument.text", "lettre.odt"),
    ("ancien.doc", ole2_bytes("WordDocument"), "application/msword", "ancien.doc"),
    ("ancien.xls", ole2_bytes("Workbook"), "application/vnd.ms-excel", "ancien.xls"),
    ("flux.xml", b'<?xml version="1.0"?><Invoice><ID>1</ID></Invoice>', "application/xml",
     "flux.xml"),
    ("notes.txt", "Relevé de caisse\nsi a < b\n".encode(), "text/plain", "notes.txt"),
    ("export.json", b'{"ecritures": [1, 2]}', "application/json", "export.json"),
]


@pytest.mark.parametrize("name,data,ctype,bare_name", GOOD, ids=[g[0] for g in GOOD])
def test_each_accepted_type_with_its_extension_and_without_one(tmp_path, name, data, ctype,
                                                               bare_name):
    verdict = inspect(tmp_path, name, data)
    assert (verdict.content_type, verdict.name, verdict.warnings) == (ctype, name, ())
    # Deposited without extension: the content decides, and the name gets the extension.
    stem = name.rsplit(".", 1)[0]
    verdict = inspect(tmp_path, stem, data)
    assert (verdict.content_type, verdict.name) == (ctype, bare_name)
    # A name whose last dot starts no extension ("Relevé 12.2024") is a name without one.
    verdict = inspect(tmp_path, f"{stem} 12.2024", data)
    assert verdict.name == f"{stem} 12.2024{bare_name[len(stem):]}"


DANGEROUS_NAMES = [".bat", ".cmd", ".vbs", ".ps1", ".hta", ".html", ".htm", ".svg", ".exe",
                   ".js", ".jar", ".zip", ".msi", ".lnk", ".scr", ".pdf.exe", ".docm", ".xlsm"]


@pytest.mark.parametrize("ext", DANGEROUS_NAMES)
def test_an_extension_off_the_allow_list_is_refused_whatever_the_content(tmp_path, ext):
    for data in (b"@echo off\r\ndir\r\n", pdfs.text_pdf(1), png_bytes()):
        assert refused(tmp_path, f"facture{ext}", data) == "unsupported_type"


def test_markup_anywhere_in_a_text_file_and_html_before_a_pdf_header_are_refused(tmp_path):
    late_script = b"Ligne de notes\n" * 300 + b"<script>alert(1)</script>"  # after 4,100 bytes
    late_svg = b'<?xml version="1.0"?>\n' + b" " * 1100 + b'<svg onload="alert(1)"/>'
    xhtml = (b'<?xml version="1.0"?><div xmlns="http://www.w3.org/1999/xhtml">'
             + b"x" * 9000 + b"</div>")
    chunk_edge = b"a" * (1024 * 1024 - 3) + b"<script>x</script>"  # across the 1 MB reads
    for name, data in (("notes.txt", late_script), ("notes.csv", late_script),
                       ("notes", late_script), ("plan.xml", late_svg), ("page.xml", xhtml),
                       ("edge.txt", chunk_edge),
                       ("facture.pdf", b"<html><body>" + pdfs.text_pdf(1)),
                       ("facture.pdf", b"<svg onload=alert(1)>" + pdfs.text_pdf(1))):
        assert refused(tmp_path, name, data) == "unsupported_type", name


def test_a_file_is_not_what_its_name_claims(tmp_path):
    cases = [("facture.pdf", png_bytes()), ("photo.jpg", pdfs.text_pdf(1)),
             ("ancien.doc", ole2_bytes("Workbook")), ("tableau.xls", ole2_bytes("WordDocument")),
             ("flux.xml", b"juste du texte"), ("photo.png", b"juste du texte\n" * 20)]
    for name, data in cases:
        assert refused(tmp_path, name, data) == "content_mismatch", name
    # Other OLE2 files (an installer, an Outlook message) and archives are not documents.
    for name, data in (("notice.doc", ole2_bytes("\x05SummaryInformation")),
                       ("notice", ole2_bytes("__substg1.0_0037001F")),
                       ("archive.docx", _zip({"readme.txt": b"x"})), ("archive", _zip({"a": b"x"})),
                       ("programme", b"MZ\x90\x00\x03" + b"\x00" * 300)):
        assert refused(tmp_path, name, data) == "unsupported_type", name


def _zip(parts: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, body in parts.items():
            zf.writestr(name, body)
    return buf.getvalue()


def test_office_files_with_macros_are_refused(tmp_path):
    docm = _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>",
                 "word/vbaProject.bin": b"\xd0\xcf\x11\xe0"})
    assert refused(tmp_path, "contrat.docx", docm) == "unsupported_type"
    odt = _zip({"mimetype": b"application/vnd.oasis.opendocument.text",
                "content.xml": b"<x/>", "Basic/Standard/Module1.xml": b"<x/>"})
    assert refused(tmp_path, "lettre.odt", odt) == "unsupported_type"


# --- bounded work whatever the file -------------------------------------------------------------


def tiff_of_pages(pages: int, width: int = 1, height: int = 1) -> bytes:
    """A little-endian TIFF of ``pages`` pages of ``width`` x ``height`` pixels, its page
    directories chained and sharing one strip (5 MB for 50,000 pages)."""
    entries, size = 8, 2 + 8 * 12 + 4
    strip = 8 + pages * size
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for i in range(pages):
        nxt = 8 + (i + 1) * size if i < pages - 1 else 0
        out += struct.pack("<H", entries)
        for tag, kind, value in ((256, 4, width), (257, 4, height), (258, 3, 1), (259, 3, 1),
                                 (262, 3, 0), (273, 4, strip), (278, 4, height), (279, 4, 1)):
            packed = struct.pack("<H", value) + b"\0\0" if kind == 3 else struct.pack("<I", value)
            out += struct.pack("<HHI", tag, kind, 1) + packed
        out += struct.pack("<I", nxt)
    return bytes(out + b"\0")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_checks_stop_at_their_limits_whatever_the_file(tmp_path):
    """The shapes that held every web thread for minutes (issue 17): each is refused
    after a bounded walk, before any parser is given the whole file."""
    from ged import filetypes

    # 50,000 one-pixel pages: the page count stops at the limit.
    assert refused(tmp_path, "scan.tiff", tiff_of_pages(50_000)) == "too_many_pages"
    assert inspect(tmp_path, "scan.tiff", tiff_of_pages(filetypes.MAX_PDF_PAGES)).content_type \
        == "image/tiff"
    # A later page of a multi-page TIFF too large in pixels (a bomb on page 3).
    bomb = bytearray(tiff_of_pages(3))
    third = 8 + 2 * (2 + 8 * 12 + 4) + 2
    bomb[third + 8:third + 12] = struct.pack("<I", 100_000)
    bomb[third + 12 + 8:third + 12 + 12] = struct.pack("<I", 100_000)
    assert refused(tmp_path, "scan.tiff", bytes(bomb)) == "image_too_large"
    # A loop in the page chain is the end of the chain, not an endless walk.
    looped = bytearray(tiff_of_pages(2))
    looped[8 + 2 * (2 + 8 * 12 + 4) - 4:8 + 2 * (2 + 8 * 12 + 4)] = struct.pack("<I", 8)
    assert inspect(tmp_path, "scan.tiff", bytes(looped)).content_type == "image/tiff"
    # Endless PNG chunks / JPEG segments before the image data.
    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
           + _png_chunk(b"abCd", b"") * (filetypes.MAX_HEADER_SEGMENTS + 1)
           + _png_chunk(b"IDAT", zlib.compress(b"\0\0")) + _png_chunk(b"IEND", b""))
    assert refused(tmp_path, "scan.png", png) == "corrupt_file"
    jpeg = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            + b"\xff\xfe\x00\x02" * (filetypes.MAX_HEADER_SEGMENTS + 1))
    assert refused(tmp_path, "photo.jpg", jpeg) == "corrupt_file"
    stray = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
             + b"\x00" * 70_000)
    assert refused(tmp_path, "photo.jpg", stray) == "corrupt_file"
    # A ZIP announcing more parts than an office file has: its directory is never built.
    many = _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>",
                 **{f"p/{i}": b"" for i in range(filetypes.MAX_ZIP_ENTRIES)}})
    assert refused(tmp_path, "contrat.docx", many) == "too_many_parts"
    # ODF's "mimetype" part as a deflate bomb: only its first bytes are read.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mimetype", b"application/vnd.oasis.opendocument.text" + b" " * 50_000_000)
        zf.writestr("content.xml", b"<x/>")
    assert inspect(tmp_path, "lettre.odt", buf.getvalue()).content_type.endswith("text")
    # A PDF of more pages than the limit.
    assert refused(tmp_path, "enorme.pdf", pdfs.many_pages(filetypes.MAX_PDF_PAGES + 1)) \
        == "too_many_pages"


# --- PDFs: what viewers open is accepted, a password is a warning ---------------------------


@pytest.mark.parametrize("label,build", [(c[0], c[1]) for c in pdfs.READABLE],
                         ids=[c[0] for c in pdfs.READABLE])
def test_pdfs_common_viewers_open_are_accepted(tmp_path, label, build):
    verdict = inspect(tmp_path, "releve.pdf", build())
    assert (verdict.content_type, verdict.warnings) == ("application/pdf", ())


def test_a_pdf_that_needs_a_password_is_kept_with_a_warning_and_one_beyond_repair_refused(
        tmp_path):
    verdict = inspect(tmp_path, "releve.pdf", pdfs.password_protected())
    assert (verdict.content_type, verdict.warnings) == ("application/pdf", ("encrypted_pdf",))
    assert refused(tmp_path, "casse.pdf", pdfs.beyond_repair()) == "corrupt_file"


# --- through the doors -------------------------------------------------------------------------


def test_deposits_store_the_verified_type_and_a_name_with_its_extension(client, world):
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    r = client.post(f"/api/v1/folders/{achats.id}/documents", headers=world.client_a.headers,
                    content_type="multipart/form-data",
                    data={"file": [(io.BytesIO(pdfs.text_pdf(1)), "facture", "text/html"),
                                   (io.BytesIO(png_bytes()), "scan.png", "application/pdf")]})
    assert r.status_code == 201, r.get_json()
    pdf, png = r.get_json()["items"]
    assert (pdf["name"], pdf["content_type"]) == ("facture.pdf", "application/pdf")
    assert (png["name"], png["content_type"]) == ("scan.png", "image/png")
    assert r.get_json()["warnings"] == []
    served = client.get(f"/api/v1/documents/{pdf['id']}/file", headers=world.client_a.headers)
    assert served.mimetype == "application/pdf"
    assert 'filename="facture.pdf"' in served.headers["Content-Disposition"]
    # A rename keeps an extension that fits the bytes.
    url = f"/api/v1/documents/{pdf['id']}"
    r = client.patch(url, json={"name": "facture.bat"}, headers=world.staff.headers)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "content_mismatch"
    r = client.patch(url, json={"name": "facture-mars"}, headers=world.staff.headers)
    assert r.status_code == 200 and r.get_json()["name"] == "facture-mars.pdf"


def test_web_depositor_is_warned_and_the_badge_shows(web, world, run_jobs):
    """A password-protected PDF through the web form: a French warning at once, then
    « Protégé par mot de passe » on the folder and the document, and a preview image
    that says why there is no preview."""
    import html

    from ged.models import Document

    browser = web(world.client_a)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    browser.get(f"/dossiers/{achats.id}")
    r = browser.post(f"/dossiers/{achats.id}/depot",
                     {"file": (io.BytesIO(pdfs.password_protected()), "releve.pdf")},
                     content_type="multipart/form-data", follow_redirects=True)
    page = html.unescape(r.get_data(as_text=True))
    assert r.status_code == 200
    assert "« releve.pdf » est protégé par un mot de passe" in page
    assert "pourrait ne pas pouvoir le lire" in page
    r = browser.post(f"/dossiers/{achats.id}/depot",
                     {"file": (io.BytesIO(pdfs.password_protected()[:-1] + b"\n"), "b.pdf")},
                     content_type="multipart/form-data", headers={"Accept": "application/json"})
    assert r.status_code == 201 and "protégé par un mot de passe" in r.get_json()["warnings"][0]
    run_jobs()
    doc = Document.get(Document.name == "releve.pdf")
    assert doc.text_status == "encrypted"
    listing = browser.get(f"/dossiers/{achats.id}").get_data(as_text=True)
    assert "Protégé par mot de passe" in listing
    page = browser.get(f"/documents/{doc.id}").get_data(as_text=True)
    assert "Protégé par mot de passe" in page
    image = browser.get(f"/documents/{doc.id}/apercu/1.png")
    assert image.status_code == 200 and image.mimetype == "image/png"


def test_a_pdf_that_keeps_its_reader_busy_is_refused_within_the_time_budget(tmp_path,
                                                                           monkeypatch):
    """45 MB of nested arrays keep pdfium busy for many seconds: the check runs in a
    child process that is ended at the budget, and the file is refused."""
    from ged import filetypes

    monkeypatch.setattr(filetypes, "PARSE_SECONDS", 0.2)
    from ged.errors import GedError

    with pytest.raises(GedError) as exc:
        inspect(tmp_path, "piege.pdf", b"%PDF-1.7\n1 0 obj\n" + b"[" * 45_000_000)
    assert exc.value.code == "corrupt_file" and "gave up" in exc.value.message


def test_good_files_checked_beside_a_file_that_overruns_its_budget_are_accepted(tmp_path,
                                                                               monkeypatch):
    """The checking children are shared by a process's request threads: a file killed for
    its cost breaks the pool it ran in, and the good files checked at that moment are
    tried again in a fresh one instead of being refused."""
    import threading

    from conftest import text_pdf
    from ged import filetypes
    from ged.errors import GedError

    monkeypatch.setattr(filetypes, "PARSE_SECONDS", 0.2)
    results: dict[str, object] = {}

    def check(name: str, data: bytes) -> None:
        folder = tmp_path / name
        folder.mkdir()
        try:
            results[name] = inspect(folder, name, data).content_type
        except GedError as exc:
            results[name] = exc.code

    jobs = [("piege.pdf", b"%PDF-1.7\n1 0 obj\n" + b"[" * 45_000_000)]
    jobs += [(f"facture-{n}.pdf", text_pdf(f"Facture {n}")) for n in range(6)]
    threads = [threading.Thread(target=check, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results.pop("piege.pdf") == "corrupt_file"
    assert results == {f"facture-{n}.pdf": "application/pdf" for n in range(6)}
