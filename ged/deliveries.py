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
from .db import transaction
from .errors import Invalid
from .models import Connection, Delivery, Document, Folder, utcnow

log = logging.getLogger(__name__)

SUCCESS = ("sent", "accepted", "validated")
FINAL = ("sent", "validated", "rejected", "failed")
IN_FLIGHT = ("queued", "sending")


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
    return created


def create_manual(actor, doc: Document, connection: Connection) -> Delivery:
    """Send (or send again) a document by hand: a new delivery with trigger ``manual``."""
    return create_manual_many(actor, [doc], connection)[0]


def create_manual_many(actor, docs: list[Document], connection: Connection) -> list[Delivery]:
    """Send documents by hand, all or none: one new delivery each, trigger ``manual``."""
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
        for doc in docs:
            delivery = Delivery.create(firm=doc.firm_id, company=doc.company_id, document=doc.id,
                                       connection=connection.id, trigger="manual",
                                       created_by=actor.id)
            audit.record(actor, "delivery.queued", delivery,
                         details={"document_id": doc.id, "connection_id": connection.id,
                                  "trigger": "manual"}, firm_only=True)
            created.append(delivery)
    try:
        enqueue(created)
    except Exception:  # noqa: BLE001 - committed: the reconciler enqueues what Redis missed
        log.exception("could not enqueue manual deliveries; the reconciler will")
    return created


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
