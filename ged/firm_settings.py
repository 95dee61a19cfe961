"""A firm's settings: the default profile of new users (role, and for staff the
companies assigned at creation) and the two-factor policy."""

from __future__ import annotations

from . import audit
from .db import transaction
from .errors import Invalid
from .models import Company, FirmSettings, StaffAssignment, utcnow

TOTP_POLICIES = ("none", "staff", "all")
ROLES = ("admin", "staff", "client")
LOCALES = ("fr_FR",)


def get(firm_id: str) -> FirmSettings:
    """The firm's settings (defaults when never saved)."""
    row = FirmSettings.get_or_none(FirmSettings.firm == firm_id)
    return row if row is not None else FirmSettings(firm=firm_id)


def update(actor, **changes) -> FirmSettings:
    """Change the settings of the actor's firm (admins)."""
    from . import permissions

    permissions.require_role(actor, "admin")
    fields = {}
    if changes.get("default_role") is not None:
        if changes["default_role"] not in ROLES:
            raise Invalid("default_role must be admin, staff or client.", "invalid_role")
        fields["default_role"] = changes["default_role"]
    if "default_company_ids" in changes:
        ids = list(dict.fromkeys(changes["default_company_ids"] or []))
        known = {c.id for c in Company.select(Company.id).where(
            (Company.firm == actor.firm_id) & Company.id.in_(ids))}
        if len(known) != len(ids):
            raise Invalid("Unknown company id in default_company_ids.", "invalid_company")
        fields["default_company_ids"] = ids
    if changes.get("require_totp") is not None:
        if changes["require_totp"] not in TOTP_POLICIES:
            raise Invalid("require_totp must be none, staff or all.", "invalid_policy")
        fields["require_totp"] = changes["require_totp"]
    if changes.get("locale") is not None:
        if changes["locale"] not in LOCALES:
            raise Invalid("The only locale is fr_FR.", "invalid_locale")
        fields["locale"] = changes["locale"]
    with transaction():
        row = get(actor.firm_id)
        for key, value in fields.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
        if FirmSettings.select().where(FirmSettings.firm == actor.firm_id).exists():
            row.save()
        else:
            row.save(force_insert=True)
        if fields:
            audit.record(actor, "firm.settings_updated", actor.firm, firm=actor.firm_id,
                         firm_only=True, details=fields)
    return get(actor.firm_id)


def apply_defaults(user) -> None:
    """Inside the transaction creating ``user``: a new staff member gets the firm's
    default companies."""
    if user.role != "staff":
        return
    for company_id in get(user.firm_id).default_company_ids or []:
        if Company.select().where((Company.id == company_id)
                                  & (Company.firm == user.firm_id)).exists():
            StaffAssignment.get_or_create(user=user.id, company=company_id)


def as_dict(row: FirmSettings, firm) -> dict:
    return {"id": firm.id, "name": firm.name, "default_role": row.default_role,
            "default_company_ids": row.default_company_ids or [],
            "require_totp": row.require_totp, "locale": row.locale}
