"""The search seam, whichever engine is behind it: one folding table (a letter typed
without its accent, or spelled in ASCII, finds the document on Whoosh and on
PostgreSQL alike, and both mark the word as it is written in the snippet), and a
firm whose first index is being built gets an empty answer, not an error."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.usefixtures("search_backend"),
              pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)]

# Letters the two engines once folded differently (Å, õ, ý), a ligature only the
# shared table spells (ǽ: PostgreSQL's unaccent leaves it as it is), capitals.
TEXT = ("Mesure en Ångström du laboratoire Kǽser ; relevé de Võru, reçu de Zlín-Ýpsilon. "
        "Łódź et Þórshöfn suivent.")
FOUND = {
    "angstrom": "Ångström",
    "ANGSTROM": "Ångström",
    "ångström": "Ångström",
    "kaeser": "Kǽser",
    "voru": "Võru",
    "ypsilon": "Ýpsilon",
}


def test_a_letter_without_its_accent_finds_and_marks_the_word_on_either_engine(
        world, deposit, run_jobs, find, found_names):
    folder = world.folder(world.company_a, "Dossier comptable annuel 2026", "Divers")
    deposit(world.staff, folder, "mesures.txt", TEXT.encode())
    deposit(world.staff, folder, "autre.txt", "Sans rapport".encode())
    run_jobs()
    for q, written in FOUND.items():
        result = find(world.staff, q)
        assert [i["name"] for i in result["items"]] == ["mesures.txt"], q
        assert f"<mark>{written}</mark>" in result["items"][0]["snippet"], (q, result)
    # Letters beyond Latin-1 are found all the same (marking them is engine-specific).
    for q in ("lodz", "thorshofn", "ŁÓDŹ"):
        assert found_names(world.staff, q) == {"mesures.txt"}, q


def test_a_search_while_the_first_index_is_built_answers_empty_then_finds(
        world, deposit, run_jobs, find):
    from ged.models import Document
    from ged.search import indexing

    folder = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    doc = deposit(world.staff, folder, "bail.txt", "Quittance de loyer".encode())
    # The writer has taken the firm's documents and is building its first index.
    indexing._claim(world.firm.id, [doc.id])
    assert not Document.get_by_id(doc.id).index_dirty
    assert find(world.staff, "quittance") == {"total": 0, "items": [], "next_cursor": None}
    indexing._release(world.firm.id)
    indexing._mark_dirty([doc.id])  # as a writer that stopped short gives them back
    run_jobs()
    assert [i["name"] for i in find(world.staff, "quittance")["items"]] == ["bail.txt"]
