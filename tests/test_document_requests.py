"""Document requests (« demandes de pièces »), told and reminded by e-mail, answered
through the one deposit path: real SMTP sink, real RQ worker, real webhook receiver,
a clock injected into the reminders pass (no sleeps)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from conftest import text_pdf

# The data layer of each test runs on SQLite and on PostgreSQL (GED_TEST_DATABASE_URL).
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)

PARIS = dt.timezone(dt.timedelta(hours=1))


def at(day: str, hour: int = 9) -> dt.datetime:
    """A moment of the firm's day (Paris, winter time)."""
    return dt.datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=PARIS)


def _deposit(client, url, actor, name="releve.pdf", content=None):
    return client.post(url, data={"file": [(io.BytesIO(content or text_pdf(name)), name)]},
                       headers=actor.headers, content_type="multipart/form-data")


@BOTH
def test_a_request_told_reminded_answered_and_forwarded(
        app, client, world, firm_tools, smtp_sink, webhook_receiver, drain_deliveries, run_jobs):
    """Staff ask company A for December's bank statements into Banque, due on the 15th;
    the client is told, reminded 3 days before (once, however many passes run), deposits
    against the request, which closes it, and the folder's switch sends the file to the
    tool; no reminder comes after that."""
    from ged import document_requests, jobs
    from ged.models import DocumentRequest, RequestReminder

    banque = world.folder(world.company_a, "Dossier comptable annuel 2026", "Banque")
    tool = firm_tools.install("webhook", "Pré-compta")
    conn = firm_tools.connect(world.company_a, tool, url=webhook_receiver.hook())
    firm_tools.switch(banque, conn, "on")

    resp = client.post(f"/api/v1/companies/{world.company_a.id}/requests",
                       json={"title": "Relevés bancaires de décembre",
                             "description": "Tous les comptes, au format PDF.",
                             "folder_id": banque.id, "due_date": "2026-01-15"},
                       headers=world.staff.headers)
    assert resp.status_code == 201, resp.get_json()
    req = resp.get_json()
    assert req["status"] == "open" and req["documents"] == [] and req["reminders_sent"] == 0
    run_jobs(["default"])
    told = smtp_sink.to(world.client_a.user.email)
    assert len(told) == 1
    assert "Relevés bancaires de décembre" in told[0].message["Subject"]
    assert "Cabinet Un" in told[0].message["From"]
    text = told[0].message.get_body(("plain",)).get_content()
    assert "15/01/2026" in text and f"/demandes/{req['id']}" in text
    assert told[0].message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Nobody else of company B hears of it.
    assert smtp_sink.to(world.client_b.user.email) == []

    # The clock: a week before nothing; 3 days before, one reminder however many passes.
    DocumentRequest.update(created_at=at("2026-01-02")).execute()
    assert document_requests.reminders_pass(at("2026-01-08")) == 0
    assert document_requests.reminders_pass(at("2026-01-12")) == 1
    assert document_requests.reminders_pass(at("2026-01-12", 15)) == 0
    jobs.client_work(at("2026-01-12", 18).isoformat())  # the worker's periodic pass
    run_jobs(["default"])
    reminders = [m for m in smtp_sink.to(world.client_a.user.email)
                 if m.message["Subject"].endswith("Rappel : Relevés bancaires de décembre")]
    assert len(reminders) == 1
    assert RequestReminder.select().count() == 1
    listed = client.get("/api/v1/requests", headers=world.client_a.headers).get_json()["items"]
    assert [r["reminders_sent"] for r in listed] == [1]

    # The client answers through the request: into Banque, by the one deposit path.
    resp = _deposit(client, f"/api/v1/requests/{req['id']}/documents", world.client_a,
                    "releve-decembre.pdf")
    assert resp.status_code == 201, resp.get_json()
    doc = resp.get_json()["items"][0]
    assert doc["folder_id"] == banque.id
    got = client.get(f"/api/v1/requests/{req['id']}", headers=world.staff.headers).get_json()
    assert got["status"] == "fulfilled" and got["documents"] == [doc["id"]]
    drain_deliveries()
    hits = webhook_receiver.to("/hook")
    assert [h.envelope["data"]["name"] for h in hits] == ["releve-decembre.pdf"]
    assert hits[0].envelope["data"]["folder_path"].endswith("/Banque")

    # Closed: the day's reminder never goes out.
    assert document_requests.reminders_pass(at("2026-01-15")) == 0
    assert document_requests.reminders_pass(at("2026-01-22")) == 0


def test_reminders_follow_the_schedule_then_every_seven_days(app, world):
    from ged import document_requests

    steps = [-3, 0, 7, 14, 21]
    due, created = dt.date(2026, 3, 10), dt.date(2026, 3, 1)
    got = [document_requests.reminder_step(due, created, due + dt.timedelta(days=d), steps)
           for d in (-4, -3, -1, 0, 6, 7, 14, 21, 27, 28, 35)]
    assert got == [None, -3, -3, 0, 0, 7, 14, 21, 21, 28, 35]
    # A request made the day before its due date is not reminded for "3 days before".
    assert document_requests.reminder_step(due, dt.date(2026, 3, 9), dt.date(2026, 3, 9),
                                           steps) is None


