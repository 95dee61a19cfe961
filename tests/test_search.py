"""Full-text search: each kind of document is found by the words it contains, by who
may see it and by no one else, whatever the query; filters, phrases, prefixes,
accents and plurals, elisions, phrases over dropped words, one folding on both
backends; the index follows trash and moves; `ged reindex` rebuilds it, and an index
built by an older analysis is rebuilt by itself."""

from __future__ import annotations

import shutil

import pytest

from fixtures.documents import (facturx_pdf, phone_photo, scanned_pdf, text_pdf, ubl_xml)

pytestmark = [pytest.mark.usefixtures("search_backend"),
              pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)]

YEAR = "Dossier comptable annuel 2026"


def folder(world, *names, company=None):
    return world.folder(company or world.company_a, YEAR, *names)


@pytest.fixture
def staff_b(world):
    """A staff member assigned to company B only."""
    from conftest import Actor, PASSWORD
    from ged import accounts, companies

    user = accounts.create_user(world.admin.user, world.firm, email="staff-b@un.example",
                                name="Staff B", role="staff", password=PASSWORD)
    companies.assign_staff(world.admin.user, world.company_b, [user.id])
    return Actor(user, accounts.create_token(user, user, "tests")[1], PASSWORD)


def test_each_kind_of_document_is_found_by_who_may_see_it_and_no_one_else(
        world, other_world, staff_b, deposit, run_jobs, found_names, find):
    deposit(world.client_a, folder(world, "Achats"), "scan-facture.pdf",
            scanned_pdf(["FACTURE Quincaillerie Moreau", "Vis et chevilles inoxydables"]))
    deposit(world.client_a, folder(world, "Notes de frais"), "photo-ticket.jpg",
            phone_photo(["Restaurant La Pergola", "Déjeuner d'affaires"]))
    deposit(world.staff, folder(world, "Banque", "Relevés bancaires"), "releve-mars.pdf",
            text_pdf("Relevé de compte courant : virement reçu du client Lagarde"))
    deposit(world.client_a, folder(world, "Achats"), "edf.pdf",
            facturx_pdf("Facture d'électricité", seller="Électricité Dupont SARL",
                        number="FA-2026-0117"))
    deposit(world.client_a, folder(world, "Achats"), "belge.xml", ubl_xml())
    run_jobs()

    searches = {
        "scan-facture.pdf": "chevilles inoxydables",  # OCR of an image-only PDF
        "photo-ticket.jpg": "pergola",  # OCR of a photo turned by EXIF
        "releve-mars.pdf": "virement Lagarde",  # text layer
        "edf.pdf": "FA-2026-0117",  # Factur-X fields
        "belge.xml": "brasserie wallonne",  # bare UBL
    }
    for name, q in searches.items():
        for actor in (world.client_a, world.staff, world.admin):
            assert name in found_names(actor, q), (name, q, actor.user.email)
        for actor in (world.client_b, staff_b, other_world.admin, other_world.client_a):
            assert find(actor, q)["total"] == 0, (name, q, actor.user.email)

    # The Factur-X seller is searchable as a field; the result carries a snippet.
    result = find(world.client_a, "facture:dupont")
    assert [i["name"] for i in result["items"]] == ["edf.pdf"]
    item = result["items"][0]
    assert item["company_id"] == world.company_a.id
    assert item["folder_path"] == f"/{YEAR}/Achats"
    assert item["score"] > 0 and "document_id" in item


HOSTILE_QUERIES = [
    "*", "**", "company_id:*", "company_id:{a}", "folder_ids:*", "type:* secret",
    "secret OR company_id:{a}", "secret OU *", "secret*", "sec*", '"secret"', "-nothing secret",
    "nom:secret", "dossier:achats", "facture:* secret", "(secret) OR (secret)", "s?cret",
    "secret company_id:{b}", "\\* secret", "secret^10", "secret~", 'r"sec.*"',
]


