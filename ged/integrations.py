"""Integrations and connections: the firm's tools and where each company's documents go.

An **integration** is a tool a firm installs from the catalog (``catalog.json``:
data, not code). Every preset configures one of ged's two generic connectors,
``email`` (a message per document to an address) or ``http`` (a request signed per
Standard Webhooks: a JSON envelope, or multipart/form-data for upload endpoints); a
preset may set default options (paperless-ngx: multipart, field ``document``) but
none speaks a vendor's private API.

A **connection** activates an integration for one company, with its target (an
address or a URL checked against server-side request forgery), options, and for
http a ``whsec_`` signing secret shown once. Folder switches (``switches``) say
which folders forward to it; ``deliveries`` sends (its ``options`` module holds
what a connection sends by default, its ``guard`` the outbound-address check).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
from functools import lru_cache
from pathlib import Path

from . import audit, permissions, runtime
from .accounts import clean_name
from .db import transaction
from .deliveries.guard import TargetRefused, check_url
from .deliveries.options import OPTION_DEFAULTS, effective_options
from .errors import Conflict, Invalid, NotFound
from .models import Company, Connection, Firm, Integration, User, utcnow

KINDS = ("email", "http")
CATALOG_PATH = Path(__file__).with_name("catalog.json")

_EMAIL = re.compile(r"^[^@\s<>\"',;:()\[\]\\]+@[A-Za-z0-9.-]+\.[A-Za-z0-9-]{2,}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
# Headers ged sets itself: an option may not override the signature or the framing.
RESERVED_HEADERS = {"host", "content-type", "content-length", "transfer-encoding", "connection",
                    "webhook-id", "webhook-timestamp", "webhook-signature", "user-agent",
                    "expect", "te", "upgrade", "keep-alive", "proxy-authorization"}
MAX_HEADERS = 20
MASK = "********"  # how a header value is shown: it often holds a tool's API key
HTTP_FORMATS = ("json", "multipart")
MAX_INLINE = 1024 ** 3
_FIELD_NAME = re.compile(r"^[A-Za-z0-9._\[\]-]{1,100}$")


# --- the catalog --------------------------------------------------------------------


@lru_cache(maxsize=1)
def _catalog() -> tuple:
    entries = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    for entry in entries:
        if entry.get("kind") not in KINDS or not entry.get("key") or not entry.get("name"):
            raise ValueError(f"catalog.json: bad preset {entry!r}")
        clean_options(entry["kind"], entry.get("options"))  # a bad default fails loudly
    return tuple(entries)


def catalog() -> list[dict]:
    """The presets a firm can install: ``{key, name, kind, description, suggested_folder}``."""
    return [dict(entry) for entry in _catalog()]


def catalog_entry(key: str) -> dict | None:
    """One catalog entry by its key, or None."""
    return next((dict(e) for e in _catalog() if e["key"] == key), None)


# --- integrations (firm level) ---------------------------------------------------------


def install(actor: User, firm: Firm, *, preset: str | None = None, kind: str | None = None,
            name: str) -> Integration:
    """Install a tool for the firm (admins): a catalog preset, or a bare connector kind."""
    permissions.require_role(actor, "admin", message="Only an admin may install an integration.")
    if firm.id != actor.firm_id:
        raise NotFound("Firm not found.")
    entry = None
    if preset is not None:
        entry = catalog_entry(preset)
        if entry is None:
            raise Invalid(f"Unknown preset {preset!r}; see GET /api/v1/integrations/catalog.",
                          "unknown_preset")
        if kind is not None and kind != entry["kind"]:
            raise Invalid(f"The preset {entry['name']} is a {entry['kind']} connector.",
                          "kind_mismatch")
        kind = entry["kind"]
    if kind not in KINDS:
        raise Invalid('Give a preset, or kind "email" or "http".', "invalid_kind")
    name = clean_name(name or (entry or {}).get("name"), "name")
    with transaction():
        from .naming import refuse_duplicate_integration

        refuse_duplicate_integration(actor.firm_id, preset, name)
        integration = Integration.create(firm=actor.firm_id, preset=preset, name=name, kind=kind)
        audit.record(actor, "integration.installed", integration,
                     details={"name": name, "kind": kind, "preset": preset}, firm_only=True)
    return integration


def installed(firm_id: str) -> list[Integration]:
    """The firm's integrations still installed, oldest first."""
    return list(Integration.select().where((Integration.firm == firm_id)
                                           & Integration.deleted_at.is_null())
                .order_by(Integration.created_at))


