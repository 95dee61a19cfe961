"""A document's status tells the truth (issue 16): a tool's rejection shows the client
« À remplacer » with the tool's words (never its name) and a « Remplacer » button; a
replacement goes through the one deposit path, so the folder's switches send it; the
firm's dashboard lists what waits for a replacement; a folder sent twice by hand sends
nothing twice unless asked. And a deposit's reply never depends on another firm's (or
company's) files (issue 17)."""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
import secrets
import threading

import pytest

from conftest import text_pdf
from fixtures.web import FIRM_ONLY

ANNUAL = "Dossier comptable annuel 2026"
REASON = "Montant TTC illisible : merci de redéposer la facture"


def tool_says(client, delivery_id: str, secret: str, status: str, message: str | None = None):
    """The linked tool posts its verdict, signed with the standardwebhooks package."""
    from standardwebhooks.webhooks import Webhook

    body = json.dumps({"status": status, **({"message": message} if message else {})})
    now = dt.datetime.now(dt.timezone.utc)
    msg_id = "msg_" + secrets.token_hex(8)
    return client.post(f"/api/v1/deliveries/{delivery_id}/status", data=body, headers={
        "Content-Type": "application/json", "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body)})


def text_of(response) -> str:
    """A page's HTML with entities decoded and white space folded."""
    return html.unescape(re.sub(r"\s+", " ", response.get_data(as_text=True)))


def _hook(firm_tools, world, receiver, name="Outil de pré-compta", path="/hook"):
    conn = firm_tools.connect(world.company_a, firm_tools.install("webhook", name),
                              url=receiver.hook(path))
    receiver.secrets[name] = conn["secret"]
    return conn


def _doc(client, actor, doc_id) -> dict:
    resp = client.get(f"/api/v1/documents/{doc_id}", headers=actor.headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def _latest(firm_tools, doc_id, conn) -> dict:
    return [d for d in firm_tools.deliveries(doc_id) if d["connection_id"] == conn["id"]][-1]


@pytest.fixture
def rejected(app, client, world, firm_tools, webhook_receiver, drain_deliveries):
    """Achats of company A forwards to a webhook tool; the client's invoice was accepted,
    then the tool rejected it with its reason over the signed status route."""
    conn = _hook(firm_tools, world, webhook_receiver)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    firm_tools.switch(achats, conn, "on")
    doc = firm_tools.upload(achats, "facture-mars.pdf", text_pdf("Facture mars 2026"))
    assert doc["status"] == "sending"  # the switch took it: on its way
    drain_deliveries()
    assert _doc(client, world.client_a, doc["id"])["status"] == "validated"
    delivery = _latest(firm_tools, doc["id"], conn)
    assert delivery["status"] == "accepted"
    resp = tool_says(client, delivery["id"], conn["secret"], "rejected", REASON)
    assert resp.status_code == 200, resp.get_json()
    return {"conn": conn, "doc": doc, "achats": achats, "delivery": delivery}


def test_a_rejected_document_asks_the_client_for_a_replacement_and_names_no_tool(
        client, world, web, rejected):
    doc, achats = rejected["doc"], rejected["achats"]
    for actor in (world.client_a, world.staff):
        seen = _doc(client, actor, doc["id"])
        assert (seen["status"], seen["status_reason"]) == ("rejected", REASON)
        assert seen["replaces_id"] is None and seen["replaced_by_id"] is None
    listed = client.get(f"/api/v1/folders/{achats.id}", headers=world.client_a.headers).get_json()
    assert [(d["status"], d["status_reason"]) for d in listed["documents"]] == [("rejected", REASON)]

    # The client's pages: « À remplacer », the tool's words and a file form; no « Validé »,
    # no trace of the tool.
    browser = web(world.client_a)
    for url in (f"/dossiers/{achats.id}", f"/documents/{doc['id']}"):
        resp = browser.get(url)
        page = text_of(resp)
        assert "À remplacer" in page and REASON in page and "Validé" not in page, url
        assert f'action="/documents/{doc["id"]}/remplacer"' in resp.get_data(as_text=True)
        assert 'enctype="multipart/form-data"' in resp.get_data(as_text=True)
        assert "Remplacer" in page
        found = FIRM_ONLY.search(resp.get_data())
        assert found is None, (url, found.group(0))
        assert rejected["conn"]["name"] not in page

    # The firm sees which tool said it, on the document page and on the dashboard.
    staff = web(world.staff)
    page = text_of(staff.get(f"/documents/{doc['id']}"))
    assert f"Rejeté par « {rejected['conn']['name']} »" in page and REASON in page
    board = text_of(staff.get("/envois"))
    section = board[board.index("À remplacer"):board.index("Filtrer")]
    assert "facture-mars.pdf" in section and REASON in section
    assert rejected["conn"]["name"] in section and "A of Cabinet Un" in section


def test_the_client_replaces_it_from_the_page_and_the_switch_sends_the_new_one(
        app, client, world, web, firm_tools, rejected, drain_deliveries):
    doc, achats = rejected["doc"], rejected["achats"]
    browser = web(world.client_a)
    browser.get(f"/documents/{doc['id']}")
    resp = browser.post(f"/documents/{doc['id']}/remplacer",
                        {"file": (io.BytesIO(text_pdf("Facture mars 2026, lisible")),
                                  "facture-mars-v2.pdf")},
                        content_type="multipart/form-data")
    assert resp.status_code == 302, text_of(resp)[:300]
    new_id = resp.headers["Location"].rsplit("/", 1)[1]
    new = _doc(client, world.client_a, new_id)
    assert new["replaces_id"] == doc["id"] and new["name"] == "facture-mars-v2.pdf"
    assert new["folder_id"] == achats.id and new["channel"] == "web"
    old = _doc(client, world.client_a, doc["id"])
    assert (old["status"], old["replaced_by_id"]) == ("replaced", new_id)
    assert old["trashed_at"] is None  # kept, under its retention

    drain_deliveries()  # the folder's switch sends the replacement
    assert [d["status"] for d in firm_tools.deliveries(new_id)] == ["accepted"]
    assert _doc(client, world.client_a, new_id)["status"] == "validated"
    page = text_of(browser.get(f"/dossiers/{achats.id}"))
    assert "À remplacer" not in page and "Remplacé" in page and "Validé" in page
    assert "Ce document remplace" in text_of(browser.get(f"/documents/{new_id}"))
    assert "À remplacer" not in text_of(web(world.staff).get("/envois"))

    # A replaced document is not replaced twice: its newest version is.
    resp = browser.post(f"/documents/{doc['id']}/remplacer",
                        {"file": (io.BytesIO(text_pdf("Encore")), "encore.pdf")},
                        content_type="multipart/form-data", follow_redirects=True)
    assert "déjà été remplacé" in text_of(resp)


@pytest.mark.browser
def test_in_a_browser_the_client_reads_the_reason_and_replaces_the_file(
        people, world, rejected, drain_deliveries):
    from playwright.sync_api import expect

    from conftest import PASSWORD

    person = people(record=True)
    person.login(world.client_a.user.email, PASSWORD)
    page = person.page
    page.goto(f"/dossiers/{rejected['achats'].id}")
    row = page.locator("#documents tbody tr").filter(has_text="facture-mars.pdf")
    expect(row.locator(".badge")).to_have_text("À remplacer")
    expect(row.locator(".status-reason")).to_have_text(REASON)
    person.shot("status-01-client-to-replace")
    row.get_by_role("link", name="facture-mars.pdf").click()
    expect(page.locator(".doc-badges .badge")).to_have_text("À remplacer")
    page.wait_for_load_state()  # its scripts run once the styles are in, as a person waits
    page.locator(".to-replace input[type=file]").set_input_files(files=[{
        "name": "facture-mars-corrigee.pdf", "mimeType": "application/pdf",
        "buffer": text_pdf("Facture mars corrigée")}])
    # The form speaks French: the chosen file is named in its label, no browser button.
    expect(page.locator(".to-replace .replace-choose")).to_contain_text(
        "facture-mars-corrigee.pdf")
    expect(page.locator(".to-replace .replace-input")).to_have_css("opacity", "0")
    page.locator(".to-replace").get_by_role("button", name="Remplacer").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("facture-mars-corrigee.pdf")
    expect(page.get_by_role("status")).to_contain_text("est remplacé par")
    expect(page.locator(".notice")).to_contain_text("Ce document remplace facture-mars.pdf")
    drain_deliveries()
    page.reload()
    expect(page.locator(".doc-badges .badge")).to_have_text("Validé")
    person.shot("status-02-client-replaced")
    for url, _status, body in person.replies:
        found = FIRM_ONLY.search(body)
        assert found is None, (url, found.group(0))


def test_replace_by_api_links_both_documents_and_the_switch_forwards_it(
        client, world, other_world, firm_tools, rejected, drain_deliveries):
    from ged.models import AuditEvent, Document

    doc, conn = rejected["doc"], rejected["conn"]
    url = f"/api/v1/documents/{doc['id']}/replace"

    def send(actor, *files):
        return client.post(url, headers=actor.headers, content_type="multipart/form-data",
                           data={"file": [(io.BytesIO(b), n) for n, b in files]})

    # Nobody else can reach it; bad input is refused and writes nothing.
    count = Document.select().count()
    for actor in (world.client_b, other_world.admin):
        assert send(actor, ("x.pdf", text_pdf("X"))).status_code == 404
    resp = send(world.client_a)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "one_file"
    resp = send(world.client_a, ("a.pdf", text_pdf("A")), ("b.pdf", text_pdf("B")))
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "one_file"
    resp = send(world.client_a, ("vide.pdf", b""))
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "empty_file"
    assert Document.select().count() == count
    assert _doc(client, world.client_a, doc["id"])["status"] == "rejected"

    resp = send(world.client_a, ("facture-corrigee.pdf", text_pdf("Facture corrigée")))
    assert resp.status_code == 201, resp.get_json()
    new = resp.get_json()
    assert new["replaces_id"] == doc["id"] and new["replaced_by_id"] is None
    assert new["status"] == "sending" and new["status_reason"] is None
    old = _doc(client, world.staff, doc["id"])
    assert (old["status"], old["replaced_by_id"], old["status_reason"]) == (
        "replaced", new["id"], None)
    again = send(world.client_a, ("encore.pdf", text_pdf("Encore")))
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_replaced"
    assert Document.select().count() == count + 1

    drain_deliveries()
    (delivery,) = firm_tools.deliveries(new["id"])
    assert (delivery["status"], delivery["trigger"]) == ("accepted", "switch")
    assert _doc(client, world.client_a, new["id"])["status"] == "validated"
    # The tool's verdict on the replacement is recorded against it, not the old one.
    assert tool_says(client, delivery["id"], conn["secret"], "validated").status_code == 200
    assert _doc(client, world.client_a, new["id"])["status"] == "validated"
    assert _doc(client, world.client_a, doc["id"])["status"] == "replaced"
    event = AuditEvent.get((AuditEvent.action == "document.replaced")
                           & (AuditEvent.object_id == doc["id"]))
    assert event.details["replaced_by"] == new["id"] and event.details["reason"] == REASON


def test_one_tool_validates_another_rejects_the_document_says_rejected_for_good(
        client, world, firm_tools, webhook_receiver, drain_deliveries):
    first = _hook(firm_tools, world, webhook_receiver, "Pré-compta", "/one")
    second = _hook(firm_tools, world, webhook_receiver, "Comptabilité", "/two")
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    for conn in (first, second):
        firm_tools.switch(achats, conn, "on")
    doc = firm_tools.upload(achats, "facture.pdf", text_pdf("Deux outils"))
    drain_deliveries()
    one, two = _latest(firm_tools, doc["id"], first), _latest(firm_tools, doc["id"], second)

    assert tool_says(client, one["id"], first["secret"], "validated", "OK").status_code == 200
    assert _doc(client, world.client_a, doc["id"])["status"] == "validated"
    assert tool_says(client, two["id"], second["secret"], "rejected", REASON).status_code == 200
    seen = _doc(client, world.client_a, doc["id"])
    assert (seen["status"], seen["status_reason"]) == ("rejected", REASON)

    # A late or contrary message never moves it back.
    late = tool_says(client, two["id"], second["secret"], "validated")
    assert late.status_code == 409
    assert tool_says(client, one["id"], first["secret"], "validated").status_code == 200
    assert _doc(client, world.client_a, doc["id"])["status"] == "rejected"

    # A resend by hand that fails is the firm's business: the tool's word still stands.
    webhook_receiver.answer(400)
    resp = client.post(f"/api/v1/documents/{doc['id']}/deliveries",
                       json={"connection_id": second["id"]}, headers=world.staff.headers)
    assert resp.status_code == 202
    # On its way again, and the other tool validated it meanwhile.
    assert _doc(client, world.client_a, doc["id"])["status"] == "validated"
    drain_deliveries()
    assert _latest(firm_tools, doc["id"], second)["status"] == "failed"
    seen = _doc(client, world.client_a, doc["id"])
    assert (seen["status"], seen["status_reason"]) == ("rejected", REASON)
    # One that the tool accepts this time clears the rejection.
    client.post(f"/api/v1/documents/{doc['id']}/deliveries",
                json={"connection_id": second["id"]}, headers=world.staff.headers)
    drain_deliveries()
    assert _doc(client, world.client_a, doc["id"])["status"] == "validated"


def test_a_rejection_that_arrives_before_the_2xx_is_recorded_is_not_overwritten(
        app, client, world, firm_tools, webhook_receiver, drain_deliveries):
    """The tool answers its verdict while our worker still holds the request open; the
    worker then records the 2xx: the document stays rejected (it used to turn validated)."""
    from ged import jobs

    conn = _hook(firm_tools, world, webhook_receiver)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    firm_tools.switch(achats, conn, "on")
    webhook_receiver.answer("hang")
    doc = firm_tools.upload(achats, "facture.pdf", text_pdf("Course"))
    (queued,) = firm_tools.deliveries(doc["id"])
    # The delivery job, as a worker runs it (RQ's worker wants the main thread).
    worker = threading.Thread(target=jobs.deliver, args=(queued["id"],))
    worker.start()
    try:
        assert webhook_receiver.received.wait(30), "the worker never sent the request"
        (delivery,) = firm_tools.deliveries(doc["id"])
        assert delivery["status"] == "sending"
        assert tool_says(client, delivery["id"], conn["secret"], "rejected",
                         REASON).status_code == 200
    finally:
        webhook_receiver.release()
        worker.join(60)
    (delivery,) = firm_tools.deliveries(doc["id"])
    assert delivery["status"] == "rejected"
    seen = _doc(client, world.client_a, doc["id"])
    assert (seen["status"], seen["status_reason"]) == ("rejected", REASON)


def test_sending_a_folder_twice_skips_what_the_tool_has_unless_asked(
        client, world, web, firm_tools, webhook_receiver, drain_deliveries):
    from ged.models import Delivery

    conn = _hook(firm_tools, world, webhook_receiver)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    janvier = firm_tools.mkdir(achats, "Janvier")
    docs = [firm_tools.upload(achats, "a.pdf", text_pdf("A")),
            firm_tools.upload(janvier, "b.pdf", text_pdf("B"))]
    url = f"/api/v1/connections/{conn['id']}/send"
    h = world.staff.headers

    first = client.post(url, json={"folder_id": achats.id}, headers=h)
    assert first.status_code == 202 and first.get_json()["skipped"] == 0
    assert len(first.get_json()["items"]) == 2
    # A second click before the worker ran, then after: nothing goes twice.
    second = client.post(url, json={"folder_id": achats.id}, headers=h).get_json()
    assert (second["items"], second["skipped"]) == ([], 2)
    drain_deliveries()
    third = client.post(url, json={"folder_id": achats.id}, headers=h).get_json()
    assert (third["items"], third["skipped"]) == ([], 2)
    assert sorted(third["skipped_document_ids"]) == sorted(d["id"] for d in docs)
    # A selection too; a new document in the folder goes alone.
    late = firm_tools.upload(achats, "c.pdf", text_pdf("C"))
    sel = client.post(url, json={"document_ids": [docs[0]["id"], late["id"]]}, headers=h).get_json()
    assert [d["document_id"] for d in sel["items"]] == [late["id"]] and sel["skipped"] == 1
    drain_deliveries()
    # Re-sending is an explicit choice.
    again = client.post(url, json={"folder_id": achats.id, "resend": True}, headers=h).get_json()
    assert again["skipped"] == 0 and len(again["items"]) == 3
    drain_deliveries()
    assert Delivery.select().where(Delivery.document == docs[0]["id"]).count() == 2
    assert client.post(url, json={"resend": True}, headers=h).status_code == 400

    # The same on the folder page: the count of what was skipped, and the checkbox.
    staff = web(world.staff)
    page = text_of(staff.get(f"/dossiers/{achats.id}"))
    assert "Renvoyer aussi les documents déjà envoyés" in page
    resp = staff.post(f"/dossiers/{achats.id}/envoi-manuel",
                      {"connection_id": conn["id"], "scope": "subtree"}, follow_redirects=True)
    page = text_of(resp)
    assert "Aucun document envoyé" in page and "3 documents ignorés" in page
    resp = staff.post(f"/dossiers/{achats.id}/envoi-manuel",
                      {"connection_id": conn["id"], "scope": "folder", "resend": "1"},
                      follow_redirects=True)
    assert "2 documents envoyés" in text_of(resp)  # a.pdf and c.pdf: Janvier is below
    resp = staff.post(f"/dossiers/{achats.id}/envoi-manuel",
                      {"connection_id": conn["id"], "scope": "selection",
                       "document_id": [docs[0]["id"]]}, follow_redirects=True)
    assert "1 document ignoré" in text_of(resp)
    assert Delivery.select().count() == 2 + 1 + 3 + 2


def test_a_deposit_reply_tells_nothing_of_other_firms_or_companies_files(
        app, client, world, other_world, run_jobs):
    """Blobs are shared by content: depositing bytes another firm (and another company
    of the same firm) holds and has read answers exactly as depositing unknown bytes."""
    from ged.models import Document

    probe = text_pdf("Facture 2026-118 Fournitures Martin, total 1 234,56 EUR")

    def deposit(actor, folder, data, name):
        resp = client.post(f"/api/v1/folders/{folder.id}/documents", headers=actor.headers,
                           data={"file": [(io.BytesIO(data), name)]},
                           content_type="multipart/form-data")
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()["items"][0]

    theirs = deposit(other_world.client_a, other_world.folder(other_world.company_a, ANNUAL,
                                                              "Achats"), probe, "theirs.pdf")
    deposit(world.client_b, world.folder(world.company_b, ANNUAL, "Achats"), probe, "b.pdf")
    run_jobs()
    assert _doc(client, other_world.client_a, theirs["id"])["text_status"] == "done"

    # The firm's staff of company A probe (their view of a document is the fullest),
    # beside a file nobody ever deposited.
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    known = deposit(world.staff, achats, probe, "sonde.pdf")
    unknown = deposit(world.staff, achats, text_pdf(f"Facture {secrets.token_hex(6)}"),
                      "temoin.pdf")
    varying = {"id", "sha256", "size", "deposited_at", "name"}
    assert ({k: v for k, v in known.items() if k not in varying}
            == {k: v for k, v in unknown.items() if k not in varying})
    assert known["text_status"] == "pending" and known["facturx"] is None
    assert known["duplicate_of"] is None  # company B's copy is not this company's
    for actor in (world.staff, world.client_a):  # nor right after, by the document
        assert _doc(client, actor, known["id"])["text_status"] == "pending"

    # The extraction job then copies what is known: the reading work stays shared.
    run_jobs()
    assert _doc(client, world.client_a, known["id"])["text_status"] == "done"
    # Bytes this company already holds: read at once, and flagged as a duplicate of
    # its own earlier document only.
    again = deposit(world.client_a, achats, probe, "encore.pdf")
    assert again["text_status"] == "done"
    assert Document.get_by_id(again["id"]).duplicate_of == known["id"]


def test_the_reconciler_copies_known_text_when_the_job_was_lost(app, world, other_world,
                                                                run_jobs, redis_conn):
    from ged import documents, jobs
    from ged.models import Document
    from ged.blobs import stage_bytes

    cfg = app.config["GED"]
    data = text_pdf("Relevé partagé")

    def put(world_, name):
        folder = world_.folder(world_.company_a, ANNUAL, "Achats")
        return documents.deposit(world_.staff.user, folder, [documents.Upload(
            name, stage_bytes(data, cfg.data_dir, 10**7))], "api")[0]

    put(other_world, "theirs.pdf")
    run_jobs()
    mine = put(world, "mine.pdf")
    assert mine.text_status == "pending"
    redis_conn.flushdb()  # the copy job is lost
    jobs.reconcile()
    run_jobs()
    assert Document.get_by_id(mine.id).text_status == "done"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_outcomes_recorded_at_once_leave_the_true_status(app, world, firm_tools,
                                                             webhook_receiver):
    """Two transactions change two deliveries of one document at once; the one that
    writes the status last must have read the other's outcome (PostgreSQL, where
    transactions run side by side)."""
    from ged import deliveries
    from ged.db import db, transaction
    from ged.models import Delivery, Document

    first = _hook(firm_tools, world, webhook_receiver, "Pré-compta", "/one")
    second = _hook(firm_tools, world, webhook_receiver, "Comptabilité", "/two")
    doc = firm_tools.upload(world.folder(world.company_a, ANNUAL, "Achats"), "f.pdf",
                            text_pdf("Concurrence"))
    d1 = Delivery.create(firm=world.firm.id, company=world.company_a.id, document=doc["id"],
                         connection=first["id"], trigger="manual", status="sending", attempts=1)
    d2 = Delivery.create(firm=world.firm.id, company=world.company_a.id, document=doc["id"],
                         connection=second["id"], trigger="manual", status="sending", attempts=1)
    deliveries.refresh_document_status(doc["id"])
    assert Document.get_by_id(doc["id"]).status == "sending"
    db.close()

    both_changed = threading.Barrier(2, timeout=30)
    first_wrote = threading.Event()
    errors = []

    def waiting_on_a_lock() -> bool:
        with db.connection_context():
            return db.execute_sql("SELECT count(*) FROM pg_stat_activity WHERE "
                                  "wait_event_type = 'Lock' AND datname = current_database()"
                                  ).fetchone()[0] > 0

    def verdict():  # the tool rejects d1
        try:
            with db.connection_context(), transaction():
                Delivery.update(status="rejected", message=REASON).where(
                    Delivery.id == d1.id).execute()
                both_changed.wait()
                deliveries.refresh_document_status(doc["id"])
                first_wrote.set()
                from fixtures.faults import wait_for

                wait_for(waiting_on_a_lock, 30, 0.02, "the other writer to wait")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def success():  # a worker records d2's 2xx at the same moment: alone, "validated"
        try:
            with db.connection_context(), transaction():
                Delivery.update(status="accepted").where(Delivery.id == d2.id).execute()
                both_changed.wait()
                first_wrote.wait(30)
                deliveries.refresh_document_status(doc["id"])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=verdict), threading.Thread(target=success)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with db.connection_context():
        row = Document.get_by_id(doc["id"])
        assert (row.status, row.status_reason) == ("rejected", REASON)
