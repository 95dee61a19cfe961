"""What a delivery's status says, and the document status that follows from its
deliveries (the rule of API.md, "what a document's status says"), written in one
place: ``refresh_document_status``."""

from __future__ import annotations

import datetime as dt

from ..db import is_sqlite, transaction
from ..models import Connection, Delivery, Document

SUCCESS = ("sent", "accepted", "validated")
IN_FLIGHT = ("queued", "sending")
# What a tool has received or is about to: a manual send skips these unless told to resend.
RECEIVED = SUCCESS + ("rejected",)


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


def mark_success(delivery: Delivery, now: dt.datetime) -> None:
    """A delivery reached the tool: the document's status is recomputed from every
    connection's latest delivery (a verdict may say otherwise) and the connection has
    a last success."""
    refresh_document_status(delivery.document_id)
    Connection.update(last_success_at=now).where(Connection.id == delivery.connection_id).execute()


def delivery_dict(delivery: Delivery) -> dict:
    """A delivery as the API shows it to the firm."""
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
