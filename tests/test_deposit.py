"""Folders and the one deposit path: API, web, and bad input."""

from __future__ import annotations

import io
import re

import pytest

from conftest import text_pdf, png_bytes


def upload(client, folder_id, files, headers):
    data = {"file": [(io.BytesIO(content), name) for name, content in files]}
    return client.post(f"/api/v1/folders/{folder_id}/documents", data=data, headers=headers,
                       content_type="multipart/form-data")


def test_client_deposits_by_api_and_downloads_byte_identical(client, world, other_world):
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    pdf = text_pdf("Facture 2026-001")
    r = upload(client, achats.id, [("facture.pdf", pdf), ("photo.png", png_bytes())],
               world.client_a.headers)
    assert r.status_code == 201, r.get_json()
    items = r.get_json()["items"]
    assert [d["name"] for d in items] == ["facture.pdf", "photo.png"]
    doc = items[0]
    assert doc["channel"] == "api" and doc["status"] == "deposited"
    assert doc["content_type"] == "application/pdf"
    assert "duplicate_of" not in doc  # firm-only field
    # The client and assigned staff download the same bytes, as an attachment.
    for actor in (world.client_a, world.staff):
        r = client.get(f"/api/v1/documents/{doc['id']}/file", headers=actor.headers)
        assert r.status_code == 200 and r.data == pdf
        assert r.headers["Content-Disposition"].startswith("attachment")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    # Another company's client, staff not assigned, another firm: 404.
    from ged.models import StaffAssignment

    for actor in (world.client_b, other_world.admin, other_world.staff):
        assert client.get(f"/api/v1/documents/{doc['id']}/file",
                          headers=actor.headers).status_code == 404
    StaffAssignment.delete().execute()
    assert client.get(f"/api/v1/documents/{doc['id']}", headers=world.staff.headers).status_code == 404
    folder = client.get(f"/api/v1/folders/{achats.id}", headers=world.client_a.headers).get_json()
    assert [d["name"] for d in folder["documents"]] == ["photo.png", "facture.pdf"]
    assert "switches" not in folder


def test_same_bytes_stored_once_and_flagged_duplicate(client, world, cfg):
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    pdf = text_pdf("Same bytes")
    first = upload(client, achats.id, [("a.pdf", pdf)], world.client_a.headers).get_json()["items"][0]
    second = upload(client, achats.id, [("b.pdf", pdf)], world.staff.headers).get_json()["items"][0]
    assert second["duplicate_of"] == first["id"]
    blobs = [p for p in (cfg.data_dir / "blobs").rglob("*") if p.is_file() and len(p.name) == 64]
    assert len(blobs) == 1


