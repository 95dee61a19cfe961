"""Text extraction: text layers, OCR of scans and photos (real Tesseract), Factur-X,
UBL and CII invoices, probable duplicate invoices, and files that fail cleanly."""

from __future__ import annotations

import io

import pytest

from fixtures import pdfs
from fixtures.documents import (cii_xml, docx_bytes, facturx_pdf, image_bytes, ole2_bytes,
                                phone_photo, scanned_pdf, text_pdf, ubl_xml)

INVOICE_LINES = ["FACTURE N° 2026-0042", "Fournisseur : Boulangerie Martin",
                 "Relevé des prestations de mars", "Montant total : 1 250,00 EUR"]


def achats(world, company=None):
    return world.folder(company or world.company_a, "Dossier comptable annuel 2026", "Achats")


def doc_json(client, actor, doc_id):
    r = client.get(f"/api/v1/documents/{doc_id}", headers=actor.headers)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def blob_of(doc_id):
    from ged.models import Blob, Document

    return Blob.get_by_id(Document.get_by_id(doc_id).blob_id)


def test_scanned_invoice_is_read_by_ocr_and_its_text_stored_once(
        client, world, deposit, run_jobs, redis_conn):
    scan = scanned_pdf(INVOICE_LINES, pages=2)
    doc = deposit(world.client_a, achats(world), "scan.pdf", scan)
    assert doc_json(client, world.client_a, doc.id)["text_status"] == "pending"
    run_jobs()
    data = doc_json(client, world.client_a, doc.id)
    assert data["text_status"] == "done"
    blob = blob_of(doc.id)
    assert blob.pages == 2
    for word in ("Boulangerie", "Martin", "prestations", "2026-0042"):
        assert word in blob.text
    assert "page 2" in blob.text  # every page is read, in order
    assert blob.text.index("prestations") < blob.text.index("page 2")

    # The same bytes deposited again (another company, another name) are not read again.
    again = deposit(world.admin, achats(world, world.company_b), "copie.pdf", scan)
    from ged import queue

    # At most the job that copies the known result onto the new document: extract_blob
    # returns at once for a blob already read.
    assert queue.queue("extract").count <= 1
    run_jobs()
    assert doc_json(client, world.admin, again.id)["text_status"] == "done"


def test_phone_photo_turned_by_exif_and_upside_down_page_are_read(
        client, world, deposit, run_jobs):
    photo = deposit(world.client_a, achats(world), "photo.jpg", phone_photo(INVOICE_LINES))
    # A two-page TIFF whose second page went through the scanner upside down.
    tiff = deposit(world.client_a, achats(world), "scan.tiff",
                   image_bytes(["Attestation URSSAF", "Cotisations du trimestre"], fmt="TIFF",
                               pages=2, rotate=0))
    upside = deposit(world.client_a, achats(world), "envers.png",
                     image_bytes(["Avis d'imposition", "Taxe foncière 2026"], rotate=180))
    run_jobs()
    assert "Boulangerie" in blob_of(photo.id).text
    tiff_blob = blob_of(tiff.id)
    assert tiff_blob.pages == 2 and "Suite 2" in tiff_blob.text and "URSSAF" in tiff_blob.text
    assert "imposition" in blob_of(upside.id).text
    assert doc_json(client, world.client_a, upside.id)["text_status"] == "done"


def test_text_layer_csv_xml_and_office_files_are_read_as_text(client, world, deposit, run_jobs):
    pdf = deposit(world.client_a, achats(world), "releve.pdf",
                  text_pdf("Relevé bancaire du compte courant, opérations de février"))
    csv = deposit(world.client_a, achats(world), "ecritures.csv",
                  "date;libellé;montant\n2026-02-01;Loyer février;850,00\n".encode("cp1252"))
    word = deposit(world.client_a, achats(world), "contrat.docx",
                   docx_bytes("Contrat de maintenance informatique"))
    legacy = deposit(world.client_a, achats(world), "ancien.doc", ole2_bytes("WordDocument"))
    run_jobs()
    assert "Relevé bancaire" in blob_of(pdf.id).text and blob_of(pdf.id).pages == 1
    assert "Loyer février" in blob_of(csv.id).text
    assert "maintenance informatique" in blob_of(word.id).text
    assert doc_json(client, world.client_a, legacy.id)["text_status"] == "unsupported"


