"""Documents: the one deposit path every channel calls, and what can happen to a
document afterwards (move, rename, trash, restore, legal hold).

``deposit()`` checks the caller's right, validates each file by its content,
stores the bytes, then in one transaction records the documents, the audit
events and the deliveries the folder switches decide; only after the commit are
jobs enqueued (extraction, deliveries). Redis being down never loses a deposit:
the reconciler enqueues what the database says is pending.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import BinaryIO, Iterable

from . import audit, deliveries, filetypes, folders, permissions, queue, runtime
from .blobs import Staged, stage
from .db import transaction
from .errors import Conflict, Invalid, NotFound
from .extraction.invoices import invoice_key
from .models import Blob, Company, Document, Firm, Folder, User, utcnow

log = logging.getLogger(__name__)

CHANNELS = ("web", "api", "email", "import")
MAX_FILES_PER_DEPOSIT = 100


@dataclass
class Upload:
    """One file of a deposit: the name it was given and its staged bytes."""

    name: str
    staged: Staged


def stage_uploads(files: Iterable[tuple[str, BinaryIO]]) -> list[Upload]:
    """Stage the files of a request, each ``(name, stream)``, in the data dir (refused
    past GED_MAX_UPLOAD_BYTES), for ``deposit`` or ``replace``, which discard them.
    When one fails, the ones already staged are discarded before the error goes up."""
    cfg = runtime.config()
    uploads: list[Upload] = []
    try:
        for name, stream in files:
            uploads.append(Upload(name, stage(stream, cfg.data_dir, cfg.max_upload_bytes)))
    except BaseException:
        for upload in uploads:
            upload.staged.discard()
        raise
    return uploads


def deposit(actor: User | None, folder: Folder, uploads: list[Upload], channel: str, *,
            label: str | None = None, replaces: Document | None = None) -> list[Document]:
    """Deposit files into ``folder``; all of them or none.

    ``actor`` is the depositing user (their right to the folder is checked), or
    None for a channel that authenticated otherwise (an e-mail drop address, the
    import command), described by ``label``. With ``replaces`` (one file), the new
    document replaces that one (see ``replace``). Each document returned carries
    ``deposit_warnings``: what the depositor should be told (filetypes.WARNINGS codes)."""
    try:
        if channel not in CHANNELS:
            raise Invalid("Unknown deposit channel.", "invalid_channel")
        if not uploads:
            raise Invalid("No file was sent.", "no_file")
        if replaces is not None and len(uploads) != 1:
            raise Invalid("A document is replaced by exactly one file.", "one_file")
        if len(uploads) > MAX_FILES_PER_DEPOSIT:
            raise Invalid(f"At most {MAX_FILES_PER_DEPOSIT} files per deposit.", "too_many_files")
        if actor is not None:
            folder = permissions.folder_for(actor, folder.id)
        elif folder.trashed_at is not None:
            raise NotFound("Folder not found.")
        checked = []
        for upload in uploads:
            name = filetypes.clean_filename(upload.name)
            if upload.staged.size == 0:
                raise Invalid(f"The file {name!r} is empty.", "empty_file")
            verdict = filetypes.inspect(upload.staged.path, upload.staged.head, name)
            checked.append((verdict.name, verdict.content_type, upload.staged, verdict.warnings))
        store = runtime.store()
        for _name, _ctype, staged, _warnings in checked:
            store.put(staged.sha256, staged.path)  # complete before any row names it
    finally:
        for upload in uploads:
            upload.staged.discard()

    chain = folders.ancestors(folder)
    years = folders.retention_years(folder, chain)
    actor_label = label or (audit.actor_fields(actor)[1] if actor else "système")
    firm_id = actor.firm_id if actor else Company.get_by_id(folder.company_id).firm_id
    created: list[Document] = []
    decided = []
    with transaction():
        if replaces is not None:
            # Row locks before the audit trail's lock, in every path (no deadlock).
            deliveries.lock_documents([replaces.id])
        for name, content_type, staged, warnings in checked:
            blob, _ = Blob.get_or_create(
                sha256=staged.sha256,
                defaults={"size": staged.size, "content_type": content_type},
            )
            now = utcnow()
            earlier = (Document.select(Document.id)
                       .where((Document.company == folder.company_id)
                              & (Document.blob == staged.sha256)
                              & Document.trashed_at.is_null())
                       .order_by(Document.deposited_at).first())
            # What the blob's extraction found is copied at once only when this company
            # already holds the bytes; otherwise a job copies it after the reply, which
            # must not tell whether another company (or firm) holds the same file.
            known_here = earlier is not None or (
                Document.select(Document.id).where((Document.company == folder.company_id)
                                                   & (Document.blob == staged.sha256)).exists())
            doc = Document.create(
                firm=firm_id,
                company=folder.company_id,
                folder=folder.id,
                name=name,
                blob=staged.sha256,
                size=staged.size,
                content_type=content_type,
                channel=channel,
                deposited_at=now,
                deposited_by=actor.id if actor else None,
                deposited_by_label=actor_label,
                text_status=blob.text_status if known_here else "pending",
                duplicate_of=earlier.id if earlier else None,
                invoice_key=invoice_key(blob.facturx) if known_here else None,
                retain_until=folders.retain_until(now, years),
                replaces_id=replaces.id if replaces is not None else None,
            )
            audit.record(actor or actor_label, "document.deposited", doc, firm=doc.firm_id,
                         details={"name": name, "sha256": staged.sha256, "size": staged.size,
                                  "channel": channel, "folder_id": folder.id,
                                  "duplicate_of": doc.duplicate_of})
            if replaces is not None:
                _mark_replaced(actor or actor_label, replaces, doc)
            decided += deliveries.decide(doc, folder, chain)
            doc.deposit_warnings = list(warnings)  # for the reply only (filetypes.WARNINGS)
            created.append(doc)
    if decided:  # the replies show what the switches made of each document
        statuses = dict(Document.select(Document.id, Document.status).where(
            Document.id.in_([d.id for d in created])).tuples())
        for doc in created:
            doc.status = statuses.get(doc.id, doc.status)
    after_commit(created, decided)
    return created


def warnings_of(docs: list[Document]) -> list[dict]:
    """What the depositor of ``docs`` should be told, one entry per warning:
    ``{document_id, name, code, message}`` (e.g. a PDF kept that needs a password)."""
    return [{"document_id": d.id, "name": d.name, "code": code,
             "message": filetypes.WARNINGS[code]}
            for d in docs for code in d.deposit_warnings]


def replace(actor: User, doc: Document, upload: Upload, channel: str) -> Document:
    """Deposit a new version of ``doc`` into its folder, by the one deposit path (so the
    folder's switches send it): the new document has ``replaces_id``, the old one
    becomes ``replaced`` and stays, under its retention."""
    if doc.trashed_at is not None:
        upload.staged.discard()
        raise NotFound("Document not found.")
    if doc.replaced_by_id is not None:
        upload.staged.discard()
        raise Conflict("This document was already replaced; replace its newest version.",
                       "already_replaced")
    folder = Folder.get_by_id(doc.folder_id)
    return deposit(actor, folder, [upload], channel, replaces=doc)[0]


def _mark_replaced(actor, old: Document, new: Document) -> None:
    """Inside the deposit's transaction: the old document now points to its replacement.
    Guarded, so of two replacements at once one wins and the other deposits nothing."""
    taken = Document.update(replaced_by_id=new.id).where(
        (Document.id == old.id) & Document.replaced_by_id.is_null()
        & Document.trashed_at.is_null()).execute()
    if not taken:
        raise Conflict("This document was already replaced; replace its newest version.",
                       "already_replaced")
    deliveries.refresh_document_status(old.id)
    audit.record(actor, "document.replaced", old, firm=old.firm_id,
                 details={"name": old.name, "replaced_by": new.id, "new_name": new.name,
                          "reason": old.status_reason})


def blobs_to_copy(limit: int = 1000) -> list[str]:
    """Blobs whose text is known but not yet copied onto a document deposited since
    (the deposit leaves that to the extraction job): for the reconciler."""
    return [row[0] for row in (Document.select(Document.blob)
                               .join(Blob, on=(Document.blob == Blob.sha256))
                               .where((Document.text_status == "pending")
                                      & (Blob.text_status != "pending"))
                               .distinct().limit(limit).tuples())]


def after_commit(documents: list[Document], decided: list) -> None:
    """Enqueue the work a commit implies; Redis being down is logged, not fatal:
    the reconciler picks the work up from the database."""
    try:
        for doc in documents:
            queue.schedule_text(doc)
        deliveries.enqueue(decided)
    except Exception:  # noqa: BLE001 - the deposit is committed; the reconciler will enqueue
        log.exception("could not enqueue work after a deposit; the reconciler will retry")
    try:  # who is told: a job (one query per recipient has no place in the upload's reply)
        queue.schedule_deposit_notices([d.id for d in documents])
    except Exception:  # noqa: BLE001 - a notice lost is logged; the deposit stands
        log.exception("could not enqueue the notices of a deposit")


def move(actor: User, doc: Document, target: Folder) -> Document:
    """Move a document to another folder of its company: a deposit there for the switches."""
    permissions.require_role(actor, "admin", "staff")
    if target.company_id != doc.company_id:
        raise NotFound("Folder not found.")
    if target.id == doc.folder_id:
        return doc
    chain = folders.ancestors(target)
    with transaction():
        Document.update(folder=target.id, index_dirty=True).where(Document.id == doc.id).execute()
        audit.record(actor, "document.moved", doc,
                     details={"from_folder": doc.folder_id, "to_folder": target.id})
        doc = Document.get_by_id(doc.id)
        decided = deliveries.decide(doc, target, chain, moved=True)
    after_commit([], decided)
    queue.schedule_index(doc.firm_id)
    return doc


def rename(actor: User, doc: Document, name: str) -> Document:
    permissions.require_role(actor, "admin", "staff")
    name = filetypes.name_for(filetypes.clean_filename(name), doc.content_type)
    with transaction():
        Document.update(name=name, index_dirty=True).where(Document.id == doc.id).execute()
        audit.record(actor, "document.renamed", doc, details={"from": doc.name, "to": name})
    queue.schedule_index(doc.firm_id)
    return Document.get_by_id(doc.id)


def trash(actor: User, doc: Document) -> Document:
    """To the trash: out of listings and search, recoverable."""
    permissions.may_trash(actor, doc)
    if doc.trashed_at is not None:
        return doc
    with transaction():
        Document.update(trashed_at=utcnow(), trashed_by=audit.actor_fields(actor)[1],
                        index_dirty=True).where(Document.id == doc.id).execute()
        audit.record(actor, "document.trashed", doc, details={"name": doc.name})
    queue.schedule_index(doc.firm_id)
    return Document.get_by_id(doc.id)


def restore(actor: User, doc: Document) -> Document:
    permissions.require_role(actor, "admin", "staff")
    if doc.trashed_at is None:
        return doc
    with transaction():
        Document.update(trashed_at=None, trashed_by=None, index_dirty=True).where(
            Document.id == doc.id).execute()
        audit.record(actor, "document.restored", doc, details={"name": doc.name})
    queue.schedule_index(doc.firm_id)
    return Document.get_by_id(doc.id)


def set_hold(actor: User, doc: Document, hold: bool, reason: str | None) -> Document:
    """A legal hold blocks permanent deletion whatever the retention date."""
    permissions.require_role(actor, "admin")
    if hold and not (reason or "").strip():
        raise Invalid("A legal hold needs a reason.", "reason_required")
    with transaction():
        Document.update(legal_hold=hold, legal_hold_reason=(reason or "").strip() or None).where(
            Document.id == doc.id).execute()
        audit.record(actor, "document.hold_set" if hold else "document.hold_released", doc,
                     details={"reason": reason})
    return Document.get_by_id(doc.id)


def blob_in_use(sha256: str) -> bool:
    """True while a document or a firm's logo names these bytes."""
    return (Document.select().where(Document.blob == sha256).exists()
            or Firm.select().where(Firm.logo_sha256 == sha256).exists())


def delete_permanently(actor: User | str, doc: Document) -> None:
    """Remove a document for good (admins, or the `ged purge` command given as a
    string actor): refused under retention or legal hold."""
    if not isinstance(actor, str):
        permissions.require_role(actor, "admin", message="Only an admin may delete permanently.")
    today = utcnow().date()
    company_hold = Company.select(Company.legal_hold).where(Company.id == doc.company_id).scalar()
    if doc.legal_hold or company_hold or (doc.retain_until and doc.retain_until >= today):
        raise Conflict(
            f"This document is kept until {doc.retain_until.isoformat() if doc.retain_until else 'further notice'}"
            + (" and is under a legal hold" if (doc.legal_hold or company_hold) else "")
            + "; it cannot be deleted permanently.",
            "under_retention",
        )
    sha = doc.blob_id
    with transaction():
        audit.record(actor, "document.purged", doc,
                     details={"name": doc.name, "sha256": sha, "trashed_by": doc.trashed_by,
                              "trashed_at": doc.trashed_at.isoformat() if doc.trashed_at else None})
        doc.delete_instance(recursive=True)
        orphan = not blob_in_use(sha)
        if orphan:
            Blob.delete().where(Blob.sha256 == sha).execute()
    if orphan:
        store = runtime.store()
        # A deposit of the same bytes may have found the file in place a moment ago
        # and be about to name it; it refreshed the file's time, so a recent file is
        # left for `ged fsck --repair`, which removes strays only once they are old.
        if not store.recently_written(sha):
            store.delete(sha)
    queue.schedule_unindex(doc.firm_id, doc.id)


def listing(user: User, folder: Folder) -> list[Document]:
    """The documents of a folder, newest first (trashed ones excluded)."""
    # The blob fields document_dict reads come in the same query (never its text),
    # not one query per document.
    return list(Document.select(Document, Blob.sha256, Blob.facturx, Blob.text_error)
                .join(Blob, on=(Document.blob == Blob.sha256))
                .where((Document.folder == folder.id) & Document.trashed_at.is_null())
                .order_by(Document.deposited_at.desc(), Document.id.desc()))


def document_dict(doc: Document, user: User) -> dict:
    """The API shape of a document; firm-only fields only for firm users."""
    blob = doc.blob
    data = {
        "id": doc.id,
        "name": doc.name,
        "folder_id": doc.folder_id,
        "company_id": doc.company_id,
        "size": doc.size,
        "sha256": doc.blob_id,
        "content_type": doc.content_type,
        "channel": doc.channel,
        "deposited_at": doc.deposited_at.isoformat(),
        "deposited_by": doc.deposited_by_id,
        "deposited_by_name": doc.deposited_by_label,
        "status": doc.status,
        "status_reason": doc.status_reason if doc.status == "rejected" else None,
        "replaces_id": doc.replaces_id,
        "replaced_by_id": doc.replaced_by_id,
        "text_status": doc.text_status,
        "retain_until": doc.retain_until.isoformat() if doc.retain_until else None,
        "legal_hold": doc.legal_hold,
        "trashed_at": doc.trashed_at.isoformat() if doc.trashed_at else None,
        # Known once this document's own text status is: a fresh deposit never shows
        # what an earlier deposit of the same bytes elsewhere found.
        "facturx": blob.facturx if doc.text_status != "pending" else None,
    }
    if permissions.is_firm_user(user):
        data["duplicate_of"] = doc.duplicate_of
        shown = doc.text_status in ("failed", "partial", "encrypted")  # why text is missing
        data["text_error"] = blob.text_error if shown else None
    return data
