"""Document requests (« demandes de pièces »): the firm asks a company for documents,
the client deposits against the request, and is reminded until it does.

A document deposited against a request goes through the one deposit path
(``documents.deposit``) into the request's folder, so that folder's switches send
it, then the request is ``fulfilled``. Reminders follow GED_REQUEST_REMINDER_DAYS
from the due date (default 3 days before, on the day, then every 7 days); each is
a ``RequestReminder`` row whose unique (request, key) index makes it sent once
across every worker and host, and none goes out once the request is closed.
"""

from __future__ import annotations

import datetime as dt

import peewee as pw

from . import audit, documents, folders, notifications, permissions, runtime
from .db import is_postgres, new_id, transaction
from .errors import Conflict, Invalid, NotFound
from .models import (Company, Document, DocumentRequest, Folder, RequestDocument,
                     RequestReminder, User, utcnow)

STATUSES = ("open", "fulfilled", "cancelled")
MAX_BULK = 1000
PASS_BATCH = 2000  # open requests a reminders pass reads (and reminds) at a time


def today(now: dt.datetime | None = None) -> dt.date:
    """The firm's calendar day (Europe/Paris) at ``now``."""
    return (now or utcnow()).astimezone(notifications.PARIS).date()


def parse_due(value) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise Invalid("due_date must be a date (YYYY-MM-DD).", "invalid_due_date") from None


def _clean_title(title) -> str:
    title = " ".join(str(title or "").split())
    if not title:
        raise Invalid("A request needs a title.", "title_required")
    if len(title) > 200:
        raise Invalid("The title is longer than 200 characters.", "title_too_long")
    return title


def _clean_description(text) -> str | None:
    text = (text or "").strip()
    if len(text) > 5000:
        raise Invalid("The description is longer than 5,000 characters.", "description_too_long")
    return text or None


# --- who sees what ------------------------------------------------------------------------------


def visible(user: User) -> pw.ModelSelect:
    """The requests ``user`` may see: those of the companies they see."""
    return (DocumentRequest.select(DocumentRequest, Company).join(Company)
            .where(DocumentRequest.company.in_(
                permissions.visible_companies(user).select(Company.id))))


def request_for(user: User, request_id: str) -> DocumentRequest:
    req = visible(user).where(DocumentRequest.id == str(request_id)).first()
    if req is None:
        raise NotFound("Request not found.")
    return req


def _target_folder(actor: User, company: Company, folder_id: str | None) -> Folder | None:
    if not folder_id:
        return None
    folder = permissions.folder_for(actor, folder_id)
    if folder.company_id != company.id:
        raise NotFound("Folder not found.")
    if any(f.firm_only for f in folders.ancestors(folder)):
        raise Invalid("The client cannot see this folder (reserved to the firm).",
                      "folder_not_shared")
    return folder


def deposit_folder(req: DocumentRequest) -> Folder:
    """Where a document deposited against ``req`` goes: its folder, or the company's root
    when it names none (or its folder went to the trash)."""
    if req.folder_id:
        folder = Folder.get_or_none(Folder.id == req.folder_id)
        if folder is not None and folder.trashed_at is None:
            return folder
    return folders.root_of(req.company_id)


# --- creating -------------------------------------------------------------------------------------


def create(actor: User, company: Company, *, title, description=None, folder_id=None,
           due_date=None) -> DocumentRequest:
    """One request to one company; its client users are told by e-mail."""
    permissions.require_role(actor, "admin", "staff")
    company = permissions.company_for(actor, company.id)
    folder = _target_folder(actor, company, folder_id)
    with transaction():
        req = _insert(actor, company, folder, _clean_title(title),
                      _clean_description(description), parse_due(due_date), None)
        ids = notifications.record(_messages(req, "created"))
    notifications.dispatch(ids)
    return req


def _insert(actor, company, folder, title, description, due, batch_id) -> DocumentRequest:
    req = DocumentRequest.create(firm=company.firm_id, company=company.id,
                                 folder=folder.id if folder else None, title=title,
                                 description=description, due_date=due, created_by=actor.id,
                                 batch_id=batch_id)
    audit.record(actor, "request.created", req, company=company.id,
                 details={"title": title, "due_date": due.isoformat() if due else None,
                          "folder_id": req.folder_id})
    return req


