"""The web interface in a real browser (Debian's Chromium through Playwright) against
a live server: what a client, a staff member and an admin do and see. Screenshots
of the main pages land in test-artifacts/screenshots/."""

from __future__ import annotations

import base64
import re

import pytest

from conftest import PASSWORD, png_bytes, text_pdf
from fixtures.web import FIRM_ONLY, documents_received

pytestmark = pytest.mark.browser

ANNUAL = "Dossier comptable annuel 2026"
def drop_files(page, selector: str, files: list[tuple[str, str, bytes]]) -> None:
    """Drag files onto an element: a real DataTransfer carried by a drop event."""
    payload = [{"name": n, "type": t, "b64": base64.b64encode(d).decode()} for n, t, d in files]
    transfer = page.evaluate_handle(
        """(files) => {
             const dt = new DataTransfer();
             for (const f of files) {
               const bytes = Uint8Array.from(atob(f.b64), c => c.charCodeAt(0));
               dt.items.add(new File([bytes], f.name, {type: f.type}));
             }
             return dt;
           }""", payload)
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def jpeg_bytes() -> bytes:
    """A photo, as a phone's camera would send it."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (120, 160), (240, 236, 228)).save(buf, "JPEG")
    return buf.getvalue()


def logo_png() -> bytes:
    """A small logo: the firm's initials on its colour, beside a white field."""
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (160, 48), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((2, 2, 46, 46), radius=8, fill=(122, 31, 92))
    draw.text((12, 17), "CD", fill=(255, 255, 255))
    draw.text((56, 17), "DURAND", fill=(122, 31, 92))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def switched_on(world, linked):
    """The firm's webhook connection switched on for Achats (by the domain, as staff)."""
    from ged import switches

    http_conn, _mail = linked
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    switches.set_switch(world.staff.user, achats, http_conn, "on")
    return achats


def test_client_drops_two_files_into_achats_and_sees_them_validated(
        people, world, switched_on, run_jobs, webhook_receiver):
    from playwright.sync_api import expect

    client = people(record=True)
    client.page.goto("/login")
    expect(client.page.locator(".firm-name")).to_have_text("Cabinet Un")
    client.shot("01-login")
    client.login(world.client_a.user.email, PASSWORD)
    page = client.page
    page.locator(".sidebar").get_by_role("link", name="Achats").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Achats")

    drop_files(page, "#upload-form", [
        ("facture-mars.pdf", "application/pdf", text_pdf("Facture fournisseur mars")),
        ("ticket-taxi.png", "image/png", png_bytes(60, 40)),
    ])
    progress = page.locator("#upload-progress")
    expect(progress.locator(".done")).to_have_count(2)
    rows = page.locator("#documents tbody tr")
    expect(rows).to_have_count(2)
    # The folder's switch queued a delivery for each: the truthful status until the
    # worker has sent them is « En cours de traitement » (never « Validé » yet).
    for name in ("facture-mars.pdf", "ticket-taxi.png"):
        expect(rows.filter(has_text=name).locator(".badge")).to_have_text(
            "En cours de traitement")

    # A file that is not what its name says is refused, with the reason, by the file input.
    page.set_input_files("#file-input", files=[{
        "name": "piege.pdf", "mimeType": "application/pdf",
        "buffer": b"<!DOCTYPE html><html><script>alert(1)</script></html>"}])
    expect(progress.get_by_role("alert")).to_contain_text("piege.pdf")
    expect(progress.get_by_role("alert")).to_contain_text("n'est pas accepté")
    expect(rows).to_have_count(2)
    client.shot("02-client-folder")

    # The firm's switch forwards both; the client then reads "Validé", nothing more.
    run_jobs(["deliveries"])
    assert sorted(h.filename for h in documents_received(webhook_receiver)) == [
        "facture-mars.pdf", "ticket-taxi.png"]
    page.reload()
    for name in ("facture-mars.pdf", "ticket-taxi.png"):
        expect(rows.filter(has_text=name).locator(".badge")).to_have_text("Validé")
    page.get_by_role("link", name="facture-mars.pdf").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("facture-mars.pdf")
    expect(page.locator(".doc-badges .badge")).to_have_text("Validé")

    # Nothing the client's browser received names the firm's tools or switches:
    # not the pages' source, not the scripts and styles, not the upload replies.
    assert len(client.replies) > 10
    for url, status, body in client.replies:
        found = FIRM_ONLY.search(body)
        assert found is None, (url, found.group(0), body[max(found.start() - 80, 0):found.end() + 80])
    assert not any("firm.js" in url for url, _s, _b in client.replies)

    # On a phone: the same page, the upload first, the camera offered.
    phone = people(viewport={"width": 390, "height": 844})
    phone.login(world.client_a.user.email, PASSWORD)
    phone.page.goto(f"/dossiers/{switched_on.id}")
    camera = phone.page.get_by_label("Photographier un justificatif")
    assert camera.get_attribute("capture") == "environment"
    assert camera.get_attribute("accept") == "image/*"
    camera.set_input_files(files=[{"name": "recu-restaurant.jpg", "mimeType": "image/jpeg",
                                   "buffer": jpeg_bytes()}])
    expect(phone.page.locator("#documents tbody tr", has_text="recu-restaurant.jpg")).to_have_count(1)
    box = phone.page.locator("#upload-form").bounding_box()
    assert box["width"] <= 390
    phone.shot("03-client-folder-phone")


