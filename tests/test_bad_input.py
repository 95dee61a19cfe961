"""Bad input, through every door: each gets a clear 4xx (or an SMTP 5xx naming the
file) and leaves nothing half-written (no document row, no blob row, no blob file,
no staged upload, no audit event of a deposit).

The same matrix of bad files goes through the API, the web upload and the e-mail
drop; then bad names on renames and folders, files that a browser could run, and
JSON that is malformed, mistyped, over-nested or too large on every route with a
body. tests/test_deposit.py and tests/test_email_channel.py keep their own first
examples; this file is the full matrix.
"""

from __future__ import annotations

import email.policy
import html
import io
import json
import smtplib
import struct
import zlib

import pytest

from conftest import png_bytes, text_pdf

ANNUAL = "Dossier comptable annuel 2026"
LIMIT = 300_000  # the per-file size limit of these tests, so oversize stays quick


# --- the bad files ----------------------------------------------------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png() -> bytes:
    """A valid PNG header claiming 60,000 x 60,000 pixels, in a few hundred bytes."""
    return (b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + _png_chunk(b"IEND", b""))


def huge_tiff(width: int = 200_000, height: int = 200_000) -> bytes:
    """A little-endian TIFF whose header claims ``width`` x ``height`` 1-bit pixels
    (40 gigapixels), with a single strip of a few bytes."""
    entries = [  # (tag, type, count, value); type 3 = SHORT, 4 = LONG
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 1), (259, 3, 1, 1),
        (262, 3, 1, 0), (273, 4, 1, 0), (278, 4, 1, height), (279, 4, 1, 16)]
    ifd_offset = 8
    data_offset = ifd_offset + 2 + len(entries) * 12 + 4
    out = b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if tag == 273:
            value = data_offset
        packed = struct.pack("<H", value) + b"\x00\x00" if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + packed
    return out + struct.pack("<I", 0) + b"\x00" * 16


def encrypted_pdf() -> bytes:
    """A PDF that opens only with a password."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(text_pdf("Relevé confidentiel"))).pages:
        writer.add_page(page)
    writer.encrypt("motdepasse", "proprietaire")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def many_pages_pdf(pages: int = 2001) -> bytes:
    """A small PDF of ``pages`` blank pages (the limit is 2,000)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b'<script>alert(document.cookie)</script><rect width="10" height="10"/></svg>')
HTML = b"<!DOCTYPE html><html><body><script>fetch('/api/v1/me')</script></body></html>"