def uninstall(actor: User, integration: Integration) -> None:
    """Remove an integration the firm no longer uses (admins); refused while a company
    still has a connection to it."""
    permissions.require_role(actor, "admin", message="Only an admin may remove an integration.")
    live = Connection.select().where((Connection.integration == integration.id)
                                     & Connection.deleted_at.is_null()).count()
    if live:
        raise Conflict(f"{live} connection(s) still use this integration; delete them first.",
                       "integration_in_use")
    with transaction():
        Integration.update(deleted_at=utcnow()).where(Integration.id == integration.id).execute()
        audit.record(actor, "integration.removed", integration,
                     details={"name": integration.name}, firm_only=True)


def integration_dict(integration: Integration) -> dict:
    entry = catalog_entry(integration.preset) if integration.preset else None
    return {
        "id": integration.id,
        "name": integration.name,
        "kind": integration.kind,
        "preset": integration.preset,
        "description": entry["description"] if entry else None,
        "suggested_folder": entry.get("suggested_folder") if entry else None,
        "created_at": integration.created_at.isoformat(),
    }


# --- connections (company level) --------------------------------------------------------


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def clean_address(address: str | None) -> str:
    address = (address or "").strip()
    if len(address) > 254 or not _EMAIL.match(address):
        raise Invalid("Give the tool's collection e-mail address (name@domain).", "invalid_address")
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


def clean_url(url: str | None) -> str:
    """A connection URL, refused unless it is a safe target (HTTPS, public addresses;
    GED_ALLOW_PRIVATE_TARGETS=1 lifts both)."""
    url = (url or "").strip()
    if not url:
        raise Invalid("Give the URL the tool receives documents at.", "invalid_url")
    try:
        return check_url(url)
    except TargetRefused as exc:
        raise Invalid(str(exc), exc.code) from None


def clean_options(kind: str, options: dict | None) -> dict:
    """A connection's options, checked; only the settings that differ from the defaults
    (``OPTION_DEFAULTS``) are kept. Every kind: ``send_original``, ``send_invoice_xml``
    (not both off). E-mail: ``attach_metadata``. Http: ``format`` (``json`` or
    ``multipart``), ``file_field``, ``inline_max_bytes``, ``headers`` (extra request
    headers, e.g. a tool's ``Authorization``; kept like a secret, shown masked)."""
    options = options or {}
    if not isinstance(options, dict):
        raise Invalid("options must be an object.", "invalid_options")
    allowed = set(OPTION_DEFAULTS[kind]) | ({"headers"} if kind == "http" else set())
    unknown = set(options) - allowed
    if unknown:
        raise Invalid(f"Unknown option(s) for an {kind} connection: {', '.join(sorted(unknown))}.",
                      "invalid_options")
    cleaned: dict = {}
    for name in ("attach_metadata", "send_original", "send_invoice_xml"):
        if name in options:
            if not isinstance(options[name], bool):
                raise Invalid(f"{name} must be true or false.", "invalid_options")
            cleaned[name] = options[name]
    if "format" in options:
        if options["format"] not in HTTP_FORMATS:
            raise Invalid('format must be "json" or "multipart".', "invalid_options")
        cleaned["format"] = options["format"]
    if "file_field" in options:
        field = options["file_field"]
        if not isinstance(field, str) or not _FIELD_NAME.match(field):
            raise Invalid("file_field must be a form field name (letters, digits, . _ - [ ]; "
                          "100 characters at most).", "invalid_options")
        cleaned["file_field"] = field
    if "inline_max_bytes" in options:
        size = options["inline_max_bytes"]
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_INLINE:
            raise Invalid(f"inline_max_bytes must be a whole number of bytes from 0 (never) "
                          f"to {MAX_INLINE}.", "invalid_options")
        cleaned["inline_max_bytes"] = size
    if "headers" in options:
        headers = options["headers"] or {}
        if not isinstance(headers, dict) or len(headers) > MAX_HEADERS:
            raise Invalid(f"headers must be an object of at most {MAX_HEADERS} names.",
                          "invalid_options")
        for hname, value in headers.items():
            if not _HEADER_NAME.match(hname) or hname.lower() in RESERVED_HEADERS:
                raise Invalid(f"The header {hname!r} may not be set.", "invalid_options")
            if (not isinstance(value, str) or len(value) > 2000 or value == MASK
                    or any(c in value for c in "\r\n\0") or not value.isascii()):
                raise Invalid(f"The value of header {hname!r} is not valid.", "invalid_options")
        if headers:
            cleaned["headers"] = dict(headers)
    defaults = OPTION_DEFAULTS[kind]
    effective = {**defaults, **cleaned}
    if not effective["send_original"] and not effective["send_invoice_xml"]:
        raise Invalid("send_original and send_invoice_xml cannot both be off: the connection "
                      "would send nothing.", "nothing_to_send")
    return {k: v for k, v in cleaned.items() if k == "headers" or v != defaults.get(k)}


