"""What a linked tool receives, checked as the tool would: every http delivery verified
with the published ``standardwebhooks`` package (body read as text, then JSON) on
documents of arbitrary bytes; the signed file link; the multipart mode posting into
an upload API that wants its own token (paperless-ngx); the invoice XML option by
e-mail and http; e-mail headers that survive any Unicode name; and a 50 MB document
signed and sent inline by a worker whose memory stays flat."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import re
from html import unescape
from urllib.parse import urlsplit

import pytest

from conftest import text_pdf
from fixtures.documents import cii_xml, facturx_pdf, ubl_xml

ANNUAL = "Dossier comptable annuel 2026"
# Every byte value, and sequences that are not UTF-8 (a lone continuation byte, an
# overlong lead, bytes no UTF-8 text holds).
ALL_BYTES = bytes(range(256)) * 64 + b"\x80\xc0\xc1\xf5\xfe\xff\xed\xa0\x80" + os.urandom(4096)
TOKEN = "Token 7f3c9a1e-paperless-api-key"


def binary_pdf(payload: bytes = b"", text: str = "Facture FA-2026-0042 Boulangerie Martin") -> bytes:
    """A real-looking PDF: a page of text (a Flate-compressed content stream) with a
    photo of the receipt (a JPEG stream), and ``payload`` attached as an embedded file
    kept raw, so the PDF's own bytes hold it as is."""
    import pikepdf
    from fpdf import FPDF
    from PIL import Image

    photo = io.BytesIO()
    Image.frombytes("RGB", (120, 90), os.urandom(120 * 90 * 3)).save(photo, "JPEG", quality=90)
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    pdf.image(photo, x=10, y=40, w=90)
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(bytes(pdf.output()))) as doc:
        if payload:
            doc.attachments["mesures.bin"] = pikepdf.AttachedFileSpec(doc, payload)
        doc.save(out, compress_streams=False)
    return out.getvalue()


def _connect(firm_tools, world, receiver, preset="webhook", path="/hook", **fields):
    conn = firm_tools.connect(world.company_a, firm_tools.install(preset, preset),
                              url=receiver.hook(path), **fields)
    receiver.secrets["current"] = conn["secret"]
    return conn


def _rename(model, row_id: str, name: str) -> None:
    """A name that today's checks refuse (line separators) but that older data, an
    import or a rename may hold: a delivery must carry it all the same."""
    model.update(name=name).where(model.id == row_id).execute()


def _achats(world):
    return world.folder(world.company_a, ANNUAL, "Achats")


def _reverify(secrets: list[str], hit) -> dict:
    """Verify a request again exactly as a receiver built on the package does (the raw
    body as text, parsed as JSON by the verifier itself) with the first secret that
    signed it; returns what the verifier returns."""
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    for secret in secrets:
        try:
            return Webhook(secret).verify(hit.body.decode("utf-8"), hit.headers)
        except WebhookVerificationError:
            continue
    raise AssertionError(f"no secret verifies {hit.webhook_id}")


# --- every delivery, verified by the published verifier ----------------------------------


