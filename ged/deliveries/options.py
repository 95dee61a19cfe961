"""What a connection sends: its options, the defaults filled in.

The defaults live here, with the senders that obey them; ``integrations`` checks
the options a firm sets against them.
"""

from __future__ import annotations

from ..models import Connection

# What a connection does unless its options say otherwise (API.md).
_COMMON_DEFAULTS = {"send_original": True, "send_invoice_xml": False}
OPTION_DEFAULTS = {
    "email": {**_COMMON_DEFAULTS, "attach_metadata": False},
    "http": {**_COMMON_DEFAULTS, "format": "json", "file_field": "file",
             "inline_max_bytes": 10 * 1024 * 1024},
}


def effective_options(conn: Connection) -> dict:
    """Every option of a connection, the defaults filled in: what a delivery obeys."""
    return {**OPTION_DEFAULTS[conn.kind], **(conn.options or {})}
