"""Names a firm must be able to tell apart: a second install of the same tool from
the catalog, or two connections of one company with the same name, are refused
with a clear message (compared without case or surrounding spaces)."""

from __future__ import annotations

from peewee import fn

from .errors import Conflict
from .models import Connection, Integration

# Generic connectors a firm may install several times (one per tool of its own).
GENERIC_PRESETS = ("webhook", "email", None)


def refuse_duplicate_integration(firm_id: str, preset: str | None, name: str) -> None:
    live = Integration.select().where((Integration.firm == firm_id)
                                      & Integration.deleted_at.is_null())
    if preset not in GENERIC_PRESETS and live.where(Integration.preset == preset).exists():
        raise Conflict(f"This tool ({preset}) is already installed; connect it to more "
                       "companies instead of installing it again.", "preset_installed")
    if live.where(fn.LOWER(Integration.name) == name.strip().lower()).exists():
        raise Conflict(f"An integration named {name!r} is already installed.",
                       "integration_name_taken")


def refuse_duplicate_connection(company_id: str, name: str) -> None:
    if Connection.select().where((Connection.company == company_id)
                                 & Connection.deleted_at.is_null()
                                 & (fn.LOWER(Connection.name) == name.strip().lower())).exists():
        raise Conflict(f"This company already has a connection named {name!r}.",
                       "connection_name_taken")
