"""Upgrading a database that holds data: every migration step runs on a schema of
version 1 with documents, deliveries and users in it, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from conftest import text_pdf


def _upload(client, folder_id, headers, name, data):
    import io

    return client.post(f"/api/v1/folders/{folder_id}/documents", headers=headers,
                       data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def _back_to_version_1(db) -> None:
    """Take away what the steps after version 1 add, keeping the rows."""
    from ged.models import SchemaVersion

    for index in ("document_text_pending", "document_company_id_status"):
        db.execute_sql(f"DROP INDEX IF EXISTS {index}")
    for table, column in (("document", "status_reason"), ("document", "replaces_id"),
                          ("document", "replaced_by_id"), ("blob", "extract_attempts"),
                          ("blob", "ocr_state")):
        db.execute_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.execute_sql("DROP TABLE user_session")
    SchemaVersion.delete().execute()
    SchemaVersion.create(version=1)


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_an_existing_database_with_documents_upgrades_and_keeps_them(app, client, world,
                                                                      run_jobs):
    from ged.db import db
    from ged.models import Blob, Document
    from ged.schema import LATEST, current_version, migrate

    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    resp = _upload(client, achats.id, world.client_a.headers, "facture.pdf",
                   text_pdf("Facture 77 fournisseur Martin"))
    assert resp.status_code == 201, resp.get_json()
    doc_id = resp.get_json()["items"][0]["id"]
    run_jobs()

    with app.app_context():
        _back_to_version_1(db)
        assert current_version() == 1
        assert migrate() == LATEST
        assert current_version() == LATEST
        doc = Document.get_by_id(doc_id)
        assert doc.name == "facture.pdf" and doc.status == "deposited"
        assert doc.replaces_id is None and doc.status_reason is None
        assert Blob.get_by_id(doc.blob_id).extract_attempts == 0
        # A process of the previous version, still serving during a rolling upgrade,
        # inserts blobs without the new columns: the database fills them in.
        db.execute_sql("INSERT INTO blob (sha256, size, content_type, created_at, text_status) "
                       "VALUES ('ab0c', 3, 'text/plain', '2026-01-01 00:00:00', 'pending')")
        assert Blob.get_by_id("ab0c").extract_attempts == 0
        # Running it again changes nothing.
        assert migrate() == LATEST

    # The upgraded database serves the API as before.
    got = client.get(f"/api/v1/documents/{doc_id}", headers=world.client_a.headers)
    assert got.status_code == 200 and got.get_json()["name"] == "facture.pdf"