def bad_files():
    """(label, file name, bytes, HTTP status, error code) for every kind of bad file."""
    pdf = text_pdf("Facture correcte")
    return [
        ("empty file", "vide.pdf", b"", 400, "empty_file"),
        ("oversize file", "gros.pdf", pdf + b"%" * LIMIT, 413, "file_too_large"),
        ("executable named .pdf", "facture.pdf", b"MZ\x90\x00\x03" + b"\x00" * 300, 415, None),
        ("PNG named .pdf", "facture.pdf", png_bytes(), 415, "content_mismatch"),
        ("PDF named .jpg", "photo.jpg", pdf, 415, "content_mismatch"),
        ("text named .png", "photo.png", b"juste du texte\n" * 20, 415, "content_mismatch"),
        ("zip named .xlsx", "tableau.xlsx", _zip(), 415, "unsupported_type"),
        ("decompression-bomb PNG", "bombe.png", bomb_png(), 400, "image_too_large"),
        ("huge-dimension TIFF", "scan.tiff", huge_tiff(), 400, "image_too_large"),
        ("malformed PDF", "casse.pdf", b"%PDF-1.7\n1 0 obj <</Type /Catalog>> garbage", 400,
         "corrupt_file"),
        # A truncation qpdf can repair is accepted (tests/test_extraction.py); one that
        # cut everything but the header is not. A PDF that needs a password is kept.
        ("PDF cut before its first page", "coupe.pdf", pdf[:120], 400, "corrupt_file"),
        ("batch file", "facture.bat", b"@echo off\r\ndel /q *.*\r\n", 415, "unsupported_type"),
        ("HTA application", "facture.hta", HTML, 415, "unsupported_type"),
        ("script after 4 KB named .txt", "notes.txt", b"ligne\n" * 700 + HTML, 415,
         "unsupported_type"),
        ("SVG onload after 1 KB named .xml", "plan.xml", b'<?xml version="1.0"?>' + b" " * 1100
         + b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', 415, "unsupported_type"),
        ("HTML+PDF polyglot", "facture.pdf", HTML + b"\n" + pdf, 415, "unsupported_type"),
        ("script with no extension", "facture", b"ligne\n" * 700 + HTML, 415, "unsupported_type"),
        ("installer named .doc", "notice.doc", _ole2("\x05SummaryInformation"), 415,
         "unsupported_type"),
        ("PDF of 2,001 pages", "enorme.pdf", many_pages_pdf(), 400, "too_many_pages"),
        ("SVG with a script", "dessin.svg", SVG, 415, "unsupported_type"),
        ("SVG named .png", "logo.png", SVG, 415, "unsupported_type"),
        ("HTML with a script", "page.html", HTML, 415, "unsupported_type"),
        ("HTML named .txt", "notes.txt", HTML, 415, "unsupported_type"),
        ("XHTML named .xml", "flux.xml", b'<html xmlns="http://www.w3.org/1999/xhtml">'
         b"<script>alert(1)</script></html>", 415, "unsupported_type"),
    ]


def _ole2(stream: str) -> bytes:
    from fixtures.documents import ole2_bytes

    return ole2_bytes(stream)


def _zip() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("readme.txt", "not an office document")
    return out.getvalue()


BAD_NAMES = [
    ("path traversal", "../../etc/passwd.pdf"),
    ("Windows path traversal", "..\\..\\boot.pdf"),
    ("absolute path", "/etc/cron.d/job.pdf"),
    ("NUL", "facture\x00.exe.pdf"),
    ("control character", "bad\x07name.pdf"),
    ("newline", "ligne\r\nSet-Cookie: x=1.pdf"),
    ("right-to-left override", "facture\u202efdp.exe.pdf"),
    ("HTML", "<img src=x onerror=alert(1)>.pdf"),
    ("1,000 characters", "x" * 996 + ".pdf"),
    ("hidden file", ".htaccess"),
    ("empty name", "   "),
]


# --- what "nothing half-written" means ----------------------------------------------------------


def assert_nothing_written(cfg, what: str) -> None:
    """No document or blob row, no blob file, no staged upload, no deposit in the audit."""
    from ged.models import AuditEvent, Blob, Document

    blobs = [p for p in (cfg.data_dir / "blobs").rglob("*") if p.is_file()] \
        if (cfg.data_dir / "blobs").exists() else []
    staged = list((cfg.data_dir / "tmp").iterdir()) if (cfg.data_dir / "tmp").exists() else []
    deposited = AuditEvent.select().where(AuditEvent.action == "document.deposited").count()
    assert (Document.select().count(), Blob.select().count(), blobs, staged, deposited) == (
        0, 0, [], [], 0), f"{what} left something behind"


@pytest.fixture
def small_limit(cfg):
    cfg.max_upload_bytes = LIMIT
    return cfg


def _api_upload(client, folder, actor, name, data):
    return client.post(f"/api/v1/folders/{folder.id}/documents", headers=actor.headers,
                       data={"file": [(io.BytesIO(data), name)]},
                       content_type="multipart/form-data")


# --- the three doors ---------------------------------------------------------------------------


def test_bad_files_through_the_api(client, world, small_limit, tally):
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    for label, name, data, status, code in bad_files():
        r = _api_upload(client, achats, world.client_a, name, data)
        assert r.status_code == status, (label, r.get_json())
        error = r.get_json()["error"]
        assert error["message"] and (code is None or error["code"] == code), (label, error)
        assert_nothing_written(small_limit, label)
        tally.add("bad_input")
    # One bad file among good ones: the whole deposit is refused.
    r = client.post(f"/api/v1/folders/{achats.id}/documents", headers=world.client_a.headers,
                    content_type="multipart/form-data",
                    data={"file": [(io.BytesIO(text_pdf("Bonne")), "bonne.pdf"),
                                   (io.BytesIO(SVG), "dessin.svg")]})
    assert r.status_code == 415
    assert_nothing_written(small_limit, "a good file beside a bad one")
    tally.add("bad_input")


def test_bad_names_through_the_api(client, world, small_limit, tally):
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    for label, name in BAD_NAMES:
        r = _api_upload(client, achats, world.client_a, name, text_pdf())
        assert r.status_code == 400, (label, r.get_json())
        # A raw line break cannot even be carried in a multipart header: no file arrives
        # (the file's bytes, NULs included, arrive as a form field: invalid_input).
        expected = ({"invalid_name", "no_file", "invalid_input"} if "\n" in name
                    else {"invalid_name"})
        assert r.get_json()["error"]["code"] in expected, label
        assert_nothing_written(small_limit, label)
        tally.add("bad_input")


def test_bad_files_and_names_through_the_web_upload(web, world, small_limit, tally):
    """The drag-and-drop uploader (JSON replies) and the plain form (a French message)."""
    browser = web(world.client_a)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    url = f"/dossiers/{achats.id}/depot"
    browser.get(f"/dossiers/{achats.id}")
    cases = [(label, name, data, status) for label, name, data, status, _code in bad_files()]
    cases += [(label, name, text_pdf(), 400) for label, name in BAD_NAMES if name.strip()]
    for label, name, data, status in cases:
        r = browser.post(url, {"file": (io.BytesIO(data), name)},
                         content_type="multipart/form-data",
                         headers={"Accept": "application/json"})
        assert r.status_code == status, (label, r.get_data(as_text=True)[:300])
        assert r.get_json()["error"]["message"], label
        assert_nothing_written(small_limit, label)
        tally.add("bad_input")
    # Without a script the form is redirected back to the folder with a French message.
    r = browser.post(url, {"file": (io.BytesIO(SVG), "dessin.svg")},
                     content_type="multipart/form-data", follow_redirects=True)
    assert r.status_code == 200
    assert "n'est pas accepté" in html.unescape(r.get_data(as_text=True))
    assert_nothing_written(small_limit, "the plain form")


def test_bad_files_and_names_through_the_email_drop(world, drop_smtp, small_limit, tally):
    """A bad attachment alone is refused with a 5xx that names it, nothing written;
    beside a good one it is refused and named while the good one is deposited (issue
    16). A bad name is made safe, never carried into a name, a header or a reply."""
    from email.utils import encode_rfc2231

    from ged.models import Document

    address = drop_smtp.address(world.company_a)

    def message(files, name=None):
        msg = drop_smtp.message(address, files=files)
        if name is not None:  # the name as RFC 2231 carries it, byte for byte (NUL included)
            part = list(msg.iter_attachments())[-1]
            del part["Content-Disposition"]
            part["Content-Disposition"] = f"attachment; filename*={encode_rfc2231(name, 'utf-8')}"
        return msg.as_bytes(policy=email.policy.SMTP)

    refused = [case for case in bad_files() if case[3] >= 400]  # what the API refuses
    for label, name, data, _status, _code in refused:
        code, reply = drop_smtp.deliver(message([(name, data)]), address)
        assert code == 550, (label, reply)
        assert "nothing was deposited" in reply and name in reply, (label, reply)
        assert_nothing_written(small_limit, label)
        tally.add("bad_input")
    bad = [(f"{i}-{name}", data) for i, (_l, name, data, _s, _c) in enumerate(refused)]
    code, reply = drop_smtp.deliver(message([("bonne.pdf", text_pdf("Bonne"))] + bad), address)
    assert code == 250 and f"1 document(s) deposited; {len(bad)} attachment(s)" in reply, reply
    assert [d.name for d in Document.select()] == ["bonne.pdf"]

    for label, name in BAD_NAMES:
        code, reply = drop_smtp.deliver(message([("placeholder.pdf", text_pdf())], name), address)
        assert code in (250, 550), (label, reply)
        assert "\n250" not in reply and "Set-Cookie:" not in reply, (label, reply)
        tally.add("bad_input")
    for doc in Document.select():
        assert not set(doc.name) & set("/\\\r\n\x00\x07\u202e<>:") and not doc.name.startswith(".")
        assert len(doc.name) <= 255 and doc.name.endswith(".pdf"), doc.name


def test_email_with_200_attachments_none_or_to_nobody(world, drop_smtp, small_limit, tally):
    address = drop_smtp.address(world.company_a)
    many = [(f"note-{i}.txt", f"note {i}\n".encode()) for i in range(200)]
    with pytest.raises(smtplib.SMTPDataError) as exc:
        drop_smtp.send(drop_smtp.message(address, files=many))
    assert exc.value.smtp_code == 552 and b"Too many attachments (200" in exc.value.smtp_error
    with pytest.raises(smtplib.SMTPDataError) as exc:
        drop_smtp.send(drop_smtp.message(address, files=[]))
    assert exc.value.smtp_code == 550 and b"No attachment" in exc.value.smtp_error
    nobody = "0" * 20 + "@" + small_limit.mail_domain
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        drop_smtp.send(drop_smtp.message(nobody, files=[("a.pdf", text_pdf())]))
    # A message that is not MIME at all.
    with smtplib.SMTP(drop_smtp.host, drop_smtp.port) as smtp:
        smtp.ehlo()
        smtp.mail("x@example.org")
        smtp.rcpt(address)
        code, _ = smtp.data(b"Content-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n--zz\r\n"
                            b"Content-Disposition: attachment; filename=\"a.pdf\"\r\n"
                            b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n")
        assert 500 <= code < 600
    assert_nothing_written(small_limit, "refused messages")
    tally.add("bad_input", 4)


def test_a_forged_from_deposits_only_as_an_unverified_sender(client, world, drop_smtp, tally):
    """From: the firm's admin, on a message nothing vouches for: the documents land,
    labelled with the claimed address as unverified, never as the admin's deposit."""
    from ged.models import Document

    address = drop_smtp.address(world.company_a)
    msg = drop_smtp.message(address, sender="Admin <admin@un.example>",
                            files=[("usurpation.pdf", text_pdf("Usurpation"))])
    drop_smtp.send(msg, mail_from="admin@un.example")
    (doc,) = Document.select()
    assert doc.deposited_by_id is None
    assert "non vérifié" in doc.deposited_by_label
    shown = client.get(f"/api/v1/documents/{doc.id}", headers=world.staff.headers).get_json()
    assert shown["deposited_by"] is None and "non vérifié" in shown["deposited_by_name"]
    tally.add("bad_input")


# --- names elsewhere: renames and folders ---------------------------------------------------------


# invalid_input: a NUL anywhere in a request is refused before any view (issue 17).
NAME_CODES = {"invalid_name", "invalid_body", "invalid_input"}


def test_bad_names_for_renames_and_folders(client, web, world, tally):
    from ged.models import Document, Folder

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    doc = _api_upload(client, achats, world.staff, "bon.pdf", text_pdf()).get_json()["items"][0]
    folders_before = Folder.select().count()
    browser = web(world.staff)
    browser.get(f"/dossiers/{achats.id}")
    for label, name in BAD_NAMES:
        r = client.patch(f"/api/v1/documents/{doc['id']}", json={"name": name},
                         headers=world.staff.headers)
        # invalid_body when the route's schema refuses it first (maxLength).
        assert r.status_code == 400 and r.get_json()["error"]["code"] in NAME_CODES, label
        r = client.post("/api/v1/folders", json={"parent_id": achats.id, "name": name},
                        headers=world.staff.headers)
        assert r.status_code == 400 and r.get_json()["error"]["code"] in NAME_CODES, label
        r = client.patch(f"/api/v1/folders/{achats.id}", json={"name": name},
                         headers=world.staff.headers)
        assert r.status_code == 400, label
        r = browser.post(f"/dossiers/{achats.id}/sous-dossier", {"name": name},
                         follow_redirects=True)
        if "\x00" in name:  # refused before any view, on its own French page
            assert r.status_code == 400, label
            assert "caractère nul" in html.unescape(r.get_data(as_text=True)), label
        else:
            assert r.status_code == 200, label
            assert "n'est pas valide" in html.unescape(r.get_data(as_text=True)), label
        tally.add("bad_input", 4)
    assert Document.get_by_id(doc["id"]).name == "bon.pdf"
    assert Folder.select().count() == folders_before
    assert world.folder(world.company_a, ANNUAL, "Achats").name == "Achats"


# --- a file a browser could run, if any slips through ---------------------------------------------


def test_what_is_accepted_is_served_as_the_type_verified_inert(client, web, world, tally):
    """Text files are scanned whole, so markup anywhere is refused (bad_files); what is
    accepted is served as the type ged verified (never the client's), as an attachment,
    never sniffed, under a CSP that runs nothing, from the API and the web pages alike
    (preview included): a text that merely holds "<" and ">", and a PDF whose
    stream holds HTML (it starts with %PDF-: it is a PDF)."""
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    notes = b"Notes de frais\n" + b"ligne\n" * 1000 + b"si total < 100 et remise > 5 %\n"
    pdf = text_pdf("Facture") + b"\n%" + HTML
    for name, data, mimetype, sent_as in (("notes.txt", notes, "text/plain", "text/html"),
                                          ("facture.pdf", pdf, "application/pdf", "text/html")):
        r = client.post(f"/api/v1/folders/{achats.id}/documents", headers=world.client_a.headers,
                        content_type="multipart/form-data",
                        data={"file": [(io.BytesIO(data), name, sent_as)]})
        assert r.status_code == 201, r.get_json()
        doc = r.get_json()["items"][0]
        assert doc["content_type"] == mimetype
        browser = web(world.client_a)
        for r in (client.get(f"/api/v1/documents/{doc['id']}/file",
                             headers=world.client_a.headers),
                  browser.get(f"/documents/{doc['id']}/telecharger"),
                  browser.get(f"/documents/{doc['id']}/apercu")):
            assert r.status_code == 200 and r.data == data
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.mimetype == mimetype
            csp = r.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "script-src" not in csp
            if mimetype == "text/plain":
                assert r.headers["Content-Disposition"].startswith("attachment")
        tally.add("bad_input")


# --- JSON on every route with a body -------------------------------------------------------------


def _wrong_type(schema: dict):
    """A value of another JSON type than ``schema`` allows."""
    kinds = schema.get("type")
    kinds = set(kinds if isinstance(kinds, list) else [kinds] if kinds else [])
    if "enum" in schema:
        return {"not": "in the enum"}
    for value, kind in (([1, 2], "array"), ({"a": 1}, "object"), (12345, "integer"),
                        ("text", "string"), (True, "boolean")):
        if kind not in kinds and not (kind == "integer" and "number" in kinds):
            return value
    return None


def _path(r, ids: dict) -> str:
    import re

    return "/api/v1" + re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), ids["id"]), r.path)


