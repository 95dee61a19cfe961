"""Client companies of a firm: creation (with their folder tree), staff assignment,
and their secret e-mail drop addresses."""

from __future__ import annotations

import datetime as dt
import secrets

from . import audit, folders
from .accounts import clean_name
from .db import transaction
from .errors import Invalid, NotFound
from .models import Company, DropAddress, Firm, Folder, StaffAssignment, User, utcnow

STATUSES = ("client", "prospect")


def validate_siren(siren: str | None) -> str | None:
    """A SIREN is 9 digits passing the Luhn check; spaces are ignored."""
    if siren is None or str(siren).strip() == "":
        return None
    digits = str(siren).replace(" ", "")
    if len(digits) != 9 or not digits.isdigit():
        raise Invalid("A SIREN has exactly 9 digits.", "invalid_siren")
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    if total % 10:
        raise Invalid("This SIREN is not valid (its check digit is wrong).", "invalid_siren")
    return digits


def create_company(actor, firm: Firm, *, name: str, siren: str | None = None,
                   status: str = "client", template: str | None = None,
                   year: int | None = None) -> Company:
    """A new company with its root folder, and the firm's annual tree when asked."""
    name = clean_name(name, "company name")
    siren = validate_siren(siren)
    if status not in STATUSES:
        raise Invalid("The status must be client or prospect.", "invalid_status")
    if template not in (None, "annual"):
        raise Invalid('The only template is "annual".', "invalid_template")
    with transaction():
        company = Company.create(firm=firm, name=name, siren=siren, status=status)
        root = folders.create_root(company)
        if template == "annual":
            folders.apply_template(company, root, folders.firm_template(firm),
                                   year or dt.date.today().year)
        DropAddress.create(company=company, token=new_drop_token())
        audit.record(actor, "company.created", company, firm=firm,
                     details={"name": name, "siren": siren, "status": status, "template": template})
    return company


def update_company(actor, company: Company, **changes) -> Company:
    fields = {}
    if "name" in changes and changes["name"] is not None:
        fields["name"] = clean_name(changes["name"], "company name")
    if "siren" in changes:
        fields["siren"] = validate_siren(changes["siren"])
    if "status" in changes and changes["status"] is not None:
        if changes["status"] not in STATUSES:
            raise Invalid("The status must be client or prospect.", "invalid_status")
        fields["status"] = changes["status"]
    if fields:
        with transaction():
            Company.update(**fields).where(Company.id == company.id).execute()
            audit.record(actor, "company.updated", company, details=fields)
    return Company.get_by_id(company.id)


def assign_staff(actor, company: Company, user_ids: list[str]) -> list[User]:
    """Set the staff assigned to a company (replaces the previous list)."""
    user_ids = list(dict.fromkeys(str(u) for u in user_ids))
    users = list(User.select().where((User.id.in_(user_ids)) & (User.firm == company.firm_id)))
    if len(users) != len(user_ids):
        raise Invalid("Unknown user id in user_ids.", "invalid_user")
    if any(u.role != "staff" for u in users):
        raise Invalid("Only staff users can be assigned to a company.", "not_staff")
    with transaction():
        StaffAssignment.delete().where(StaffAssignment.company == company.id).execute()
        for user in users:
            StaffAssignment.create(user=user, company=company)
        audit.record(actor, "company.staff_assigned", company, details={"user_ids": user_ids})
    return users


def assigned_staff(company: Company) -> list[User]:
    return list(User.select().join(StaffAssignment).where(StaffAssignment.company == company.id))


def new_drop_token() -> str:
    return secrets.token_hex(10)


def drop_address(company: Company, folder: Folder | None = None) -> DropAddress | None:
    query = DropAddress.select().where((DropAddress.company == company.id)
                                       & DropAddress.revoked_at.is_null())
    query = query.where(DropAddress.folder == folder.id) if folder else query.where(
        DropAddress.folder.is_null())
    return query.order_by(DropAddress.created_at.desc()).first()


def regenerate_drop_address(actor, company: Company, folder: Folder | None = None) -> DropAddress:
    """A new secret drop address (for the company, or for one folder); the old one stops working."""
    if folder is not None and folder.company_id != company.id:
        raise NotFound("Folder not found.")
    with transaction():
        query = DropAddress.update(revoked_at=utcnow()).where(
            (DropAddress.company == company.id) & DropAddress.revoked_at.is_null())
        query = query.where(DropAddress.folder == folder.id) if folder else query.where(
            DropAddress.folder.is_null())
        query.execute()
        address = DropAddress.create(company=company, folder=folder, token=new_drop_token())
        audit.record(actor, "company.drop_address_regenerated", company,
                     details={"folder_id": folder.id if folder else None})
    return address


def company_dict(company: Company) -> dict:
    return {
        "id": company.id,
        "name": company.name,
        "siren": company.siren,
        "status": company.status,
        "root_folder_id": folders.root_of(company).id,
        "created_at": company.created_at.isoformat(),
    }