def find_path(company_id: str, path: str | None) -> Folder | None:
    """The company's folder at ``path`` ("Dossier comptable annuel 2026/Banque"), names
    compared without regard to case; None when the path is empty, NotFound when absent."""
    names = [n.strip() for n in (path or "").strip("/").split("/") if n.strip()]
    folder = folders.root_of(company_id)
    if not names:
        return None
    for name in names:
        folder = (Folder.select().where((Folder.parent == folder.id)
                                        & (pw.fn.LOWER(Folder.name) == name.lower())
                                        & Folder.trashed_at.is_null()).first())
        if folder is None:
            raise NotFound(f"No folder {path!r} in this company.", "folder_path_not_found")
    return folder


def create_bulk(actor: User, company_ids: list[str], *, title, description=None,
                folder_path=None, due_date=None) -> list[DocumentRequest]:
    """One request per company, the folder found by its path in each company's tree; all
    of them or none (a company that lacks the path is named in the error)."""
    permissions.require_role(actor, "admin", "staff")
    company_ids = list(dict.fromkeys(str(c) for c in company_ids or []))
    if not company_ids:
        raise Invalid("Name at least one company.", "no_company")
    if len(company_ids) > MAX_BULK:
        raise Invalid(f"At most {MAX_BULK} companies at once.", "too_many_companies")
    companies = {c.id: c for c in permissions.visible_companies(actor).where(
        Company.id.in_(company_ids))}
    if len(companies) != len(company_ids):
        raise NotFound("Company not found.")
    title, description, due = _clean_title(title), _clean_description(description), parse_due(due_date)
    targets, missing = {}, []
    for cid in company_ids:
        try:
            folder = find_path(cid, folder_path)
        except NotFound:
            missing.append(companies[cid].name)
            continue
        if folder is not None and any(f.firm_only for f in folders.ancestors(folder)):
            missing.append(companies[cid].name)
            continue
        targets[cid] = folder
    if missing:
        raise Invalid(f"The folder {folder_path!r} is missing (or reserved to the firm) in: "
                      + ", ".join(sorted(missing)[:20]), "folder_path_not_found")
    batch = new_id()
    made, ids = [], []
    with transaction():
        for cid in company_ids:
            req = _insert(actor, companies[cid], targets[cid], title, description, due, batch)
            req.company = companies[cid]
            made.append(req)
        ids = notifications.record([m for r in made for m in _messages(r, "created")])
    notifications.dispatch(ids)
    return made


# --- answering ------------------------------------------------------------------------------------


def deposit(actor: User, req: DocumentRequest, uploads: list, channel: str) -> list[Document]:
    """Deposit files against a request (the one deposit path, into its folder), link them,
    and mark the request fulfilled."""
    if req.status == "cancelled":
        for u in uploads:
            u.staged.discard()
        raise Conflict("This request was cancelled.", "request_cancelled")
    docs = documents.deposit(actor, deposit_folder(req), uploads, channel)
    with transaction():
        RequestDocument.insert_many([{"request": req.id, "document": d.id, "created_at": utcnow()}
                                     for d in docs]).on_conflict_ignore().execute()
        closed = DocumentRequest.update(status="fulfilled", closed_at=utcnow(),
                                        updated_at=utcnow()).where(
            (DocumentRequest.id == req.id) & (DocumentRequest.status == "open")).execute()
        if closed:
            audit.record(actor, "request.fulfilled", req, company=req.company_id,
                         details={"document_ids": [d.id for d in docs]})
    return docs


# --- changing ----------------------------------------------------------------------------------------


def update(actor: User, req: DocumentRequest, data: dict) -> DocumentRequest:
    """Reopen (with the reason in ``description``, which the client is told), cancel,
    mark fulfilled, move the date, retitle."""
    permissions.require_role(actor, "admin", "staff")
    changes: dict = {}
    if "title" in data:
        changes["title"] = _clean_title(data["title"])
    if "description" in data:
        changes["description"] = _clean_description(data["description"])
    if "due_date" in data:
        changes["due_date"] = parse_due(data["due_date"])
    status = data.get("status")
    reopened = False
    if status is not None and status != req.status:
        if status not in STATUSES:
            raise Invalid("status must be open, fulfilled or cancelled.", "invalid_status")
        if status == "open":
            if not changes.get("description"):
                raise Invalid("Say in description why the request is reopened.",
                              "reason_required")
            reopened = True
            changes["closed_at"] = None
        else:
            changes["closed_at"] = utcnow()
        changes["status"] = status
    if not changes:
        return req
    changes["updated_at"] = utcnow()
    with transaction():
        DocumentRequest.update(**changes).where(DocumentRequest.id == req.id).execute()
        audit.record(actor, f"request.{'reopened' if reopened else status or 'updated'}", req,
                     company=req.company_id,
                     details={k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v)
                              for k, v in changes.items() if k != "updated_at"})
        req = DocumentRequest.get_by_id(req.id)
        ids = notifications.record(_messages(req, "reopened")) if reopened else []
    notifications.dispatch(ids)
    return req


