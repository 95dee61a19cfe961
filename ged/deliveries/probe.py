"""Trying a connection now, before any document goes: a signed ``type: "test"``
envelope in the connection's format (no file), or a test message. It records no
delivery, only an audit event."""

from __future__ import annotations

import secrets
import time

from .. import audit, mail, permissions, runtime
from ..db import transaction
from ..models import Connection, User
from . import email, http
from .envelope import http_body, test_payload
from .guard import check_url
from .options import effective_options


def test(conn: Connection) -> dict:
    """Try a connection now with the delivery timeouts: a signed ``type: "test"``
    envelope in the connection's format (no file), or a test message. Never raises
    for what the other side does: ``{ok, status_code?, error?, elapsed_ms}``."""
    cfg = runtime.config()
    started = time.monotonic()
    result: dict = {"ok": False}
    payload = test_payload(conn)
    if conn.kind == "http":
        options = effective_options(conn)
        try:
            check_url(conn.url, allow_private=cfg.allow_private_targets, resolve=False)
            body = http_body(None, payload, options)
            headers = http.signed_headers(conn, "test_" + secrets.token_hex(12), body)
            status, resp_headers, text = http.post(cfg, conn.url, headers, body)
        except http.NETWORK_ERRORS as exc:
            result["error"] = http.network_outcome(exc).error
        else:
            result["status_code"] = status
            outcome = http.classify(status, resp_headers, text)
            if outcome.kind == "success":
                result["ok"] = True
            else:
                result["error"] = outcome.error.replace(" La connexion a été mise en pause", "")
    else:
        msg = email.test_message(conn, payload.data["company"]["name"])
        try:
            mail.send(msg, timeout=cfg.delivery_timeout)
            result["ok"] = True
        except email.SMTP_ERRORS as exc:
            result["error"] = email.smtp_outcome(exc).error
    result["elapsed_ms"] = int((time.monotonic() - started) * 1000)
    return result


test.__test__ = False  # not a pytest test, despite its name


def test_connection(actor: User, conn: Connection) -> dict:
    """Try the connection now (a signed test request or a test message), for firm users
    who see its company; records no delivery, only an audit event.
    ``{ok, status_code?, error?, elapsed_ms}``."""
    permissions.require_role(actor, "admin", "staff")
    permissions.company_for(actor, conn.company_id)
    result = test(conn)
    with transaction():
        audit.record(actor, "connection.tested", conn, details=dict(result), firm_only=True)
    return result


test_connection.__test__ = False  # not a pytest test, despite its name
