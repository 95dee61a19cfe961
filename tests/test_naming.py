"""Names a firm must tell apart: one install per catalog tool, one name per
connection of a company; a first drop address replaces nothing."""

from __future__ import annotations


def test_a_second_install_and_a_duplicate_connection_name_are_refused(client, world, linked):
    headers = world.admin.headers
    r = client.post("/api/v1/integrations", headers=headers,
                    json={"preset": "jefacture", "name": "JeFacture bis"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "preset_installed"
    http_conn, _ = linked
    r = client.post(f"/api/v1/companies/{world.company_a.id}/connections", headers=headers,
                    json={"integration_id": http_conn.integration_id, "name": " pré-compta ",
                          "url": "https://outil.example/hook"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "connection_name_taken"
    # The same name in another company is fine.
    r = client.post(f"/api/v1/companies/{world.company_b.id}/connections", headers=headers,
                    json={"integration_id": http_conn.integration_id, "name": "Pré-compta",
                          "url": "https://outil.example/hook"})
    assert r.status_code == 201


def test_the_first_folder_drop_address_replaces_nothing(web, world):
    staff = web(world.staff)
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    url = f"/entreprises/{world.company_a.id}/adresse-de-depot"
    first = staff.post(url, {"folder_id": achats.id}, follow_redirects=True).get_data(as_text=True)
    assert "Nouvelle adresse de dépôt" in first and "L'ancienne ne fonctionne plus" not in first
    second = staff.post(url, {"folder_id": achats.id}, follow_redirects=True).get_data(as_text=True)
    assert "L&#39;ancienne ne fonctionne plus" in second or "L'ancienne ne fonctionne plus" in second


def test_the_journal_reads_as_sentences_with_names_and_filters(web, world, linked):
    from ged import switches

    http_conn, _ = linked
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    switches.set_switch(world.staff.user, achats, http_conn, "on")
    staff = web(world.staff)
    url = f"/entreprises/{world.company_a.id}/journal"
    page = staff.get(url).get_data(as_text=True)
    assert "Staff a activé l&#39;envoi vers Pré-compta sur Achats" in page
    assert "switch.set" not in page and "effective" not in page
    only_docs = staff.get(url + "?type=documents").get_data(as_text=True)
    assert "activé l&#39;envoi" not in only_docs
    mine = staff.get(url + f"?qui={world.staff.user.id}").get_data(as_text=True)
    assert "activé l&#39;envoi" in mine
    future = staff.get(url + "?du=2099-01-01").get_data(as_text=True)
    assert "Aucun événement." in future


def test_the_invite_link_of_a_company_preselects_it(web, world):
    admin = web(world.admin)
    company_page = admin.get(f"/admin/entreprises/{world.company_b.id}").get_data(as_text=True)
    assert f"entreprise={world.company_b.id}" in company_page
    page = admin.get(f"/admin/utilisateurs?entreprise={world.company_b.id}&role=client")
    html = page.get_data(as_text=True)
    assert f'<option value="{world.company_b.id}" selected>' in html
    assert '<option value="client" selected>' in html
