"""Which connections a deposit goes to, decided once, inside the deposit's transaction:
one delivery per connection that is not paused and whose effective switch (the
folder's own, or the nearest of its ancestors') is on. The caller enqueues them
after the commit (``attempt.enqueue``)."""

from __future__ import annotations

from .. import audit, folders, switches
from ..models import Delivery, Document, Folder
from .status import IN_FLIGHT, SUCCESS, refresh_document_status


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