def test_malformed_mistyped_unknown_nested_and_huge_json_on_every_route(client, world, tally):
    """Every route with a JSON body (from the route table): each malformation is a 400
    (a 413 past 1 MB) with the JSON error shape, and changes nothing."""
    from ged.api import ROUTES
    from ged.models import AuditEvent

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    ids = {"id": achats.id, "connection_id": achats.id}
    before = AuditEvent.select().count()
    headers = {**world.admin.headers, "Content-Type": "application/json"}
    tried = 0
    routes = [r for r in ROUTES if r.body is not None]
    assert len(routes) >= 15
    ten_mb = json.dumps({"name": "x" * (10 * 1024 * 1024)})
    for r in routes:
        url = _path(r, ids)
        bodies = [
            ("not JSON", "{name: 'x',}", 400),
            ("a JSON array", "[1, 2, 3]", 400),
            ("an unknown field", json.dumps({"unexpected_field": 1}), 400),
            ("NaN", '{"name": NaN}', 400),
            ("nested 100,000 deep", "[" * 100_000 + "]" * 100_000, 400),
            ("a lone surrogate", '{"name": "\\ud800"}', 400),
            ("invalid UTF-8", b'{"name": "\xff\xfe"}', 400),
            ("10 MB", ten_mb, 413),
        ]
        for field, sub in r.body.get("properties", {}).items():
            wrong = _wrong_type(sub)
            if wrong is not None:
                bodies.append((f"{field} of the wrong type", json.dumps({field: wrong}), 400))
        for label, body, status in bodies:
            resp = client.open(url, method=r.method, data=body, headers=headers)
            assert resp.status_code == status, (r.method, r.path, label, resp.get_data()[:200])
            error = resp.get_json()["error"]
            assert error["code"] and error["message"], (r.path, label)
            tried += 1
        # Sent as a form instead of JSON.
        resp = client.open(url, method=r.method, data={"name": "x"}, headers=world.admin.headers)
        assert resp.status_code == 400, (r.path, "form")
        tried += 1
    tally.add("bad_input", tried)
    assert AuditEvent.select().count() == before


def test_a_10_mb_chunked_body_is_refused_by_a_real_server(world, server_process, tally):
    """With no Content-Length to check first, the server still stops reading at 1 MB."""
    import httpx

    server = server_process()

    def chunks():
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    r = httpx.post(server.url + "/api/v1/companies", content=chunks(), timeout=60,
                   headers={**world.admin.headers, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    # A web form field of 10 MB is refused too (forms are held in memory).
    r = httpx.post(server.url + "/login", data={"email": "x" * (10 * 1024 * 1024)}, timeout=60)
    assert r.status_code in (400, 413)
    tally.add("bad_input", 2)