def test_a_client_never_sees_another_company_whatever_the_query(
        world, staff_b, deposit, run_jobs, find):
    deposit(world.client_a, folder(world, "Achats"), "secret-achats.pdf",
            text_pdf("Document secret de la société A"))
    run_jobs()
    for q in HOSTILE_QUERIES:
        q = q.format(a=world.company_a.id, b=world.company_b.id)
        for outsider in (world.client_b, staff_b):
            assert find(outsider, q)["total"] == 0, q
        # The same query by a client of A finds only A's documents (or nothing, for "*").
        for item in find(world.client_a, q)["items"]:
            assert item["company_id"] == world.company_a.id
    assert find(world.client_a, "secret")["total"] == 1


def test_french_analysis_accents_plurals_phrases_prefixes_and_exclusions(
        world, deposit, run_jobs, found_names, search_backend, monkeypatch):
    divers = folder(world, "Divers")
    deposit(world.staff, divers, "releve.pdf",
            text_pdf("Relevés bancaires de la société : opérations diverses"))
    deposit(world.staff, divers, "banque.pdf",
            text_pdf("Le relevé sera envoyé avec une facture bancaire"))
    deposit(world.staff, divers, "brouillon.pdf", text_pdf("Brouillon de relevé"))
    deposit(world.staff, folder(world, "Banque", "Relevés bancaires"), "mars.pdf",
            text_pdf("Mars"))
    run_jobs()
    staff = world.staff
    assert found_names(staff, "releve") >= {"releve.pdf", "banque.pdf", "brouillon.pdf"}
    assert found_names(staff, "RELEVÉS") >= {"releve.pdf", "banque.pdf", "brouillon.pdf"}
    assert found_names(staff, "operation") == {"releve.pdf"}  # plural and accents
    assert found_names(staff, '"relevés bancaires"') == {"releve.pdf", "mars.pdf"}
    assert "banque.pdf" not in found_names(staff, '"releve bancaire"')  # words not adjacent
    assert found_names(staff, "releve -brouillon -mars") == {"releve.pdf", "banque.pdf"}
    assert found_names(staff, "brouil*") == {"brouillon.pdf"}
    assert found_names(staff, "brouillon OU diverses") == {"brouillon.pdf", "releve.pdf"}
    assert found_names(staff, "nom:banque") == {"banque.pdf"}
    # Folder names are searchable: mars.pdf is in "Banque/Relevés bancaires".
    assert found_names(staff, "dossier:relevés") == {"mars.pdf"}
    assert found_names(staff, "bancaire") == {"releve.pdf", "banque.pdf", "mars.pdf"}
    if search_backend == "whoosh":
        # Large candidate sets check phrases by set operations: same answers.
        from ged.search.whoosh import query as search_whoosh

        monkeypatch.setattr(search_whoosh, "PHRASE_KEYS_FROM", 0)
        assert found_names(staff, '"relevés bancaires"') == {"releve.pdf", "mars.pdf"}
        assert "banque.pdf" not in found_names(staff, '"releve bancaire"')
        assert found_names(staff, '"opérations diverses"') == {"releve.pdf"}


# Apostrophes as typed (straight), as typeset (typographic) and as some tools write it
# (U+02BC, a "letter" to Unicode); each elided word and the word after it.
APOSTROPHES = {"droite": "'", "typographique": "\u2019", "modificative": "\u02bc"}
ELIDED = [("l", "échéance"), ("d", "acompte"), ("j", "honoraires"), ("m", "attestation"),
          ("n", "impayé"), ("s", "engagement"), ("t", "inventaire"), ("c", "amortissement"),
          ("qu", "exonération"), ("jusqu", "ouverture"), ("lorsqu", "abattement"),
          ("puisqu", "indemnité"), ("quoiqu", "escompte"), ("L", "Urssaf")]


