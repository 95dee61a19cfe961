"""Comments between the firm and the client, internal notes that never reach a client,
notification preferences, the daily digest, rejections told at once, and the one-click
unsubscribe (RFC 8058): real SMTP sink, real RQ worker, injected clock."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from conftest import text_pdf
from fixtures.web import FIRM_ONLY

# The data layer of each test runs on SQLite and on PostgreSQL (GED_TEST_DATABASE_URL).
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)

NOTE = "Note-interne-secrete-9Z"


def _doc(world, name="facture.pdf", actor=None):
    from ged import documents, runtime
    from ged.blobs import stage_bytes

    cfg = runtime.config()
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    staged = stage_bytes(text_pdf(name), cfg.data_dir, cfg.max_upload_bytes)
    return documents.deposit((actor or world.client_a).user, achats,
                             [documents.Upload(name, staged)], "api")[0]


@BOTH
def test_thread_and_internal_notes_never_reach_a_client(app, client, web, world, smtp_sink,
                                                        run_jobs):
    doc = _doc(world)
    h_staff, h_client = world.staff.headers, world.client_a.headers
    url = f"/api/v1/documents/{doc.id}/comments"
    assert client.post(url, json={"body": "Pouvez-vous envoyer la page 2 ?"},
                       headers=h_staff).status_code == 201
    assert client.post(url, json={"body": f"{NOTE} : fournisseur douteux", "internal": True},
                       headers=h_staff).status_code == 201
    # A client may not write an internal note.
    assert client.post(url, json={"body": "x", "internal": True},
                       headers=h_client).status_code == 403
    assert client.post(url, json={"body": "Voici la page 2."}, headers=h_client).status_code == 201
    firm_view = client.get(url, headers=h_staff).get_json()["items"]
    assert [c["internal"] for c in firm_view] == [False, True, False]
    client_view = client.get(url, headers=h_client).get_json()["items"]
    assert [c["body"] for c in client_view] == ["Pouvez-vous envoyer la page 2 ?", "Voici la page 2."]
    run_jobs()
    # Both sides are told; the note reaches firm users only.
    client_mails = smtp_sink.to(world.client_a.user.email)
    assert any("Pouvez-vous envoyer la page 2" in m.raw.decode("utf-8", "replace")
               for m in client_mails)
    staff_mails = smtp_sink.to(world.staff.user.email)
    assert any("Voici la page 2" in m.message.get_body(("plain",)).get_content()
               for m in staff_mails)
    admin_mails = smtp_sink.to(world.admin.user.email)
    assert any(NOTE in m.message.get_body(("plain",)).get_content() for m in admin_mails)
    # Nothing a client can reach holds the note: API, pages, mail, search, export, audit.
    c = web(world.client_a)
    reached = [client.get(f"/api/v1/documents/{doc.id}", headers=h_client),
               client.get(url, headers=h_client),
               client.get("/api/v1/search", query_string={"q": "douteux"}, headers=h_client),
               client.get(f"/api/v1/folders/{doc.folder_id}", headers=h_client),
               client.get(f"/api/v1/folders/{doc.folder_id}/zip", headers=h_client),
               c.get(f"/documents/{doc.id}"), c.get(f"/dossiers/{doc.folder_id}"),
               c.get("/recherche?q=douteux"), c.get("/demandes"), c.get("/notifications")]
    for resp in reached:
        assert resp.status_code < 500
        assert NOTE.encode() not in resp.get_data()
    assert all(NOTE.encode() not in m.raw for m in client_mails)
    assert "Pouvez-vous envoyer la page 2" in c.get(f"/documents/{doc.id}").get_data(as_text=True)
    staff_page = web(world.staff).get(f"/documents/{doc.id}").get_data(as_text=True)
    assert NOTE in staff_page and "Note interne" in staff_page
    # The web form: a client's "internal" box is ignored, the message is public.
    c.post(f"/documents/{doc.id}/commentaires", {"body": "Merci", "internal": "1"})
    assert client.get(url, headers=h_staff).get_json()["items"][-1]["internal"] is False


@BOTH
def test_an_export_for_the_client_holds_no_internal_note(app, client, web, world, tmp_path,
                                                         ged_cli):
    """The company's archive the firm hands back to its client (the API, the page and
    `ged export` alike) holds the documents, the thread's public side is not lost in
    the audit trail, and no internal note: not its text, not in any file of the ZIP."""
    import json
    import zipfile

    doc = _doc(world, "facture-dupont.pdf")
    url = f"/api/v1/documents/{doc.id}/comments"
    h = world.staff.headers
    assert client.post(url, json={"body": "Merci pour la facture."}, headers=h).status_code == 201
    assert client.post(url, json={"body": f"{NOTE} : à vérifier avec l'expert",
                                  "internal": True}, headers=h).status_code == 201
    archives = {
        "api": client.get(f"/api/v1/companies/{world.company_a.id}/export", headers=h).data,
        "page": web(world.staff).get(f"/entreprises/{world.company_a.id}/export").get_data(),
    }
    out = tmp_path / "cli.zip"
    result = ged_cli("export", "--company", world.company_a.id, out)
    assert result.returncode == 0, result.stderr
    archives["cli"] = out.read_bytes()
    for how, data in archives.items():
        assert data[:2] == b"PK", how
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = {name: zf.read(name) for name in zf.namelist()}
        manifest = json.loads(members["manifest.json"])
        assert [e["name"] for e in manifest["documents"]] == ["facture-dupont.pdf"], how
        trail = [json.loads(line) for line in members["audit.jsonl"].splitlines()]
        assert "comment.added" in {e["action"] for e in trail}, how
        for name, content in members.items():
            assert NOTE.encode() not in content, (how, name)
            assert "vérifier avec l'expert".encode() not in content, (how, name)


@BOTH
def test_preferences_defaults_and_changes(app, client, world):
    me = "/api/v1/me/notifications"
    assert client.get(me, headers=world.staff.headers).get_json() == {
        "new_documents": "daily", "requests": True, "comments": True, "rejections": False,
        "delivery_failures": "daily"}
    assert client.get(me, headers=world.admin.headers).get_json()["delivery_failures"] == "immediate"
    prefs = client.get(me, headers=world.client_a.headers).get_json()
    assert prefs == {"new_documents": "off", "requests": True, "comments": True, "rejections": True}
    resp = client.put(me, json={"new_documents": "immediate", "comments": False},
                      headers=world.client_a.headers)
    assert resp.get_json()["new_documents"] == "immediate" and resp.get_json()["comments"] is False
    # A client cannot choose delivery failures (the firm's business); bad values are 400.
    assert client.put(me, json={"delivery_failures": "immediate"},
                      headers=world.client_a.headers).status_code == 400
    assert client.put(me, json={"new_documents": "weekly"},
                      headers=world.staff.headers).status_code == 400


@BOTH
def test_daily_digest_groups_a_hundred_deposits_into_one_message(app, world, smtp_sink,
                                                                 run_jobs):
    """The staff member takes new documents in a daily digest (the default): a hundred
    deposits make one message the next morning, and a second pass makes no other."""
    from ged import documents, notifications, runtime
    from ged.models import Document, Notification
    from ged.blobs import stage_bytes

    cfg = runtime.config()
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    for i in range(10):
        uploads = [documents.Upload(f"ticket-{i}-{j}.pdf", stage_bytes(
            text_pdf(f"Ticket {i} {j}"), cfg.data_dir, cfg.max_upload_bytes)) for j in range(10)]
        documents.deposit(world.client_a.user, achats, uploads, "web")
    run_jobs(["default"])
    assert smtp_sink.to(world.staff.user.email) == []  # nothing at once
    waiting = Notification.select().where((Notification.user == world.staff.user.id)
                                          & (Notification.status == "daily")).count()
    assert waiting == 100
    tomorrow = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    morning = tomorrow.astimezone(notifications.PARIS).replace(hour=8, minute=0)
    made = notifications.digest_pass(morning)
    assert made >= 1  # the staff member's, and the admin's
    assert notifications.digest_pass(morning + dt.timedelta(hours=3)) == 0
    run_jobs(["default"])
    digests = smtp_sink.to(world.staff.user.email)
    assert len(digests) == 1
    text = digests[0].message.get_body(("plain",)).get_content()
    assert "Nouveaux documents (100)" in text
    assert "ticket-0-0.pdf" in text and "et 70 autre(s)" in text
    assert "100 nouveautés" in digests[0].message["Subject"]
    html = digests[0].message.get_body(("html",)).get_content()
    assert "Cabinet Un" in html and "#1f4e79" in html
    # Each item links straight to its document's page, not to the home page.
    first = Document.get(Document.name == "ticket-0-0.pdf")
    base = runtime.config().public_url
    text = text.replace("\r\n", "\n")
    assert f"- A of Cabinet Un : ticket-0-0.pdf\n  {base}/documents/{first.id}" in text
    assert text.count(f"{base}/documents/") == 30  # the lines shown; the rest is counted
    assert f"Voir : {base}/\n" not in text
    assert f'<a href="{base}/documents/{first.id}"' in html
    assert re.search(r'<a href="[^"]*/documents/%s"[^>]*>A of Cabinet Un : ticket-0-0\.pdf</a>'
                     % first.id, html)
    assert f'href="{base}/"' not in html


@BOTH
def test_rejection_tells_the_client_at_once_with_the_reason(app, world, smtp_sink, run_jobs,
                                                            webhook_receiver, drain_deliveries):
    from ged import deliveries, integrations, switches
    from ged.models import Connection, Delivery

    admin = world.admin.user
    tool = integrations.install(admin, world.firm, preset="webhook", name="Pré-compta")
    conn, _ = integrations.connect(admin, world.company_a, tool, name="Pré-compta",
                                   url=webhook_receiver.hook())
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    switches.set_switch(admin, achats, conn, "on")
    doc = _doc(world, "ticket-flou.pdf")
    drain_deliveries()
    delivery = Delivery.get(Delivery.document == doc.id)
    deliveries.record_verdict(delivery, Connection.get_by_id(conn.id), "rejected",
                               "Montant illisible, merci de rescanner")
    deliveries.record_verdict(Delivery.get_by_id(delivery.id), Connection.get_by_id(conn.id),
                               "rejected", "Montant illisible, merci de rescanner")
    run_jobs(["default"])
    told = [m for m in smtp_sink.to(world.client_a.user.email)
            if "À remplacer" in m.message["Subject"]]
    assert len(told) == 1  # never twice for one event
    text = told[0].message.get_body(("plain",)).get_content()
    assert "Montant illisible, merci de rescanner" in text
    assert f"/documents/{doc.id}" in text
    assert not FIRM_ONLY.search(told[0].raw.replace(b"Pr\xc3\xa9-compta", b""))
    assert b"Pr\xc3\xa9-compta" not in told[0].raw and "Pré-compta" not in text


@BOTH
def test_one_click_unsubscribe(app, client, world, smtp_sink, run_jobs):
    """The List-Unsubscribe URL of a message: a GET changes nothing, a POST without
    session or form token (as a mail client sends it) turns the topic off."""
    from ged import notifications

    resp = client.post(f"/api/v1/companies/{world.company_a.id}/requests",
                       json={"title": "Bilan"}, headers=world.staff.headers)
    assert resp.status_code == 201
    run_jobs(["default"])
    [mail] = smtp_sink.to(world.client_a.user.email)
    url = re.fullmatch(r"<(.+)>", mail.message["List-Unsubscribe"]).group(1)
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    path = url.split("://", 1)[1].split("/", 1)[1]
    anonymous = app.test_client()
    page = anonymous.get("/" + path)
    assert page.status_code == 200 and "Me désabonner" in page.get_data(as_text=True)
    assert notifications.preferences(world.client_a.user)["requests"] is True
    done = anonymous.post("/" + path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200, done.get_data(as_text=True)[:300]
    assert notifications.preferences(world.client_a.user)["requests"] is False
    # A tampered link does nothing.
    assert anonymous.post("/" + path[:-3] + "abc").status_code == 404
    client.post(f"/api/v1/companies/{world.company_a.id}/requests", json={"title": "Liasse"},
                headers=world.staff.headers)
    run_jobs(["default"])
    assert len(smtp_sink.to(world.client_a.user.email)) == 1


@BOTH
def test_relay_failure_is_retried_and_sent_once(app, world, smtp_sink, run_jobs):
    from ged import notifications
    from ged.models import Notification

    smtp_sink.refuse("451 4.3.0 Try later")
    ids = notifications.notify([notifications.Message(
        world.client_a.user, "requests", "test:event:1", "Essai", "Corps", None)])
    assert notifications.notify([notifications.Message(
        world.client_a.user, "requests", "test:event:1", "Essai", "Corps", None)]) == []
    notifications.send(ids[0])
    row = Notification.get_by_id(ids[0])
    assert row.status == "pending" and row.attempts == 1 and "451" in row.last_error
    notifications.send(ids[0])
    assert Notification.get_by_id(ids[0]).status == "sent"
    assert notifications.send(ids[0]) == "skipped"
    assert len(smtp_sink.to(world.client_a.user.email)) == 1


@BOTH
def test_the_copy_for_the_client_leaves_out_what_only_the_firm_sees(
        app, client, web, world, tmp_path, ged_cli, webhook_receiver):
    """« Exporter pour le client » (API ``for_client=true``, the page, ``ged export
    --for-client``): the client's documents and the events a client may read, but no
    firm-only folder, no tool, switch or delivery, no internal note; the firm's own
    export keeps them all."""
    import json
    import zipfile

    from ged import documents, folders, integrations, runtime, switches
    from ged.blobs import stage_bytes

    admin = world.admin.user
    tool = integrations.install(admin, world.firm, preset="webhook", name="Outil secret")
    conn, _ = integrations.connect(admin, world.company_a, tool, name="Outil secret",
                                   url=webhook_receiver.hook())
    achats = world.folder(world.company_a, "Dossier comptable annuel 2026", "Achats")
    switches.set_switch(admin, achats, conn, "on")
    doc = _doc(world, "facture-dupont.pdf")
    revision = folders.create_folder(world.staff.user, folders.root_of(world.company_a),
                                     "Révision du cabinet", firm_only=True)
    cfg = runtime.config()
    documents.deposit(world.staff.user, revision, [documents.Upload(
        "feuille-de-travail.pdf", stage_bytes(text_pdf("Feuille de travail"), cfg.data_dir,
                                              cfg.max_upload_bytes))], "web")
    h = world.staff.headers
    url = f"/api/v1/documents/{doc.id}/comments"
    assert client.post(url, json={"body": NOTE, "internal": True}, headers=h).status_code == 201

    base = f"/api/v1/companies/{world.company_a.id}/export"
    out = tmp_path / "client.zip"
    assert ged_cli("export", "--company", world.company_a.id, "--for-client",
                   out).returncode == 0
    copies = {
        "api": client.get(base, query_string={"for_client": "true"}, headers=h).data,
        "page": web(world.staff).get(f"/entreprises/{world.company_a.id}/export?pour=client")
        .get_data(),
        "cli": out.read_bytes(),
    }
    firm = client.get(base, headers=h).data

    def opened(data):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = {name: zf.read(name) for name in zf.namelist()}
        names = [e["name"] for e in json.loads(members["manifest.json"])["documents"]]
        trail = [json.loads(line) for line in members["audit.jsonl"].splitlines()]
        return members, names, trail

    from ged.models import AuditEvent

    firm_only = {e.seq for e in AuditEvent.select().where(
        (AuditEvent.company_id == world.company_a.id) & (AuditEvent.firm_only == True))}  # noqa: E712
    _members, names, trail = opened(firm)
    assert sorted(names) == ["facture-dupont.pdf", "feuille-de-travail.pdf"]
    assert {"switch.set", "connection.created"} <= {e["action"] for e in trail}
    for how, data in copies.items():
        members, names, trail = opened(data)
        assert names == ["facture-dupont.pdf"], how
        assert not any(name.startswith("Révision") for name in members), how
        actions = {e["action"] for e in trail}
        assert "document.deposited" in actions or "document.created" in actions, (how, actions)
        assert not actions & {"switch.set", "connection.created", "integration.installed",
                              "comment.internal"}, (how, actions)
        assert firm_only and not firm_only & {e["seq"] for e in trail}, how
        for name, content in members.items():
            assert b"Outil secret" not in content, (how, name)
            assert NOTE.encode() not in content, (how, name)
