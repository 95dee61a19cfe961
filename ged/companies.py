"""Client companies of a firm: creation (with their folder tree and first drop
address, see ``ged.drops``) and staff assignment."""

from __future__ import annotations

import datetime as dt

from . import audit, drops, folder_templates, folders
from .accounts import clean_name
from .db import transaction
from .errors import Invalid
from .models import Company, Firm, StaffAssignment, User

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
            folder_templates.apply(company, root, folder_templates.of_firm(firm),
                                   year or dt.date.today().year)
        drops.create(company)
        audit.record(actor, "company.created", company, firm=firm,
                     details={"name": name, "siren": siren, "status": status, "template": template})
    return company


def update_company(actor, company: Company, **changes) -> Company:
    """Change a company's name, SIREN or status (the fields given)."""
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
    """The staff users assigned to the company."""
    return list(User.select().join(StaffAssignment).where(StaffAssignment.company == company.id))


def company_dict(company: Company) -> dict:
    """The API shape of a company."""
    return {
        "id": company.id,
        "name": company.name,
        "siren": company.siren,
        "status": company.status,
        "root_folder_id": folders.root_of(company).id,
        "created_at": company.created_at.isoformat(),
    }
