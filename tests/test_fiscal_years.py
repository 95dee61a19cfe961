"""The new fiscal year: a preview changes nothing; the run gives each client company
its annual tree and carries last year's switches; a second run creates nothing."""

from __future__ import annotations

import pytest

from ged.models import Folder, Switch


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_opening_2027_previews_then_runs_once(client, world, linked):
    from ged import switches

    http_conn, _ = linked
    achats_2026 = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    switches.set_switch(world.staff.user, achats_2026, http_conn, "on")
    folders_before = Folder.select().count()
    body = {"year": 2027, "dry_run": True}
    preview = client.post("/api/v1/fiscal-years", headers=world.admin.headers, json=body)
    assert preview.status_code == 200
    p = preview.get_json()
    assert (p["companies"], p["folders_created"], p["switches_carried"]) == (2, 20, 1)
    assert Folder.select().count() == folders_before
    run = client.post("/api/v1/fiscal-years", headers=world.admin.headers, json={"year": 2027})
    r = run.get_json()
    assert (r["companies"], r["folders_created"], r["switches_carried"]) == (2, 20, 1)
    achats_2027 = world.folder(world.company_a, "Dossier comptable annuel 2027", "Achats")
    assert Switch.get((Switch.folder == achats_2027.id)
                      & (Switch.connection == http_conn.id)).state == "on"
    again = client.post("/api/v1/fiscal-years", headers=world.admin.headers,
                        json={"year": 2027}).get_json()
    assert (again["companies"], again["folders_created"], again["switches_carried"]) == (0, 0, 0)
    assert {s["reason"] for s in again["skipped"]} == {"already_open"}
    assert client.post("/api/v1/fiscal-years", headers=world.staff.headers,
                       json={"year": 2027}).status_code == 403


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_the_page_runs_it_as_a_job_with_its_progress(web, world, run_jobs):
    admin = web(world.admin)
    page = admin.post("/admin/exercice", {"annee": "2027", "action": "preview"})
    text = page.get_data(as_text=True)
    assert "Ouvrir l'exercice 2027" in text and "dossiers à créer" in text
    started = admin.post("/admin/exercice", {"annee": "2027", "action": "run"})
    assert started.status_code == 302
    url = started.headers["Location"]
    run_jobs()
    state = admin.get(url, headers={"Accept": "application/json"}).get_json()
    assert state["status"] == "done" and state["result"]["folders_created"] == 20
    assert "Terminé." in admin.get(url).get_data(as_text=True)


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_two_runs_at_once_create_each_folder_once(world, linked):
    """Two admins (or a form posted twice) open 2027 at the same moment: each folder
    and each carried switch exists once."""
    import threading

    from ged import fiscal_years, switches
    from ged.db import db

    http_conn, _ = linked
    achats_2026 = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    switches.set_switch(world.staff.user, achats_2026, http_conn, "on")
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(fiscal_years.open_year(world.admin.user, 2027))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r["folders_created"] for r in results) == 20
    assert sum(r["switches_carried"] for r in results) == 1
    names = [(f.company_id, f.parent_id, f.name)
             for f in Folder.select().where(Folder.trashed_at.is_null())]
    assert len(names) == len(set(names))
    achats_2027 = world.folder(world.company_a, "Dossier comptable annuel 2027", "Achats")
    assert Switch.select().where(Switch.folder == achats_2027.id).count() == 1
