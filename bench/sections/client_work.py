"""12. Work with clients: the daily digest for 1,000 users and 100,000 events of the
day (grouped into one message each), and the reminders pass over 10,000 open
requests due today (each reminder recorded once, its e-mail row made), with the
clock injected; the messages themselves are not sent (that is the mail relay's rate)."""

from __future__ import annotations

import datetime as dt
import time

from .. import world
from ..report import Section
from . import missing_module

NUMBER, KEY, TITLE = 12, "client_work", "Work with clients: digests and reminders"


def unavailable() -> str | None:
    return (missing_module("ged.notifications", "digest_pass")
            or missing_module("ged.document_requests", "reminders_pass"))


def run(h) -> Section:
    from ged import document_requests, notifications
    from ged.db import db, new_id
    from ged.models import DocumentRequest, Notification, RequestReminder, User, utcnow

    users_n, events_n, requests_n = (50, 2000, 300) if h.quick else (1000, 100_000, 10_000)
    section = Section(NUMBER, KEY, TITLE,
                      raw_label="the same rows written by one INSERT … SELECT-free bulk "
                                "insert (peewee insert_many), the floor of any pass.")
    h.bind("client_work", h.database("client_work"))
    firm = world.make_firm()
    h.empty_queues()
    now = utcnow()
    morning = (now + dt.timedelta(days=1)).astimezone(notifications.PARIS).replace(hour=9)
    with db.connection_context():
        users = [{"id": new_id(), "firm": firm.firm.id, "email": f"u{i}@bench.example",
                  "name": f"Collaborateur {i}", "role": "staff"} for i in range(users_n)]
        with db.atomic():
            for start in range(0, users_n, 500):
                User.insert_many(users[start:start + 500]).execute()
        rows = [{"id": new_id(), "firm": firm.firm.id, "user": users[i % users_n]["id"],
                 "event_key": f"document:bench{i}:{users[i % users_n]['id']}",
                 "topic": "new_documents", "subject": f"Boulangerie Martin : piece-{i:06d}.pdf",
                 "body": "Nouveau document", "link": None, "status": "daily",
                 "created_at": now} for i in range(events_n)]
        started = time.perf_counter()
        with db.atomic():
            for start in range(0, events_n, 1000):
                Notification.insert_many(rows[start:start + 1000]).execute()
        raw_seconds = time.perf_counter() - started
        started = time.perf_counter()
        made = notifications.digest_pass(morning)
        digest_seconds = time.perf_counter() - started
        assert made == users_n, made
        grouped = Notification.select().where(Notification.status == "grouped").count()
        assert grouped == events_n, grouped
        h.empty_queues()
        due = document_requests.today(morning)
        reqs = [{"id": new_id(), "firm": firm.firm.id, "company": firm.company.id,
                 "title": f"Relevés {i}", "due_date": due, "status": "open",
                 "created_at": now - dt.timedelta(days=30),
                 "updated_at": now} for i in range(requests_n)]
        with db.atomic():
            for start in range(0, requests_n, 1000):
                DocumentRequest.insert_many(reqs[start:start + 1000]).execute()
        started = time.perf_counter()
        sent = document_requests.reminders_pass(morning)
        remind_seconds = time.perf_counter() - started
        again = document_requests.reminders_pass(morning + dt.timedelta(hours=1))
        assert sent == requests_n and again == 0, (sent, again)
        assert RequestReminder.select().count() == requests_n
    h.empty_queues()
    section.add(f"daily digest: {users_n} users, {events_n} events grouped", digest_seconds,
                "s", raw_seconds, "< 60 s", digest_seconds < 60)
    section.add(f"reminders pass: {requests_n} open requests due", remind_seconds, "s", None,
                "< 120 s", remind_seconds < 120)
    section.notes.append(
        f"SQLite; each digest reads its user's waiting rows, writes one message row and marks "
        f"the rows grouped in one transaction ({events_n / digest_seconds:,.0f} events/s). Each "
        f"reminder is a transaction of its own (the request's counter, the unique reminder "
        f"row, the audit event; the company has no client user here, so no e-mail row): "
        f"{requests_n / remind_seconds:,.0f} reminders/s. A second pass an hour later sent none.")
    return section
