"""Notifications: what each user is told by e-mail, and the outbox that tells them.

An event (a request, a reminder, a comment, a rejection, a new document, a failed
delivery) becomes one ``Notification`` row per recipient, keyed by a unique
``event_key`` so one event never makes two messages. A row for a topic the user
takes "immediately" is sent by a job through the one mail seam (``mail.send``,
the same relay or embedded outbox as invitations), retried on the delivery
schedule; a row for a "daily" topic waits for the digest pass, which groups a
user's day into one message. Every message carries a one-click unsubscribe
(RFC 8058): a signed link whose POST turns that topic off without signing in.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import zoneinfo
from dataclasses import dataclass

import peewee as pw

from . import mail, notification_mail, queue, runtime
from .db import new_id, transaction
from .errors import Invalid
from .models import (Company, Firm, Notification, NotificationSetting, StaffAssignment, User,
                     utcnow)

log = logging.getLogger(__name__)

MODES = ("off", "immediate", "daily")
TOPICS = ("new_documents", "requests", "comments", "rejections", "delivery_failures")
FIRM_ONLY_TOPICS = ("delivery_failures",)
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
TOPIC_LABELS = {
    "new_documents": "les nouveaux documents",
    "requests": "les demandes de pièces et leurs rappels",
    "comments": "les commentaires",
    "rejections": "les documents à remplacer",
    "delivery_failures": "les échecs d'envoi",
    "digest": "le récapitulatif quotidien",
}
STUCK_SENDING = dt.timedelta(minutes=10)  # a worker died mid-send: the row is taken again
CHUNK = 500  # ids in one IN (...) list: well under SQLite's and PostgreSQL's limits
BATCH = 100  # rows sent by one job


# --- preferences ------------------------------------------------------------------------------


def defaults(user: User) -> dict:
    """What a user is told when they chose nothing: staff get new documents in a daily
    digest, admins delivery failures at once, clients their rejections at once."""
    firm = user.role in ("admin", "staff")
    return {
        "new_documents": "daily" if firm else "off",
        "requests": True,
        "comments": True,
        "rejections": not firm,
        "delivery_failures": ("immediate" if user.role == "admin" else "daily") if firm else "off",
    }


def preferences(user: User) -> dict:
    """The user's choices (their defaults where they chose nothing). A client's have no
    ``delivery_failures``: that is the firm's business."""
    row = NotificationSetting.get_or_none(NotificationSetting.user == user.id)
    prefs = defaults(user)
    if row is not None:
        prefs.update({t: getattr(row, t) for t in TOPICS})
    if user.role == "client":
        prefs.pop("delivery_failures")
    return prefs


def set_preferences(user: User, data: dict) -> dict:
    """Change some of the user's choices; unknown or firm-only topics of a client are refused."""
    prefs = preferences(user)
    for key, value in data.items():
        if key not in prefs:
            raise Invalid(f"{key} is not a notification this user can choose.",
                          "invalid_preference")
        if key in ("new_documents", "delivery_failures"):
            if value not in MODES:
                raise Invalid(f"{key} must be off, immediate or daily.", "invalid_preference")
        elif not isinstance(value, bool):
            raise Invalid(f"{key} must be true or false.", "invalid_preference")
        prefs[key] = value
    stored = {**defaults(user), **prefs}
    if user.role == "client":
        stored["delivery_failures"] = "off"
    with transaction():
        NotificationSetting.insert(user=user.id, updated_at=utcnow(), **stored).on_conflict(
            conflict_target=[NotificationSetting.user],
            update={**{getattr(NotificationSetting, k): v for k, v in stored.items()},
                    NotificationSetting.updated_at: utcnow()}).execute()
    return preferences(user)


def mode_of(prefs: dict, topic: str) -> str:
    """"off", "immediate" or "daily" for one topic of a user's preferences."""
    value = prefs.get(topic, "off")
    if isinstance(value, bool):
        return "immediate" if value else "off"
    return value


def preferences_of(users: list[User]) -> dict[str, dict]:
    """Preferences of many users in one query, by user id."""
    ids = [u.id for u in users]
    rows = {r.user_id: r for start in range(0, len(ids), CHUNK)
            for r in NotificationSetting.select().where(
                NotificationSetting.user.in_(ids[start:start + CHUNK]))}
    out = {}
    for user in users:
        prefs = defaults(user)
        row = rows.get(user.id)
        if row is not None:
            prefs.update({t: getattr(row, t) for t in TOPICS})
        if user.role == "client":
            prefs["delivery_failures"] = "off"
        out[user.id] = prefs
    return out


# --- who hears about a company ----------------------------------------------------------------


def client_users(company_id: str) -> list[User]:
    """The active client users of a company."""
    return clients_of([company_id]).get(company_id, [])