def test_a_word_after_an_elision_is_found_whatever_the_apostrophe(
        world, deposit, run_jobs, find, found_names):
    divers = folder(world, "Divers")
    docs = set()
    for form, apostrophe in APOSTROPHES.items():
        text = "Courrier : " + ", ".join(f"{e}{apostrophe}{w}" for e, w in ELIDED) + "."
        if form == "modificative":
            name, data = f"apostrophe-{form}.txt", text.encode()
        else:
            name, data = f"apostrophe-{form}.pdf", text_pdf(text)
        deposit(world.staff, divers, name, data)
        docs.add(name)
    # The same words glued, as the apostrophe-dropping analysis used to index them.
    deposit(world.staff, divers, "colle.txt", "Sans apostrophe : léchéance dacompte".encode())
    run_jobs()
    staff = world.staff
    for elided, word in ELIDED:
        assert found_names(staff, word) == docs, word
        for apostrophe in APOSTROPHES.values():  # the query may hold the elision too
            assert found_names(staff, f"{elided}{apostrophe}{word}") == docs, (elided, apostrophe)
    assert found_names(staff, "L’ÉCHÉANCE") == found_names(staff, "lʼech*") == docs
    assert find(staff, "l’é*", expect=400)["error"]["code"] == "prefix_too_short"
    assert found_names(staff, "léchéance") == {"colle.txt"}
    # The elided word keeps its place: "courrier l'échéance" is a phrase of the text,
    # "courrier échéance" is not.
    assert found_names(staff, '"courrier l\'échéance"') == docs
    assert found_names(staff, '"courrier échéance"') == set()
    snippet = [i["snippet"] for i in find(staff, "échéance")["items"]
               if i["name"] == "apostrophe-modificative.txt"][0]
    assert "<mark>échéance</mark>" in snippet


def test_a_phrase_keeps_the_place_of_the_words_it_drops_and_counts_exactly(
        world, deposit, run_jobs, find, found_names, search_backend, monkeypatch):
    divers = folder(world, "Divers")
    texts = {
        "recapitulatif.pdf": "Récapitulatif : montant total 1 234,56 € réglé le 15/03/2026.",
        "commande.pdf": "Le montant total de la commande est dû à réception.",
        "partiel.pdf": "Un montant de total partiel, hors taxes.",
        "inverse.pdf": "Total réglé, montant versé par virement.",
        "reference.pdf": "Facture FA-2026-0042 de l'expert-comptable : 1 234,56 € TTC.",
    }
    for name, text in texts.items():  # names without these words: phrases meet in the text
        deposit(world.staff, divers, name, text_pdf(text))
    run_jobs()
    staff = world.staff

    def check():
        assert found_names(staff, '"montant total"') == {"recapitulatif.pdf",
                                                         "commande.pdf"}
        assert find(staff, '"montant total"')["total"] == 2
        for q in ('"montant de total"', '"montant du total"'):  # any dropped word in between
            assert found_names(staff, q) == {"partiel.pdf"}, q
            assert find(staff, q)["total"] == 1
        assert find(staff, '"total montant"')["total"] == 0
        assert find(staff, "montant total")["total"] == 4  # words, not a phrase
        # References, numbers and hyphenated words: found as typed, and by their parts.
        for q in ("FA-2026-0042", "fa-2026-0042", "2026-0042", '"1 234,56"', "expert-comptable",
                  "expert comptable", '"expert comptable"', "expert"):
            expected = {"reference.pdf"} | ({"recapitulatif.pdf"} if "234" in q else set())
            assert found_names(staff, q) == expected, q
        assert find(staff, '"1 234,56"')["total"] == 2

    check()
    if search_backend == "whoosh":
        from ged.search.whoosh import query as search_whoosh

        # Large candidate sets check phrases by set operations: the same answers.
        monkeypatch.setattr(search_whoosh, "PHRASE_KEYS_FROM", 0)
        check()


