"""12. Work with clients: the daily digest for 1,000 users and 100,000 events of the
day (grouped into one message each), and the reminders pass over 10,000 open
requests due today, spread over 1,000 companies with a client user each (each
reminder recorded once, audited, its e-mail row made and queued), with the clock
injected; the messages themselves are not sent (that is the mail relay's rate).

Each is compared with its raw limit in the same run: the same rows read and
written by bare bulk statements, with none of the pass's logic."""

from __future__ import annotations

import datetime as dt
import math
import time

from .. import world
from ..report import Section
from . import missing_module

NUMBER, KEY, TITLE = 12, "client_work", "Work with clients: digests and reminders"


def unavailable() -> str | None:
    return (missing_module("ged.notifications", "digest_pass")
            or missing_module("ged.document_requests", "reminders_pass"))


def _chunks(rows: list, size: int = 500):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _insert(model, rows: list) -> None:
    from ged.db import db

    with db.atomic():
        for part in _chunks(rows):
            model.insert_many(part).execute()


def run(h) -> Section:
    section = Section(NUMBER, KEY, TITLE,
                      raw_label="the same rows read and written by bare bulk statements "
                                "(one SELECT, insert_many, one UPDATE), none of the pass's "
                                "logic: the floor of any pass.")
    _measure(h, section, "sqlite")
    if h.postgres_available():
        _measure(h, section, "postgres")
    else:
        section.notes.append("PostgreSQL was not reachable: its rows were not measured.")
    return section