def test_staff_turns_a_switch_on_with_the_keyboard_and_a_subfolder_inherits(
        people, world, linked, run_jobs, webhook_receiver, cfg):
    from playwright.sync_api import expect

    from ged import documents, folders
    from ged.blobs import stage_bytes

    http_conn, _mail = linked
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    mars = folders.create_folder(world.staff.user, achats, "Mars")
    avril = folders.create_folder(world.staff.user, achats, "Avril")
    for folder, name in ((achats, "ancienne.pdf"), (avril, "ancienne-avril.pdf")):
        documents.deposit(world.client_a.user, folder, [documents.Upload(
            name, stage_bytes(text_pdf(name), cfg.data_dir, 10**7))], "web")
    staff = people().login(world.staff.user.email, PASSWORD)
    page = staff.page
    page.goto(f"/dossiers/{achats.id}")
    switch = page.locator("form.switch", has_text="Pré-compta")
    expect(switch.locator(".switch-state")).to_have_text("Désactivé (par défaut)")

    # Keyboard only: from "Hériter" (checked), arrows move to "Activé"; Tab, Enter.
    switch.get_by_label("Hériter du dossier parent").focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(switch.get_by_label("Activé", exact=True)).to_be_checked()
    page.keyboard.press("Tab")
    expect(switch.get_by_role("button", name="Appliquer")).to_be_focused()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("« Achats » et 2 sous-dossiers")
    expect(dialog).to_contain_text("Les 2 documents déjà présents ne seront pas envoyés")
    # Escape cancels: nothing changes, the radios go back.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(switch.get_by_label("Hériter du dossier parent")).to_be_checked()

    switch.get_by_text("Activé", exact=True).click()
    switch.get_by_role("button", name="Appliquer").click()
    expect(dialog).to_contain_text("« Achats » et 2 sous-dossiers")
    # Never delivered yet: the dialog offers the connection test, which really runs.
    dialog.get_by_role("button", name="Tester la connexion").click()
    expect(dialog.locator(".test-result")).to_contain_text("test réussi")
    staff.shot("04-staff-switch-dialog", full_page=False)
    dialog.get_by_role("button", name="Confirmer").click()
    expect(page.locator(".flash-success")).to_contain_text("activé sur « Achats »")
    expect(switch.locator(".switch-state")).to_have_text("Activé")
    staff.shot("05-staff-folder-switches")

    page.locator(".sidebar").get_by_role("link", name="Mars").click()
    expect(page.locator("form.switch", has_text="Pré-compta").locator(".switch-state")).to_have_text(
        "Activé — hérité de Achats")

    # A deposit in Mars is forwarded; the tool refuses it; staff see why and resend.
    webhook_receiver.answer(422)
    [doc] = documents.deposit(world.client_a.user, mars, [documents.Upload(
        "facture-refusee.pdf", stage_bytes(text_pdf("Facture refusée"), cfg.data_dir, 10**7))],
        "web")
    run_jobs(["deliveries"])
    page.goto("/envois")
    first = page.locator("table.dashboard tbody tr").first
    expect(first).to_contain_text("facture-refusee.pdf")
    expect(first).to_contain_text("Échec")
    expect(first).to_contain_text("422")
    staff.shot("06-dashboard")
    page.get_by_role("link", name="facture-refusee.pdf").first.click()
    expect(page.locator("table.deliveries")).to_contain_text("Échec")
    # The first page of the PDF shows as an image rendered by the server, in any browser.
    page.wait_for_function("() => { const i = document.querySelector('img.preview-image');"
                           " return i && i.complete && i.naturalWidth >= 800; }")
    staff.shot("07-document-page")
    page.get_by_role("button", name="Renvoyer à Pré-compta").click()
    expect(page.locator(".flash-success")).to_contain_text("part vers « Pré-compta »")
    run_jobs(["deliveries"])
    page.reload()
    expect(page.locator("table.deliveries tbody tr").first).to_contain_text("Accepté")
    expect(page.locator(".doc-badges .status-validated")).to_have_text("Validé")
    assert doc.id in page.url


def test_admin_changes_the_brand_and_the_login_page_wears_it(people, world, linked):
    from playwright.sync_api import expect

    admin = people().login(world.admin.user.email, PASSWORD)
    page = admin.page
    page.get_by_role("link", name="Administration").click()
    expect(page.get_by_role("heading", name="Utilisateurs")).to_be_visible()
    admin.shot("08-admin-users")
    for link, name in (("Entreprises", "09-admin-companies"), ("Intégrations", "10-admin-integrations"),
                       ("Modèle de dossiers", "11-admin-template")):
        page.locator(".admin-nav").get_by_role("link", name=link).click()
        expect(page.locator(".admin-nav [aria-current=page]")).to_have_text(link)
        admin.shot(name)
    page.goto(f"/entreprises/{world.company_a.id}/connexions")
    expect(page.locator("table.connections")).to_contain_text("Pré-compta")
    admin.shot("12-connections")

    page.goto("/admin/marque")
    page.get_by_label("Nom du cabinet").fill("Cabinet Durand & Associés")
    page.get_by_label("Couleur principale").fill("#7a1f5c")
    page.get_by_label("Logo").set_input_files(files=[{
        "name": "logo.png", "mimeType": "image/png", "buffer": logo_png()}])
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.locator(".flash-success")).to_have_text("Identité visuelle enregistrée.")
    admin.shot("13-admin-branding")

    visitor = people()
    visitor.page.goto("/login")
    expect(visitor.page.locator(".firm-name")).to_have_text("Cabinet Durand & Associés")
    expect(visitor.page).to_have_title(re.compile("Cabinet Durand & Associés"))
    bar = visitor.page.locator(".topbar")
    expect(bar).to_have_css("background-color", "rgb(122, 31, 92)")
    expect(bar).to_have_css("color", "rgb(255, 255, 255)")
    logo = visitor.page.get_by_alt_text("Logo Cabinet Durand & Associés")
    expect(logo).to_be_visible()
    assert visitor.page.evaluate("(img) => img.naturalWidth", logo.element_handle()) == 160
    visitor.shot("14-login-branded")
