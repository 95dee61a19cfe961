"""Blobs in an S3-compatible store (a real SeaweedFS): deposits land in the bucket,
never on the host's disk; downloads stream the same bytes; one object per content;
`ged init`, /readyz and fsck see the store."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import uuid

import pytest

from conftest import ROOT, text_pdf
from fixtures.seaweed import use_s3


@pytest.fixture
def cfg(cfg, seaweed, monkeypatch):
    """The usual test Config, with its blobs in a fresh prefix of the SeaweedFS bucket."""
    return use_s3(cfg, seaweed, monkeypatch)


def upload(client, folder_id, files, headers):
    data = {"file": [(io.BytesIO(content), name) for name, content in files]}
    return client.post(f"/api/v1/folders/{folder_id}/documents", data=data, headers=headers,
                       content_type="multipart/form-data")


def prefix_of(cfg) -> str:
    return cfg.storage_url.split("/", 3)[3] + "/"


def files_on_disk(data_dir) -> list:
    return [p for p in data_dir.rglob("*") if p.is_file() and p.stat().st_size > 0
            and "redis" not in p.parts]


def test_deposit_lands_in_the_bucket_and_downloads_byte_identical(client, world, cfg, seaweed):
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    pdf = text_pdf("Facture S3 2026-007 fournisseur Lefèvre")
    r = upload(client, achats.id, [("facture.pdf", pdf)], world.client_a.headers)
    assert r.status_code == 201, r.get_json()
    doc = r.get_json()["items"][0]
    sha = hashlib.sha256(pdf).hexdigest()
    assert doc["sha256"] == sha

    # The bytes are one object in the bucket, under the configured prefix ...
    key = f"{prefix_of(cfg)}{sha[:2]}/{sha[2:4]}/{sha}"
    assert seaweed.keys(prefix_of(cfg)) == [key]
    body = seaweed.client().get_object(Bucket=seaweed.bucket, Key=key)["Body"].read()
    assert body == pdf
    # ... and nowhere on this host's disk (the staged upload is gone too).
    assert not [p for p in files_on_disk(cfg.data_dir) if p.read_bytes() == pdf]
    assert not any(p.is_file() for p in (cfg.data_dir / "tmp").rglob("*"))

    # The client and the staff download the same bytes.
    for actor in (world.client_a, world.staff):
        r = client.get(f"/api/v1/documents/{doc['id']}/file", headers=actor.headers)
        assert r.status_code == 200 and r.data == pdf
        assert r.headers["Content-Disposition"].startswith("attachment")


def test_same_bytes_stored_once(client, world, cfg, seaweed):
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    ventes = world.folder(world.company_a, "Dossier comptable annuel 2026", "Ventes")
    pdf = text_pdf("Deux fois la même facture")
    first = upload(client, achats.id, [("a.pdf", pdf)], world.client_a.headers).get_json()["items"][0]
    second = upload(client, ventes.id, [("b.pdf", pdf)], world.staff.headers).get_json()["items"][0]
    assert second["duplicate_of"] == first["id"]
    assert len(seaweed.keys(prefix_of(cfg))) == 1


def test_large_blob_goes_up_in_parts_and_streams_back(app, cfg, seaweed):
    """A 20 MB blob: multipart upload from the staged file, read back in chunks."""
    from ged import runtime
    from ged.blobs import iter_blob, stage

    payload = os.urandom(1024 * 1024) * 20
    staged = stage(io.BytesIO(payload), cfg.data_dir, 64 * 1024 * 1024)
    store = runtime.store()
    store.put(staged.sha256, staged.path)
    staged.discard()
    assert store.exists(staged.sha256) and store.size(staged.sha256) == len(payload)
    assert store.local_path(staged.sha256) is None
    assert store.modified(staged.sha256) > 0
    digest = hashlib.sha256()
    chunks = 0
    for chunk in iter_blob(store, staged.sha256):
        assert len(chunk) <= 256 * 1024
        digest.update(chunk)
        chunks += 1
    assert digest.hexdigest() == staged.sha256 and chunks >= 80
    assert list(store.keys()) == [staged.sha256]
    store.delete(staged.sha256)
    assert not store.exists(staged.sha256) and store.modified(staged.sha256) is None
    with pytest.raises(FileNotFoundError):
        store.open(staged.sha256)


def test_readyz_sees_the_store(client, cfg):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.get_json() == {"database": "ok", "redis": "ok", "storage": "ok"}
    # A bucket that does not exist: not ready, and the reply says what failed.
    cfg.storage_url = f"s3://missing-{uuid.uuid4().hex[:8]}/x"
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.get_json()
    assert body["database"] == "ok" and body["storage"] != "ok"


def test_ged_init_creates_the_bucket(tmp_path, seaweed):
    bucket = f"ged-init-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **seaweed.env, "GED_DATA_DIR": str(tmp_path / "data"),
           "GED_STORAGE_URL": f"s3://{bucket}/blobs", "DATABASE_URL": f"sqlite:///{tmp_path}/g.db"}
    env.pop("REDIS_URL", None)
    for _ in range(2):  # idempotent: a second `ged init` finds the bucket there
        done = subprocess.run([sys.executable, "-m", "ged.cli", "init"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    names = [b["Name"] for b in seaweed.client().list_buckets()["Buckets"]]
    assert bucket in names


def test_fsck_checks_the_objects(client, world, cfg, seaweed):
    from ged import integrity, runtime

    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    pdf = text_pdf("Contrôle d'intégrité")
    doc = upload(client, achats.id, [("c.pdf", pdf)], world.admin.headers).get_json()["items"][0]
    report = integrity.fsck()
    assert report.clean and report.blobs_checked == 1 and report.bytes_checked == len(pdf)
    # An object lost from the bucket is reported, naming the blob.
    runtime.store().delete(doc["sha256"])
    report = integrity.fsck()
    assert not report.clean
    assert any(doc["sha256"] in e and "missing" in e for e in report.errors)


def test_text_is_extracted_from_the_bucket_and_found(client, world, cfg, run_jobs):
    """OCR and text extraction read the blob through the store (no local path)."""
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    pdf = text_pdf("Facture de ramonage cheminée Ducrocq")
    doc = upload(client, achats.id, [("ramonage.pdf", pdf)], world.client_a.headers).get_json()["items"][0]
    run_jobs()
    r = client.get(f"/api/v1/documents/{doc['id']}", headers=world.client_a.headers)
    assert r.get_json()["text_status"] == "done"
    r = client.get("/api/v1/search", query_string={"q": "ramonage ducrocq"},
                   headers=world.client_a.headers)
    assert [i["document_id"] for i in r.get_json()["items"]] == [doc["id"]]
    assert not any(p.is_file() for p in (cfg.data_dir / "tmp").rglob("*"))


def test_a_purge_leaves_bytes_a_deposit_has_just_found_in_the_bucket(
        client, world, cfg, seaweed):
    """The last document naming some bytes is purged while a deposit of the same bytes
    found the object in place: the deposit refreshed the object, so it stays."""
    import time

    from ged import documents, runtime
    from ged.models import Document

    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    pdf = text_pdf("Facture purgée puis déposée à nouveau")
    item = upload(client, achats.id, [("a.pdf", pdf)], world.staff.headers).get_json()["items"][0]
    store = runtime.store()
    first = store.modified(item["sha256"])
    assert store.recently_written(item["sha256"])
    assert not store.recently_written(item["sha256"], grace=0)
    time.sleep(1.1)
    # A deposit of the same bytes meets the object in place: it refreshes it.
    from ged.blobs import stage_bytes

    staged = stage_bytes(pdf, cfg.data_dir, cfg.max_upload_bytes)
    store.put(staged.sha256, staged.path)
    staged.discard()
    assert store.modified(item["sha256"]) > first
    # The purge of the only document naming it keeps the object for fsck to judge later.
    Document.update(retain_until=None).where(Document.id == item["id"]).execute()
    documents.delete_permanently("ged purge", Document.get_by_id(item["id"]))
    assert store.exists(item["sha256"])
    assert store.open(item["sha256"]).read() == pdf
