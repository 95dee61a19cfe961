"""Filing: several documents moved, trashed and restored at once, each as if alone;
a move into a switched-on folder sends the document; ZIP downloads of what each
person may see; folders to the trash and back with their documents."""

from __future__ import annotations

import pytest

import io
import zipfile

from conftest import text_pdf

ANNUAL = "Dossier comptable annuel 2026"


def _upload(client, actor, folder, name, data):
    r = client.post(f"/api/v1/folders/{folder.id}/documents", headers=actor.headers,
                    data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    return r.get_json()["items"][0]


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_bulk_move_into_a_switched_on_folder_sends_each_document(
        client, world, linked, run_jobs, webhook_receiver):
    from ged import switches

    http_conn, _mail = linked
    root = world.folder(world.company_a)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    switches.set_switch(world.staff.user, achats, http_conn, "on")
    docs = [_upload(client, world.client_a, root, f"facture-{i}.pdf", text_pdf(f"Facture {i}"))
            for i in range(2)]
    other = _upload(client, world.client_b, world.folder(world.company_b), "b.pdf", text_pdf("B"))
    r = client.post("/api/v1/documents/bulk", headers=world.staff.headers,
                    json={"action": "move", "folder_id": achats.id,
                          "ids": [d["id"] for d in docs] + [other["id"]]})
    assert r.status_code == 200
    body = r.get_json()
    assert body["done"] == 2
    assert body["refused"] == [{"id": other["id"], "error": {"code": "not_found",
                                                            "message": "Document not found."}}]
    run_jobs()
    sent = {h.metadata["name"] for h in webhook_receiver.hits if h.file is not None}
    assert sent == {"facture-0.pdf", "facture-1.pdf"}
    # Moving them again within the switched-on folder sends nothing twice.
    run_jobs()
    assert len([h for h in webhook_receiver.hits if h.file is not None]) == 2
    # Clients may not move.
    r = client.post("/api/v1/documents/bulk", headers=world.client_a.headers,
                    json={"action": "trash", "ids": [docs[0]["id"]]})
    assert r.status_code == 403


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_bulk_trash_and_restore(client, world):
    root = world.folder(world.company_a)
    doc = _upload(client, world.staff, root, "releve.pdf", text_pdf("Relevé"))
    for action, trashed in (("trash", True), ("restore", False)):
        r = client.post("/api/v1/documents/bulk", headers=world.staff.headers,
                        json={"action": action, "ids": [doc["id"]]})
        assert r.get_json() == {"done": 1, "refused": []}
        got = client.get(f"/api/v1/documents/{doc['id']}", headers=world.staff.headers).get_json()
        assert (got["trashed_at"] is not None) is trashed
    r = client.post("/api/v1/documents/bulk", headers=world.staff.headers,
                    json={"action": "move", "ids": [doc["id"]]})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "folder_required"


def test_a_client_zips_only_what_it_sees(client, world):
    from ged import folders

    root = world.folder(world.company_a)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    hidden = folders.create_folder(world.staff.user, achats, "Notes internes", firm_only=True)
    a = _upload(client, world.client_a, achats, "facture.pdf", text_pdf("Facture"))
    b = _upload(client, world.client_a, achats, "facture.pdf", text_pdf("Autre facture"))
    secret = _upload(client, world.staff, hidden, "note.pdf", text_pdf("Note du cabinet"))
    r = client.post("/api/v1/documents/zip", headers=world.client_a.headers,
                    json={"ids": [a["id"], b["id"]]})
    assert r.status_code == 200 and r.mimetype == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(r.data)).namelist()
    assert sorted(names) == ["facture (2).pdf", "facture.pdf"]
    r = client.post("/api/v1/documents/zip", headers=world.client_a.headers,
                    json={"ids": [a["id"], secret["id"]]})
    assert r.status_code == 404
    r = client.get(f"/api/v1/folders/{root.id}/zip", headers=world.client_a.headers)
    archive = zipfile.ZipFile(io.BytesIO(r.data))
    files = [n for n in archive.namelist() if not n.endswith("/")]
    assert sorted(files) == [f"{ANNUAL}/Achats/facture (2).pdf", f"{ANNUAL}/Achats/facture.pdf"]
    assert not any("Notes internes" in n for n in archive.namelist())
    assert archive.read(f"{ANNUAL}/Achats/facture.pdf").startswith(b"%PDF")
    staff_zip = client.get(f"/api/v1/folders/{achats.id}/zip", headers=world.staff.headers)
    assert "Notes internes/note.pdf" in zipfile.ZipFile(io.BytesIO(staff_zip.data)).namelist()
    # Another company's folder is not found.
    r = client.get(f"/api/v1/folders/{world.folder(world.company_b).id}/zip",
                   headers=world.client_a.headers)
    assert r.status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_a_folder_goes_to_the_trash_with_its_documents_and_comes_back(client, world):
    banque = world.folder(world.company_a, ANNUAL, "Banque")
    releves = world.folder(world.company_a, ANNUAL, "Banque", "Relevés bancaires")
    doc = _upload(client, world.client_a, releves, "releve.pdf", text_pdf("Relevé"))
    r = client.delete(f"/api/v1/folders/{banque.id}", headers=world.staff.headers)
    assert r.status_code == 200
    assert client.get(f"/api/v1/documents/{doc['id']}",
                      headers=world.client_a.headers).status_code == 404
    assert client.get(f"/api/v1/folders/{releves.id}",
                      headers=world.staff.headers).status_code == 404
    # A subfolder of a trashed folder is not restored alone; the client may not restore.
    assert client.post(f"/api/v1/folders/{releves.id}/restore",
                       headers=world.staff.headers).status_code == 404
    assert client.post(f"/api/v1/folders/{banque.id}/restore",
                       headers=world.client_a.headers).status_code == 403
    r = client.post(f"/api/v1/folders/{banque.id}/restore", headers=world.staff.headers)
    assert r.status_code == 200 and r.get_json()["name"] == "Banque"
    got = client.get(f"/api/v1/documents/{doc['id']}", headers=world.client_a.headers)
    assert got.status_code == 200 and got.get_json()["retain_until"]
    # Retention still rules: a permanent deletion of a kept document is refused.
    r = client.delete(f"/api/v1/documents/{doc['id']}?permanent=true",
                      headers=world.admin.headers)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "under_retention"


