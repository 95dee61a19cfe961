"""Secret e-mail drop addresses: ``<token>@GED_MAIL_DOMAIN``, one per company and,
when the firm wants, one per folder. The token is the authorisation to deposit by
e-mail (``ged.smtpd`` receives the mail); replacing an address stops the old one.
"""

from __future__ import annotations

import re
import secrets

from . import audit, folders, permissions, runtime
from .db import transaction
from .errors import NotFound
from .models import Company, DropAddress, Folder, User, utcnow

TOKEN = re.compile(r"[0-9a-z]{8,64}")


def new_token() -> str:
    """A fresh secret token (the local part of a drop address)."""
    return secrets.token_hex(10)


def create(company: Company, folder: Folder | None = None) -> DropAddress:
    """A new active drop address, inside the caller's transaction (a company gets
    its first one when it is created)."""
    return DropAddress.create(company=company, folder=folder, token=new_token())


def active(company: Company, folder: Folder | None = None) -> DropAddress | None:
    """The active drop address of the company (folder None) or of one folder."""
    query = DropAddress.select().where((DropAddress.company == company.id)
                                       & DropAddress.revoked_at.is_null())
    query = query.where(DropAddress.folder == folder.id) if folder else query.where(
        DropAddress.folder.is_null())
    return query.order_by(DropAddress.created_at.desc()).first()


def rotate(actor, company: Company, folder: Folder | None = None) -> DropAddress:
    """A new secret drop address (for the company, or for one folder); the old one stops working."""
    if folder is not None and folder.company_id != company.id:
        raise NotFound("Folder not found.")
    with transaction():
        query = DropAddress.update(revoked_at=utcnow()).where(
            (DropAddress.company == company.id) & DropAddress.revoked_at.is_null())
        query = query.where(DropAddress.folder == folder.id) if folder else query.where(
            DropAddress.folder.is_null())
        query.execute()
        address = create(company, folder)
        audit.record(actor, "company.drop_address_regenerated", company,
                     details={"folder_id": folder.id if folder else None})
    return address


def revoke(actor, drop: DropAddress) -> None:
    """Stop a (folder) drop address from receiving mail."""
    with transaction():
        DropAddress.update(revoked_at=utcnow()).where(DropAddress.id == drop.id).execute()
        audit.record(actor, "company.drop_address_revoked", drop.company,
                     details={"folder_id": drop.folder_id})


def address_of(drop: DropAddress) -> str:
    """The e-mail address of a drop address row."""
    return f"{drop.token}@{runtime.config().mail_domain}"


def target_folder(drop: DropAddress) -> Folder:
    """Where a drop address deposits: its folder, else the company's root folder."""
    if drop.folder_id:
        return Folder.get_by_id(drop.folder_id)
    return folders.root_of(drop.company_id)


def for_address(address: str, mail_domain: str) -> DropAddress | None:
    """The active drop address an envelope recipient names, or None."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if not local or domain.lower() != mail_domain.lower():
        return None
    token = local.lower()
    if not TOKEN.fullmatch(token):
        return None
    drop = DropAddress.get_or_none((DropAddress.token == token) & DropAddress.revoked_at.is_null())
    if drop is None:
        return None
    folder = target_folder(drop)
    if any(f.trashed_at is not None for f in folders.ancestors(folder)):
        return None  # its folder went to the trash: the address no longer leads anywhere
    return drop


def visible(user: User, company: Company) -> list[DropAddress]:
    """The company's active drop addresses that ``user`` may see (a folder's address
    only when the user sees the folder), the company-wide one first."""
    rows = list(DropAddress.select().where((DropAddress.company == company.id)
                                           & DropAddress.revoked_at.is_null())
                .order_by(DropAddress.created_at))
    hidden = permissions.hidden_prefixes(user, company.id)
    shown = []
    for drop in rows:
        if drop.folder_id:
            folder = Folder.get_by_id(drop.folder_id)
            if any(folder.path.startswith(p) for p in hidden):
                continue
        shown.append(drop)
    return sorted(shown, key=lambda d: (d.folder_id is not None, d.created_at))


def as_dict(drop: DropAddress, path: str | None = None) -> dict:
    """The API shape of a drop address."""
    return {
        "id": drop.id,
        "address": address_of(drop),
        "company_id": drop.company_id,
        "folder_id": drop.folder_id,
        "folder_path": path if path is not None else folders.display_path(target_folder(drop)),
        "created_at": drop.created_at.isoformat(),
    }