def test_every_delivery_verifies_with_the_published_verifier_whatever_the_bytes(
        app, client, world, firm_tools, webhook_receiver, drain_deliveries):
    hook = _connect(firm_tools, world, webhook_receiver)
    achats = _achats(world)
    firm_tools.switch(achats, hook, "on")
    arbitrary = binary_pdf(ALL_BYTES)
    photo_invoice = binary_pdf(text="Ticket de caisse photographié, TVA 5,5 %")
    assert set(arbitrary) == set(range(256))
    for data in (arbitrary, photo_invoice):
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
    expected = {"octets.pdf": arbitrary, "ticket-photo.pdf": photo_invoice,
                "facture-x.pdf": facturx_pdf()}

    # A switch delivery whose first attempt meets a 503 is retried with the same id.
    webhook_receiver.answer(503)
    docs = {name: firm_tools.upload(achats, name, data) for name, data in expected.items()}
    drain_deliveries()
    # Sent by hand, then sent again while the secret is being rotated (both sign).
    for name in ("octets.pdf", "ticket-photo.pdf"):
        resp = client.post(f"/api/v1/documents/{docs[name]['id']}/deliveries",
                           json={"connection_id": hook["id"]}, headers=world.staff.headers)
        assert resp.status_code == 202, resp.get_json()
    drain_deliveries()
    new = client.post(f"/api/v1/connections/{hook['id']}/rotate-secret",
                      headers=world.staff.headers).get_json()["secret"]
    webhook_receiver.secrets = {"current": new, "old": hook["secret"]}
    resp = client.post(f"/api/v1/documents/{docs['octets.pdf']['id']}/deliveries",
                       json={"connection_id": hook["id"]}, headers=world.staff.headers)
    assert resp.status_code == 202
    drain_deliveries()
    test = client.post(f"/api/v1/connections/{hook['id']}/test", headers=world.staff.headers)
    assert test.get_json()["ok"] is True

    hits = webhook_receiver.to("/hook")
    assert len(hits) == 3 + 1 + 2 + 1 + 1  # switch (one retried), by hand, rotation, test
    for hit in hits:
        assert hit.body.isascii() and hit.headers["content-type"] == "application/json"
        assert hit.verified_by == "Webhook.verify", hit.errors
        assert "current" in hit.verified_with, hit.errors
        assert hit.envelope == _reverify([hook["secret"], new], hit)
        assert set(hit.envelope) == {"type", "timestamp", "data"}
        dt.datetime.fromisoformat(hit.envelope["timestamp"])
        if hit.envelope["type"] == "test":
            assert hit.file is None and hit.envelope["data"]["connection_id"] == hook["id"]
            continue
        data = hit.envelope["data"]
        assert hit.file == expected[data["name"]], data["name"]
        assert hashlib.sha256(hit.file).hexdigest() == data["sha256"] and data["size"] == len(hit.file)
        assert hit.webhook_id == data["delivery_id"]
        assert hit.envelope["type"] == {"switch": "document.deposited",
                                        "manual": "document.sent"}[data["trigger"]]
    by_type = [h.envelope["type"] for h in hits]
    assert by_type.count("document.deposited") == 4 and by_type.count("document.sent") == 3
    switch_ids = [h.webhook_id for h in hits if h.envelope["type"] == "document.deposited"]
    assert len(set(switch_ids)) == 3  # the retried one came twice, with one webhook-id
    # During the rotation both secrets signed the delivery and the test request.
    assert [sorted(h.verified_with) for h in hits[-2:]] == [["current", "old"]] * 2
    for doc in docs.values():
        assert {d["status"] for d in firm_tools.deliveries(doc["id"])} == {"accepted"}


# --- the file link ----------------------------------------------------------------------------


