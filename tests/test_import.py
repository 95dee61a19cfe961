"""Bulk import: a directory tree mirrored into a company's folders, every file
deposited with channel "import", resumable, with a report of what was refused."""

from __future__ import annotations

import os

from conftest import png_bytes, text_pdf


def make_tree(root):
    """An accountant's export of a client's documents, with some litter in it."""
    files = {
        "2025/Achats/facture-001.pdf": text_pdf("Facture 001"),
        "2025/Achats/ticket.png": png_bytes(),
        "2025/Ventes/vente-001.pdf": text_pdf("Vente 001"),
        "2025/Ventes/Export clients/clients.csv": b"nom;ville\nDupont;Lyon\n",
        "2025/Ventes/programme.pdf": b"MZ\x90\x00" + b"\x00" * 400,
        "2025/Ventes/vide.txt": b"",
        "lisez-moi.txt": "Pièces de l'exercice 2025\n".encode(),
        "bad:dir/dedans.pdf": text_pdf("never"),
        ".DS_Store": b"\x00\x00\x00\x01Bud1",
        "2025/Thumbs.db": b"junk",
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "2025" / "Achats" / "lien.pdf").symlink_to("/etc/passwd")
    return files


def test_import_mirrors_the_tree_and_reports_refusals(app, world, tmp_path, cfg):
    from ged import bulk_import, folders
    from ged.models import Document, Folder

    src = tmp_path / "export-client"
    files = make_tree(src)
    target = world.folder(world.company_a, "Dossier comptable annuel 2026", "Divers")
    report = bulk_import.import_tree(src, world.company_a, target)

    assert report.deposited == 5 and report.skipped == 0 and report.ignored == 2
    refused = dict(report.refused)
    assert set(refused) == {"2025/Ventes/programme.pdf", "2025/Ventes/vide.txt",
                            "2025/Achats/lien.pdf", "bad:dir/"}
    assert "empty" in refused["2025/Ventes/vide.txt"]
    assert "symbolic link" in refused["2025/Achats/lien.pdf"]

    # The tree below Divers is the directory tree; every document is channel import.
    paths = {}
    for doc in Document.select().where(Document.company == world.company_a.id):
        folder = Folder.get_by_id(doc.folder_id)
        paths[folders.display_path(folder).split("/Divers", 1)[1] + "/" + doc.name] = doc
    assert set(paths) == {"/2025/Achats/facture-001.pdf", "/2025/Achats/ticket.png",
                          "/2025/Ventes/vente-001.pdf", "/2025/Ventes/Export clients/clients.csv",
                          "/lisez-moi.txt"}
    assert {d.channel for d in paths.values()} == {"import"}
    assert {d.deposited_by_label for d in paths.values()} == {bulk_import.LABEL}
    assert paths["/2025/Achats/facture-001.pdf"].size == len(files["2025/Achats/facture-001.pdf"])


def test_import_resumes_and_the_command_reports(app, world, tmp_path, ged_cli):
    """An import interrupted half-way is run again: what is there is skipped, the rest
    deposited; the command prints the report and fails when something was refused."""
    from ged import bulk_import
    from ged.models import Document

    src = tmp_path / "scans"
    (src / "Banque").mkdir(parents=True)
    for i in range(6):
        (src / "Banque" / f"releve-{i}.pdf").write_bytes(text_pdf(f"Relevé {i}"))
    # An interrupted first run: only three of the six statements made it.
    first = bulk_import.import_tree(src / "Banque", world.company_a,
                                    world.folder(world.company_a))
    assert first.deposited == 6
    Document.delete().where(Document.name.in_(["releve-3.pdf", "releve-4.pdf",
                                               "releve-5.pdf"])).execute()
    banque_root = world.folder(world.company_a)

    result = ged_cli("import", src / "Banque", "--company", world.company_a.id,
                     "--folder", banque_root.id)
    assert result.returncode == 0, result.stderr
    assert "3 deposited, 3 already there (skipped), 0 refused" in result.stdout
    assert Document.select().where(Document.folder == banque_root.id).count() == 6

    (src / "Banque" / "bad.pdf").write_bytes(b"<html><script>alert(1)</script></html>")
    result = ged_cli("import", src, "--company", world.company_a.id)
    assert result.returncode == 1
    assert "refused: Banque/bad.pdf:" in result.stdout
    assert "6 deposited" in result.stdout  # into a new "Banque" folder under the root
    os.remove(src / "Banque" / "bad.pdf")
    again = bulk_import.import_tree(src, world.company_a)
    assert (again.deposited, again.skipped, again.refused) == (0, 6, [])