def remind(actor: User, req: DocumentRequest, now: dt.datetime | None = None) -> bool:
    """« Relancer »: a reminder now, to the company's client users (open requests only)."""
    permissions.require_role(actor, "admin", "staff")
    if req.status != "open":
        raise Conflict("Only an open request is reminded.", "request_closed")
    return bool(_send_reminders({req.id: f"manual-{new_id()}"}, actor, now or utcnow()))


def _send_reminders(wanted: dict[str, str], actor, now: dt.datetime) -> int:
    """Record and send one reminder per (request id, key) of ``wanted``, in one
    transaction; returns how many were sent. A pair already recorded (by this or any
    other worker, on any host: the unique (request, key) index) or a request no longer
    open is skipped: the open requests are locked first (PostgreSQL: FOR UPDATE; SQLite:
    the transaction holds the write lock), so none closes between that check and the
    insert, and only the rows this call inserted are counted, audited and mailed."""
    with transaction():
        query = (DocumentRequest.select(DocumentRequest, Company).join(Company)
                 .where(DocumentRequest.id.in_(list(wanted))
                        & (notifications.unindexed(DocumentRequest.status) == "open"))
                 .order_by(DocumentRequest.id))  # one lock order for every worker
        if is_postgres():
            query = query.for_update(of=DocumentRequest)
        reqs = {r.id: r for r in query}
        if not reqs:
            return 0
        rows = [{"id": new_id(), "request": rid, "key": wanted[rid], "created_at": now,
                 "sent_by": getattr(actor, "id", None)} for rid in reqs]
        for start in range(0, len(rows), 500):
            RequestReminder.insert_many(rows[start:start + 500]).on_conflict_ignore().execute()
        ids = [r["id"] for r in rows]
        mine = set()
        for start in range(0, len(ids), 500):
            mine.update(r[0] for r in RequestReminder.select(RequestReminder.request).where(
                RequestReminder.id.in_(ids[start:start + 500])).tuples())
        sent = [reqs[rid] for rid in reqs if rid in mine]
        if not sent:
            return 0
        sent_ids = [r.id for r in sent]
        for start in range(0, len(sent_ids), 500):
            DocumentRequest.update(reminders_sent=DocumentRequest.reminders_sent + 1,
                                   last_reminder_at=now).where(
                DocumentRequest.id.in_(sent_ids[start:start + 500])).execute()
        audit.record_many(actor or "rappel automatique", "request.reminded",
                          [(r, {"key": wanted[r.id]}) for r in sent])
        clients = notifications.clients_of({r.company_id for r in sent})
        messages = []
        for req in sent:
            req.reminders_sent += 1
            messages += _messages(req, "reminder", key=wanted[req.id], now=now,
                                  users=clients.get(req.company_id, []))
        ids = notifications.record(messages)
    notifications.dispatch(ids)
    return len(sent)