def test_the_file_link_serves_the_exact_bytes_until_it_lapses_and_only_its_own(
        app, client, world, firm_tools, webhook_receiver, drain_deliveries):
    from ged import deliveries
    from ged.models import AuditEvent, utcnow

    cfg = app.config["GED"]
    # Inline bytes off: the tool gets the link only.
    hook = _connect(firm_tools, world, webhook_receiver, options={"inline_max_bytes": 0})
    achats = _achats(world)
    firm_tools.switch(achats, hook, "on")
    first, second = binary_pdf(ALL_BYTES), text_pdf("Deuxième facture")
    docs = [firm_tools.upload(achats, "octets.pdf", first),
            firm_tools.upload(achats, "deuxieme.pdf", second)]
    drain_deliveries()
    hits = {h.metadata["name"]: h for h in webhook_receiver.to("/hook")}
    links = {}
    for name, data in (("octets.pdf", first), ("deuxieme.pdf", second)):
        meta = hits[name].metadata
        assert "content_base64" not in meta and hits[name].file is None
        until = dt.datetime.fromisoformat(meta["file_url_expires_at"])
        assert dt.timedelta(days=6.99) < until - utcnow() <= dt.timedelta(days=7)
        url = urlsplit(meta["file_url"])
        assert meta["file_url"].startswith(f"{cfg.public_url}/api/v1/deliveries/"
                                           f"{meta['delivery_id']}/file?expires=")
        links[name] = (url.path, dict(p.split("=", 1) for p in url.query.split("&")))
        # No token: the link is the authorisation.
        resp = client.get(url.path, query_string=links[name][1])
        assert resp.status_code == 200 and resp.data == data
        assert hashlib.sha256(resp.data).hexdigest() == meta["sha256"]
        assert resp.headers["Content-Disposition"].startswith("attachment")
    used = AuditEvent.select().where(AuditEvent.action == "delivery.file_downloaded")
    assert {e.object_id for e in used} == {h.metadata["delivery_id"] for h in hits.values()}
    assert all(e.firm_only for e in used)

    path, query = links["octets.pdf"]
    other_path, other_query = links["deuxieme.pdf"]

    def refused(p, q):
        resp = client.get(p, query_string=q)
        return resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"

    flipped = query["signature"][:-1] + ("A" if query["signature"][-1] != "A" else "B")
    assert refused(path, {**query, "signature": flipped})
    assert refused(path, {**query, "expires": str(int(query["expires"]) + 1)})
    assert refused(path, {"expires": query["expires"]})
    assert refused(path, {})
    # One delivery's link never serves another delivery's document.
    assert refused(other_path, query) and refused(path, other_query)
    assert refused(path.replace(hits["octets.pdf"].webhook_id, "01zzzzzzzzzzzzzzzzzzzzzzzz"), query)
    # Expired: a link signed eight days ago for seven.
    old, _ = deliveries.file_link(hits["octets.pdf"].webhook_id,
                                  now=utcnow() - dt.timedelta(days=8))
    assert refused(path, dict(p.split("=", 1) for p in urlsplit(old).query.split("&")))
    # The key comes from SECRET_KEY: a server with another key refuses the link.
    key = cfg.secret_key
    cfg.secret_key = "another-installation"
    assert refused(path, query)
    cfg.secret_key = key
    assert client.get(path, query_string=query).status_code == 200
    # GED_FILE_URL_DAYS sets the lifetime.
    cfg.file_url_days = 1
    _url, until = deliveries.file_link(hits["octets.pdf"].webhook_id)
    assert dt.timedelta(hours=23) < until - utcnow() <= dt.timedelta(days=1)
    # A document taken back (trash) is no longer served.
    assert client.delete(f"/api/v1/documents/{docs[1]['id']}",
                         headers=world.staff.headers).status_code == 200
    assert refused(other_path, other_query)


# --- multipart into an upload API --------------------------------------------------------------


def test_multipart_mode_posts_into_an_upload_api_that_wants_its_own_token(
        app, client, world, firm_tools, webhook_receiver, drain_deliveries, web):
    from ged.models import AuditEvent, Document

    upload_path = "/api/documents/post_document/"
    conn = _connect(firm_tools, world, webhook_receiver, preset="paperless-ngx", path=upload_path,
                    options={"headers": {"Authorization": TOKEN}})
    assert conn["options"]["format"] == "multipart" and conn["options"]["file_field"] == "document"
    assert conn["options"]["headers"] == {"Authorization": "********"}
    # Like paperless-ngx: 401 without its token, 400 without the "document" field.
    webhook_receiver.require_headers = {"Authorization": TOKEN}
    webhook_receiver.file_field = "document"
    achats = _achats(world)
    firm_tools.switch(achats, conn, "on")
    name = "Relevé\u2028banque n°3 « mars ».pdf"
    data = binary_pdf(ALL_BYTES)
    doc = firm_tools.upload(achats, "releve.pdf", data)
    _rename(Document, doc["id"], name)  # as older data may hold (deposits refuse it now)
    drain_deliveries()

    (hit,) = webhook_receiver.to(upload_path)
    assert hit.headers["authorization"] == TOKEN
    assert hit.headers["content-type"].startswith("multipart/form-data")
    assert hit.parts["document"] == (name, data) and hit.file_type == "application/pdf"
    assert set(hit.parts) == {"document"}
    assert hit.verified_with == ["current"] and hit.verified_by == "Webhook.verify(bytes)"
    assert hit.envelope["type"] == "document.deposited"
    assert hit.metadata["document_id"] == doc["id"] and "content_base64" not in hit.metadata
    assert hit.metadata["file_url"].startswith("http")
    (delivery,) = firm_tools.deliveries(doc["id"])
    assert delivery["status"] == "accepted"

    # The test request is a "test" envelope in the connection's format, signed, with the
    # tool's token; an upload API answers it 400 (no document), which the test reports.
    result = client.post(f"/api/v1/connections/{conn['id']}/test",
                         headers=world.staff.headers).get_json()
    probe = webhook_receiver.to(upload_path)[-1]
    assert probe.metadata["type"] == "test" and probe.parts == {}
    assert probe.headers["authorization"] == TOKEN and probe.verified_with == ["current"]
    assert result["ok"] is False and result["status_code"] == 400

    # Sent back masked, the header keeps its value; a wrong token fails with the tool's 401.
    resp = client.patch(f"/api/v1/connections/{conn['id']}",
                        json={"options": {"headers": {"Authorization": "********"},
                                          "send_invoice_xml": True}},
                        headers=world.staff.headers)
    assert resp.status_code == 200 and resp.get_json()["options"]["send_invoice_xml"] is True
    assert resp.get_json()["options"]["format"] == "multipart"
    second = firm_tools.upload(achats, "second.pdf", text_pdf("Second"))
    drain_deliveries()
    assert firm_tools.deliveries(second["id"])[0]["status"] == "accepted"
    client.patch(f"/api/v1/connections/{conn['id']}",
                 json={"options": {"headers": {"Authorization": "Token expired"}}},
                 headers=world.staff.headers)
    third = firm_tools.upload(achats, "third.pdf", text_pdf("Third"))
    drain_deliveries()
    (failed,) = firm_tools.deliveries(third["id"])
    assert failed["status"] == "failed" and "HTTP 401" in failed["last_error"]

    # The token shows nowhere: API, audit trail, the connections page.
    listed = client.get(f"/api/v1/companies/{world.company_a.id}/connections",
                        headers=world.staff.headers).get_data(as_text=True)
    audit = json.dumps([e.details for e in AuditEvent.select()])
    page = web(world.staff).get(f"/entreprises/{world.company_a.id}/connexions")
    html = page.get_data(as_text=True)
    for text in (listed, audit, html):
        assert "7f3c9a1e" not in text and "expired" not in text
    assert "multipart" in html and "document" in html and "Authorization" in html