BAD = [
    ("empty.pdf", b"", 400, "empty_file"),
    ("evil.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 200, 415, None),
    ("page.pdf", b"<!DOCTYPE html><html><script>alert(1)</script></html>", 415, "unsupported_type"),
    ("../../etc/passwd.pdf", text_pdf(), 400, "invalid_name"),
    ("bad\x07name.pdf", text_pdf(), 400, "invalid_name"),
    ("x" * 300 + ".pdf", text_pdf(), 400, "invalid_name"),
    ("rtl\u202egpj.pdf", text_pdf(), 400, "invalid_name"),
    ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", 400, "corrupt_file"),
]


@pytest.mark.parametrize("name,content,status,code", BAD, ids=[b[0][:20] for b in BAD])
def test_bad_input_leaves_nothing(client, world, cfg, name, content, status, code):
    from ged.models import Blob, Document

    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    r = upload(client, achats.id, [(name, content)], world.client_a.headers)
    assert r.status_code == status, r.get_json()
    if code:
        assert r.get_json()["error"]["code"] == code
    assert Document.select().count() == 0 and Blob.select().count() == 0
    assert not [p for p in (cfg.data_dir / "blobs").rglob("*") if p.is_file()]
    assert not list((cfg.data_dir / "tmp").iterdir())


def test_decompression_bomb_png_refused(client, world, cfg):
    import zlib
    import struct

    # A valid PNG header claiming 60,000 x 60,000 pixels.
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    r = upload(client, achats.id, [("bomb.png", bomb)], world.client_a.headers)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "image_too_large"


def test_oversize_file_refused(client, world, cfg):
    from ged.models import Document

    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    big = b"a" * (cfg.max_upload_bytes + 10)
    r = upload(client, achats.id, [("big.txt", big)], world.client_a.headers)
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "file_too_large"
    assert Document.select().count() == 0


def test_one_bad_file_refuses_the_whole_deposit(client, world):
    from ged.models import Document

    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    r = upload(client, achats.id, [("ok.pdf", text_pdf()), ("empty.txt", b"")],
               world.client_a.headers)
    assert r.status_code == 400
    assert Document.select().count() == 0


def test_folder_of_another_company_is_404(client, world, other_world):
    theirs = other_world.folder(other_world.company_a, "Dossier comptable annuel 2026", "Achats")
    r = upload(client, theirs.id, [("a.pdf", text_pdf())], world.admin.headers)
    assert r.status_code == 404
    b_folder = world.folder(world.company_b, "Dossier comptable annuel 2026", "Achats")
    assert upload(client, b_folder.id, [("a.pdf", text_pdf())],
                  world.client_a.headers).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_folder_tree_moves_and_subtree(client, world):
    from ged import folders
    from ged.models import Folder

    h = world.staff.headers
    annual = world.folder(world.company_a, "Dossier comptable annuel 2026")
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    mk = lambda parent, name: client.post("/api/v1/folders", json={"parent_id": parent, "name": name},
                                          headers=h).get_json()
    y = mk(achats.id, "2026")
    mars = mk(y["id"], "Mars")
    assert mars["path"] == "/Dossier comptable annuel 2026/Achats/2026/Mars"
    ventes = world.folder(world.company_a, "Dossier comptable annuel 2026", "Ventes")
    # A folder cannot go under its own child.
    r = client.patch(f"/api/v1/folders/{achats.id}", json={"parent_id": mars["id"]}, headers=h)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "move_into_itself"
    # Nor to another company.
    other = world.folder(world.company_b, "Dossier comptable annuel 2026")
    assert client.patch(f"/api/v1/folders/{y['id']}", json={"parent_id": other.id},
                        headers=h).status_code == 404
    # Move 2026 (with Mars) under Ventes: the subtree follows in one statement.
    r = client.patch(f"/api/v1/folders/{y['id']}", json={"parent_id": ventes.id}, headers=h)
    assert r.status_code == 200
    got = client.get(f"/api/v1/folders/{mars['id']}", headers=h).get_json()
    assert got["path"] == "/Dossier comptable annuel 2026/Ventes/2026/Mars"
    sub = {f.name for f in folders.subtree(Folder.get_by_id(ventes.id))}
    assert sub == {"Ventes", "2026", "Mars"}
    assert {f.name for f in folders.subtree(Folder.get_by_id(annual.id))} >= {"Achats", "Ventes", "Mars"}
    m = Folder.get_by_id(mars["id"])
    assert m.depth == 4 and m.path.startswith(Folder.get_by_id(ventes.id).path)
    # Rename to a sibling's name is a conflict.
    r = client.patch(f"/api/v1/folders/{achats.id}", json={"name": "Ventes"}, headers=h)
    assert r.status_code == 409


def test_firm_only_folder_hidden_from_clients(client, world):
    root = world.folder(world.company_a)
    r = client.post("/api/v1/folders", json={"parent_id": root.id, "name": "Travaux cabinet",
                                             "firm_only": True}, headers=world.staff.headers)
    assert r.status_code == 201
    fid = r.get_json()["id"]
    assert client.get(f"/api/v1/folders/{fid}", headers=world.client_a.headers).status_code == 404
    listing = client.get(f"/api/v1/folders/{root.id}", headers=world.client_a.headers).get_json()
    assert "Travaux cabinet" not in {c["name"] for c in listing["children"]}
    assert upload(client, fid, [("a.pdf", text_pdf())], world.client_a.headers).status_code == 404


def test_web_upload_form(app, world):
    from conftest import PASSWORD

    c = app.test_client()
    app.config["WTF_CSRF_ENABLED"] = True
    page = c.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    c.post("/login", data={"email": "client-a@un.example", "password": PASSWORD, "csrf_token": token})
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    page = c.get(f"/dossiers/{achats.id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = c.post(f"/dossiers/{achats.id}/depot", data={"csrf_token": token,
                                                      "file": (io.BytesIO(text_pdf()), "ticket.pdf")},
               content_type="multipart/form-data", headers={"Accept": "application/json"})
    assert r.status_code == 201
    page = c.get(f"/dossiers/{achats.id}").get_data(as_text=True)
    assert "ticket.pdf" in page and "Déposé" in page
    from ged.models import Document

    assert Document.get().channel == "web"