def clients_of(company_ids) -> dict[str, list[User]]:
    """The active client users of many companies, by company id (one query a chunk)."""
    ids, out = list(dict.fromkeys(company_ids)), {}
    for start in range(0, len(ids), CHUNK):
        for user in User.select().where(User.company.in_(ids[start:start + CHUNK])
                                        & (User.role == "client")
                                        & (User.active == True)):  # noqa: E712
            out.setdefault(user.company_id, []).append(user)
    return out


def firm_users(company: Company) -> list[User]:
    """The firm's admins and the staff assigned to the company, active."""
    assigned = StaffAssignment.select(StaffAssignment.user).where(
        StaffAssignment.company == company.id)
    return list(User.select().where(
        (User.firm == company.firm_id) & (User.active == True)  # noqa: E712
        & ((User.role == "admin") | ((User.role == "staff") & User.id.in_(assigned)))))


# --- events into rows ---------------------------------------------------------------------------


@dataclass
class Message:
    """What one recipient is told about one event."""

    user: User
    topic: str
    event_key: str
    subject: str
    body: str
    link: str | None = None


def record(messages: list[Message]) -> list[str]:
    """Record the messages each recipient wants (per their preferences), once per
    event key; returns the ids of rows to send now (see ``dispatch``, after commit)."""
    if not messages:
        return []
    prefs = preferences_of(list({m.user.id: m.user for m in messages}.values()))
    rows = []
    for m in messages:
        mode = mode_of(prefs[m.user.id], m.topic)
        if mode == "off" or not m.user.active:
            continue
        rows.append({"id": new_id(), "firm": m.user.firm_id, "user": m.user.id,
                     "event_key": m.event_key[:200], "topic": m.topic,
                     "subject": m.subject[:300], "body": m.body, "link": m.link,
                     "status": "daily" if mode == "daily" else "pending",
                     "created_at": utcnow()})
    if not rows:
        return []
    with transaction():
        for start in range(0, len(rows), 200):
            Notification.insert_many(rows[start:start + 200]).on_conflict_ignore().execute()
    # The rows this call inserted (an event key already recorded kept its first row).
    return inserted([r["id"] for r in rows if r["status"] == "pending"])


def inserted(ids: list[str]) -> list[str]:
    """Those of ``ids`` that exist, in the order given (after an insert that ignored
    conflicts: the rows that won)."""
    found = set()
    for start in range(0, len(ids), CHUNK):
        found.update(r[0] for r in Notification.select(Notification.id).where(
            Notification.id.in_(ids[start:start + CHUNK])).tuples())
    return [i for i in ids if i in found]


def unindexed(field):
    """``field`` as a plain filter: SQLite would otherwise walk the whole (status, ...)
    index for ``status = ?`` instead of looking up the few hundred ids of an
    ``id IN (...)`` beside it (a query 100 times slower at 100,000 rows)."""
    return pw.fn.COALESCE(field, "")


def dispatch(ids: list[str]) -> None:
    """Enqueue the sending of recorded rows, ``BATCH`` rows a job (each row is still
    claimed, sent and retried on its own); Redis away is logged, the periodic pass
    picks them up."""
    try:
        if len(ids) == 1:
            queue.schedule_notification(ids[0])
        else:
            for start in range(0, len(ids), BATCH):
                queue.schedule_notifications(ids[start:start + BATCH], new_id())
    except Exception:  # noqa: BLE001 - the pass re-enqueues pending rows
        log.warning("could not enqueue %d notification(s); the periodic pass will", len(ids))


def notify(messages: list[Message]) -> list[str]:
    """``record`` then ``dispatch``: for callers outside a transaction."""
    ids = record(messages)
    dispatch(ids)
    return ids


def link(path: str) -> str:
    """An absolute link to a page of ged (on GED_PUBLIC_URL)."""
    return f"{runtime.config().public_url}{path}"


# --- sending ------------------------------------------------------------------------------------