# --- the invoice XML option --------------------------------------------------------------------


def test_the_invoice_xml_goes_alongside_or_instead_of_the_file(
        app, client, world, firm_tools, smtp_sink, webhook_receiver, drain_deliveries):
    from ged import extraction
    from ged.models import Document

    h = world.staff.headers
    both = firm_tools.connect(world.company_a, firm_tools.install("email", "Compta"),
                              address="both@compta.example", options={"send_invoice_xml": True})
    xml_only = firm_tools.connect(world.company_a, firm_tools.install("jefacture", "JeFacture"),
                                  address="xml@jefacture.example",
                                  options={"send_invoice_xml": True, "send_original": False})
    hook = _connect(firm_tools, world, webhook_receiver,
                    options={"send_invoice_xml": True, "send_original": False})
    upload_api = firm_tools.connect(world.company_a, firm_tools.install("paperless-ngx", "P"),
                                    url=webhook_receiver.hook("/upload"),
                                    options={"send_invoice_xml": True})
    webhook_receiver.file_field = "document"
    webhook_receiver.secrets["upload"] = upload_api["secret"]
    achats = _achats(world)
    for conn in (both, xml_only, hook, upload_api):
        firm_tools.switch(achats, conn, "on")

    # Nothing refuses "send nothing" quietly: the API says so and changes nothing.
    resp = client.patch(f"/api/v1/connections/{both['id']}",
                        json={"options": {"send_original": False, "send_invoice_xml": False}},
                        headers=h)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "nothing_to_send"
    assert client.get(f"/api/v1/connections/{both['id']}",
                      headers=h).get_json()["options"]["send_invoice_xml"] is True

    invoice_pdf, peppol = facturx_pdf(), ubl_xml()
    docs = {"facture-mars.pdf": invoice_pdf, "note.pdf": text_pdf("Note de frais sans XML"),
            "peppol.xml": peppol}
    ids = {name: firm_tools.upload(achats, name, data)["id"] for name, data in docs.items()}
    # No extraction has run yet (only the deliveries queue is drained): the XML is read
    # from the PDF when sending.
    assert all(Document.get_by_id(i).blob.facturx is None for i in ids.values())
    drain_deliveries()

    def attachments(address):
        return {m.message["X-Ged-Delivery-Id"]: m.attachments() for m in smtp_sink.to(address)}

    got = sorted(sorted(a.items()) for a in attachments("both@compta.example").values())
    assert got == sorted([
        sorted({"facture-mars.pdf": invoice_pdf, "facture-mars.xml": cii_xml()}.items()),
        [("note.pdf", docs["note.pdf"])], [("peppol.xml", peppol)]])
    got = sorted(sorted(a) for a in attachments("xml@jefacture.example").values())
    # Without invoice data a document goes as deposited; a bare UBL file is its own XML.
    assert got == [["facture-mars.xml"], ["note.pdf"], ["peppol.xml"]]

    json_hits = {h.metadata["name"]: h for h in webhook_receiver.to("/hook")}
    facture = json_hits["facture-mars.pdf"].metadata
    assert base64.b64decode(facture["invoice_xml_base64"]) == cii_xml()
    assert facture["invoice_xml_name"] == "facture-mars.xml"
    assert "file_url" not in facture and "content_base64" not in facture
    assert facture["facturx"]["number"] == "FA-2026-0117"
    assert json_hits["note.pdf"].file == docs["note.pdf"]
    assert "invoice_xml_base64" not in json_hits["note.pdf"].metadata
    assert json_hits["peppol.xml"].invoice_xml == peppol

    parts = {h.metadata["name"]: h.parts for h in webhook_receiver.to("/upload")}
    assert parts["facture-mars.pdf"] == {"document": ("facture-mars.pdf", invoice_pdf),
                                         "invoice_xml": ("facture-mars.xml", cii_xml())}
    assert parts["peppol.xml"] == {"document": ("peppol.xml", peppol)}
    for hit in webhook_receiver.hits:
        assert hit.verified_with, hit.errors

    # Once extraction has run, the XML comes from the same place, with the same fields.
    extraction.extract_blob(Document.get_by_id(ids["facture-mars.pdf"]).blob_id)
    assert Document.get_by_id(ids["facture-mars.pdf"]).blob.facturx["source"] == "facturx"
    client.post(f"/api/v1/documents/{ids['facture-mars.pdf']}/deliveries",
                json={"connection_id": hook["id"]}, headers=h)
    drain_deliveries()
    again = webhook_receiver.to("/hook")[-1]
    assert again.envelope["type"] == "document.sent" and again.invoice_xml == cii_xml()
    assert again.metadata["facturx"] == facture["facturx"]


