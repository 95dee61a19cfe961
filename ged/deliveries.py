"""Deliveries: forwarding a document to a connection, decided once at deposit.

``decide()`` runs inside the deposit's transaction and creates one Delivery per
connection whose effective switch is on for the folder and which is not paused.
``enqueue()`` runs after the commit. The worker's job (``run``) sends, records the
outcome and schedules retries; the reconciler re-enqueues what the database says
is pending but Redis has lost.
"""

from __future__ import annotations

import logging

from . import audit, folders, queue, switches
from .db import is_sqlite, transaction
from .errors import Invalid
from .models import Connection, Delivery, Document, Folder, utcnow

log = logging.getLogger(__name__)

SUCCESS = ("sent", "accepted", "validated")
FINAL = ("sent", "validated", "rejected", "failed")
IN_FLIGHT = ("queued", "sending")
# What a tool has received or is about to: a manual send skips these unless told to resend.
RECEIVED = SUCCESS + ("rejected",)


def job_id(delivery_id: str, attempts: int = 0) -> str:
    """The RQ job id of the attempt that follows ``attempts`` attempts: each attempt has
    its own, so scheduling a retry from inside a running job never reuses that job's id."""
    return f"delivery-{delivery_id}" if not attempts else f"delivery-{delivery_id}-{attempts}"


def decide(doc: Document, folder: Folder, chain: list[Folder] | None = None, *,
           moved: bool = False) -> list[Delivery]:
    """Create the deliveries the folder's switches call for (inside the caller's
    transaction). On a move, a connection that already has this document (delivered
    or on its way) gets nothing new."""
    connections = switches.company_connections(folder.company_id, include_paused=False)
    if not connections:
        return []
    chain_ids = [f.id for f in chain] if chain else folders.ancestor_ids(folder)
    states = switches.effective_switches(folder, connections, chain_ids)
    targets = [c for c in connections if states[c.id].effective]
    if moved and targets:
        already = {d.connection_id for d in Delivery.select(Delivery.connection).where(
            (Delivery.document == doc.id) & Delivery.status.in_(SUCCESS + IN_FLIGHT))}
        targets = [c for c in targets if c.id not in already]
    created = []
    for conn in targets:
        delivery = Delivery.create(firm=doc.firm_id, company=doc.company_id, document=doc.id,
                                   connection=conn.id, trigger="switch")
        audit.record("switch", "delivery.queued", delivery, firm=doc.firm_id,
                     details={"document_id": doc.id, "connection_id": conn.id,
                              "trigger": "switch"}, firm_only=True)
        created.append(delivery)
    if created:
        refresh_document_status(doc.id)
    return created


# --- what a document's status says ------------------------------------------------------


def status_from(latest: dict[str, tuple[str, str | None]], replaced: bool
                ) -> tuple[str, str | None]:
    """The rule of API.md ("what a document's status says"): a document's (status,
    reason) from ``latest``, {connection id: (status, tool's message)} of each
    connection's latest delivery that did not fail, least recent first."""
    if replaced:
        return "replaced", None
    states = [status for status, _message in latest.values()]
    if "rejected" in states:
        # Several tools may have rejected it: the words of the latest sent are shown.
        return "rejected", next(m for s, m in reversed(list(latest.values())) if s == "rejected")
    if any(s in SUCCESS for s in states):
        return "validated", None
    if any(s in IN_FLIGHT for s in states):
        return "sending", None
    return "deposited", None


def refresh_document_status(document_id: str) -> str | None:
    """Recompute a document's status from its rows; the one place it is written. Call it
    inside the transaction that changed a delivery (or a replacement)."""
    return refresh_document_statuses([document_id]).get(document_id)


def refresh_document_statuses(document_ids) -> dict[str, str]:
    """``refresh_document_status`` for many documents at once: {id: status}.

    The documents' rows are locked first (PostgreSQL; SQLite transactions are serial),
    then their deliveries are read: of two workers recording at once, the second waits
    and reads what the first committed, so the last writer has seen every outcome.
    A failed delivery is the firm's business: it leaves what the tool had said before."""
    ids = sorted(set(document_ids))
    found: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        with transaction():
            docs = {row.id: row for row in lock_documents(chunk)}
            latest: dict[str, dict] = {doc_id: {} for doc_id in docs}
            for doc_id, conn_id, status, message in (
                    Delivery.select(Delivery.document, Delivery.connection, Delivery.status,
                                    Delivery.message)
                    .where(Delivery.document.in_(list(docs)) & (Delivery.status != "failed"))
                    .order_by(Delivery.created_at, Delivery.id).tuples()):
                latest[doc_id].pop(conn_id, None)  # re-inserted last: dict order = recency
                latest[doc_id][conn_id] = (status, message)
            for doc_id, doc in docs.items():
                status, reason = status_from(latest[doc_id], doc.replaced_by_id is not None)
                if (status, reason) != (doc.status, doc.status_reason):
                    Document.update(status=status, status_reason=reason).where(
                        Document.id == doc_id).execute()
                found[doc_id] = status
    return found


