"""Sending by hand: the one path the web's folder and document pages and the API's
send routes share. Staff pick documents (a selection, a folder, a folder and below)
and a connection; each document gets a new delivery, trigger ``manual``, and what the
tool already has is skipped unless they ask to send it again."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

from .. import audit, folders, permissions
from ..db import transaction
from ..errors import Invalid, NotFound
from ..models import Connection, Delivery, Document, Folder, User
from .attempt import enqueue
from .status import IN_FLIGHT, RECEIVED, lock_documents, refresh_document_statuses

log = logging.getLogger(__name__)


def folder_documents(actor: User, folder: Folder, *, below: bool = True) -> list[Document]:
    """The documents of a folder, and with ``below`` of everything under it, that
    ``actor`` sees (nothing in the trash, nor in a trashed subfolder), for sending a
    folder by hand."""
    visible = [folder.id]
    if below:
        hidden = permissions.hidden_prefixes(actor, folder.company_id)
        visible = [f.id for f in folders.subtree(folder).select(Folder.id, Folder.path)
                   if not any(f.path.startswith(p) for p in hidden)]
    return list(Document.select().where(Document.folder.in_(visible)
                                        & Document.trashed_at.is_null())
                .order_by(Document.deposited_at, Document.id))


@dataclass
class ManualSend:
    """What a send by hand did: the deliveries created, and the documents skipped
    because the tool already has them (or they were replaced)."""

    deliveries: list[Delivery]
    skipped: list[str]


def send_manual(actor: User, connection: Connection, *,
                documents: Iterable[Document] | None = None, folder: Folder | None = None,
                below: bool = True, only: Iterable[str] | None = None,
                resend: bool = False) -> ManualSend:
    """Send documents by hand to ``connection``, for the web and the API alike: the
    ``documents`` given, or those of ``folder`` (and with ``below`` of every subfolder
    ``actor`` sees; with ``only``, just the documents of these ids). Firm users only,
    on a connection of a company they see, with a folder of that company (NotFound
    otherwise). One new delivery each, all or none; a document the tool already has or
    is about to get, or that was replaced, is skipped unless ``resend``."""
    permissions.require_role(actor, "admin", "staff")
    try:
        permissions.firm_object(actor, connection)
    except NotFound:
        raise NotFound("Connection not found.") from None
    if (documents is None) == (folder is None):
        raise ValueError("send_manual takes either documents or a folder")
    if folder is not None:
        if folder.company_id != connection.company_id:
            raise NotFound("Folder not found.")
        documents = folder_documents(actor, folder, below=below)
        if only is not None:
            wanted = set(only)
            documents = [d for d in documents if d.id in wanted]
    created, skipped = _send(actor, list(documents), connection, resend=resend)
    return ManualSend(created, skipped)


def _send(actor: User, docs: list[Document], connection: Connection, *,
          resend: bool) -> tuple[list[Delivery], list[str]]:
    """Create the deliveries of a send by hand, all or none, and enqueue them after the
    commit. Returns (deliveries created, ids of the documents skipped)."""
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