# --- e-mail headers ----------------------------------------------------------------------------


def test_any_unicode_name_reaches_the_mailbox_intact(
        app, client, world, firm_tools, smtp_sink, drain_deliveries):
    from ged import folders
    from ged.models import Company, Document, Folder

    company_name = "Boulangerie\u2028Martin\u0085 & Fils « Été » =?utf-8?q?x?="
    Company.update(name=company_name).where(Company.id == world.company_a.id).execute()
    conn = firm_tools.connect(world.company_a, firm_tools.install("email", "E-mail"),
                              address="collecte@outil.example",
                              options={"attach_metadata": True, "send_invoice_xml": True})
    achats = _achats(world)
    firm_tools.switch(achats, conn, "on")
    folder = firm_tools.mkdir(achats, "Reçus de mars")
    _rename(Folder, folder.id, "Reçus\u2028de mars\u2029\u0085")
    names = ["Facture\u2028n°1 — été\u0085.pdf", "Relevé " + "é" * 200 + " 日本語.pdf",
             "plain 'quoted'; name.pdf", "a" * 120 + ".pdf"]
    for i, name in enumerate(names):
        doc = firm_tools.upload(folder, f"document-{i}.pdf",
                                facturx_pdf(f"Facture {i}") if i == 0 else text_pdf(f"Document {i}"))
        _rename(Document, doc["id"], name)
    drain_deliveries()

    path = folders.display_path(Folder.get_by_id(folder.id))
    assert "\u2028" in path
    mails = {m.message["X-Ged-Delivery-Id"]: m for m in smtp_sink.to("collecte@outil.example")}
    assert len(mails) == len(names)
    seen = set()
    for mail in mails.values():
        assert mail.raw.isascii()
        assert max(len(line) for line in mail.raw.split(b"\r\n")) <= 998
        subject = mail.message["Subject"]
        name = next(n for n in names if subject.endswith(f" — {n}"))
        assert subject == f"[{company_name}] {path} — {name}"
        files = mail.attachments()
        assert name in files and "metadata.json" in files
        if name == names[0]:
            assert files["Facture\u2028n°1 — été\u0085.xml"] == cii_xml()
        seen.add(name)
    assert seen == set(names)
    result = client.post(f"/api/v1/connections/{conn['id']}/test",
                         headers=world.staff.headers).get_json()
    assert result["ok"] is True
    assert smtp_sink.messages[-1].message["Subject"] == f"[{company_name}] Test de connexion ged"