def lock_documents(document_ids: list[str]):
    """The status columns of these documents, their rows locked until the transaction
    ends (PostgreSQL), in id order so two lockers never deadlock."""
    ids = sorted(set(document_ids))
    rows = []
    for start in range(0, len(ids), 500):
        query = (Document.select(Document.id, Document.status, Document.status_reason,
                                 Document.replaced_by_id)
                 .where(Document.id.in_(ids[start:start + 500])).order_by(Document.id))
        rows += list(query if is_sqlite() else query.for_update())
    return rows


def create_manual(actor, doc: Document, connection: Connection) -> Delivery:
    """Send (or send again) a document by hand: a new delivery with trigger ``manual``."""
    return send_by_hand(actor, [doc], connection, resend=True)[0][0]


def send_by_hand(actor, docs: list[Document], connection: Connection, *,
                 resend: bool = False) -> tuple[list[Delivery], list[str]]:
    """Send documents by hand, all or none: one new delivery each, trigger ``manual``.
    Unless ``resend``, a document the tool already has or is about to get (a delivery
    sent, accepted, validated or rejected, or queued or sending, on this connection) or
    that was replaced is skipped, so a folder sent twice sends nothing twice. Returns
    (deliveries created, ids of the documents skipped)."""
    if not docs:
        raise Invalid("No document to send.", "no_document")
    if connection.deleted_at is not None or any(d.company_id != connection.company_id
                                                for d in docs):
        raise Invalid("This connection does not belong to the document's company.",
                      "invalid_connection")
    if connection.paused:
        raise Invalid("This connection is paused; resume it before sending.", "connection_paused")
    if any(d.trashed_at is not None for d in docs):
        raise Invalid("A document in the trash cannot be sent.", "document_trashed")
    created = []
    with transaction():
        # Locked before the check and before their deliveries reference them: two
        # sends at once (a double click) see each other's deliveries.
        locked = lock_documents([d.id for d in docs])
        skipped = set() if resend else _received(locked, connection)
        for doc in docs:
            if doc.id in skipped:
                continue
            delivery = Delivery.create(firm=doc.firm_id, company=doc.company_id, document=doc.id,
                                       connection=connection.id, trigger="manual",
                                       created_by=actor.id)
            audit.record(actor, "delivery.queued", delivery,
                         details={"document_id": doc.id, "connection_id": connection.id,
                                  "trigger": "manual"}, firm_only=True)
            created.append(delivery)
        refresh_document_statuses([d.document_id for d in created])
    try:
        enqueue(created)
    except Exception:  # noqa: BLE001 - committed: the reconciler enqueues what Redis missed
        log.exception("could not enqueue manual deliveries; the reconciler will")
    return created, [d.id for d in docs if d.id in skipped]


def _received(locked: list[Document], connection: Connection) -> set[str]:
    """Of these (locked) documents, those the connection's tool has or is about to get,
    and those replaced since."""
    found = {d.id for d in locked if d.replaced_by_id is not None}
    ids = [d.id for d in locked]
    for start in range(0, len(ids), 500):
        found.update(row[0] for row in Delivery.select(Delivery.document).where(
            Delivery.document.in_(ids[start:start + 500])
            & (Delivery.connection == connection.id)
            & Delivery.status.in_(RECEIVED + IN_FLIGHT)).distinct().tuples())
    return found


def enqueue(deliveries: list[Delivery]) -> None:
    """Put deliveries on the ``deliveries`` queue (after their rows are committed)."""
    for delivery in deliveries:
        queue.enqueue("deliveries", "ged.tasks.deliver", delivery.id,
                      job_id=job_id(delivery.id), job_timeout=300)


def delivery_dict(delivery: Delivery) -> dict:
    return {
        "id": delivery.id,
        "document_id": delivery.document_id,
        "connection_id": delivery.connection_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "message": delivery.message,
        "trigger": delivery.trigger,
        "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None,
        "created_at": delivery.created_at.isoformat(),
        "updated_at": delivery.updated_at.isoformat(),
    }


def touch(delivery_id: str, **fields) -> int:
    fields["updated_at"] = utcnow()
    return Delivery.update(**fields).where(Delivery.id == delivery_id).execute()
