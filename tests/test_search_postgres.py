"""The PostgreSQL search backend's own behaviour (the shared search stories run on
both backends in test_search.py): `ged init` prepares it, French analysis with
accents folded, RUM or GIN, bounded ranking of broad queries, `ged reindex`."""

from __future__ import annotations

import datetime as dt

import pytest

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
def cfg(cfg):
    cfg.search_backend = "postgres"
    return cfg


@pytest.fixture
def pg(app):
    from ged import search

    search.init_backend()
    return app


def put_text(world, folder, name, text, when=None):
    """A document with known text, as extraction would leave it."""
    from ged import documents
    from ged.models import Blob, Document
    from ged.blobs import stage_bytes
    from conftest import text_pdf

    from ged import runtime

    staged = stage_bytes(text_pdf(name + " " + text[:40]), runtime.config().data_dir, 10 << 20)
    doc = documents.deposit(world.admin.user, folder, [documents.Upload(name, staged)], "api")[0]
    Blob.update(text=text, text_status="done").where(Blob.sha256 == doc.blob_id).execute()
    if when is not None:
        Document.update(deposited_at=when).where(Document.id == doc.id).execute()
    return doc


def test_init_is_idempotent_and_picks_rum_or_gin(pg):
    from ged import search
    from ged.db import db
    from ged.search.postgres import schema

    search.init_backend()  # twice: nothing breaks, nothing is duplicated
    kind = schema.text_index()
    available = db.execute_sql("SELECT 1 FROM pg_available_extensions WHERE name = 'rum'").fetchone()
    assert kind == ("rum" if available else "gin")
    cfgname = db.execute_sql("SELECT cfgname FROM pg_ts_config WHERE cfgname = 'ged_french' "
                             "AND cfgnamespace = current_schema()::regnamespace").fetchone()
    assert cfgname == ("ged_french",)
    # Where each firm's rows record the analysis they were built with.
    assert db.execute_sql("SELECT to_regclass('search_version')").fetchone()[0] is not None


def test_french_words_accents_phrases_prefixes_and_fields(pg, world, client):
    from ged import search
    from ged.errors import Invalid

    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    banque = world.folder(world.company_a, "Dossier comptable annuel 2026", "Banque",
                          "Relevés bancaires")
    f1 = put_text(world, achats, "facture-lefevre.pdf",
                  "Facture n° FA-2026-001 du fournisseur Lefèvre : chevaux et équipements.")
    f2 = put_text(world, banque, "releve-mars.pdf",
                  "Relevé de compte du mois de mars, Banque Populaire, solde créditeur.")
    search.index_dirty(world.firm.id)

    def names(q, actor=world.admin, **params):
        body = search.query(actor.user, q, **params)
        return [i["name"] for i in body["items"]], body

    assert names("lefevre")[0] == [f1.name]  # accents folded
    assert names("cheval")[0] == [f1.name]  # French stemming: chevaux
    assert names('"relevé de compte"')[0] == [f2.name]  # a phrase, stop word inside
    assert names('"compte relevé"')[0] == []
    assert names("equip*")[0] == [f1.name]  # a prefix
    assert names("FA-2026-001")[0] == [f1.name]
    assert sorted(names("lefevre OU populaire")[0]) == sorted([f1.name, f2.name])
    assert names("compte -populaire")[0] == []
    assert names("dossier:bancaires")[0] == [f2.name]  # folder names
    assert names("nom:lefevre")[0] == [f1.name] and names("nom:chevaux")[0] == []
    _, body = names("lefèvre")
    assert "<mark>Lefèvre</mark>" in body["items"][0]["snippet"]
    with pytest.raises(Invalid) as refused:
        search.query(world.admin.user, "e*")
    assert refused.value.code == "prefix_too_short"
    # Clients see their company only; a snippet never lets markup through.
    assert names("lefevre", actor=world.client_b)[0] == []
    assert names("lefevre", actor=world.client_a)[0] == [f1.name]


def test_snippet_is_escaped(pg, world, client):
    from ged import search

    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    put_text(world, achats, "piege.pdf", 'Avoir <script>alert("x")</script> fournisseur Durand')
    search.index_dirty(world.firm.id)
    snippet = search.query(world.admin.user, "durand")["items"][0]["snippet"]
    assert "<script>" not in snippet and "<mark>Durand</mark>" in snippet


@pytest.mark.parametrize("path", ["bitmap", "date"])
def test_broad_query_ranks_the_newest_candidates_and_counts_every_match(pg, world, client,
                                                                        monkeypatch, path):
    """A word in every document: only the newest CANDIDATES are ranked; the total
    still counts every match, and the pages cover them all once, whichever access
    path finds the newest matches (the text index's postings, or the date index)."""
    from ged import search
    from ged.search.postgres import query as search_postgres
    from ged.models import Document

    monkeypatch.setattr(search_postgres, "CANDIDATES", 5)
    monkeypatch.setattr(search_postgres, "_access_path", lambda *args: (path, 12.0))
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    docs = []
    for i in range(12):
        # The oldest document mentions "fournisseur" most: it would rank first if
        # every match were ranked, but it is not among the 5 newest.
        text = "fournisseur " * (20 if i == 0 else 1) + f"pièce {i}"
        docs.append(put_text(world, achats, f"piece-{i:02}.pdf", text, start + dt.timedelta(days=i)))
    search.index_dirty(world.firm.id)
    seen, cursor, first = [], None, None
    while True:
        body = search.query(world.admin.user, "fournisseur", limit=4, cursor=cursor)
        assert body["total"] == 12
        first = first or body["items"]
        seen += [i["name"] for i in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(d.name for d in docs)  # every match, once
    newest5 = {f"piece-{i:02}.pdf" for i in range(7, 12)}
    assert set(seen[:5]) == newest5  # the ranked candidates come first
    assert seen[5:] == [f"piece-{i:02}.pdf" for i in range(6, -1, -1)]  # then newest first
    # Narrower than the candidate set: exact ranking, the densest first.
    body = search.query(world.admin.user, "fournisseur", date_from=dt.date(2026, 1, 1),
                        date_to=dt.date(2026, 1, 3))
    assert body["total"] == 3 and body["items"][0]["name"] == "piece-00.pdf"
    assert Document.select().count() == 12


def test_reindex_command_rebuilds_from_the_database(pg, world, client):

    from ged import search
    from ged.db import db

    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    put_text(world, achats, "note.pdf", "Honoraires de l'expert-comptable Martin")
    search.index_dirty(world.firm.id)
    db.execute_sql("DELETE FROM search_entry")
    assert search.query(world.admin.user, "honoraires")["total"] == 0
    done = search.reindex(progress=False)
    assert done[world.firm.id] == 1
    assert search.query(world.admin.user, "honoraires")["total"] == 1