def test_facturx_pdf_fields_shown_on_the_document_even_when_not_schema_valid(
        client, world, deposit, run_jobs):
    good = deposit(world.client_a, achats(world), "facture-edf.pdf", facturx_pdf())
    off = deposit(world.client_a, achats(world), "facture-abc.pdf",
                  facturx_pdf("Facture ABC-77", number="ABC-77", seller="ABC Fournitures",
                              siren="732829320", valid=False))
    run_jobs()
    fx = doc_json(client, world.client_a, good.id)["facturx"]
    assert fx == {"source": "facturx", "schema_valid": True, "number": "FA-2026-0117",
                  "issue_date": "2026-03-15", "due_date": None,
                  "seller_name": "Electricité Dupont SARL", "seller_siren": "552081317",
                  "seller_vat": "FR40552081317", "buyer_name": "Boulangerie Martin",
                  "total_without_tax": "1000.00", "tax_total": "200.00",
                  "total_with_tax": "1200.00", "currency": "EUR"}
    # The factur-x library's own reader skips an XML failing the XSD: ours keeps it.
    fx_off = doc_json(client, world.client_a, off.id)["facturx"]
    assert fx_off["number"] == "ABC-77" and fx_off["schema_valid"] is False
    assert "consommation électrique" in blob_of(good.id).text  # the text layer too


def test_bare_ubl_and_cii_invoices_are_read(client, world, deposit, run_jobs):
    ubl = deposit(world.client_a, achats(world), "facture-belge.xml", ubl_xml())
    cii = deposit(world.client_a, achats(world), "facture.xml",
                  cii_xml(number="CII-9", seller="Garage Lefèvre", siren="404833048"))
    run_jobs()
    fx = doc_json(client, world.client_a, ubl.id)["facturx"]
    assert fx["source"] == "ubl" and fx["schema_valid"] is True
    assert (fx["number"], fx["seller_name"], fx["seller_vat"]) == (
        "BE-2026-0555", "Brasserie Wallonne SPRL", "BE0477472701")
    assert (fx["issue_date"], fx["due_date"], fx["total_with_tax"], fx["tax_total"]) == (
        "2026-02-10", "2026-03-12", "242.00", "42.00")
    assert "bière blonde" in blob_of(ubl.id).text
    fx = doc_json(client, world.client_a, cii.id)["facturx"]
    assert (fx["source"], fx["number"], fx["seller_siren"]) == ("cii", "CII-9", "404833048")


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_same_seller_and_invoice_number_flagged_as_probable_duplicate(
        client, world, deposit, run_jobs):
    first = deposit(world.client_a, achats(world), "facture.pdf", facturx_pdf())
    run_jobs()
    # The same invoice again as a bare XML, a week later, by another channel.
    second = deposit(world.staff, achats(world), "facture.xml", cii_xml())
    elsewhere = deposit(world.admin, achats(world, world.company_b), "facture.xml", cii_xml())
    run_jobs()
    assert doc_json(client, world.staff, second.id)["duplicate_of"] == first.id
    assert doc_json(client, world.staff, first.id)["duplicate_of"] is None
    # Another company receiving the same invoice is not a duplicate.
    assert doc_json(client, world.admin, elsewhere.id)["duplicate_of"] is None
    # Clients do not see the flag.
    assert "duplicate_of" not in doc_json(client, world.client_a, second.id)
    from ged.models import AuditEvent

    assert AuditEvent.select().where(AuditEvent.action == "document.duplicate_flagged").count() == 1


def _store_raw(cfg, name, data, content_type):
    """A blob that reached the store without the deposit checks (an older version,
    an import): extraction must still fail cleanly on it."""
    import hashlib

    from ged import runtime
    from ged.models import Blob
    from ged.blobs import stage_bytes

    staged = stage_bytes(data, cfg.data_dir, 10 ** 9)
    runtime.store().put(staged.sha256, staged.path)
    staged.discard()
    Blob.create(sha256=hashlib.sha256(data).hexdigest(), size=len(data), content_type=content_type)
    return hashlib.sha256(data).hexdigest()


