"""Forwarding, end to end: folder switches send new documents to the firm's tools
(a real SMTP server and a real HTTP receiver that checks every signature with the
``standardwebhooks`` package), with retries, permanent failures, resends by hand,
and recovery when a worker dies or Redis loses its queue."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys

from conftest import ROOT, csrf_token_of, text_pdf, web_login

ANNUAL = "Dossier comptable annuel 2026"
FIRM_ONLY_WORDS = re.compile(r"switch|connection|connexion|deliver|livraison|integration|"
                             r"intégration|webhook|interrupteur|jefacture", re.IGNORECASE)
# The envelope's data as API.md lists it (the receiver adds the envelope's type).
METADATA_KEYS = {"type", "delivery_id", "document_id", "name", "sha256", "size", "content_type",
                 "company", "folder_path", "deposited_at", "channel", "trigger", "status_url",
                 "facturx", "file_url", "file_url_expires_at", "content_base64"}
CSV = "date;libellé;montant\n2026-03-02;Fournitures;42,50\n".encode()


def _hook(firm_tools, world, receiver, company=None):
    """A webhook connection for company A (or ``company``) to the receiver."""
    integration = firm_tools.install("webhook", "Webhook")
    conn = firm_tools.connect(company or world.company_a, integration, url=receiver.hook())
    receiver.secrets["current"] = conn["secret"]
    return conn


def _status(delivery_id):
    from ged.models import Delivery

    return Delivery.get_by_id(delivery_id)


def test_switch_on_achats_forwards_each_new_document_once_to_both_tools(
        app, client, world, firm_tools, smtp_sink, webhook_receiver, drain_deliveries):
    from ged import documents
    from ged.models import AuditEvent, Delivery
    from ged.blobs import stage_bytes

    cfg = app.config["GED"]
    jefacture = firm_tools.install("jefacture", "JeFacture.com")
    mail_conn = firm_tools.connect(world.company_a, jefacture, address="collecte-a@jefacture.example")
    assert "secret" not in mail_conn
    hook_conn = _hook(firm_tools, world, webhook_receiver)
    assert hook_conn["secret"].startswith("whsec_")

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    ventes = world.folder(world.company_a, ANNUAL, "Ventes")
    mars = firm_tools.mkdir(firm_tools.mkdir(achats, "2026"), "Mars")
    frais = firm_tools.mkdir(achats, "Frais")
    before = firm_tools.upload(mars, "avant.pdf", text_pdf("Avant"))

    for conn in (mail_conn, hook_conn):
        on = firm_tools.switch(achats, conn, "on")
        assert on["effective"] and on["state"] == "on" and on["source_folder_id"] == achats.id
        assert on["subfolders_affected"] == 3 and on["existing_documents_not_sent"] == 1
        off = firm_tools.switch(frais, conn, "off")
        assert off["effective"] is False and off["source_folder_id"] == frais.id

    # A client deposits by the API, by the web page, and by e-mail (the drop channel
    # calls the same deposit path with no user).
    by_api = firm_tools.upload(mars, "facture-api.pdf", text_pdf("Facture API 2026-03"))
    web = web_login(app.test_client(), world.client_a.user.email)
    token = csrf_token_of(web.get(f"/dossiers/{mars.id}").get_data(as_text=True))
    resp = web.post(f"/dossiers/{mars.id}/depot", content_type="multipart/form-data",
                    data={"csrf_token": token, "file": (io.BytesIO(CSV), "releve-web.csv")},
                    headers={"Accept": "application/json"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    by_web = resp.get_json()["items"][0]
    (by_mail,) = documents.deposit(None, mars, [documents.Upload(
        "scan-mail.pdf", stage_bytes(text_pdf("Scan reçu par e-mail"), cfg.data_dir, 10**7))],
        "email", label="client-a@un.example (e-mail)")
    in_ventes = firm_tools.upload(ventes, "vente.pdf", text_pdf("Vente"))
    in_frais = firm_tools.upload(frais, "frais.pdf", text_pdf("Frais"))

    # The webhook is switched off and on again: what came meanwhile never goes to it.
    firm_tools.switch(achats, hook_conn, "off")
    meanwhile = firm_tools.upload(mars, "pendant-la-coupure.pdf", text_pdf("Pendant"))
    firm_tools.switch(achats, hook_conn, "on")

    drain_deliveries()

    sent_ids = [by_api["id"], by_web["id"], by_mail.id]
    # The e-mail tool got one message per document, the webhook one request each.
    mails = smtp_sink.to("collecte-a@jefacture.example")
    assert sorted(m.attachments().popitem()[0] for m in mails) == sorted(
        ["facture-api.pdf", "releve-web.csv", "scan-mail.pdf", "pendant-la-coupure.pdf"])
    for m in mails:
        delivery = Delivery.get_by_id(m.message["X-Ged-Delivery-Id"])
        assert delivery.connection_id == mail_conn["id"]
        assert m.message["Message-ID"] == f"<delivery-{delivery.id}@cabinet-un.example>"
        assert f"[A of Cabinet Un] /{ANNUAL}/Achats/2026/Mars" in m.message["Subject"]
    assert next(m for m in mails if "releve-web.csv" in m.attachments()).attachments()[
        "releve-web.csv"] == CSV

    hits = webhook_receiver.to("/hook")
    assert sorted(h.metadata["document_id"] for h in hits) == sorted(sent_ids)
    assert len({h.webhook_id for h in hits}) == 3
    for hit in hits:
        assert hit.verified_with == ["current"], hit.errors
        meta = hit.metadata
        assert set(meta) == METADATA_KEYS
        assert hit.webhook_id == meta["delivery_id"]
        assert meta["company"] == {"id": world.company_a.id, "name": "A of Cabinet Un",
                                   "siren": "732829320"}
        assert meta["folder_path"] == f"/{ANNUAL}/Achats/2026/Mars"
        assert meta["status_url"] == f"{cfg.public_url}/api/v1/deliveries/{meta['delivery_id']}/status"
        assert meta["type"] == "document.deposited" and meta["trigger"] == "switch"
        assert hit.filename == meta["name"] and len(hit.file) == meta["size"]
    assert {h.metadata["channel"] for h in hits} == {"api", "web", "email"}
    assert next(h for h in hits if h.filename == "releve-web.csv").file == CSV
    # PDFs and CSV alike: the published verifier read each body as text, then JSON.
    assert {h.verified_by for h in hits} == {"Webhook.verify"}

    # Sent, accepted, and the documents show "validated" to the client.
    for doc_id in sent_ids:
        statuses = {d["connection_id"]: d["status"] for d in firm_tools.deliveries(doc_id)}
        assert statuses == {mail_conn["id"]: "sent", hook_conn["id"]: "accepted"}
    h = world.client_a.headers
    for doc_id in sent_ids + [meanwhile["id"]]:
        assert client.get(f"/api/v1/documents/{doc_id}", headers=h).get_json()["status"] == "validated"
    for doc in (before, in_ventes, in_frais):
        assert client.get(f"/api/v1/documents/{doc['id']}", headers=h).get_json()["status"] == "deposited"
        assert firm_tools.deliveries(doc["id"]) == []
    assert [d["connection_id"] for d in firm_tools.deliveries(meanwhile["id"])] == [mail_conn["id"]]

    # Every switch change and outcome is in the audit trail, for the firm only.
    actions = [e.action for e in AuditEvent.select().where(AuditEvent.firm_only == True)]  # noqa: E712
    assert actions.count("switch.set") == 6
    assert actions.count("delivery.sent") == 4 and actions.count("delivery.accepted") == 3

    # The client's raw replies carry no trace of tools, switches or deliveries.
    for url in (f"/api/v1/folders/{mars.id}", f"/api/v1/folders/{achats.id}",
                f"/api/v1/documents/{by_api['id']}", f"/api/v1/documents/{by_api['id']}/deliveries",
                f"/api/v1/folders/{mars.id}/switches",
                f"/api/v1/companies/{world.company_a.id}/connections"):
        body = client.get(url, headers=h).get_data(as_text=True)
        assert not FIRM_ONLY_WORDS.search(body), (url, body[:300])
    page = web.get(f"/dossiers/{mars.id}").get_data(as_text=True)
    assert "facture-api.pdf" in page and not FIRM_ONLY_WORDS.search(page)
    # Firm users do see the switches on the folder.
    staff_view = client.get(f"/api/v1/folders/{frais.id}", headers=world.staff.headers).get_json()
    assert {s["connection_id"]: s["effective"] for s in staff_view["switches"]} == {
        mail_conn["id"]: False, hook_conn["id"]: False}


def test_server_errors_are_retried_on_schedule_with_one_webhook_id(
        app, world, firm_tools, webhook_receiver, drain_deliveries):
    from ged.models import AuditEvent

    hook = _hook(firm_tools, world, webhook_receiver)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    firm_tools.switch(achats, hook, "on")
    webhook_receiver.answer(500, 503, 502)
    doc = firm_tools.upload(achats, "facture.pdf", text_pdf("Retry"))
    drain_deliveries()

    (delivery,) = firm_tools.deliveries(doc["id"])
    assert delivery["status"] == "accepted" and delivery["attempts"] == 4
    assert delivery["last_error"] is None
    hits = webhook_receiver.to("/hook")
    assert len(hits) == 4 and {h.webhook_id for h in hits} == {delivery["id"]}
    assert all(h.verified_with == ["current"] for h in hits)
    actions = [e.action for e in AuditEvent.select().where(AuditEvent.object_id == delivery["id"])]
    assert actions == ["delivery.queued"] + ["delivery.retry_scheduled"] * 3 + ["delivery.accepted"]


def test_client_error_fails_at_once_and_a_resend_by_hand_works(
        app, client, world, firm_tools, webhook_receiver, drain_deliveries):
    hook = _hook(firm_tools, world, webhook_receiver)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    firm_tools.switch(achats, hook, "on")
    webhook_receiver.answer((400, {"X-Reason": "bad"}))
    doc = firm_tools.upload(achats, "facture.pdf", text_pdf("Refus"))
    drain_deliveries()

    (failed,) = firm_tools.deliveries(doc["id"])
    assert failed["status"] == "failed" and failed["attempts"] == 1
    assert "HTTP 400" in failed["last_error"] and "received" in failed["last_error"]
    assert client.get(f"/api/v1/documents/{doc['id']}",
                      headers=world.client_a.headers).get_json()["status"] == "deposited"
    dashboard = client.get(f"/api/v1/companies/{world.company_a.id}/deliveries?status=failed",
                           headers=world.staff.headers).get_json()
    assert [d["id"] for d in dashboard["items"]] == [failed["id"]]
    assert dashboard["items"][0]["document_name"] == "facture.pdf"

    # Staff send it again by hand: a new delivery, trigger manual; the tool accepts it.
    resp = client.post(f"/api/v1/documents/{doc['id']}/deliveries",
                       json={"connection_id": hook["id"]}, headers=world.staff.headers)
    assert resp.status_code == 202, resp.get_json()
    again = resp.get_json()
    assert again["trigger"] == "manual" and again["status"] == "queued" and again["id"] != failed["id"]
    drain_deliveries()
    statuses = {d["id"]: (d["status"], d["trigger"]) for d in firm_tools.deliveries(doc["id"])}
    assert statuses == {failed["id"]: ("failed", "switch"), again["id"]: ("accepted", "manual")}
    assert client.get(f"/api/v1/documents/{doc['id']}",
                      headers=world.client_a.headers).get_json()["status"] == "validated"
    # A client may not send by hand (and learns nothing).
    resp = client.post(f"/api/v1/documents/{doc['id']}/deliveries",
                       json={"connection_id": hook["id"]}, headers=world.client_a.headers)
    assert resp.status_code == 404 and not FIRM_ONLY_WORDS.search(resp.get_data(as_text=True))


def test_gone_fails_and_pauses_the_connection_while_others_keep_receiving(
        app, client, world, firm_tools, smtp_sink, webhook_receiver, drain_deliveries):
    hook = _hook(firm_tools, world, webhook_receiver)
    dext = firm_tools.connect(world.company_a, firm_tools.install("dext", "Dext"),
                              address="a@dext.example", options={"attach_metadata": True})
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    for conn in (hook, dext):
        firm_tools.switch(achats, conn, "on")
    webhook_receiver.answer(410)
    first = firm_tools.upload(achats, "premiere.pdf", text_pdf("Gone"))
    drain_deliveries()

    by_conn = {d["connection_id"]: d for d in firm_tools.deliveries(first["id"])}
    assert by_conn[hook["id"]]["status"] == "failed" and by_conn[hook["id"]]["attempts"] == 1
    assert "410" in by_conn[hook["id"]]["last_error"]
    assert by_conn[dext["id"]]["status"] == "sent"
    conns = {c["id"]: c for c in client.get(f"/api/v1/companies/{world.company_a.id}/connections",
                                            headers=world.staff.headers).get_json()["items"]}
    assert conns[hook["id"]]["paused"] is True and "410" in conns[hook["id"]]["paused_reason"]
    assert conns[dext["id"]]["paused"] is False

    second = firm_tools.upload(achats, "seconde.pdf", text_pdf("Après la pause"))
    drain_deliveries()
    assert [d["connection_id"] for d in firm_tools.deliveries(second["id"])] == [dext["id"]]
    assert len(webhook_receiver.to("/hook")) == 1
    mails = smtp_sink.to("a@dext.example")
    assert len(mails) == 2
    assert set(mails[0].attachments()) == {"premiere.pdf", "metadata.json"}

    # Resuming sends nothing that arrived meanwhile; staff can send it by hand.
    resp = client.patch(f"/api/v1/connections/{hook['id']}", json={"paused": False},
                        headers=world.staff.headers)
    assert resp.status_code == 200 and resp.get_json()["paused"] is False
    drain_deliveries()
    assert len(webhook_receiver.to("/hook")) == 1
    resp = client.post(f"/api/v1/connections/{hook['id']}/send",
                       json={"document_ids": [second["id"]]}, headers=world.staff.headers)
    assert resp.status_code == 202, resp.get_json()
    drain_deliveries()
    assert [h.metadata["name"] for h in webhook_receiver.to("/hook")] == ["premiere.pdf", "seconde.pdf"]


def test_retry_after_is_honoured_and_redirects_are_not_followed(
        app, world, firm_tools, webhook_receiver, drain_deliveries):
    cfg = app.config["GED"]
    from ged.models import AuditEvent

    cfg.delivery_retry_schedule = [0.2, 0.2, 2]
    hook = _hook(firm_tools, world, webhook_receiver)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    firm_tools.switch(achats, hook, "on")
    # The tool asks for an hour: ged waits longer than the schedule's 0.2 s, but no
    # longer than its longest step.
    webhook_receiver.answer((429, {"Retry-After": "3600"}))
    doc = firm_tools.upload(achats, "limite.pdf", text_pdf("429"))
    drain_deliveries()
    (delivery,) = firm_tools.deliveries(doc["id"])
    assert delivery["status"] == "accepted" and delivery["attempts"] == 2
    (retry,) = AuditEvent.select().where((AuditEvent.object_id == delivery["id"])
                                         & (AuditEvent.action == "delivery.retry_scheduled"))
    assert retry.details["delay"] == 2 and retry.details["status_code"] == 429
    first, second = webhook_receiver.to("/hook")
    assert second.at - first.at >= 2

    webhook_receiver.answer((302, {"Location": webhook_receiver.hook("/ailleurs")}))
    moved = firm_tools.upload(achats, "redirige.pdf", text_pdf("302"))
    drain_deliveries()
    (delivery,) = firm_tools.deliveries(moved["id"])
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert "redirection" in delivery["last_error"] and "/ailleurs" in delivery["last_error"]
    assert webhook_receiver.to("/ailleurs") == []


def test_email_relay_deferral_is_retried_with_the_same_message_id(
        app, world, firm_tools, smtp_sink, drain_deliveries):
    conn = firm_tools.connect(world.company_a, firm_tools.install("agiris", "agiris"),
                              address="depot@agiris.example")
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    firm_tools.switch(achats, conn, "on")
    smtp_sink.refuse("451 4.3.0 Try again later")
    doc = firm_tools.upload(achats, "facture.pdf", text_pdf("Différé"))
    drain_deliveries()
    (delivery,) = firm_tools.deliveries(doc["id"])
    assert delivery["status"] == "sent" and delivery["attempts"] == 2
    (mail,) = smtp_sink.to("depot@agiris.example")
    assert mail.message["Message-ID"] == f"<delivery-{delivery['id']}@cabinet-un.example>"

    smtp_sink.refuse("550 5.1.1 No such mailbox")
    doc = firm_tools.upload(achats, "autre.pdf", text_pdf("Refusé"))
    drain_deliveries()
    (delivery,) = firm_tools.deliveries(doc["id"])
    assert delivery["status"] == "failed" and "550" in delivery["last_error"]


def _worker_env(cfg) -> dict:
    env = dict(os.environ)
    env.update({
        "GED_DATA_DIR": str(cfg.data_dir), "DATABASE_URL": cfg.database_url,
        "REDIS_URL": cfg.redis_url, "GED_STORAGE_URL": cfg.storage_url,
        "SECRET_KEY": cfg.secret_key, "GED_ALLOW_PRIVATE_TARGETS": "1",
        "GED_DELIVERY_RETRY_SCHEDULE": "0.2,0.2,0.2,0.2", "GED_DELIVERY_TIMEOUT": "2",
        "GED_DELIVERY_CONNECT_TIMEOUT": "1", "GED_RECONCILE_INTERVAL": "0",
        "GED_PUBLIC_URL": cfg.public_url, "PYTHONPATH": str(ROOT),
    })
    return env


def test_a_killed_worker_and_a_flushed_redis_lose_no_delivery(
        app, world, firm_tools, webhook_receiver, drain_deliveries, redis_conn):
    from ged import deliveries
    from ged.models import Delivery

    cfg = app.config["GED"]
    hook = _hook(firm_tools, world, webhook_receiver)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    firm_tools.switch(achats, hook, "on")

    # A worker process takes the delivery and is killed while the tool holds the request.
    webhook_receiver.answer("hang")
    worker = subprocess.Popen([sys.executable, "-m", "ged.cli", "worker", "--queues", "deliveries"],
                              env=_worker_env(cfg), cwd=str(ROOT), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        doc = firm_tools.upload(achats, "interrompu.pdf", text_pdf("Kill"))
        assert webhook_receiver.received.wait(30), "the worker never sent the request"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    webhook_receiver.release()
    (interrupted,) = firm_tools.deliveries(doc["id"])
    assert interrupted["status"] == "sending"

    # Once the dead worker's lease lapses, the reconciler hands the delivery to a live one.
    def recovered():
        deliveries.reconcile(min_age=0)
        return _status(interrupted["id"]).status == "accepted"

    drain_deliveries(until=recovered, timeout=60)
    assert _status(interrupted["id"]).attempts == 2

    # Deliveries queued in the database, then Redis loses everything.
    queued = [firm_tools.upload(achats, f"file-{i}.pdf", text_pdf(f"Flush {i}"))["id"]
              for i in range(3)]
    redis_conn.flushdb()

    def reconciled_and_done():
        deliveries.reconcile(min_age=0)
        return not Delivery.select().where(Delivery.status.in_(("queued", "sending"))).exists()

    drain_deliveries(until=reconciled_and_done, timeout=60)
    for doc_id in [doc["id"]] + queued:
        (delivery,) = firm_tools.deliveries(doc_id)
        assert delivery["status"] == "accepted", delivery
    # At least once: the interrupted one may have arrived twice, with the same webhook-id.
    hits = webhook_receiver.to("/hook")
    assert {h.webhook_id for h in hits} == {
        d.id for d in Delivery.select().where(Delivery.connection == hook["id"])}
    assert all(h.verified_with == ["current"] for h in hits)
    assert deliveries.reconcile(min_age=0) == {"deliveries_requeued": 0, "deliveries_recovered": 0}


def test_switch_on_a_folder_with_ten_thousand_subfolders_writes_one_row(
        app, client, world, firm_tools, webhook_receiver):
    from ged.db import db, new_id
    from ged.models import Folder, Switch

    hook = _hook(firm_tools, world, webhook_receiver)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    rows = []
    for i in range(100):
        top_id = new_id()
        top_path = f"{achats.path}{top_id}/"
        rows.append({"id": top_id, "company": world.company_a.id, "parent": achats.id,
                     "name": f"Lot {i:03d}", "path": top_path, "depth": achats.depth + 1})
        for j in range(99):
            fid = new_id()
            rows.append({"id": fid, "company": world.company_a.id, "parent": top_id,
                         "name": f"Pièce {j:02d}", "path": f"{top_path}{fid}/",
                         "depth": achats.depth + 2})
    with db.atomic():
        for start in range(0, len(rows), 500):
            Folder.insert_many(rows[start:start + 500]).execute()
    assert Folder.select().where(Folder.path.startswith(achats.path)).count() == 10_001

    before = Switch.select().count()
    result = firm_tools.switch(achats, hook, "on")
    assert Switch.select().count() == before + 1
    assert result["subfolders_affected"] == 10_000 and result["effective"] is True
    deep = Folder.get(Folder.name == "Pièce 42")
    (state,) = client.get(f"/api/v1/folders/{deep.id}/switches",
                          headers=world.staff.headers).get_json()["items"]
    assert state["effective"] is True and state["source_folder_id"] == achats.id
    assert state["state"] == "inherit"


def test_retry_delays_follow_the_schedule_and_retry_after():
    import httpx

    from ged.deliveries.attempt import retry_delay
    from ged.deliveries.http import _retry_after

    schedule = [10, 60, 300]
    assert [retry_delay(schedule, n, None) for n in (1, 2, 3)] == [10, 60, 300]
    assert retry_delay(schedule, 1, 120) == 120  # the tool asked for longer
    assert retry_delay(schedule, 2, 5) == 60  # never sooner than the schedule
    assert retry_delay(schedule, 1, 86400) == 300  # capped by the longest step
    assert _retry_after(httpx.Headers({"Retry-After": "7"})) == 7
    later = httpx.Headers({"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    assert _retry_after(later) > 10**8
    assert _retry_after(httpx.Headers({"Retry-After": "soon"})) is None


def test_documents_already_there_are_sent_by_hand_as_a_folder(
        app, client, world, firm_tools, webhook_receiver, drain_deliveries):
    hook = _hook(firm_tools, world, webhook_receiver)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    janvier = firm_tools.mkdir(achats, "Janvier")
    old = [firm_tools.upload(achats, "ancienne.pdf", text_pdf("Ancienne")),
           firm_tools.upload(janvier, "janvier.pdf", text_pdf("Janvier"))]
    firm_tools.upload(world.folder(world.company_a, ANNUAL, "Ventes"), "vente.pdf", text_pdf("V"))
    firm_tools.switch(achats, hook, "on")
    drain_deliveries()
    assert webhook_receiver.hits == []  # not retroactive

    resp = client.post(f"/api/v1/connections/{hook['id']}/send", json={"folder_id": achats.id},
                       headers=world.staff.headers)
    assert resp.status_code == 202, resp.get_json()
    assert {d["trigger"] for d in resp.get_json()["items"]} == {"manual"}
    drain_deliveries()
    assert sorted(h.metadata["document_id"] for h in webhook_receiver.to("/hook")) == sorted(
        d["id"] for d in old)
    for body in ({}, {"folder_id": achats.id, "document_ids": [old[0]["id"]]}):
        resp = client.post(f"/api/v1/connections/{hook['id']}/send", json=body,
                           headers=world.staff.headers)
        assert resp.status_code == 400


def test_a_tool_that_does_not_answer_in_time_is_retried(
        app, world, firm_tools, webhook_receiver, drain_deliveries):
    cfg = app.config["GED"]
    cfg.delivery_timeout = 0.5
    hook = _hook(firm_tools, world, webhook_receiver)
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    firm_tools.switch(achats, hook, "on")
    webhook_receiver.answer("hang")
    doc = firm_tools.upload(achats, "lent.pdf", text_pdf("Lent"))
    drain_deliveries()
    webhook_receiver.release()
    (delivery,) = firm_tools.deliveries(doc["id"])
    assert delivery["status"] == "accepted" and delivery["attempts"] == 2
    assert len({h.webhook_id for h in webhook_receiver.to("/hook")}) == 1


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_large_document_is_emailed_streamed_not_held_in_memory(
        app, world, firm_tools, smtp_sink, ged_worker, cfg):
    """A 16 MB document goes to an e-mail tool byte-identical, and the worker that sends
    it grows by far less than the file (the message is streamed from the store)."""
    from fixtures.faults import wait_for

    from ged import documents
    from ged.blobs import stage_bytes

    conn = firm_tools.connect(world.company_a, firm_tools.install("agiris", "agiris"),
                              address="depot@agiris.example")
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    firm_tools.switch(achats, conn, "on")
    worker = ged_worker(queues="deliveries")

    def deposit(name: str, data: bytes):
        staged = stage_bytes(data, cfg.data_dir, 64 * 1024 * 1024)
        return documents.deposit(world.staff.user, achats,
                                 [documents.Upload(name, staged)], "api")[0]

    deposit("petit.csv", b"date;montant\n2026-03-01;12,00\n")
    wait_for(lambda: len(smtp_sink.messages) == 1, what="the small document's e-mail")
    before = _peak_rss_mb(worker.proc.pid)
    big = b"".join(b"%08d;Facture fournisseur;%d,00 EUR\n" % (i, i % 997)
                   for i in range(420_000))
    assert len(big) > 15_000_000
    doc = deposit("grand-livre.csv", big)
    wait_for(lambda: len(smtp_sink.messages) == 2, timeout=120,
             what="the large document's e-mail")
    grown = _peak_rss_mb(worker.proc.pid) - before
    mail = smtp_sink.messages[1].message
    [attachment] = [p for p in mail.iter_attachments() if p.get_filename() == "grand-livre.csv"]
    assert attachment.get_payload(decode=True) == big
    (delivery,) = firm_tools.deliveries(doc.id)
    assert delivery["status"] == "sent"
    assert grown < 8, f"the worker grew by {grown:.0f} MB sending a {len(big) >> 20} MB file"