# Characters and the ASCII letters both backends fold them to, including those the
# two used to fold differently (å, õ, ý, ø, ł...), ligatures, capitals, a decomposed
# accent (e + U+0301) and a compatibility ligature (ﬁ).
FOLDED = [
    ("é", "e"), ("è", "e"), ("ê", "e"), ("ë", "e"), ("e\u0301", "e"), ("à", "a"), ("â", "a"),
    ("ä", "a"), ("á", "a"), ("ã", "a"), ("å", "a"), ("î", "i"), ("ï", "i"), ("í", "i"),
    ("ô", "o"), ("ö", "o"), ("ó", "o"), ("õ", "o"), ("ø", "o"), ("ù", "u"), ("û", "u"),
    ("ü", "u"), ("ú", "u"), ("ç", "c"), ("ñ", "n"), ("ÿ", "y"), ("ý", "y"), ("œ", "oe"),
    ("æ", "ae"), ("ß", "ss"), ("ł", "l"), ("đ", "d"), ("ð", "d"), ("þ", "th"), ("ı", "i"),
    ("ħ", "h"), ("ș", "s"), ("ţ", "t"), ("ž", "z"), ("ǆ", "dz"), ("É", "e"),
    ("À", "a"), ("Ç", "c"), ("Å", "a"), ("Ø", "o"), ("Œ", "oe"), ("Ý", "y"), ("ﬁ", "fi"),
]


def test_accents_fold_identically_on_both_backends(world, deposit, run_jobs, found_names):
    from ged import search
    from ged.search import folding

    # One rule, two speeds: the byte table of Western text and the general path agree.
    latin = [chr(c) for c in list(range(0xA0, 0x250)) + list(range(0x1E00, 0x1F00))]
    western = [bytes([b]).decode("cp1252", "ignore") for b in range(0x80, 0x100)]
    for ch in latin + western + [c for c, _f in FOLDED]:
        sample = f"Ab{ch}cd {ch}x’{ch}"
        assert search.fold(sample).split() == folding._slow_fold(sample).split(), repr(ch)
        # Whoosh's ASCII index spells other scripts' letters (µ: "x3bc").
        spelled = search.fold(sample).encode("ascii", "ged_fold")
        assert search.fold_bytes(sample).split() == spelled.split(), repr(ch)
    for ch, folded in FOLDED:
        assert search.fold(ch).strip() == folded, repr(ch)

    # A word made of each character (digits keep either backend from stemming it).
    tokens = [(f"k{ch}{i:02d}q", f"k{folded}{i:02d}q") for i, (ch, folded) in enumerate(FOLDED)]
    deposit(world.staff, folder(world, "Divers"), "caracteres.txt",
            ("Table : " + " ".join(t for t, _f in tokens)).encode())
    deposit(world.staff, folder(world, "Divers"), "autre.txt", "Sans rapport".encode())
    run_jobs()
    for token, folded in tokens:
        assert found_names(world.staff, token) == {"caracteres.txt"}, token
        assert found_names(world.staff, folded) == {"caracteres.txt"}, folded
        assert found_names(world.staff, folded.upper()) == {"caracteres.txt"}, folded


def test_an_index_built_by_an_older_analysis_is_rebuilt(
        world, deposit, run_jobs, find, cfg, search_backend):
    from ged import search

    engine = search.backend()

    def make_stale():
        if search_backend == "postgres":
            from ged.db import db

            db.execute_sql("UPDATE search_version SET analysis = 1 WHERE firm_id = %s",
                           (world.firm.id,))
        else:
            from ged.search.whoosh import generations as search_whoosh

            (search_whoosh.current_dir(world.firm.id) / search_whoosh.ANALYSIS_FILE).write_text("1")
        engine.forget()
        assert engine.stale(world.firm.id)

    deposit(world.staff, folder(world, "Achats"), "bail.pdf", text_pdf("Quittance de loyer"))
    run_jobs()
    assert not engine.stale(world.firm.id)
    # A deposit into a stale index: its index job rebuilds the whole index.
    make_stale()
    deposit(world.staff, folder(world, "Achats"), "avenant.pdf", text_pdf("Avenant au bail"))
    run_jobs()
    assert not engine.stale(world.firm.id)
    assert {i["name"] for i in find(world.staff, "bail OU loyer")["items"]} == {
        "bail.pdf", "avenant.pdf"}
    # A search of a stale index: answered by it meanwhile, and a rebuild is asked for.
    make_stale()
    assert find(world.staff, "quittance")["total"] == 1
    run_jobs()
    assert not engine.stale(world.firm.id)
    assert find(world.staff, "quittance")["total"] == 1


