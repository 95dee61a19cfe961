"""The firm's pages for staff: folder switches, connections, the document page with
its deliveries, sending by hand, the delivery dashboard, the audit trail and the
trash. And what a client user sees of all that: nothing."""

from __future__ import annotations

import io
import re

from conftest import png_bytes, text_pdf
from fixtures.web import FIRM_ONLY, documents_received

def deposit(browser, folder, name, data):
    r = browser.post(f"/dossiers/{folder.id}/depot", {"file": (io.BytesIO(data), name)},
                     content_type="multipart/form-data", headers={"Accept": "application/json"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["items"][0]["id"]


def tool_says(client, delivery_id: str, secret: str, verdict: dict) -> None:
    """The linked tool posts its verdict, signed with the standardwebhooks package."""
    import datetime as dt
    import json
    import secrets as random

    from standardwebhooks.webhooks import Webhook

    body = json.dumps(verdict)
    now = dt.datetime.now(dt.timezone.utc)
    msg_id = "msg_" + random.token_hex(8)
    r = client.post(f"/api/v1/deliveries/{delivery_id}/status", data=body, headers={
        "Content-Type": "application/json", "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body)})
    assert r.status_code == 200, r.get_json()


def text_of(response) -> str:
    """The page's HTML with entities decoded and white space folded."""
    import html

    return html.unescape(re.sub(r"\s+", " ", response.get_data(as_text=True)))


def test_staff_turns_a_switch_on_after_confirming_and_subfolders_inherit(
        web, world, linked, run_jobs, webhook_receiver):
    from ged import folders

    http_conn, _mail = linked
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    mars = folders.create_folder(world.staff.user, achats, "Mars")
    folders.create_folder(world.staff.user, achats, "Avril")
    staff = web(world.staff)
    deposit(staff, achats, "avant.pdf", text_pdf("Avant la bascule"))

    page = text_of(staff.get(f"/dossiers/{achats.id}"))
    assert "Pré-compta" in page and "JeFacture" in page and "Désactivé (par défaut)" in page
    # Without scripts, the server asks for confirmation with the counts.
    r = staff.post(f"/dossiers/{achats.id}/interrupteurs/{http_conn.id}", {"state": "on"})
    confirm = text_of(r)
    assert r.status_code == 200
    assert "« Achats » et 2 sous-dossiers" in confirm
    assert "Le document déjà présent ne sera pas envoyé" in confirm
    assert "Tester la connexion" in confirm  # it never delivered yet
    from ged.models import Switch

    assert Switch.select().count() == 0  # nothing changed before confirming
    r = staff.post(f"/dossiers/{achats.id}/interrupteurs/{http_conn.id}",
                   {"state": "on", "confirm": "1"})
    assert r.status_code == 302
    assert "Activé" in text_of(staff.get(f"/dossiers/{achats.id}"))
    assert "Activé — hérité de Achats" in text_of(staff.get(f"/dossiers/{mars.id}"))

    # A deposit in the subfolder is forwarded; the one from before is not.
    doc_id = deposit(web(world.client_a), mars, "facture-mars.pdf", text_pdf("Facture de mars"))
    run_jobs(["deliveries"])
    [hit] = documents_received(webhook_receiver)
    assert hit.filename == "facture-mars.pdf" and hit.metadata["folder_path"].endswith("/Achats/Mars")
    page = text_of(staff.get(f"/documents/{doc_id}"))
    assert "Pré-compta" in page and "Accepté" in page and "Renvoyer à Pré-compta" in page
    assert "Envoyer à JeFacture" in page


def test_failed_and_rejected_deliveries_lead_the_dashboard_and_are_resent_in_one_click(
        web, world, linked, run_jobs, webhook_receiver, client):
    app_client = client
    http_conn, _mail = linked
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    staff = web(world.staff)
    good = deposit(staff, achats, "bonne.pdf", text_pdf("Bonne"))
    bad = deposit(staff, achats, "refusee.png", png_bytes())
    # Send by hand: the selection form of the folder page.
    r = staff.post(f"/dossiers/{achats.id}/envoi-manuel",
                   {"connection_id": http_conn.id, "scope": "selection", "document_id": [good]})
    assert r.status_code == 302
    run_jobs(["deliveries"])
    webhook_receiver.answer(400)
    staff.post(f"/documents/{bad}/envois", {"connection_id": http_conn.id})
    run_jobs(["deliveries"])

    # The tool later rejects the good one, with its reason, over the signed status route.
    from ged.models import Delivery

    accepted = Delivery.get((Delivery.document == good) & (Delivery.status == "accepted"))
    tool_says(app_client, accepted.id, webhook_receiver.secrets["pre-compta"],
              {"status": "rejected", "message": "Montant TTC illisible"})
    board = text_of(staff.get("/envois"))
    assert board.index("refusee.png") < board.index("bonne.pdf")  # failures first
    assert "Échec" in board and "400" in board
    assert "Rejeté par l'outil" in board and "Montant TTC illisible" in board
    assert "Montant TTC illisible" in text_of(staff.get(f"/documents/{good}"))

    failed = Delivery.get(Delivery.status == "failed")
    doc_page = text_of(staff.get(f"/documents/{bad}"))
    assert "Échec" in doc_page and "400" in doc_page
    r = staff.post(f"/envois/{failed.id}/renvoyer", {"next": "/envois"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/envois")
    run_jobs(["deliveries"])
    assert Delivery.select().where(Delivery.document == bad).count() == 2
    assert Delivery.select().where((Delivery.document == bad)
                                   & (Delivery.status == "accepted")).count() == 1
    assert "Validé" in text_of(web(world.client_a).get(f"/dossiers/{achats.id}"))
    # The whole folder by hand: what the tool already has is skipped unless asked.
    r = staff.post(f"/dossiers/{achats.id}/envoi-manuel",
                   {"connection_id": http_conn.id, "scope": "folder"}, follow_redirects=True)
    assert "2 documents ignorés" in text_of(r) and Delivery.select().count() == 3
    staff.post(f"/dossiers/{achats.id}/envoi-manuel",
               {"connection_id": http_conn.id, "scope": "folder", "resend": "1"})
    assert Delivery.select().count() == 5
    # A selection that names nothing is refused clearly.
    staff.post(f"/dossiers/{achats.id}/envoi-manuel",
               {"connection_id": http_conn.id, "scope": "selection"})
    assert "Sélectionnez au moins un document" in text_of(staff.get(f"/dossiers/{achats.id}"))


def test_admin_installs_a_tool_and_staff_add_test_pause_rotate_and_delete_its_connection(
        web, world, webhook_receiver):
    from ged.models import Connection, Integration

    admin = web(world.admin)
    page = text_of(admin.get("/admin/integrations"))
    for name in ("JeFacture.com", "agiris", "Sage", "Pennylane", "Dext", "Webhook"):
        assert name in page
    r = admin.post("/admin/integrations", {"preset": "webhook", "name": "Mon webhook"})
    assert r.status_code == 302
    assert Integration.get(Integration.name == "Mon webhook").kind == "http"
    r = admin.post("/admin/integrations", {"preset": "nope", "name": "X"})
    assert r.status_code == 400 and "catalogue" in text_of(r)

    staff = web(world.staff)
    page = staff.get(f"/entreprises/{world.company_a.id}/connexions")
    assert page.status_code == 200 and "Mon webhook" in text_of(page)
    integration_id = re.search(r'<option value="([^"]+)" data-kind="http"',
                               page.get_data(as_text=True)).group(1)
    r = staff.post(f"/entreprises/{world.company_a.id}/connexions",
                   {"integration_id": integration_id, "name": "Outil A", "url": "ftp://x",
                    "headers": ""})
    assert r.status_code == 400 and "https://" in text_of(r)
    r = staff.post(f"/entreprises/{world.company_a.id}/connexions",
                   {"integration_id": integration_id, "name": "Outil A", "url": webhook_receiver.hook(),
                    "headers": "X-Api-Key: abc"})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    secret = re.search(r'value="(whsec_[^"]+)"', r.get_data(as_text=True)).group(1)
    conn = Connection.get(Connection.name == "Outil A")
    assert conn.secret == secret and conn.options == {"headers": {"X-Api-Key": "abc"}}
    listing = staff.get(f"/entreprises/{world.company_a.id}/connexions").get_data(as_text=True)
    assert secret not in listing and "jamais" in listing

    r = staff.post(f"/connexions/{conn.id}/tester", headers={"Accept": "application/json"})
    assert r.get_json()["ok"] is True and "test réussi" in r.get_json()["message"]
    [probe] = webhook_receiver.hits
    assert probe.file is None and probe.metadata["type"] == "test"
    webhook_receiver.answer(503)
    r = staff.post(f"/connexions/{conn.id}/tester")
    assert r.status_code == 302
    assert "échec du test" in text_of(staff.get(r.headers["Location"]))

    staff.post(f"/connexions/{conn.id}/pause", {"paused": "1"})
    assert Connection.get_by_id(conn.id).paused
    assert "Suspendue" in text_of(staff.get(f"/entreprises/{world.company_a.id}/connexions"))
    staff.post(f"/connexions/{conn.id}/pause", {"paused": "0"})
    assert not Connection.get_by_id(conn.id).paused

    r = staff.post(f"/connexions/{conn.id}/secret")
    new_secret = re.search(r'value="(whsec_[^"]+)"', r.get_data(as_text=True)).group(1)
    assert new_secret != secret and Connection.get_by_id(conn.id).previous_secret == secret

    assert "Supprimer la connexion" in text_of(staff.get(f"/connexions/{conn.id}/supprimer"))
    staff.post(f"/connexions/{conn.id}/supprimer")
    assert Connection.get_by_id(conn.id).deleted_at is not None
    # Staff of another company, or another firm's admin, reach none of it.
    assert staff.get(f"/entreprises/{world.company_b.id}/connexions").status_code == 404


def test_trash_restore_audit_and_the_document_page(web, world):
    from ged.models import Document

    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    client = web(world.client_a)
    doc_id = deposit(client, achats, "ticket.png", png_bytes())
    page = text_of(client.get(f"/documents/{doc_id}"))
    assert "ticket.png" in page and "Télécharger" in page and "Mettre à la corbeille" in page
    assert "SHA-256" not in page  # firm-only detail
    client.post(f"/documents/{doc_id}/corbeille")
    assert Document.get_by_id(doc_id).trashed_at is not None
    page = text_of(client.get(f"/dossiers/{achats.id}"))
    assert "« ticket.png » est dans la corbeille" in page and doc_id not in page
    assert client.get(f"/documents/{doc_id}").status_code == 404

    staff = web(world.staff)
    trash = text_of(staff.get(f"/entreprises/{world.company_a.id}/corbeille"))
    assert "ticket.png" in trash and "Client A" in trash
    staff.post(f"/documents/{doc_id}/restaurer")
    assert Document.get_by_id(doc_id).trashed_at is None
    assert "La corbeille est vide" in text_of(staff.get(f"/entreprises/{world.company_a.id}/corbeille"))
    journal = text_of(staff.get(f"/entreprises/{world.company_a.id}/journal"))
    for label in ("Document déposé", "Document mis à la corbeille", "Document restauré"):
        assert label in journal
    assert journal.index("Document restauré") < journal.index("Document déposé")  # newest first
    # An electronic invoice shows its structured fields (read by the extractor).
    from ged.models import Blob

    Blob.update(facturx={"source": "facturx", "schema_valid": True, "number": "F-2026-042",
                         "issue_date": "2026-03-14", "due_date": None,
                         "seller_name": "Dupont SARL", "seller_siren": "732829320",
                         "seller_vat": None, "buyer_name": "A", "total_without_tax": "100.00",
                         "tax_total": "20.00", "total_with_tax": "120.00",
                         "currency": "EUR"}).where(
        Blob.sha256 == Document.get_by_id(doc_id).blob_id).execute()
    Document.update(text_status="done").where(Document.id == doc_id).execute()  # read
    page = text_of(client.get(f"/documents/{doc_id}"))
    assert "Facture électronique (Factur-X)" in page and "F-2026-042" in page
    assert "Dupont SARL (SIREN 732829320)" in page and "120,00 €" in page  # Babel, fr_FR
    # Staff see the same bytes twice as a duplicate.
    dup = deposit(staff, achats, "encore.png", png_bytes())
    page = text_of(staff.get(f"/documents/{dup}"))
    assert "Doublon" in page and "ticket.png" in page


def test_a_client_sees_no_trace_of_integrations(web, world, linked, run_jobs):
    http_conn, _ = linked
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    staff = web(world.staff)
    staff.post(f"/dossiers/{achats.id}/interrupteurs/{http_conn.id}",
               {"state": "on", "confirm": "1"})
    client = web(world.client_a)
    doc_id = deposit(client, achats, "facture.pdf", text_pdf("Facture client"))
    run_jobs(["deliveries"])
    for url in ("/", f"/dossiers/{achats.id}", f"/documents/{doc_id}"):
        r = client.get(url, follow_redirects=True)
        assert r.status_code == 200
        body = r.get_data()
        assert not FIRM_ONLY.search(body), (url, FIRM_ONLY.search(body).group(0))
        assert b"firm.js" not in body
    assert "Validé" in text_of(client.get(f"/dossiers/{achats.id}"))
    # Every firm page and action is closed to them, naming nothing.
    for method, url in (("get", "/envois"), ("get", f"/entreprises/{world.company_a.id}/journal"),
                        ("get", f"/entreprises/{world.company_a.id}/corbeille"),
                        ("get", f"/entreprises/{world.company_a.id}/connexions"),
                        ("post", f"/dossiers/{achats.id}/interrupteurs/{http_conn.id}"),
                        ("post", f"/documents/{doc_id}/envois"),
                        ("post", f"/connexions/{http_conn.id}/tester"),
                        ("post", f"/dossiers/{achats.id}/envoi-manuel")):
        r = getattr(client, method)(url)
        assert r.status_code in (403, 404), url
        assert not FIRM_ONLY.search(r.get_data()), url


def test_the_document_page_shows_each_page_of_a_pdf_and_a_tiff_as_images(web, world, run_jobs):
    """Every browser sees the pages, PDF viewer or not: pages are rendered to PNG on the
    server (in a child process), for who may see the document and no one else."""
    from PIL import Image

    from fixtures.documents import page_image

    scans = [page_image([f"Facture scannée page {n}", "Total 12,00 EUR"], dpi=100)
             for n in (1, 2, 3)]
    tiff = io.BytesIO()
    scans[0].save(tiff, "TIFF", save_all=True, append_images=scans[1:], compression="tiff_deflate")

    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    client = web(world.client_a)
    pdf_id = deposit(client, achats, "releve.pdf", text_pdf("Relevé de compte", pages=2))
    tif_id = deposit(client, achats, "scan.tif", tiff.getvalue())
    run_jobs()  # extraction counts the pages
    for doc_id, pages in ((pdf_id, 2), (tif_id, 3)):
        page = client.get(f"/documents/{doc_id}").get_data(as_text=True)
        shown = re.findall(rf'src="/documents/{doc_id}/apercu/(\d+)\.png"', page)
        assert shown == [str(n) for n in range(1, pages + 1)], shown
        assert "<iframe" not in page
        first = client.get(f"/documents/{doc_id}/apercu/1.png")
        assert first.status_code == 200 and first.mimetype == "image/png"
        assert first.headers["Content-Security-Policy"] == "default-src 'none'"
        image = Image.open(io.BytesIO(first.get_data())).convert("L")
        assert 800 <= image.width <= 1000 and image.height > image.width  # a portrait page
        assert min(image.getdata()) < 80  # the text is drawn, not a blank page
        assert client.get(f"/documents/{doc_id}/apercu/{pages + 1}.png").status_code == 404
    # A PNG has no page images: the image itself is the preview.
    png_id = deposit(client, achats, "photo.png", png_bytes())
    assert "/apercu/1.png" not in client.get(f"/documents/{png_id}").get_data(as_text=True)
    assert client.get(f"/documents/{png_id}/apercu/1.png").status_code == 404
    # Another company's client and an anonymous visitor get nothing.
    other = web(world.client_b)
    assert other.get(f"/documents/{pdf_id}/apercu/1.png").status_code == 404
    assert web().get(f"/documents/{pdf_id}/apercu/1.png").status_code in (302, 401)