@BOTH
def test_reopen_cancel_move_and_remind(app, client, world, smtp_sink, run_jobs):
    h = world.staff.headers
    req = client.post(f"/api/v1/companies/{world.company_a.id}/requests",
                      json={"title": "Factures d'achat de mars", "due_date": "2026-04-05"},
                      headers=h).get_json()
    rid = req["id"]
    # Relancer: 202 and a reminder now.
    resp = client.post(f"/api/v1/requests/{rid}/remind", headers=h)
    assert resp.status_code == 202 and resp.get_json()["reminders_sent"] == 1
    # A client may not remind, cancel or reopen.
    assert client.post(f"/api/v1/requests/{rid}/remind",
                       headers=world.client_a.headers).status_code == 403
    assert client.patch(f"/api/v1/requests/{rid}", json={"status": "cancelled"},
                        headers=world.client_a.headers).status_code == 403
    # Move the date, then cancel: no reminder, no deposit against it.
    moved = client.patch(f"/api/v1/requests/{rid}", json={"due_date": "2026-04-20"},
                         headers=h).get_json()
    assert moved["due_date"] == "2026-04-20"
    assert client.patch(f"/api/v1/requests/{rid}", json={"status": "cancelled"},
                        headers=h).get_json()["status"] == "cancelled"
    assert client.post(f"/api/v1/requests/{rid}/remind", headers=h).status_code == 409
    refused = _deposit(client, f"/api/v1/requests/{rid}/documents", world.client_a)
    assert refused.status_code == 409
    # Reopen needs a reason, which the client reads in its e-mail.
    resp = client.patch(f"/api/v1/requests/{rid}", json={"status": "open"}, headers=h)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "reason_required"
    resp = client.patch(f"/api/v1/requests/{rid}", json={
        "status": "open", "description": "Il manque la facture Dupont du 12 mars."}, headers=h)
    assert resp.get_json()["status"] == "open"
    run_jobs(["default"])
    subjects = [m.message["Subject"] for m in smtp_sink.to(world.client_a.user.email)]
    assert sum("Pièces demandées" in s for s in subjects) == 1
    assert sum("Rappel" in s for s in subjects) == 1
    reopened = [m for m in smtp_sink.to(world.client_a.user.email)
                if "Demande rouverte" in m.message["Subject"]]
    assert len(reopened) == 1
    assert "Il manque la facture Dupont" in reopened[0].message.get_body(("plain",)).get_content()
    # Staff list open and late requests, per company and across the firm.
    late = client.get("/api/v1/requests", query_string={"status": "late"},
                      headers=world.admin.headers).get_json()["items"]
    assert [r["id"] for r in late] == [rid] or late == []  # late only once its date passed
    mine = client.get("/api/v1/requests", query_string={"company_id": world.company_a.id,
                                                        "status": "open"}, headers=h).get_json()
    assert [r["id"] for r in mine["items"]] == [rid]


@BOTH
def test_bulk_request_to_fifty_companies(app, client, world, smtp_sink, run_jobs):
    """« Relevés bancaires de décembre » to fifty clients at once, each into its own
    Banque folder, found by path; each company's client is told once."""
    from ged import accounts, companies
    from ged.models import DocumentRequest, Folder

    admin = world.admin.user
    made = []
    for i in range(50):
        c = companies.create_company(admin, world.firm, name=f"Client {i:02d}",
                                     template="annual", year=2026)
        accounts.create_user(admin, world.firm, email=f"c{i}@clients.example", name=f"C {i}",
                             role="client", company=c)
        made.append(c)
    resp = client.post("/api/v1/requests/bulk", json={
        "company_ids": [c.id for c in made], "title": "Relevés bancaires de décembre",
        "folder_path": "Dossier comptable annuel 2026/Banque", "due_date": "2026-01-10"},
        headers=world.admin.headers)
    assert resp.status_code == 201, resp.get_json()
    items = resp.get_json()["items"]
    assert len(items) == 50
    for item, company in zip(items, made):
        folder = Folder.get_by_id(item["folder_id"])
        assert folder.company_id == company.id and folder.name == "Banque"
    run_jobs(["default"])
    assert all(len(smtp_sink.to(f"c{i}@clients.example")) == 1 for i in range(50))
    # A path missing in one company refuses the whole batch, naming it.
    resp = client.post("/api/v1/requests/bulk", json={
        "company_ids": [made[0].id, world.company_b.id], "title": "Bilan",
        "folder_path": "Dossier comptable annuel 2026/Inexistant"}, headers=world.admin.headers)
    assert resp.status_code == 400 and "Client 00" in resp.get_json()["error"]["message"]
    assert DocumentRequest.select().count() == 50
    # Staff may not name a company they do not see.
    resp = client.post("/api/v1/requests/bulk", json={
        "company_ids": [made[0].id], "title": "Bilan"}, headers=world.staff.headers)
    assert resp.status_code == 404