def _measure(h, section: Section, kind: str) -> None:
    from rq import Queue

    from ged import document_requests, notifications
    from ged.db import db, new_id
    from ged.models import (AuditEvent, Company, DocumentRequest, Notification,
                            RequestReminder, User, utcnow)

    users_n, events_n, requests_n, companies_n = (
        (50, 2000, 300, 30) if h.quick else (1000, 100_000, 10_000, 1000))
    label = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[kind]
    h.bind(f"client_work_{kind}", h.database(f"client_work_{kind}", kind))
    firm = world.make_firm()
    firm_id = firm.firm.id
    h.empty_queues()
    default = Queue("default", connection=h.redis_conn())
    now = utcnow()
    morning = (now + dt.timedelta(days=1)).astimezone(notifications.PARIS).replace(hour=9)
    cutoff = notifications.digest_cutoff(morning)[1]
    with db.connection_context():
        # --- the digest: 1,000 staff users, 100,000 "new document" rows waiting ---------
        users = [{"id": new_id(), "firm": firm_id, "email": f"u{i}@bench.example",
                  "name": f"Collaborateur {i}", "role": "staff"} for i in range(users_n)]
        _insert(User, users)
        _insert(Notification, [
            {"id": new_id(), "firm": firm_id, "user": users[i % users_n]["id"],
             "event_key": f"document:bench{i}:{users[i % users_n]['id']}",
             "topic": "new_documents", "subject": f"Boulangerie Martin : piece-{i:06d}.pdf",
             "body": "Nouveau document", "link": f"https://ged.example/documents/d{i:06d}",
             "status": "daily", "created_at": now} for i in range(events_n)])

        # Raw: read the waiting rows, write one row per user, mark the rows grouped.
        started = time.perf_counter()
        with db.atomic():
            waiting = list(Notification.select(
                Notification.id, Notification.user, Notification.topic, Notification.subject,
                Notification.link).where((Notification.status == "daily")
                                         & (Notification.created_at < cutoff)).tuples())
            owners = sorted({r[1] for r in waiting})
            for part in _chunks(owners):
                Notification.insert_many([
                    {"id": new_id(), "firm": firm_id, "user": uid, "event_key": f"raw:{uid}",
                     "topic": "digest", "subject": "Récapitulatif", "body": "-",
                     "status": "raw", "created_at": now} for uid in part]).execute()
            Notification.update(status="grouped").where(
                (Notification.status == "daily") & (Notification.created_at < cutoff)).execute()
        raw_digest = time.perf_counter() - started
        with db.atomic():
            Notification.delete().where(Notification.status == "raw").execute()
            Notification.update(status="daily").where(Notification.status == "grouped").execute()

        started = time.perf_counter()
        made = notifications.digest_pass(morning)
        digest_seconds = time.perf_counter() - started
        assert made == users_n, made
        assert notifications.digest_pass(morning + dt.timedelta(hours=1)) == 0
        grouped = Notification.select().where(Notification.status == "grouped").count()
        assert grouped == events_n, grouped
        digest_jobs = default.count
        assert digest_jobs == math.ceil(users_n / notifications.BATCH), digest_jobs
        sample = Notification.get((Notification.topic == "digest"))
        assert "https://ged.example/documents/d" in sample.body, sample.body[:300]
        h.empty_queues()

        # --- the reminders: 10,000 requests due today, over 1,000 companies -------------
        companies = [{"id": new_id(), "firm": firm_id, "name": f"Client {i:04d}"}
                     for i in range(companies_n)]
        _insert(Company, companies)
        _insert(User, [{"id": new_id(), "firm": firm_id, "email": f"client{i}@bench.example",
                        "name": f"Client {i}", "role": "client", "company": c["id"]}
                       for i, c in enumerate(companies)])
        due = document_requests.today(morning)
        _insert(DocumentRequest, [
            {"id": new_id(), "firm": firm_id, "company": companies[i % companies_n]["id"],
             "title": f"Relevés {i}", "due_date": due, "status": "open",
             "created_at": now - dt.timedelta(days=30), "updated_at": now}
            for i in range(requests_n)])

        # Raw: read the due requests, write a reminder, a mail row and an audit row each.
        started = time.perf_counter()
        with db.atomic():
            reqs = list(DocumentRequest.select(DocumentRequest.id, DocumentRequest.company)
                        .where((DocumentRequest.status == "open")
                               & (DocumentRequest.due_date <= due)).tuples())
            for part in _chunks(reqs):
                RequestReminder.insert_many([{"id": new_id(), "request": rid, "key": "raw",
                                              "created_at": now} for rid, _c in part]).execute()
                Notification.insert_many([
                    {"id": new_id(), "firm": firm_id, "user": users[0]["id"],
                     "event_key": f"raw:{rid}", "topic": "requests", "subject": "Rappel",
                     "body": "Pour rappel", "status": "raw", "created_at": now}
                    for rid, _c in part]).execute()
                AuditEvent.insert_many([
                    {"id": new_id(), "firm": firm_id, "company_id": cid,
                     "actor_label": "raw", "action": "bench.raw", "object_id": rid,
                     "prev_hash": "0" * 64, "hash": "0" * 64, "created_at": now}
                    for rid, cid in part]).execute()
        raw_remind = time.perf_counter() - started
        with db.atomic():
            RequestReminder.delete().where(RequestReminder.key == "raw").execute()
            Notification.delete().where(Notification.status == "raw").execute()
            AuditEvent.delete().where(AuditEvent.action == "bench.raw").execute()

        started = time.perf_counter()
        sent = document_requests.reminders_pass(morning)
        remind_seconds = time.perf_counter() - started
        again = document_requests.reminders_pass(morning + dt.timedelta(hours=1))
        assert sent == requests_n and again == 0, (sent, again)
        assert RequestReminder.select().count() == requests_n
        mails = Notification.select().where((Notification.topic == "requests")
                                            & (Notification.status == "pending")).count()
        assert mails == requests_n, mails
        assert AuditEvent.select().where(AuditEvent.action == "request.reminded").count() \
            == requests_n
        remind_jobs = default.count
        assert remind_jobs == math.ceil(requests_n / notifications.BATCH), remind_jobs
    h.empty_queues()
    section.add(f"{label}: daily digest, {users_n:,} users, {events_n:,} events grouped",
                digest_seconds, "s", raw_digest, "< 10 s", digest_seconds < 10)
    section.add(f"{label}: reminders pass, {requests_n:,} open requests due", remind_seconds,
                "s", raw_remind, "< 10 s", remind_seconds < 10)
    if kind != "sqlite":
        return
    section.notes.append(
        f"The digest reads the waiting rows of {notifications.DIGEST_USERS} users "
        f"per query, builds each user's message in memory (a line and a link per item), "
        f"inserts the digests in bulk (a day's digest that exists is ignored) and marks the "
        f"rows grouped, one transaction per {notifications.DIGEST_USERS} users "
        f"(SQLite: {events_n / digest_seconds:,.0f} events/s); {digest_jobs} send jobs of "
        f"{notifications.BATCH} messages are queued. The reminders pass reads the due requests "
        f"{document_requests.PASS_BATCH} at a time, drops the (request, step) pairs already "
        f"recorded, then in one transaction locks the requests still open, inserts the "
        f"reminder rows (the unique index ignores one another worker recorded), and for "
        f"those only bumps the counters, appends the audit events (one chained insert per "
        f"firm) and records the e-mail rows (SQLite: {requests_n / remind_seconds:,.0f} "
        f"reminders/s); {remind_jobs} send jobs are queued. Each company has one client "
        f"user, so each reminder makes one e-mail row. A second pass an hour later made no "
        f"digest and sent no reminder.")