# --- memory -------------------------------------------------------------------------------------


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_50_mb_document_is_signed_and_sent_inline_in_bounded_memory(
        app, world, firm_tools, webhook_receiver, ged_worker, cfg):
    """A 50 MB PDF of random bytes goes inline (base64 in the JSON envelope), verified by
    the published verifier; the worker that signs and sends it (two passes over the
    body) grows by far less than the document."""
    from fixtures.faults import wait_for

    from ged import documents
    from ged.blobs import stage_bytes

    hook = _connect(firm_tools, world, webhook_receiver,
                    options={"inline_max_bytes": 64 * 1024 * 1024})
    achats = _achats(world)
    firm_tools.switch(achats, hook, "on")
    worker = ged_worker(queues="deliveries", GED_DELIVERY_TIMEOUT="120")

    def deposit(name: str, data: bytes):
        staged = stage_bytes(data, cfg.data_dir, 64 * 1024 * 1024)
        return documents.deposit(world.staff.user, achats, [documents.Upload(name, staged)],
                                 "api")[0]

    deposit("petit.pdf", text_pdf("Petit"))
    wait_for(lambda: len(webhook_receiver.hits) == 1, what="the small document")
    before = _peak_rss_mb(worker.proc.pid)
    big = binary_pdf(os.urandom(50 * 1024 * 1024))
    assert len(big) > 50 * 1024 * 1024
    doc = deposit("archive-scans.pdf", big)
    wait_for(lambda: len(webhook_receiver.hits) == 2, timeout=180, what="the 50 MB delivery")
    grown = _peak_rss_mb(worker.proc.pid) - before
    hit = webhook_receiver.hits[1]
    assert hit.verified_by == "Webhook.verify" and hit.verified_with == ["current"], hit.errors
    assert len(hit.body) > 4 * len(big) // 3
    assert hit.metadata["document_id"] == doc.id and hit.file == big
    print(f"\n50 MB inline delivery: the worker's peak RSS grew by {grown:.1f} MB "
          f"(body {len(hit.body) / 2**20:.0f} MB)")
    assert grown < 16, f"the worker grew by {grown:.0f} MB sending a {len(big) >> 20} MB file"


# --- the pages ----------------------------------------------------------------------------------


def text_of(response) -> str:
    """The visible text of a page, whitespace collapsed."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_the_connections_page_shows_format_options_and_masked_headers(app, world, web):
    from ged.models import Connection, Integration

    staff = web(world.staff)
    admin = web(world.admin)
    assert admin.post("/admin/integrations", {"preset": "paperless-ngx",
                                              "name": "paperless-ngx"}).status_code == 302
    integration = Integration.get(Integration.name == "paperless-ngx")
    page = staff.get(f"/entreprises/{world.company_a.id}/connexions").get_data(as_text=True)
    assert "post_document" in page  # the preset's hint for its URL
    r = staff.post(f"/entreprises/{world.company_a.id}/connexions",
                   {"integration_id": integration.id, "name": "GED paperless",
                    "url": "http://127.0.0.1:9/api/documents/post_document/",
                    "headers": f"Authorization: {TOKEN}", "send": "both"})
    assert r.status_code == 200 and "whsec_" in r.get_data(as_text=True)
    conn = Connection.get(Connection.name == "GED paperless")
    assert conn.options == {"format": "multipart", "file_field": "document",
                            "headers": {"Authorization": TOKEN}, "send_invoice_xml": True}
    listing = staff.get(f"/entreprises/{world.company_a.id}/connexions")
    text = text_of(listing)
    assert "multipart" in text and "« document »" in text and "Authorization" in text
    assert "XML" in text and TOKEN not in listing.get_data(as_text=True)
    # The form refuses, in French, what the API refuses.
    r = staff.post(f"/entreprises/{world.company_a.id}/connexions",
                   {"integration_id": integration.id, "url": "http://127.0.0.1:9/x",
                    "format": "json", "inline_max_mb": "-3"})
    assert r.status_code == 400 and re.search(r"option|Mo", text_of(r))