def test_filters_company_folder_subtree_dates_type_and_pages(
        world, deposit, run_jobs, find, found_names):
    from ged.models import Document

    a_bank = folder(world, "Banque")
    deposit(world.admin, folder(world, "Banque", "Relevés bancaires"), "a-releve.pdf",
            text_pdf("commun releve"))
    deposit(world.admin, folder(world, "Achats"), "a-achat.pdf", text_pdf("commun achat"))
    deposit(world.admin, folder(world, "Achats"), "a-facture.pdf", facturx_pdf("commun"))
    old = deposit(world.admin, folder(world, "Ventes"), "a-2025.pdf", text_pdf("commun ancien"))
    Document.update(deposited_at="2025-06-30 10:00:00").where(Document.id == old.id).execute()
    deposit(world.admin, folder(world, "Achats", company=world.company_b), "b-achat.pdf",
            text_pdf("commun achat b"))
    run_jobs()
    # The backdated document was indexed before its date changed: index it again.
    Document.update(index_dirty=True).where(Document.id == old.id).execute()
    from ged import search

    search.index_dirty(world.firm.id)

    admin = world.admin
    assert len(found_names(admin, "commun")) == 5
    assert found_names(admin, "commun", company_id=world.company_b.id) == {"b-achat.pdf"}
    assert found_names(admin, "commun", folder_id=a_bank.id) == {"a-releve.pdf"}
    assert found_names(admin, "commun", type="invoice") == {"a-facture.pdf"}
    assert found_names(admin, "commun", **{"to": "2025-12-31"}) == {"a-2025.pdf"}
    assert "a-2025.pdf" not in found_names(admin, "commun", **{"from": "2026-01-01"})
    # Pages of two, following next_cursor, list every hit once.
    seen, cursor, pages = [], None, 0
    while True:
        page = find(admin, "commun", limit=2, **({"cursor": cursor} if cursor else {}))
        assert page["total"] == 5
        seen += [i["name"] for i in page["items"]]
        cursor, pages = page["next_cursor"], pages + 1
        if not cursor:
            break
    assert pages == 3 and sorted(seen) == sorted(found_names(admin, "commun"))


def test_bad_parameters_are_clear_4xx(world, other_world, find):
    assert find(world.admin, "", expect=400)["error"]["code"] == "empty_query"
    assert find(world.admin, "x", expect=400, **{"from": "hier"})["error"]["code"] == "invalid_date"
    assert find(world.admin, "x", expect=400, type="virus")["error"]["code"] == "invalid_type"
    assert find(world.admin, "x", expect=400, cursor="zz")["error"]["code"] == "invalid_cursor"
    assert find(world.admin, "a*", expect=400)["error"]["code"] == "prefix_too_short"
    assert find(world.admin, "x " * 300, expect=400)["error"]["code"] == "query_too_long"
    # Another company's or another firm's ids: 404, like any object one may not see.
    assert find(world.client_b, "x", expect=404, company_id=world.company_a.id)
    assert find(world.admin, "x", expect=404, company_id=other_world.company_a.id)
    achats_a = folder(world, "Achats")
    assert find(world.client_b, "x", expect=404, folder_id=achats_a.id)