def send(notification_id: str) -> str:
    """Send one row (a job): claimed first, so two workers never both send it; retried
    on the delivery schedule when the relay fails, then ``failed``."""
    now = utcnow()
    claimed = Notification.update(status="sending", attempts=Notification.attempts + 1,
                                  sent_at=now).where(
        (Notification.id == notification_id) & (Notification.status == "pending")).execute()
    if not claimed:
        return "skipped"
    row = Notification.get_by_id(notification_id)
    user = User.get_by_id(row.user_id)
    try:
        if not user.active:
            raise PermissionError("user disabled")
        mail.send(notification_mail.build(
            row, user, Firm.get_by_id(row.firm_id), unsubscribe=unsubscribe_url(user.id, row.topic),
            topic_label=TOPIC_LABELS.get(row.topic, "ces messages"),
            preferences=link("/notifications")))
    except Exception as exc:  # noqa: BLE001 - any relay failure is retried the same way
        schedule = runtime.config().delivery_retry_schedule
        final = (row.attempts > len(schedule) or isinstance(exc, (mail.MailNotConfigured,
                                                                   PermissionError)))
        Notification.update(status="failed" if final else "pending", last_error=str(exc)[:2000],
                            sent_at=None).where(Notification.id == row.id).execute()
        if not final:
            try:
                queue.schedule_notification(row.id, schedule[row.attempts - 1])
            except Exception:  # noqa: BLE001 - the periodic pass re-enqueues
                log.warning("could not schedule the retry of notification %s", row.id)
        return "failed" if final else "retry"
    Notification.update(status="sent", sent_at=utcnow(), last_error=None).where(
        Notification.id == row.id).execute()
    return "sent"


def send_many(notification_ids: list[str]) -> dict:
    """Send a batch of rows (a job of ``dispatch``), each as ``send`` does; a row that
    fails for another reason than the relay is left to the periodic pass."""
    counts: dict[str, int] = {}
    for nid in notification_ids:
        try:
            outcome = send(nid)
        except Exception:  # noqa: BLE001 - the others of the batch still go out
            log.exception("notification %s could not be sent; the periodic pass retries", nid)
            outcome = "error"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def requeue_pending(now: dt.datetime | None = None, limit: int = 1000) -> int:
    """The periodic pass's part: rows pending for a minute with no job, and rows left
    ``sending`` by a worker that died, are enqueued again."""
    now = now or utcnow()
    Notification.update(status="pending").where(
        (Notification.status == "sending") & (Notification.sent_at < now - STUCK_SENDING)).execute()
    ids = [n.id for n in Notification.select(Notification.id).where(
        (Notification.status == "pending")
        & (Notification.created_at < now - dt.timedelta(seconds=60))).limit(limit)]
    ids = [i for i in ids if not queue.job_pending(queue.notification_job_id(i))]
    dispatch(ids)
    return len(ids)


# --- the daily digest --------------------------------------------------------------------------


DIGEST_LINES = 30  # lines per topic in a digest; the rest is counted
DIGEST_USERS = 250  # users whose digests one transaction makes


def digest_cutoff(now: dt.datetime) -> tuple[dt.date, dt.datetime] | None:
    """(local day, moment) of the latest digest due at ``now``: today at the digest
    hour once it passed, else None (yesterday's was made then)."""
    local = now.astimezone(PARIS)
    hour = runtime.config().digest_hour
    if local.hour < hour:
        return None
    moment = dt.datetime.combine(local.date(), dt.time(hour), PARIS)
    return local.date(), moment.astimezone(dt.timezone.utc)


def digest_pass(now: dt.datetime | None = None) -> int:
    """Group each user's waiting "daily" rows made before today's digest hour into one
    message (keyed by user and day: one digest a day whatever the number of passes, on
    any number of hosts); returns the number of digests made.

    Set-based: the waiting rows of ``DIGEST_USERS`` users are read in one query, their
    digests built in memory and inserted in bulk (a digest whose key exists is ignored),
    and only the rows of the digests this pass inserted are marked grouped, in the same
    transaction; then the digests are queued, ``BATCH`` a job."""
    due = digest_cutoff(now or utcnow())
    if due is None:
        return 0
    day, cutoff = due
    users = [r[0] for r in Notification.select(Notification.user).where(
        (Notification.status == "daily") & (Notification.created_at < cutoff))
        .distinct().order_by(Notification.user).tuples()]  # one lock order on every host
    made: list[str] = []
    for start in range(0, len(users), DIGEST_USERS):
        made += _digests_for(users[start:start + DIGEST_USERS], day, cutoff)
    dispatch(made)
    return len(made)


def _digests_for(user_ids: list[str], day: dt.date, cutoff: dt.datetime) -> list[str]:
    waiting: dict[str, list[tuple]] = {}
    query = (Notification.select(Notification.id, Notification.user, Notification.firm,
                                 Notification.topic, Notification.subject, Notification.link)
             .where(Notification.user.in_(user_ids) & (Notification.status == "daily")
                    & (Notification.created_at < cutoff))
             .order_by(Notification.user, Notification.created_at, Notification.id))
    for row in query.tuples().iterator():
        waiting.setdefault(row[1], []).append(row)
    if not waiting:
        return []
    digests = {uid: _digest_row(uid, rows, day) for uid, rows in waiting.items()}
    with transaction():
        rows = list(digests.values())
        for start in range(0, len(rows), 200):
            Notification.insert_many(rows[start:start + 200]).on_conflict_ignore().execute()
        won = set(inserted([d["id"] for d in rows]))
        # Another pass made today's digest of the others: their rows wait for tomorrow's.
        mine = {uid: d for uid, d in digests.items() if d["id"] in won}
        grouped = [(row[0], uid) for uid in mine for row in waiting[uid]]
        for start in range(0, len(grouped), CHUNK):
            part = grouped[start:start + CHUNK]
            owners = {uid for _, uid in part}
            Notification.update(
                status="grouped",
                digest_id=pw.Case(Notification.user,
                                  [(uid, mine[uid]["id"]) for uid in owners])).where(
                Notification.id.in_([rid for rid, _ in part])
                & (unindexed(Notification.status) == "daily")).execute()
    return [d["id"] for d in mine.values()]