def merge_options(conn: Connection, given: dict | None) -> dict:
    """The options a PATCH asks for: ``given`` over the stored ones, name by name (null
    removes one); a header sent back masked keeps its stored value."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise Invalid("options must be an object.", "invalid_options")
    stored = dict(conn.options or {})
    merged = {**stored, **given}
    if isinstance(given.get("headers"), dict):
        kept = {k.lower(): v for k, v in (stored.get("headers") or {}).items()}
        merged["headers"] = {k: (kept.get(k.lower(), v) if v == MASK else v)
                             for k, v in given["headers"].items()}
    return {k: v for k, v in merged.items() if v is not None}


def _may_manage(actor: User, company_id: str) -> None:
    permissions.require_role(actor, "admin", "staff")
    permissions.company_for(actor, company_id)


def connect(actor: User, company: Company, integration: Integration, *, name: str | None = None,
            address: str | None = None, url: str | None = None, options: dict | None = None):
    """Activate an integration for a company. Returns ``(connection, secret)``; the
    secret (http only, else None) is shown this once and signs every request."""
    _may_manage(actor, company.id)
    if (integration.firm_id != actor.firm_id or integration.deleted_at is not None):
        raise NotFound("Integration not found.")
    name = clean_name(name or integration.name, "name")
    fields: dict = {"address": None, "url": None, "secret": None}
    if integration.kind == "email":
        if url:
            raise Invalid("An e-mail connection takes an address, not a URL.", "invalid_url")
        fields["address"] = clean_address(address)
    else:
        if address:
            raise Invalid("An http connection takes a URL, not an address.", "invalid_address")
        fields["url"] = clean_url(url)
        fields["secret"] = new_secret()
    preset = catalog_entry(integration.preset) if integration.preset else None
    given = options if options is not None else {}
    if not isinstance(given, dict):
        raise Invalid("options must be an object.", "invalid_options")
    opts = clean_options(integration.kind, {**((preset or {}).get("options") or {}), **given})
    with transaction():
        from .naming import refuse_duplicate_connection

        refuse_duplicate_connection(company.id, name)
        conn = Connection.create(firm=actor.firm_id, company=company.id, integration=integration.id,
                                 name=name, kind=integration.kind, options=opts, **fields)
        audit.record(actor, "connection.created", conn, details={
            "name": name, "kind": conn.kind, "integration_id": integration.id,
            "target": fields["address"] or fields["url"]}, firm_only=True)
    return conn, fields["secret"]


def update_connection(actor: User, conn: Connection, **fields) -> Connection:
    """Change a connection's name, target, options, or pause/resume it. Resuming sends
    nothing that arrived while paused (staff can send those by hand)."""
    _may_manage(actor, conn.company_id)
    allowed = {"name", "address", "url", "options", "paused"}
    unknown = set(fields) - allowed
    if unknown:
        raise Invalid(f"Cannot change {', '.join(sorted(unknown))}.", "invalid_field")
    changes: dict = {}
    if "name" in fields:
        changes["name"] = clean_name(fields["name"], "name")
    if "address" in fields:
        if conn.kind != "email":
            raise Invalid("An http connection takes a URL, not an address.", "invalid_address")
        changes["address"] = clean_address(fields["address"])
    if "url" in fields:
        if conn.kind != "http":
            raise Invalid("An e-mail connection takes an address, not a URL.", "invalid_url")
        changes["url"] = clean_url(fields["url"])
    if "options" in fields:
        changes["options"] = clean_options(conn.kind, merge_options(conn, fields["options"]))
    if "paused" in fields and bool(fields["paused"]) != conn.paused:
        changes["paused"] = bool(fields["paused"])
        changes["paused_reason"] = (f"Mise en pause par {actor.name}." if changes["paused"]
                                    else None)
    if not changes:
        return conn
    with transaction():
        Connection.update(**changes).where(Connection.id == conn.id).execute()
        details = {k: v for k, v in changes.items() if k not in ("options", "paused_reason")}
        if "options" in changes:
            details["options"] = sorted(changes["options"])  # names only: headers hold keys
        action = "connection.updated"
        if set(changes) <= {"paused", "paused_reason"}:
            action = "connection.paused" if changes["paused"] else "connection.resumed"
        audit.record(actor, action, conn, details=details, firm_only=True)
    return Connection.get_by_id(conn.id)


def delete_connection(actor: User, conn: Connection) -> None:
    """Delete a connection; its delivery history is kept (and stays visible to staff)."""
    _may_manage(actor, conn.company_id)
    with transaction():
        Connection.update(deleted_at=utcnow(), paused=True,
                          paused_reason="Connexion supprimée.").where(
            Connection.id == conn.id).execute()
        audit.record(actor, "connection.deleted", conn, details={"name": conn.name},
                     firm_only=True)


def rotate_secret(actor: User, conn: Connection) -> str:
    """A new signing secret, returned once. The old one keeps signing alongside it
    (both signatures, space-separated) for GED_SECRET_GRACE_HOURS."""
    _may_manage(actor, conn.company_id)
    if conn.kind != "http":
        raise Invalid("Only http connections have a signing secret.", "not_http")
    secret = new_secret()
    until = utcnow() + dt.timedelta(hours=runtime.config().secret_grace_hours)
    with transaction():
        Connection.update(secret=secret, previous_secret=conn.secret,
                          previous_secret_until=until).where(Connection.id == conn.id).execute()
        audit.record(actor, "connection.secret_rotated", conn,
                     details={"previous_valid_until": until.isoformat()}, firm_only=True)
    return secret


def connection_dict(conn: Connection) -> dict:
    """The API shape of a connection: its options with the defaults filled in, header
    values masked, never its secret."""
    options = effective_options(conn)
    if "headers" in options:
        options["headers"] = {name: MASK for name in options["headers"]}
    data = {
        "id": conn.id,
        "integration_id": conn.integration_id,
        "company_id": conn.company_id,
        "name": conn.name,
        "kind": conn.kind,
        "options": options,
        "paused": conn.paused,
        "paused_reason": conn.paused_reason,
        "last_success_at": conn.last_success_at.isoformat() if conn.last_success_at else None,
        "created_at": conn.created_at.isoformat(),
    }
    if conn.kind == "email":
        data["address"] = conn.address
    else:
        data["url"] = conn.url
        rotating = conn.previous_secret_until
        data["previous_secret_valid_until"] = (
            rotating.isoformat() if rotating and rotating > utcnow() else None)
    return data