def test_firm_only_folders_trash_and_moves_follow_in_the_index(
        client, world, deposit, run_jobs, found_names):
    from ged import documents, folders

    interne = folders.create_folder(world.staff.user, folder(world), "Interne", firm_only=True)
    deposit(world.staff, interne, "note-interne.pdf", text_pdf("mémo confidentiel"))
    doc = deposit(world.client_a, folder(world, "Achats"), "ticket.pdf",
                  text_pdf("ticket carburant"))
    run_jobs()
    assert found_names(world.staff, "confidentiel") == {"note-interne.pdf"}
    assert found_names(world.client_a, "confidentiel") == set()

    # To the trash: out of search for everyone; restored: back.
    r = client.delete(f"/api/v1/documents/{doc.id}", headers=world.client_a.headers)
    assert r.status_code == 200, r.get_json()
    run_jobs()
    assert found_names(world.client_a, "carburant") == set()
    assert found_names(world.admin, "carburant") == set()
    documents.restore(world.staff.user, documents.Document.get_by_id(doc.id))
    run_jobs()
    assert found_names(world.client_a, "carburant") == {"ticket.pdf"}

    # A moved document is found under its new folder only.
    frais = folder(world, "Notes de frais")
    documents.move(world.staff.user, documents.Document.get_by_id(doc.id), frais)
    run_jobs()
    assert found_names(world.staff, "carburant", folder_id=frais.id) == {"ticket.pdf"}
    assert found_names(world.staff, "carburant", folder_id=folder(world, "Achats").id) == set()
    # A folder moved under the firm-only folder takes its documents out of clients' reach.
    folders.move(world.staff.user, frais, interne)
    run_jobs()
    assert found_names(world.client_a, "carburant") == set()
    assert found_names(world.staff, "carburant", folder_id=interne.id) == {"ticket.pdf"}


def test_snippets_are_escaped_html_with_marked_hits(world, deposit, run_jobs, find):
    deposit(world.client_a, folder(world, "Divers"), "piege.txt",
            'Facture de <b>plomberie</b> & chauffage <a href=x onclick=alert(1)>'.encode())
    run_jobs()
    snippet = find(world.client_a, "plomberie")["items"][0]["snippet"]
    assert "<mark>plomberie</mark>" in snippet
    assert "<a " not in snippet and "&lt;a href=x onclick=alert(1)&gt;" in snippet
    assert "&lt;b&gt;" in snippet and "&amp; chauffage" in snippet


def lose_index(backend: str, cfg) -> None:
    """What losing the index means for each backend: Whoosh's directory deleted, the
    PostgreSQL backend's table dropped."""
    if backend == "postgres":
        from ged.db import db

        db.execute_sql("DROP TABLE search_entry")
    else:
        shutil.rmtree(cfg.data_dir / "index")


def test_reindex_after_deleting_the_index_restores_identical_results(
        world, deposit, run_jobs, find, cfg, monkeypatch, search_backend):
    from click.testing import CliRunner

    from ged.cli import cli

    for i, words in enumerate(["loyer bureau mars", "loyer entrepôt", "facture loyer avril",
                               "assurance bureau"]):
        deposit(world.staff, folder(world, "Achats"), f"doc{i}.pdf", text_pdf(words))
    run_jobs()
    queries = ["loyer", "bureau", '"loyer bureau"', "loy*", "assurance OU avril"]
    before = {q: find(world.admin, q) for q in queries}
    assert before["loyer"]["total"] == 3

    lose_index(search_backend, cfg)
    r = find(world.admin, "loyer", expect=503)
    assert r["error"]["code"] == "search_unavailable"

    monkeypatch.setenv("GED_DATA_DIR", str(cfg.data_dir))
    monkeypatch.setenv("DATABASE_URL", cfg.database_url)
    monkeypatch.setenv("REDIS_URL", cfg.redis_url)
    monkeypatch.setenv("SECRET_KEY", cfg.secret_key)
    monkeypatch.setenv("GED_SEARCH_BACKEND", search_backend)
    if search_backend == "whoosh":
        from ged.search.whoosh import build as search_whoosh

        # Build with one process per core, as a large firm's rebuild does.
        monkeypatch.setattr(search_whoosh, "PARALLEL_FROM", 2)
    result = CliRunner().invoke(cli, ["reindex", "--firm", world.firm.id])
    assert result.exit_code == 0, result.output
    assert "4 document(s) indexed" in result.output
    from ged import runtime

    runtime.setup(cfg)
    after = {q: find(world.admin, q) for q in queries}
    for q in queries:
        assert after[q] == before[q], (q, [(i["name"], i["score"]) for i in before[q]["items"]], [(i["name"], i["score"]) for i in after[q]["items"]])


