"""Keeping the archive and handing it back: export, retention and legal hold, trash
and purge, erasing a user, backup and restore, and integrity checks."""

from __future__ import annotations

import os

import csv
import hashlib
import io
import json
import socket
import sqlite3
import subprocess
import threading
import zipfile

import httpx
import pytest

from conftest import png_bytes, text_pdf

ANNUAL = "Dossier comptable annuel 2026"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(client, folder_id, files, headers):
    data = {"file": [(io.BytesIO(content), name) for name, content in files]}
    r = client.post(f"/api/v1/folders/{folder_id}/documents", data=data, headers=headers,
                    content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    return r.get_json()["items"]


def new_folder(client, parent_id, name, headers, **extra):
    r = client.post("/api/v1/folders", json={"parent_id": parent_id, "name": name, **extra},
                    headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


# --- export ------------------------------------------------------------------------------------


def test_export_of_a_nested_tree(client, world, other_world, tmp_path, web, ged_cli):
    """Staff exports company A: unzip -t passes, every file matches its manifest
    entry's SHA-256, the ZIP's tree is the folder tree, clashing names are made
    unique, trashed things are left out; clients cannot export."""
    staff = world.staff.headers
    root = world.folder(world.company_a)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    fournisseurs = new_folder(client, achats.id, "Fournisseurs", staff)
    edf = new_folder(client, fournisseurs, "EDF", staff)
    new_folder(client, achats.id, "Vide", staff)
    interne = new_folder(client, root.id, "Travail interne", staff, firm_only=True)
    jetee = new_folder(client, root.id, "Brouillons", staff)

    files = {}
    for folder_id, name, data in [
        (achats.id, "facture.pdf", text_pdf("Facture A")),
        (achats.id, "facture.pdf", text_pdf("Facture B")),
        (achats.id, "FACTURE.pdf", text_pdf("Facture C")),
        (achats.id, "Fournisseurs.txt", b"liste\n"),
        (edf, "edf-janvier.pdf", text_pdf("EDF janvier")),
        (interne, "notes.txt", b"notes internes\n"),
        (root.id, "manifest.json", b'{"not": "the manifest"}'),
        (jetee, "brouillon.txt", b"jete\n"),
    ]:
        doc = upload(client, folder_id, [(name, data)], staff)[0]
        files[doc["id"]] = data
    trashed = upload(client, achats.id, [("erreur.png", png_bytes())], staff)[0]
    assert client.delete(f"/api/v1/documents/{trashed['id']}", headers=staff).status_code == 200
    assert client.delete(f"/api/v1/folders/{jetee}", headers=staff).status_code == 200

    r = client.get(f"/api/v1/companies/{world.company_a.id}/export", headers=staff)
    assert r.status_code == 200 and r.mimetype == "application/zip"
    assert int(r.headers["Content-Length"]) == len(r.data)
    assert r.headers["Content-Disposition"].startswith("attachment")
    archive = tmp_path / "export.zip"
    archive.write_bytes(r.data)
    tested = subprocess.run(["unzip", "-t", str(archive)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout

    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        entries = {e["document_id"]: e for e in manifest["documents"]}
        assert set(entries) == set(files) - {d for d, b in files.items() if b == b"jete\n"}
        for doc_id, entry in entries.items():
            data = zf.read(entry["path"])
            assert sha(data) == entry["sha256"] == sha(files[doc_id])
            assert entry["size"] == len(data)
            assert entry["channel"] == "api" and entry["retain_until"] == "2036-12-31"
        paths = sorted(e["path"] for e in entries.values())
        base = f"{ANNUAL}/Achats/"
        assert paths == sorted([
            base + "facture.pdf", base + "facture (2).pdf", base + "FACTURE (3).pdf",
            base + "Fournisseurs.txt",
            base + "Fournisseurs/EDF/edf-janvier.pdf", "Travail interne/notes.txt",
            "manifest (2).json"])
        dirs = {n.rstrip("/") for n in zf.namelist() if n.endswith("/")}
        assert dirs == {ANNUAL, f"{ANNUAL}/Achats", f"{ANNUAL}/Achats/Fournisseurs",
                        f"{ANNUAL}/Achats/Fournisseurs/EDF", f"{ANNUAL}/Achats/Vide",
                        f"{ANNUAL}/Ventes", f"{ANNUAL}/Banque", f"{ANNUAL}/Banque/Relevés bancaires",
                        f"{ANNUAL}/Notes de frais", f"{ANNUAL}/Social", f"{ANNUAL}/Fiscal",
                        f"{ANNUAL}/Juridique", f"{ANNUAL}/Divers", "Travail interne"}
        rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8-sig")),
                                   delimiter=";"))
        assert sorted(r["path"] for r in rows) == paths
        trail = [json.loads(line) for line in zf.read("audit.jsonl").splitlines()]
        actions = {e["action"] for e in trail}
        assert {"company.created", "document.deposited", "document.trashed",
                "company.exported"} <= actions

    # `ged export` writes the same archive to a file.
    out = tmp_path / "cli.zip"
    result = ged_cli("export", "--company", world.company_a.id, out)
    assert result.returncode == 0, result.stderr
    assert "7 document(s)" in result.stdout
    with zipfile.ZipFile(out) as zf:
        assert sorted(e["path"] for e in json.loads(zf.read("manifest.json"))["documents"]) == paths
        assert zf.testzip() is None

    # One folder and below: the folder is the top of the archive.
    r = client.get(f"/api/v1/companies/{world.company_a.id}/export?folder_id={achats.id}",
                   headers=staff)
    with zipfile.ZipFile(io.BytesIO(r.data)) as zf:
        names = [e["path"] for e in json.loads(zf.read("manifest.json"))["documents"]]
        assert sorted(names)[0] == "Achats/FACTURE (3).pdf" and len(names) == 5

    # Clients may not export (403 for their own company, 404 for another); neither may
    # another firm, nor a folder of another company.
    assert client.get(f"/api/v1/companies/{world.company_a.id}/export",
                      headers=world.client_a.headers).status_code == 403
    for actor in (world.client_b, other_world.admin):
        assert client.get(f"/api/v1/companies/{world.company_a.id}/export",
                          headers=actor.headers).status_code == 404
    other = world.folder(world.company_b)
    assert client.get(f"/api/v1/companies/{world.company_a.id}/export?folder_id={other.id}",
                      headers=world.admin.headers).status_code == 404

    # The web page's "Exporter le dossier" gives the same archive to staff only.
    staff_page = web(world.staff)
    html = staff_page.get(f"/dossiers/{achats.id}").get_data(as_text=True)
    assert "Exporter le dossier" in html
    r = staff_page.client.get(f"/entreprises/{world.company_a.id}/export?folder_id={achats.id}")
    assert r.status_code == 200 and zipfile.ZipFile(io.BytesIO(r.data)).testzip() is None
    client_page = web(world.client_a)
    assert "Exporter le dossier" not in client_page.get(f"/dossiers/{achats.id}").get_data(
        as_text=True)
    assert client_page.client.get(f"/entreprises/{world.company_a.id}/export").status_code == 403


# --- retention, legal hold, trash and purge ------------------------------------------------------


def test_permanent_deletion_is_refused_under_retention_or_hold(client, world):
    from ged.models import Document

    admin = world.admin.headers
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    pdf = text_pdf("Facture à garder")
    doc = upload(client, achats.id, [("garder.pdf", pdf)], world.client_a.headers)[0]
    url = f"/api/v1/documents/{doc['id']}"

    def refused():
        r = client.delete(url + "?permanent=true", headers=admin)
        assert r.status_code == 409 and r.get_json()["error"]["code"] == "under_retention"
        got = client.get(url + "/file", headers=world.client_a.headers)
        assert got.status_code == 200 and got.data == pdf

    refused()  # kept until 2036-12-31
    Document.update(retain_until="2020-12-31").where(Document.id == doc["id"]).execute()
    r = client.put(url + "/hold", json={"legal_hold": True, "reason": "Contrôle fiscal"},
                   headers=admin)
    assert r.status_code == 200 and r.get_json()["legal_hold"] is True
    refused()
    client.put(url + "/hold", json={"legal_hold": False}, headers=admin)

    hold = f"/api/v1/companies/{world.company_a.id}/hold"
    assert client.put(hold, json={"legal_hold": True, "reason": "Litige"},
                      headers=world.staff.headers).status_code == 403
    r = client.put(hold, json={"legal_hold": True}, headers=admin)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "reason_required"
    r = client.put(hold, json={"legal_hold": True, "reason": "Litige prud'homal"}, headers=admin)
    assert r.status_code == 200 and r.get_json()["legal_hold_reason"] == "Litige prud'homal"
    refused()
    client.put(hold, json={"legal_hold": False}, headers=admin)
    assert client.delete(url + "?permanent=true", headers=world.staff.headers).status_code == 403
    assert client.delete(url + "?permanent=true", headers=admin).status_code == 204
    assert client.get(url + "/file", headers=admin).status_code == 404


def test_trash_listing_and_purge_dry_run_then_real(client, world, cfg, ged_cli):
    from ged import archive, audit
    from ged.models import AuditEvent, Blob, Document

    staff, admin = world.staff.headers, world.admin.headers
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    ventes = world.folder(world.company_a, ANNUAL, "Ventes")
    shared = text_pdf("Mêmes octets")
    keep_live = upload(client, ventes.id, [("copie.pdf", shared)], staff)[0]
    old_shared = upload(client, achats.id, [("ancienne.pdf", shared)], staff)[0]
    old_unique = upload(client, achats.id, [("unique.pdf", text_pdf("Unique"))], staff)[0]
    recent = upload(client, achats.id, [("recente.pdf", text_pdf("Récente"))], staff)[0]
    held = upload(client, achats.id, [("tenue.pdf", text_pdf("Tenue"))], staff)[0]
    for doc in (old_shared, old_unique, recent, held):
        assert client.delete(f"/api/v1/documents/{doc['id']}", headers=staff).status_code == 200
    Document.update(retain_until="2015-12-31").where(
        Document.id.in_([old_shared["id"], old_unique["id"], held["id"], keep_live["id"]])).execute()
    client.put(f"/api/v1/documents/{held['id']}/hold", json={"legal_hold": True, "reason": "Litige"},
               headers=admin)

    listed = client.get(f"/api/v1/companies/{world.company_a.id}/trash?limit=2", headers=staff)
    assert listed.status_code == 200 and len(listed.get_json()["items"]) == 2
    more = client.get(f"/api/v1/companies/{world.company_a.id}/trash?limit=2&cursor="
                      + listed.get_json()["next_cursor"], headers=staff).get_json()["items"]
    assert len(listed.get_json()["items"] + more) == 4
    assert client.get(f"/api/v1/companies/{world.company_a.id}/trash",
                      headers=world.client_a.headers).status_code == 403

    dry = ged_cli("purge", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "2 document(s) would be removed" in dry.stdout
    assert Document.select().count() == 5
    assert {d["name"] for d in archive.purge(dry_run=True)["documents"]} == {"ancienne.pdf",
                                                                              "unique.pdf"}
    # These documents were deposited years ago: so were their files (a file touched in
    # the last minutes may be named by a deposit in flight, and purge leaves it to fsck).
    for path in (cfg.data_dir / "blobs").rglob("*"):
        if path.is_file():
            os.utime(path, (path.stat().st_atime - 86400, path.stat().st_mtime - 86400))
    real = ged_cli("purge")
    assert real.returncode == 0 and "2 document(s) removed, 1 blob(s) freed" in real.stdout
    assert {d.name for d in Document.select()} == {"copie.pdf", "recente.pdf", "tenue.pdf"}
    assert Blob.get_or_none(Blob.sha256 == sha(shared)) is not None  # still named by copie.pdf
    blob_files = {p.name for p in (cfg.data_dir / "blobs").rglob("*") if len(p.name) == 64}
    assert sha(shared) in blob_files and old_unique["sha256"] not in blob_files
    purged = [e for e in AuditEvent.select().where(AuditEvent.action == "document.purged")]
    assert {e.details["name"] for e in purged} == {"ancienne.pdf", "unique.pdf"}
    assert all(e.details["sha256"] and e.details["trashed_by"] == "Staff <staff@un.example>"
               and e.actor_label == "ged purge" for e in purged)
    assert audit.verify() == []


def test_company_archive_page_drop_address_and_hold(client, world, web):
    """Staff see the drop addresses with copy buttons and can give a folder its own;
    the client sees the address on the folder page; the admin sets a legal hold."""
    from ged import drops
    from ged.models import Company

    company_address = drops.address_of(drops.active(world.company_a))
    staff = web(world.staff)
    page = staff.get(f"/entreprises/{world.company_a.id}/archivage").get_data(as_text=True)
    assert company_address in page and 'data-copy="' + company_address in page
    assert "Activer la conservation légale" not in page  # admins only
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    r = staff.post(f"/entreprises/{world.company_a.id}/adresse-de-depot",
                   {"folder_id": achats.id})
    assert r.status_code == 302
    achats_address = drops.address_of(drops.active(world.company_a, achats))

    client_page = web(world.client_a)
    html = client_page.get(f"/dossiers/{achats.id}").get_data(as_text=True)
    assert "Déposer par e-mail dans ce dossier" in html and achats_address in html
    html = client_page.get(f"/dossiers/{world.folder(world.company_a).id}").get_data(as_text=True)
    assert company_address in html
    assert client_page.get(f"/entreprises/{world.company_a.id}/archivage").status_code == 403

    admin = web(world.admin)
    admin.get(f"/entreprises/{world.company_a.id}/archivage")
    r = admin.post(f"/entreprises/{world.company_a.id}/conservation-legale",
                   {"legal_hold": "1", "reason": "Contrôle fiscal 2026"})
    assert r.status_code == 302
    assert Company.get_by_id(world.company_a.id).legal_hold is True
    page = admin.get(f"/entreprises/{world.company_a.id}/archivage").get_data(as_text=True)
    assert "Conservation légale active" in page and "Contrôle fiscal 2026" in page


# --- personal data ----------------------------------------------------------------------------------


def test_erase_user_keeps_documents_and_the_audit_chain(client, world, ged_cli):
    from ged import archive, audit
    from ged.errors import Conflict
    from ged.models import AuditEvent, Document, User

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    pdf = text_pdf("Facture client")
    doc = upload(client, achats.id, [("facture.pdf", pdf)], world.client_a.headers)[0]
    email = "client-a@un.example"
    result = ged_cli("erase-user", email, "--yes")
    assert result.returncode == 0, result.stderr
    assert client.get("/api/v1/me", headers=world.client_a.headers).status_code == 401
    user = User.get_by_id(world.client_a.user.id)
    assert user.name.startswith("Utilisateur effacé") and email not in user.email
    assert user.password_hash is None and not user.active and user.erased_at
    kept = Document.get_by_id(doc["id"])
    assert kept.deposited_by_label == user.name
    got = client.get(f"/api/v1/documents/{doc['id']}/file", headers=world.staff.headers)
    assert got.status_code == 200 and got.data == pdf
    assert not AuditEvent.select().where(AuditEvent.actor_label.contains(email)).exists()
    assert AuditEvent.select().where(AuditEvent.actor_label == user.name).count() >= 2
    assert audit.verify() == []
    with pytest.raises(Conflict, match="last active admin"):
        archive.erase_user("ged erase-user", world.admin.user)


# --- integrity -------------------------------------------------------------------------------------


def test_fsck_finds_corruption_and_strays_and_repairs_only_garbage(client, world, cfg):
    from ged import integrity, runtime

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    doc = upload(client, achats.id, [("a.pdf", text_pdf("A"))], world.staff.headers)[0]
    assert integrity.fsck().clean
    store = runtime.store()
    stray = "ab" * 32
    store.path(stray).parent.mkdir(parents=True, exist_ok=True)
    store.path(stray).write_bytes(b"left by a crash")
    report = integrity.fsck()
    assert report.clean and any(stray in w for w in report.warnings)
    path = store.path(doc["sha256"])
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    report = integrity.fsck(repair=True, grace_seconds=0)
    assert not report.clean and any("corrupt" in e for e in report.errors)
    assert not store.exists(stray) and store.exists(doc["sha256"])  # never removes data


# --- backup and restore --------------------------------------------------------------------------


def test_round_trip_backup_restore(app, client, world, web, drop_smtp, ged_cli, server_process,
                                   run_jobs, tmp_path, cfg):
    """Deposits by web, API and e-mail; `ged backup` while uploads continue; `ged
    restore` into a fresh data dir; a new server on it serves every document
    byte-identical to the old tokens, search finds them, fsck and the audit pass."""
    from ged import backup
    from ged.models import Document

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    originals = {}
    web_pdf = text_pdf("Facture Zanzibar par le site")
    browser = web(world.client_a)
    browser.get(f"/dossiers/{achats.id}")
    r = browser.post(f"/dossiers/{achats.id}/depot",
                     {"file": (io.BytesIO(web_pdf), "zanzibar-web.pdf")},
                     content_type="multipart/form-data")
    assert r.status_code == 302
    originals["zanzibar-web.pdf"] = web_pdf
    api_pdf = text_pdf("Facture Zanzibar par l'API")
    upload(client, achats.id, [("zanzibar-api.pdf", api_pdf)], world.client_a.headers)
    originals["zanzibar-api.pdf"] = api_pdf
    mail_png = png_bytes(color=(10, 200, 10))
    drop_smtp.send(drop_smtp.message(drop_smtp.address(world.company_a),
                                     files=[("zanzibar-mail.png", mail_png)]))
    originals["zanzibar-mail.png"] = mail_png
    assert {d.channel for d in Document.select()} == {"web", "api", "email"}
    run_jobs()

    stop, during = threading.Event(), []

    def keep_uploading():
        uploader = app.test_client()
        n = 0
        while not stop.is_set() or not during:
            n += 1
            data = text_pdf(f"Pendant la sauvegarde {n}")
            items = upload(uploader, achats.id, [(f"pendant-{n}.pdf", data)], world.staff.headers)
            during.append((items[0]["name"], data))

    thread = threading.Thread(target=keep_uploading)
    thread.start()
    backup_dir = tmp_path / "sauvegarde"
    try:
        first = ged_cli("backup", backup_dir)
    finally:
        stop.set()
        thread.join()
    assert first.returncode == 0, first.stderr
    originals.update(during)
    second = ged_cli("backup", backup_dir)
    assert second.returncode == 0, second.stderr
    _name, _manifest, problems = backup.verify(backup_dir)
    assert problems == []
    snapshots = sorted(p.name for p in (backup_dir / "snapshots").iterdir())
    manifests = [json.loads((backup_dir / "snapshots" / s / "manifest.json").read_text())
                 for s in snapshots]
    assert manifests[1]["blob_count"] == Document.select().count() > manifests[1]["blobs_copied"]

    with pytest.raises(backup.BackupError, match="not empty"):
        backup.restore(backup_dir)  # over the live data: refused, nothing touched
    target = tmp_path / "restaure"
    target_db = f"sqlite:///{target / 'ged.sqlite3'}"
    restored = ged_cli("restore", backup_dir, data_dir=target, database_url=target_db)
    assert restored.returncode == 0, restored.stderr

    server = server_process(data_dir=target, database_url=target_db)
    http = httpx.Client(base_url=server.url, timeout=30)
    me = http.get("/api/v1/me", headers=world.client_a.headers)
    assert me.status_code == 200 and me.json()["email"] == "client-a@un.example"
    with sqlite3.connect(target / "ged.sqlite3") as conn:
        rows = conn.execute("SELECT id, name, sha256 FROM document").fetchall()
    names = {name for _id, name, _sha in rows}
    assert {"zanzibar-web.pdf", "zanzibar-api.pdf", "zanzibar-mail.png"} <= names
    for doc_id, name, digest in rows:
        got = http.get(f"/api/v1/documents/{doc_id}/file", headers=world.staff.headers)
        assert got.status_code == 200 and got.content == originals[name]
        assert sha(got.content) == digest
    found = http.get("/api/v1/search", params={"q": "zanzibar"},
                     headers=world.client_a.headers).json()
    assert {i["name"] for i in found["items"]} == {"zanzibar-web.pdf", "zanzibar-api.pdf",
                                                   "zanzibar-mail.png"}
    fsck = ged_cli("fsck", data_dir=target, database_url=target_db)
    assert fsck.returncode == 0 and "clean" in fsck.stdout, fsck.stdout
    audit = ged_cli("audit", "verify", data_dir=target, database_url=target_db)
    assert audit.returncode == 0 and "intact" in audit.stdout


def test_killing_the_server_mid_upload_leaves_the_whole_document_or_nothing(
        world, server_process, ged_cli):
    """A real server: one upload completes, another is cut half-way through its body,
    then the server is SIGKILLed. The first document is whole, the second left no
    row and no blob, and fsck agrees with the database."""
    from ged.models import Document

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    server = server_process()
    whole = text_pdf("Document complet") + b"%" * 200_000
    r = httpx.post(server.url + f"/api/v1/folders/{achats.id}/documents",
                   headers=world.client_a.headers, files={"file": ("complet.pdf", whole)})
    assert r.status_code == 201

    body = (b"--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"coupe.pdf\"\r\n"
            b"Content-Type: application/pdf\r\n\r\n" + text_pdf("Coupé") + b"%" * 400_000
            + b"\r\n--XYZ--\r\n")
    head = (f"POST /api/v1/folders/{achats.id}/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {world.client_a.token}\r\n"
            f"Content-Type: multipart/form-data; boundary=XYZ\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head + body[: len(body) // 2])
        server.kill()

    assert [d.name for d in Document.select()] == ["complet.pdf"]
    fsck = ged_cli("fsck")
    assert fsck.returncode == 0 and "1 blob(s)" in fsck.stdout and "clean" in fsck.stdout
    again = server_process()
    got = httpx.get(again.url + f"/api/v1/documents/{r.json()['items'][0]['id']}/file",
                    headers=world.client_a.headers)
    assert got.status_code == 200 and got.content == whole


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_backup_and_restore_on_postgresql(client, world, ged_cli, tmp_path, cfg):
    """pg_dump in the snapshot the blob list was read in; restore into the emptied schema."""
    from conftest import _pg_admin

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    pdf = text_pdf("Facture PostgreSQL")
    doc = upload(client, achats.id, [("pg.pdf", pdf)], world.client_a.headers)[0]
    backup_dir = tmp_path / "sauvegarde"
    result = ged_cli("backup", backup_dir)
    assert result.returncode == 0, result.stderr
    assert ged_cli("restore", backup_dir).returncode != 0  # not empty
    from ged.db import db

    db.obj.close_all()
    schema = cfg.database_url.rsplit("%3D", 1)[1]
    _pg_admin(f"DROP SCHEMA {schema} CASCADE; CREATE SCHEMA {schema}")
    target = tmp_path / "restaure"
    restored = ged_cli("restore", backup_dir, data_dir=target)
    assert restored.returncode == 0, restored.stderr
    from ged.models import Document

    assert Document.get_by_id(doc["id"]).name == "pg.pdf"
    blob = target / "blobs" / doc["sha256"][:2] / doc["sha256"][2:4] / doc["sha256"]
    assert blob.read_bytes() == pdf
    assert ged_cli("audit", "verify").returncode == 0


def test_backup_verify_detects_damage_and_a_second_backup_adds_only_what_is_new(
        client, world, tmp_path, ged_cli):
    from ged import backup

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    first_doc = upload(client, achats.id, [("a.pdf", text_pdf("A"))], world.staff.headers)[0]
    dest = tmp_path / "sauvegarde"
    first = backup.backup(dest)
    assert first["blobs_copied"] == 1 and first["problems"] == []
    upload(client, achats.id, [("b.pdf", text_pdf("B"))], world.staff.headers)
    second = backup.backup(dest, keep=1)
    assert second["blob_count"] == 2 and second["blobs_copied"] == 1
    assert second["pruned"] == [first["name"]] and backup.snapshots(dest) == [second["name"]]
    ok = ged_cli("backup", "verify", dest)
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stderr
    blob = backup.blob_path(dest, first_doc["sha256"])
    blob.write_bytes(blob.read_bytes().replace(b"%PDF", b"%PDX", 1))
    _name, _manifest, problems = backup.verify(dest)
    assert problems == [f"blob {first_doc['sha256']} is corrupt"]
    with pytest.raises(backup.BackupError, match="damaged|not empty"):
        backup.restore(dest)