def _digest_row(user_id: str, rows: list[tuple], day: dt.date) -> dict:
    """The digest of one user's waiting rows: a section per topic, each line naming the
    item and linking straight to its page (its document, its request)."""
    by_topic: dict[str, list[tuple]] = {}
    for _id, _user, _firm, topic, subject, url in rows:
        by_topic.setdefault(topic, []).append((subject, url))
    sections = []
    for topic, items in by_topic.items():
        lines = [f"- {subject}" + (f"\n  {url}" if url else "")
                 for subject, url in items[:DIGEST_LINES]]
        if len(items) > DIGEST_LINES:
            lines.append(f"- … et {len(items) - DIGEST_LINES} autre(s)")
        sections.append(f"{DIGEST_TITLES.get(topic, topic)} ({len(items)}) :\n"
                        + "\n".join(lines))
    links = {url for *_rest, url in rows}
    count = len(rows)
    return {"id": new_id(), "firm": rows[0][2], "user": user_id,
            "event_key": f"digest:{user_id}:{day}", "topic": "digest",
            "subject": f"Votre récapitulatif du {day.strftime('%d/%m/%Y')} : "
                       f"{count} nouveauté{'s' if count > 1 else ''}",
            "body": "Voici ce qui s'est passé depuis le dernier récapitulatif.\n\n"
                    + "\n\n".join(sections),
            # One item: the button opens its page; many: each line links to its own.
            "link": next(iter(links)) if len(links) == 1 else None,
            "status": "pending", "created_at": utcnow()}


DIGEST_TITLES = {
    "new_documents": "Nouveaux documents",
    "requests": "Demandes de pièces",
    "comments": "Commentaires",
    "rejections": "Documents à remplacer",
    "delivery_failures": "Échecs d'envoi",
}


# --- one-click unsubscribe (RFC 8058) --------------------------------------------------------------


def _key() -> bytes:
    return hashlib.sha256(b"ged-unsubscribe:" + runtime.config().secret_key.encode()).digest()


def unsubscribe_token(user_id: str, topic: str) -> str:
    """A token naming a user and a topic, signed with a key derived from SECRET_KEY."""
    payload = base64.urlsafe_b64encode(f"{user_id}:{topic}".encode()).decode().rstrip("=")
    sig = hmac.new(_key(), payload.encode(), hashlib.sha256).digest()[:16]
    return f"{payload}.{base64.urlsafe_b64encode(sig).decode().rstrip('=')}"


def read_unsubscribe_token(token: str) -> tuple[User, str]:
    """(user, topic) of a valid token; Invalid otherwise."""
    bad = Invalid("This unsubscribe link is not valid.", "invalid_unsubscribe")
    if not token or len(token) > 200 or token.count(".") != 1:
        raise bad
    payload, sig = token.split(".")
    want = base64.urlsafe_b64encode(hmac.new(_key(), payload.encode(), hashlib.sha256)
                                    .digest()[:16]).decode().rstrip("=")
    if not hmac.compare_digest(want, sig):
        raise bad
    try:
        user_id, _, topic = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)) \
            .decode().partition(":")
    except (ValueError, UnicodeError):
        raise bad from None
    user = User.get_or_none(User.id == user_id)
    if user is None or topic not in (*TOPICS, "digest"):
        raise bad
    return user, topic


def unsubscribe_url(user_id: str, topic: str) -> str:
    return link(f"/notifications/desabonnement/{unsubscribe_token(user_id, topic)}")


def unsubscribe(token: str) -> tuple[User, str]:
    """Turn off what the token names (the digest: every daily topic); returns (user, topic)."""
    user, topic = read_unsubscribe_token(token)
    prefs = preferences(user)
    if topic == "digest":
        change = {k: "off" for k, v in prefs.items() if v == "daily"}
    else:
        change = {topic: False if isinstance(prefs.get(topic), bool) else "off"}
    change = {k: v for k, v in change.items() if k in prefs}
    set_preferences(user, change)
    return user, topic