def test_the_web_move_dialog_says_where_a_folder_sends(web, world, linked):
    from ged import switches

    http_conn, _ = linked
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    switches.set_switch(world.staff.user, achats, http_conn, "on")
    staff = web(world.staff)
    page = staff.get(f"/dossiers/{world.folder(world.company_a).id}").get_data(as_text=True)
    assert "Déplacer vers…" in page and "sera envoyé à Pré-compta" in page
    client = web(world.client_a)
    page = client.get(f"/dossiers/{world.folder(world.company_a).id}").get_data(as_text=True)
    assert "Télécharger (ZIP)" in page and "Déplacer vers" not in page
    assert "Pré-compta" not in page and "sera envoyé" not in page


def test_the_trash_page_restores_a_selection(client, web, world, other_world):
    import html

    root = world.folder(world.company_a)
    docs = [_upload(client, world.staff, root, f"piece-{i}.pdf", text_pdf(f"Pièce {i}"))
            for i in range(3)]
    r = client.post("/api/v1/documents/bulk", headers=world.staff.headers,
                    json={"action": "trash", "ids": [d["id"] for d in docs]})
    assert r.get_json()["done"] == 3
    foreign = _upload(client, other_world.staff, other_world.folder(other_world.company_a),
                      "autre.pdf", text_pdf("Autre cabinet"))
    client.delete(f"/api/v1/documents/{foreign['id']}", headers=other_world.staff.headers)
    staff = web(world.staff)
    url = f"/entreprises/{world.company_a.id}/corbeille"
    page = staff.get(url).get_data(as_text=True)
    assert "Restaurer la sélection" in page and 'aria-label="Sélectionner piece-0.pdf"' in page
    r = staff.post(f"{url}/restaurer", {"document_id": [docs[0]["id"], docs[2]["id"],
                                                         foreign["id"]]},
                   follow_redirects=True)
    text = html.unescape(r.get_data(as_text=True))
    assert "2 documents restaurés." in text
    assert "1 document non traité : Document introuvable" in text
    assert foreign["id"] not in text
    restored = {d["id"]: client.get(f"/api/v1/documents/{d['id']}",
                                    headers=world.staff.headers).get_json()["trashed_at"]
                for d in docs}
    assert restored[docs[0]["id"]] is None and restored[docs[2]["id"]] is None
    assert restored[docs[1]["id"]] is not None
    assert client.get(f"/api/v1/documents/{foreign['id']}", headers=other_world.staff.headers
                      ).get_json()["trashed_at"] is not None
    # Nothing chosen: said so; a client may not.
    r = staff.post(f"{url}/restaurer", {}, follow_redirects=True)
    assert "Sélectionnez au moins un document." in html.unescape(r.get_data(as_text=True))
    r = web(world.client_a).post(f"{url}/restaurer", {"document_id": docs[1]["id"]})
    assert r.status_code == 403