def test_a_damaged_index_reports_an_error_then_heals(world, deposit, run_jobs, find, cfg,
                                                     search_backend):
    deposit(world.staff, folder(world, "Achats"), "a.pdf", text_pdf("quittance de loyer"))
    run_jobs()
    assert find(world.client_a, "quittance")["total"] == 1
    if search_backend == "postgres":
        lose_index(search_backend, cfg)  # under a running process
    else:
        # Garbage instead of the table of contents and the segment files.
        for path in (cfg.data_dir / "index").rglob("*"):
            if path.is_file():
                path.write_bytes(b"\x00garbage" * 10)
        from ged.search import whoosh as search_whoosh

        search_whoosh.forget()  # as a freshly started web process would
    r = find(world.client_a, "quittance", expect=503)
    assert r["error"]["code"] == "search_unavailable"
    run_jobs()  # the failed search asked the index job to rebuild from the database
    assert find(world.client_a, "quittance")["total"] == 1


def test_a_document_with_a_text_layer_is_searchable_once_its_jobs_ran(
        client, world, run_jobs, find):
    import io

    achats = folder(world, "Achats")
    r = client.post(f"/api/v1/folders/{achats.id}/documents",
                    data={"file": [(io.BytesIO(text_pdf("Devis toiture zinguerie")), "devis.pdf")]},
                    headers=world.client_a.headers, content_type="multipart/form-data")
    assert r.status_code == 201
    # Before the worker ran: not yet (the index is written by the index queue).
    run_jobs()
    assert [i["name"] for i in find(world.client_a, "zinguerie")["items"]] == ["devis.pdf"]


def test_a_crashed_writer_gives_its_documents_back(world, deposit, run_jobs, find, redis_conn):
    from ged import search
    from ged.models import Document

    doc = deposit(world.staff, folder(world, "Achats"), "a.pdf", text_pdf("bordereau"))
    run_jobs()
    # A writer claimed the document (flag cleared) and died before its commit.
    Document.update(index_dirty=False, name="bordereau-renomme.pdf").where(
        Document.id == doc.id).execute()
    redis_conn.sadd(f"ged:search:claimed:{world.firm.id}", doc.id)
    search.index_dirty(world.firm.id)
    assert [i["name"] for i in find(world.staff, "bordereau")["items"]] == ["bordereau-renomme.pdf"]


def test_the_search_page_shows_highlighted_results_to_who_may_see_them(
        client, world, deposit, run_jobs):
    import re

    deposit(world.client_a, folder(world, "Achats"), "facture-plombier.pdf",
            text_pdf("Intervention du plombier <urgent> pour une fuite"))
    run_jobs()

    def login(actor):
        client.get("/logout")
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        r = client.post("/login", data={"email": actor.user.email, "password": actor.password,
                                        "csrf_token": token})
        assert r.status_code == 302

    login(world.client_a)
    home = client.get("/recherche").get_data(as_text=True)
    assert 'href="/recherche"' in home and 'name="q"' in home
    page = client.get("/recherche", query_string={"q": "plombiers"}).get_data(as_text=True)
    assert "facture-plombier.pdf" in page and "1 document trouvé" in page
    assert "<mark>plombier</mark>" in page and "&lt;urgent&gt;" in page
    assert "<urgent>" not in page

    with client.session_transaction() as session:
        session.clear()
    login(world.client_b)
    page = client.get("/recherche", query_string={"q": "plombier"}).get_data(as_text=True)
    assert "facture-plombier.pdf" not in page and "Aucun document" in page


def test_a_firms_first_documents_not_yet_indexed_give_an_empty_answer_not_an_error(
        world, deposit, run_jobs, find):
    """Right after a new firm's first deposit, before the index job ran, a search finds
    nothing yet (as for any document still being read): 200 and no hit, never the 503 of
    a damaged index. Once the jobs ran, the document is found."""
    deposit(world.staff, folder(world, "Achats"), "premier.pdf", text_pdf("quittance premiere"))
    assert find(world.admin, "quittance")["total"] == 0
    run_jobs()
    assert find(world.admin, "quittance")["total"] == 1
