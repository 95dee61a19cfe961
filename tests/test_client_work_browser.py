"""The work with clients in a real browser (Debian's Chromium through Playwright):
the client's home with its open requests and their drop zones, the staff request
pages and bulk form, the comment thread, the notification settings; screenshots at
desktop and phone sizes in test-artifacts/screenshots/."""

from __future__ import annotations

import pytest

from conftest import PASSWORD, text_pdf
from fixtures.web import FIRM_ONLY

pytestmark = pytest.mark.browser

ANNUAL = "Dossier comptable annuel 2026"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def asked(world):
    """Two open requests to company A: one late, one due later, into Banque."""
    from ged import document_requests

    banque = world.folder(world.company_a, ANNUAL, "Banque")
    late = document_requests.create(world.staff.user, world.company_a,
                                    title="Relevés bancaires de décembre",
                                    description="Tous les comptes, au format PDF.",
                                    folder_id=banque.id, due_date="2026-01-15")
    later = document_requests.create(world.staff.user, world.company_a,
                                     title="Factures d'achat du trimestre", due_date="2099-04-30")
    return late, later, banque


def test_client_home_shows_its_requests_and_answers_one(people, world, asked):
    from playwright.sync_api import expect

    late, later, banque = asked
    client = people(record=True)
    client.login(world.client_a.user.email, PASSWORD)
    page = client.page
    cards = page.locator(".request-card")
    expect(cards).to_have_count(2)
    expect(cards.nth(0)).to_contain_text("Relevés bancaires de décembre")
    expect(cards.nth(0)).to_contain_text("En retard")
    expect(cards.nth(0)).to_contain_text("15/01/2026")
    expect(cards.nth(1)).to_contain_text("30/04/2099")
    client.shot("21-client-home-requests")
    # Its own drop zone: the file goes against the request, into Banque.
    page.locator(f"#file-{late.id}").set_input_files(
        files=[{"name": "releve-decembre.pdf", "mimeType": "application/pdf",
                "buffer": text_pdf("Relevé décembre")}])
    expect(page.locator(".request-card")).to_have_count(1)  # reloaded: fulfilled, gone
    expect(page.locator(".request-card")).to_contain_text("Factures d'achat du trimestre")
    page.goto(f"/demandes/{late.id}")
    expect(page.locator(".badge").first).to_have_text("Reçue")
    expect(page.locator("#answered")).to_contain_text("releve-decembre.pdf")
    client.shot("22-client-request-fulfilled")
    # The client's pages say nothing of the firm's tools.
    for url, _status, body in client.replies:
        if url.endswith((".css", ".js", ".png")):
            continue
        assert not FIRM_ONLY.search(body), url
    # On a phone: the requests first, the camera offered for each.
    phone = people(viewport=PHONE)
    phone.login(world.client_a.user.email, PASSWORD)
    expect(phone.page.locator(".request-card")).to_have_count(1)
    expect(phone.page.get_by_text("Photographier un justificatif").first).to_be_visible()
    assert phone.page.locator(f"#camera-{later.id}").get_attribute("capture") == "environment"
    phone.shot("23-client-home-requests-phone")