def reminder_step(req_due: dt.date, created: dt.date, day: dt.date,
                  steps: list[int]) -> int | None:
    """The schedule step (days from the due date) due on ``day``: the latest one reached,
    continuing past the last step at the interval of the last two (every 7 days by
    default); None when no step has come, or the one reached came before the request."""
    offset = (day - req_due).days
    reached = [s for s in steps if s <= offset]
    if not reached:
        return None
    step = reached[-1]
    if step == steps[-1] and len(steps) > 1:
        every = max(steps[-1] - steps[-2], 1)
        step += ((offset - step) // every) * every
    if req_due + dt.timedelta(days=step) < created:
        return None  # a step that passed before the request existed is not sent late
    return step


def reminders_pass(now: dt.datetime | None = None) -> int:
    """Send the reminders due at ``now`` (the clock is injectable for tests); returns
    how many were sent. Safe to run anywhere, any number of times, at once.

    Set-based: the open requests past their first step are read ``PASS_BATCH`` at a
    time, the (request, key) pairs due are worked out in memory, those already recorded
    are dropped with one query, and the rest are recorded and mailed together
    (``_send_reminders``)."""
    now = now or utcnow()
    day = today(now)
    steps = sorted(runtime.config().request_reminder_days) or [0]
    horizon = day - dt.timedelta(days=steps[0])
    sent = 0
    last_id = ""
    while True:
        batch = list(DocumentRequest.select(DocumentRequest.id, DocumentRequest.due_date,
                                            DocumentRequest.created_at)
                     .where((DocumentRequest.status == "open")
                            & DocumentRequest.due_date.is_null(False)
                            & (DocumentRequest.due_date <= horizon)
                            & (DocumentRequest.id > last_id))
                     .order_by(DocumentRequest.id).limit(PASS_BATCH).tuples())
        if not batch:
            return sent
        last_id = batch[-1][0]
        wanted = {}
        for rid, due, created in batch:
            step = reminder_step(due, today(created), day, steps)
            if step is not None:
                wanted[rid] = f"{due.isoformat()}:{step:+d}"
        if not wanted:
            continue
        rids = list(wanted)
        for start in range(0, len(rids), 500):
            for rid, key in RequestReminder.select(RequestReminder.request, RequestReminder.key) \
                    .where(RequestReminder.request.in_(rids[start:start + 500])).tuples():
                if wanted.get(rid) == key:
                    del wanted[rid]
        if wanted:
            sent += _send_reminders(wanted, None, now)


# --- what the client is told -----------------------------------------------------------------------


def _messages(req: DocumentRequest, event: str, key: str = "",
              now: dt.datetime | None = None, users: list[User] | None = None) -> list:
    """What each client user of the request's company is told (``users``: those, when
    the caller already read them)."""
    company = req.company if isinstance(req.company, Company) else Company.get_by_id(req.company_id)
    due = f" avant le {req.due_date.strftime('%d/%m/%Y')}" if req.due_date else ""
    url = notifications.link(f"/demandes/{req.id}")
    if event == "created":
        subject = f"Pièces demandées : {req.title}"
        body = (f"Votre cabinet vous demande de déposer : {req.title}{due}.")
    elif event == "reopened":
        subject = f"Demande rouverte : {req.title}"
        body = f"Votre cabinet a rouvert la demande « {req.title} »{due}."
    else:
        late = req.due_date is not None and req.due_date < today(now)
        subject = f"Rappel : {req.title}" + (" (en retard)" if late else "")
        body = f"Pour rappel, votre cabinet attend : {req.title}{due}."
    if req.description:
        body += f"\n\n{'Motif' if event == 'reopened' else 'Précisions'} : {req.description}"
    body += f"\n\nEntreprise : {company.name}. Déposez vos documents directement sur la page de la demande."
    return [notifications.Message(u, "requests", f"request:{event}:{req.id}:{key or req.updated_at.isoformat()}:{u.id}",
                                  subject, body, url)
            for u in (notifications.client_users(company.id) if users is None else users)]


def request_dict(req: DocumentRequest, user: User | None = None,
                 document_ids: list[str] | None = None) -> dict:
    """The API shape of a request (API.md)."""
    if document_ids is None:
        document_ids = documents_of([req.id], user).get(req.id, [])
    return {
        "id": req.id, "company_id": req.company_id, "title": req.title,
        "description": req.description, "folder_id": req.folder_id,
        "due_date": req.due_date.isoformat() if req.due_date else None,
        "status": req.status, "late": is_late(req),
        "created_by": req.created_by_id, "created_at": req.created_at.isoformat(),
        "reminders_sent": req.reminders_sent,
        "last_reminder_at": req.last_reminder_at.isoformat() if req.last_reminder_at else None,
        "documents": document_ids,
    }


def is_late(req: DocumentRequest, now: dt.datetime | None = None) -> bool:
    return req.status == "open" and req.due_date is not None and req.due_date < today(now)


def documents_of(request_ids: list[str], user: User | None = None) -> dict[str, list[str]]:
    """The ids of the (untrashed) documents that answered each request, oldest first."""
    out: dict[str, list[str]] = {}
    if not request_ids:
        return out
    query = (RequestDocument.select(RequestDocument.request, RequestDocument.document)
             .join(Document, on=(RequestDocument.document == Document.id))
             .where(RequestDocument.request.in_(request_ids) & Document.trashed_at.is_null())
             .order_by(Document.deposited_at))
    for rid, did in query.tuples():
        out.setdefault(rid, []).append(did)
    return out


def answered_documents(request_ids: list[str]) -> dict[str, list[Document]]:
    """The documents that answered each request (for the pages)."""
    ids = documents_of(request_ids)
    docs = {d.id: d for d in Document.select().where(
        Document.id.in_([i for v in ids.values() for i in v]))}
    return {rid: [docs[i] for i in v if i in docs] for rid, v in ids.items()}
