"""Keeping the archive ten years: the trash of a company, the legal hold on a whole
company, the purge of what retention allows, and erasing a departed user's
personal data while their documents stay.

The rule that decides whether one document may go for good lives in
``documents.delete_permanently`` (retention date, document hold, company hold);
``purge`` only picks the candidates and calls it. The export (``ged.export``) and
the backups (``ged.backup``) have their own modules.
"""

from __future__ import annotations

import hashlib

import peewee as pw

from . import audit, documents, permissions
from .db import transaction
from .errors import Conflict, Invalid
from .models import (ActionToken, ApiToken, AuditEvent, Blob, Company, Document,
                     StaffAssignment, User, utcnow)

PURGE_ACTOR = "ged purge"


# --- trash and legal hold --------------------------------------------------------------


def trash_listing(user: User, company: Company) -> pw.ModelSelect:
    """The company's trashed documents (firm users only), newest first by id order."""
    permissions.require_role(user, "admin", "staff",
                             message="Only the firm sees the trash of a company.")
    return Document.select().where((Document.company == company.id)
                                   & Document.trashed_at.is_null(False))


def set_company_hold(actor: User, company: Company, hold: bool, reason: str | None) -> Company:
    """Put a whole company under legal hold (admins): none of its documents can be
    deleted for good, whatever their retention date, until it is released."""
    permissions.require_role(actor, "admin", message="Only an admin may set a legal hold.")
    reason = (reason or "").strip() or None
    if hold and not reason:
        raise Invalid("A legal hold needs a reason.", "reason_required")
    with transaction():
        Company.update(legal_hold=hold, legal_hold_reason=reason if hold else None).where(
            Company.id == company.id).execute()
        audit.record(actor, "company.hold_set" if hold else "company.hold_released", company,
                     details={"reason": reason})
    return Company.get_by_id(company.id)


def company_hold_dict(company: Company) -> dict:
    """The API shape of a company's legal hold."""
    return {"id": company.id, "name": company.name, "legal_hold": company.legal_hold,
            "legal_hold_reason": company.legal_hold_reason}


# --- purge -------------------------------------------------------------------------------


def purgeable(today=None) -> pw.ModelSelect:
    """Trashed documents whose retention has ended and that no hold keeps."""
    today = today or utcnow().date()
    held = Company.select(Company.id).where(Company.legal_hold == True)  # noqa: E712
    return (Document.select()
            .where(Document.trashed_at.is_null(False)
                   & (Document.retain_until.is_null() | (Document.retain_until < today))
                   & (Document.legal_hold == False)  # noqa: E712
                   & Document.company.not_in(held))
            .order_by(Document.trashed_at, Document.id))


def purge(dry_run: bool = False) -> dict:
    """Permanently remove every purgeable document (or, dry, list them). Each removal
    leaves an audit event with the name, SHA-256, who trashed it and when (the
    event's time is the purge time); a blob goes only when no row names it any more."""
    listed, removed, kept = [], 0, []
    shas = set()
    for doc in purgeable().iterator():
        entry = {"id": doc.id, "name": doc.name, "company_id": doc.company_id,
                 "sha256": doc.blob_id, "size": doc.size, "trashed_by": doc.trashed_by,
                 "trashed_at": doc.trashed_at.isoformat(),
                 "retain_until": doc.retain_until.isoformat() if doc.retain_until else None}
        listed.append(entry)
        if dry_run:
            continue
        try:
            documents.delete_permanently(PURGE_ACTOR, doc)
        except Conflict as exc:  # a hold was set since the query: keep it
            kept.append({**entry, "reason": exc.message})
            continue
        removed += 1
        shas.add(doc.blob_id)
    blobs_freed = 0 if dry_run else sum(
        1 for sha in shas if not Blob.select().where(Blob.sha256 == sha).exists())
    return {"dry_run": dry_run, "documents": listed, "removed": removed,
            "blobs_freed": blobs_freed, "kept": kept}


# --- personal data -------------------------------------------------------------------------


def pseudonym(user: User) -> str:
    """The stable name an erased user's traces carry (derived from the opaque id)."""
    return "Utilisateur effacé " + hashlib.sha256(user.id.encode()).hexdigest()[:8]


def erase_user(actor, user: User) -> str:
    """Remove a departed user's personal data (name, e-mail, password, sessions,
    tokens, staff assignments) and replace their name by a pseudonym wherever a
    label shows it. Their documents stay under retention; the audit chain still
    verifies because the actor label is not part of an event's hash. Returns the
    pseudonym."""
    if user.erased_at is not None:
        raise Conflict("This user was already erased.", "already_erased")
    if user.role == "admin" and not User.select().where(
            (User.firm == user.firm_id) & (User.role == "admin") & (User.id != user.id)
            & (User.active == True) & User.erased_at.is_null()).exists():  # noqa: E712
        raise Conflict("This is the firm's last active admin; create another admin first.",
                       "last_admin")
    name = pseudonym(user)
    labels = {audit.actor_fields(user)[1], user.email}
    with transaction():
        User.update(name=name, email=f"erased-{user.id}@erased.invalid", password_hash=None,
                    active=False, session_version=User.session_version + 1,
                    erased_at=utcnow()).where(User.id == user.id).execute()
        ApiToken.delete().where(ApiToken.user == user.id).execute()
        ActionToken.delete().where(ActionToken.user == user.id).execute()
        StaffAssignment.delete().where(StaffAssignment.user == user.id).execute()
        Document.update(deposited_by_label=name).where(
            (Document.deposited_by == user.id)
            | Document.id.in_(_ids_with_label(Document, Document.deposited_by_label, user.email,
                                              labels))).execute()
        Document.update(trashed_by=name).where(
            Document.id.in_(_ids_with_label(Document, Document.trashed_by, user.email,
                                            labels))).execute()
        AuditEvent.update(actor_label=name).where(
            (AuditEvent.actor_id == user.id)
            | AuditEvent.id.in_(_ids_with_label(AuditEvent, AuditEvent.actor_label, user.email,
                                                labels))).execute()
        audit.record(actor, "user.erased", user, firm=user.firm_id, company=user.company_id,
                     details={"pseudonym": name})
    return name


def _ids_with_label(model, field, email: str, labels: set[str]) -> list[str]:
    """Ids of rows whose label names the user (exactly, or an e-mail deposit label
    holding their address). LIKE treats "_" as a wildcard, so matches are re-checked."""
    rows = model.select(model.id, field).where(field.contains(email)).tuples()
    return [row_id for row_id, label in rows
            if label and (label in labels or email in label)]