def test_staff_request_pages_remind_reopen_and_bulk(people, world, asked):
    from playwright.sync_api import expect

    late, later, _banque = asked
    staff = people()
    staff.login(world.staff.user.email, PASSWORD)
    page = staff.page
    page.goto("/demandes?statut=late")
    expect(page.locator("#requests tbody tr")).to_have_count(1)
    expect(page.locator("#requests")).to_contain_text("Relevés bancaires de décembre")
    page.goto("/demandes")
    expect(page.locator("#requests tbody tr")).to_have_count(2)
    staff.shot("24-staff-requests")
    page.goto(f"/demandes/{late.id}")
    page.get_by_role("button", name="Relancer").click()
    expect(page.locator(".flash-success")).to_contain_text("Relance envoyée")
    page.get_by_role("button", name="Annuler la demande").click()
    expect(page.locator(".badge").first).to_have_text("Annulée")
    page.get_by_label("Motif de réouverture (le client le lira)").fill("Il manque le compte épargne.")
    page.get_by_role("button", name="Rouvrir la demande").click()
    expect(page.locator(".flash-success")).to_contain_text("rouverte")
    staff.shot("25-staff-request-detail")
    page.goto(f"/entreprises/{world.company_a.id}/demandes")
    page.get_by_label("Intitulé").fill("Contrat de prêt")
    page.get_by_label("Échéance").fill("2099-06-30")
    page.get_by_role("button", name="Envoyer la demande").click()
    expect(page.locator("h1")).to_have_text("Contrat de prêt")
    # The bulk form (admin: every company).
    admin = people(viewport=PHONE)
    admin.login(world.admin.user.email, PASSWORD)
    admin.page.goto("/demandes/nouvelle")
    admin.page.get_by_label("Intitulé").fill("Relevés bancaires de janvier")
    admin.page.get_by_label("Chemin du dossier de dépôt dans chaque entreprise").fill(f"{ANNUAL}/Banque")
    admin.page.get_by_label(world.company_a.name).check()
    admin.page.get_by_label(world.company_b.name).check()
    admin.shot("26-admin-bulk-request-phone")
    admin.page.get_by_role("button", name="Envoyer les demandes").click()
    expect(admin.page.locator(".flash-success")).to_contain_text("2 demande(s)")


def test_comment_thread_and_notification_settings(people, world):
    from playwright.sync_api import expect

    from ged import documents, runtime
    from ged.blobs import stage_bytes

    cfg = runtime.config()
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    [doc] = documents.deposit(world.client_a.user, achats, [documents.Upload(
        "facture.pdf", stage_bytes(text_pdf("Facture"), cfg.data_dir, cfg.max_upload_bytes))],
        "web")
    staff = people()
    staff.login(world.staff.user.email, PASSWORD)
    staff.page.goto(f"/documents/{doc.id}")
    staff.page.get_by_label("Votre message").fill("Pouvez-vous déposer la page 2 ?")
    staff.page.get_by_role("button", name="Envoyer", exact=True).click()
    staff.page.get_by_label("Votre message").fill("Fournisseur à vérifier")
    staff.page.get_by_label("Note interne (jamais visible par le client)").check()
    staff.page.get_by_role("button", name="Envoyer", exact=True).click()
    expect(staff.page.locator(".comment")).to_have_count(2)
    expect(staff.page.locator(".comment.internal")).to_contain_text("Fournisseur à vérifier")
    staff.shot("27-staff-comment-thread")
    client = people(viewport=PHONE)
    client.login(world.client_a.user.email, PASSWORD)
    client.page.goto(f"/documents/{doc.id}")
    expect(client.page.locator(".comment")).to_have_count(1)
    expect(client.page.locator("#commentaires")).not_to_contain_text("Fournisseur à vérifier")
    client.page.get_by_label("Votre message").fill("Voici la page 2.")
    client.page.get_by_role("button", name="Envoyer", exact=True).click()
    expect(client.page.locator(".comment")).to_have_count(2)
    client.shot("28-client-comment-thread-phone")
    # Notification settings: the client has no delivery failures to choose.
    client.page.goto("/notifications")
    expect(client.page.get_by_text("Échecs d'envoi")).to_have_count(0)
    client.page.get_by_label("Immédiatement").check()
    client.page.get_by_label("Commentaires sur les documents").uncheck()
    client.page.get_by_role("button", name="Enregistrer").click()
    expect(client.page.locator(".flash-success")).to_contain_text("enregistrées")
    expect(client.page.get_by_label("Immédiatement")).to_be_checked()
    expect(client.page.get_by_label("Commentaires sur les documents")).not_to_be_checked()
    client.shot("29-client-notifications-phone")
    staff.page.goto("/notifications")
    expect(staff.page.get_by_text("Échecs d'envoi vers les outils du cabinet")).to_be_visible()
    staff.shot("30-staff-notifications")
