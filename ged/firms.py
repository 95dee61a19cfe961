"""A firm's own settings: its brand (name, primary colour, logo) and the folder
template new companies get. Admins change them; every change is audited."""

from __future__ import annotations

import re

from . import audit, filetypes, folder_templates, permissions, runtime
from .accounts import clean_name
from .db import transaction
from .errors import Invalid, Unsupported
from .models import Blob, Firm
from .blobs import Staged

COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
LOGO_TYPES = (filetypes.PNG, filetypes.JPEG)
MAX_LOGO_BYTES = 2 * 1024 * 1024


def validate_color(value: str | None) -> str:
    """A primary colour as ``#rrggbb`` (lower case)."""
    value = (value or "").strip()
    if not COLOR.match(value):
        raise Invalid("The colour must be written #rrggbb.", "invalid_color")
    return value.lower()


def ink_for(color: str) -> str:
    """Black or white, whichever reads better on ``color`` (WCAG relative luminance)."""
    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(color[i:i + 2]) for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    # Contrast with white is 1.05/(L+0.05); with the ink colour #1d2430 (L=0.017), (L+0.05)/0.067.
    return "#ffffff" if 1.05 / (luminance + 0.05) >= (luminance + 0.05) / 0.067 else "#1d2430"


def update_branding(actor, firm: Firm, *, name: str | None = None,
                    primary_color: str | None = None) -> Firm:
    """Change the firm's display name and primary colour (admins)."""
    permissions.require_role(actor, "admin")
    fields = {}
    if name is not None:
        fields["name"] = clean_name(name, "firm name")
    if primary_color is not None:
        fields["primary_color"] = validate_color(primary_color)
    if fields:
        with transaction():
            Firm.update(**fields).where(Firm.id == firm.id).execute()
            audit.record(actor, "firm.branding_updated", firm, firm=firm, details=fields,
                         firm_only=True)
    return Firm.get_by_id(firm.id)


def set_logo(actor, firm: Firm, staged: Staged, name: str) -> Firm:
    """Replace the firm's logo by an uploaded PNG or JPEG, checked like any deposit.

    The bytes go to the blob store under their SHA-256 with a Blob row (so backups
    and integrity checks see them); ``Firm.logo_sha256`` names them."""
    permissions.require_role(actor, "admin")
    try:
        if staged.size == 0:
            raise Invalid("The logo file is empty.", "empty_file")
        if staged.size > MAX_LOGO_BYTES:
            raise Invalid("The logo must be smaller than 2 MB.", "file_too_large")
        content_type = filetypes.check(staged.path, staged.head, filetypes.clean_filename(name))
        if content_type not in LOGO_TYPES:
            raise Unsupported("The logo must be a PNG or JPEG image.", "unsupported_logo")
        runtime.store().put(staged.sha256, staged.path)
    finally:
        staged.discard()
    with transaction():
        # A logo has no text to extract: "unsupported" keeps the extractor away.
        Blob.get_or_create(sha256=staged.sha256,
                           defaults={"size": staged.size, "content_type": content_type,
                                     "text_status": "unsupported"})
        Firm.update(logo_sha256=staged.sha256, logo_content_type=content_type).where(
            Firm.id == firm.id).execute()
        audit.record(actor, "firm.logo_set", firm, firm=firm, firm_only=True,
                     details={"sha256": staged.sha256, "content_type": content_type})
    return Firm.get_by_id(firm.id)


def remove_logo(actor, firm: Firm) -> Firm:
    """Stop showing a logo (the bytes stay in the store: other rows may name them)."""
    permissions.require_role(actor, "admin")
    with transaction():
        Firm.update(logo_sha256=None, logo_content_type=None).where(Firm.id == firm.id).execute()
        audit.record(actor, "firm.logo_removed", firm, firm=firm, firm_only=True)
    return Firm.get_by_id(firm.id)


def set_folder_template(actor, firm: Firm, template: dict | None) -> Firm:
    """Set the folder tree new companies get with ``template="annual"``; None restores
    the built-in one."""
    permissions.require_role(actor, "admin")
    if template is not None:
        template = folder_templates.validate(template)
    with transaction():
        Firm.update(folder_template=template).where(Firm.id == firm.id).execute()
        audit.record(actor, "firm.folder_template_set", firm, firm=firm, firm_only=True,
                     details={"default": template is None})
    return Firm.get_by_id(firm.id)