def _png_bomb() -> bytes:
    """A 1-bit PNG of 40,000 x 40,000 pixels: a few hundred kilobytes on disk."""
    import struct
    import zlib

    width = height = 40000
    row = b"\x00" + b"\x00" * (width // 8)
    raw = zlib.compress(row * height, 9)

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind", ["beyond repair", "bomb"])
def test_corrupt_and_bomb_files_fail_cleanly(app, cfg, kind):
    from ged import extraction
    from ged.models import Blob

    data, ctype = {
        "beyond repair": (pdfs.beyond_repair, "application/pdf"),
        "bomb": (_png_bomb, "image/png"),
    }[kind]
    sha = _store_raw(cfg, kind, data(), ctype)
    assert extraction.extract_blob(sha) == "failed"
    blob = Blob.get_by_id(sha)
    assert blob.text_status == "failed" and blob.text_error
    # Done once: running the job again does not read the file again.
    assert extraction.extract_blob(sha) == "failed"
    assert not list((cfg.data_dir / "tmp").glob("repaired-*")), "a repaired copy was left"


@pytest.mark.parametrize("label,build,pages_read,status", pdfs.READABLE,
                         ids=[case[0] for case in pdfs.READABLE])
def test_pdfs_common_viewers_open_are_read(app, cfg, label, build, pages_read, status):
    """Junk before the header, a broken or missing cross-reference table, no %%EOF, an
    incremental update, object streams, linearization, an empty user password (AES-256,
    RC4 40-bit), truncation (repaired by qpdf), a page that fails to load: the text of
    every readable page is kept."""
    from ged import extraction
    from ged.models import Blob

    data = build()
    sha = _store_raw(cfg, label, data, "application/pdf")
    assert extraction.extract_blob(sha) == status, Blob.get_by_id(sha).text_error
    blob = Blob.get_by_id(sha)
    for i in pages_read:
        assert pdfs.page_sentence(i) in blob.text, (label, i, blob.text)
    if status == "partial":
        assert "page 2: this page could not be read" in blob.text_error
    if label == "incremental update":
        assert "Page deux corrigee" in blob.text and pdfs.page_sentence(1) not in blob.text
    assert not list((cfg.data_dir / "tmp").glob("repaired-*")), "a repaired copy was left"


def test_a_pdf_that_needs_a_password_is_kept_as_encrypted(client, world, deposit, run_jobs):
    """Kept, not refused: the depositor is warned at once, the document shows
    « Protégé par mot de passe », and its preview explains itself in French."""
    from ged import previews

    r = client.post(f"/api/v1/folders/{achats(world).id}/documents",
                    headers=world.client_a.headers, content_type="multipart/form-data",
                    data={"file": [(io.BytesIO(pdfs.password_protected()), "releve.pdf"),
                                   (io.BytesIO(pdfs.aes256_empty_password()), "banque.pdf")]})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    locked, bank = body["items"]
    assert [(w["document_id"], w["code"]) for w in body["warnings"]] == [
        (locked["id"], "encrypted_pdf")]
    assert "password" in body["warnings"][0]["message"]
    run_jobs()
    assert doc_json(client, world.client_a, locked["id"])["text_status"] == "encrypted"
    assert doc_json(client, world.client_a, bank["id"])["text_status"] == "done"
    assert pdfs.page_sentence(1) in blob_of(bank["id"]).text

    from ged.models import Document

    png = previews.render(Document.get_by_id(locked["id"]), 1)
    assert png.startswith(b"\x89PNG")  # an image saying why, not an error
    for doc_id in (locked["id"], bank["id"]):
        assert previews.render(Document.get_by_id(doc_id), 1).startswith(b"\x89PNG")


def test_a_crashing_or_greedy_parser_fails_one_file_not_the_worker(app):
    from ged import extraction
    from ged.sandbox import Children

    with pytest.raises(extraction.ExtractionFailed, match="stopped"):
        with Children(1) as children:
            children.run(_crash, timeout=30)
    with pytest.raises(extraction.ExtractionFailed, match="memory"):
        with Children(1) as children:
            children.run(_allocate, 4 * 1024 ** 3, timeout=30)
    # This process is alive and can start children again.
    with Children(1) as children:
        assert children.run(_answer, timeout=30) == 42


def _crash():
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def _allocate(size):
    return len(bytearray(size))


def _answer():
    return 42