@BOTH
def test_a_reminders_pass_in_bulk_sends_each_once_and_none_after_closing(
        app, client, world, smtp_sink, run_jobs):
    """Thirty requests due the same day: one already reminded for that step by another
    worker (its row exists), one fulfilled, one cancelled. The pass records and mails the
    other 27 once each (batched jobs), audits each, and a second pass, or a third one on
    another "host" (a fresh pass), sends nothing more."""
    from ged import document_requests
    from ged.models import AuditEvent, DocumentRequest, Notification, RequestReminder

    ids = []
    for i in range(30):
        resp = client.post(f"/api/v1/companies/{world.company_a.id}/requests",
                           json={"title": f"Pièce {i:02d}", "due_date": "2026-02-10"},
                           headers=world.staff.headers)
        ids.append(resp.get_json()["id"])
    DocumentRequest.update(created_at=at("2026-01-20")).execute()
    run_jobs(["default"])
    before = len(smtp_sink.to(world.client_a.user.email))
    RequestReminder.create(request=ids[0], key="2026-02-10:-3")  # another worker's
    client.patch(f"/api/v1/requests/{ids[1]}", json={"status": "fulfilled"},
                 headers=world.staff.headers)
    client.patch(f"/api/v1/requests/{ids[2]}", json={"status": "cancelled"},
                 headers=world.staff.headers)

    assert document_requests.reminders_pass(at("2026-02-07")) == 27
    assert document_requests.reminders_pass(at("2026-02-07", 12)) == 0
    assert document_requests.reminders_pass(at("2026-02-08")) == 0  # same step
    run_jobs(["default"])
    mails = smtp_sink.to(world.client_a.user.email)[before:]
    subjects = sorted(m.message["Subject"].split("Rappel : ")[1] for m in mails)
    assert subjects == [f"Pièce {i:02d}" for i in range(3, 30)]
    assert RequestReminder.select().count() == 28
    assert Notification.select().where(Notification.topic == "requests",
                                       Notification.status == "sent").count() == 30 + 27
    reminded = {e.object_id for e in AuditEvent.select().where(
        AuditEvent.action == "request.reminded")}
    assert reminded == set(ids[3:])
    counts = {r.id: r.reminders_sent for r in DocumentRequest.select()}
    assert [counts[i] for i in ids[:4]] == [0, 0, 0, 1]
    # The audit chain stays whole with the events appended in bulk.
    from ged import audit

    assert audit.verify(world.firm.id) == []
    # The due day: the 27 still open (the first one too) are reminded again, once.
    client.patch(f"/api/v1/requests/{ids[3]}", json={"status": "cancelled"},
                 headers=world.staff.headers)
    assert document_requests.reminders_pass(at("2026-02-10")) == 27
    assert document_requests.reminders_pass(at("2026-02-10", 20)) == 0


@BOTH
def test_two_workers_running_the_passes_at_once_send_each_thing_once(app, client, world):
    """Two workers (threads with their own database connections) run the reminders pass
    and the digest pass at the same moment: each reminder is recorded and mailed once,
    each user gets one digest, each waiting row is grouped into exactly one."""
    import threading

    from ged import document_requests, notifications
    from ged.db import db, new_id
    from ged.models import Notification, RequestReminder, User, utcnow

    for i in range(40):
        client.post(f"/api/v1/companies/{world.company_a.id}/requests",
                    json={"title": f"Pièce {i:02d}", "due_date": "2026-02-10"},
                    headers=world.staff.headers)
    from ged.models import DocumentRequest

    DocumentRequest.update(created_at=at("2026-01-20")).execute()
    staff = [u.id for u in User.select().where(User.role.in_(["admin", "staff"]))]
    Notification.insert_many([
        {"id": new_id(), "firm": world.firm.id, "user": staff[i % len(staff)],
         "event_key": f"document:race{i}:{staff[i % len(staff)]}", "topic": "new_documents",
         "subject": f"piece-{i}.pdf", "body": "-", "link": None, "status": "daily",
         "created_at": utcnow()} for i in range(60)]).execute()
    morning = (utcnow() + dt.timedelta(days=1)).astimezone(notifications.PARIS).replace(hour=9)

    barrier, results, errors = threading.Barrier(2), [], []

    def worker():
        try:
            with db.connection_context():
                barrier.wait()
                results.append((document_requests.reminders_pass(at("2026-02-07")),
                                notifications.digest_pass(morning)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r for r, _ in results) == 40
    assert sum(d for _, d in results) == len(staff)
    assert RequestReminder.select().count() == 40
    assert Notification.select().where(Notification.event_key.startswith("request:reminder")) \
        .count() == 40
    digests = list(Notification.select().where(Notification.topic == "digest"))
    assert sorted(d.user_id for d in digests) == sorted(staff)
    grouped = Notification.select().where(Notification.event_key.startswith("document:race"))
    assert {n.status for n in grouped} == {"grouped"}
    assert {n.digest_id for n in grouped} == {d.id for d in digests}
