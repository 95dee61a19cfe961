"""The links a delivery's envelope carries: the signed link a tool fetches the
document from (no token; it lapses after GED_FILE_URL_DAYS), and the URL it posts
its verdict to."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time

from .. import audit, runtime
from ..db import transaction
from ..errors import NotFound
from ..models import Connection, Delivery, Document, utcnow

FILE_LINK_PURPOSE = b"ged/delivery-file-link/v1"


def status_url(delivery_id: str) -> str:
    """Where the tool posts its verdict on a delivery (API.md)."""
    return f"{runtime.config().public_url}/api/v1/deliveries/{delivery_id}/status"


def _file_link_signature(delivery_id: str, expires: int) -> str:
    # A key of its own, derived from SECRET_KEY with a purpose label: every web host
    # checks the links any worker signed, and no other signature of ged is reusable here.
    key = hmac.new(runtime.config().secret_key.encode(), FILE_LINK_PURPOSE, hashlib.sha256)
    mac = hmac.new(key.digest(), f"{delivery_id}.{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def file_link(delivery_id: str, now: dt.datetime | None = None) -> tuple[str, dt.datetime]:
    """The signed link a tool fetches a delivery's document from, with no token, and
    when it lapses (GED_FILE_URL_DAYS after ``now``)."""
    cfg = runtime.config()
    until = ((now or utcnow()) + dt.timedelta(days=cfg.file_url_days)).replace(microsecond=0)
    expires = int(until.timestamp())
    signature = _file_link_signature(delivery_id, expires)
    return (f"{cfg.public_url}/api/v1/deliveries/{delivery_id}/file?expires={expires}"
            f"&signature={signature}", until)


def open_file_link(delivery_id: str, expires: str, signature: str) -> Document:
    """The document a file link names, once the link is checked (signature compared in
    constant time, not expired, connection not deleted, document not in the trash) and
    its use recorded in the audit trail; NotFound otherwise, the same whatever failed."""
    delivery_id, expires, signature = str(delivery_id), str(expires or ""), str(signature or "")
    if not (expires.isdigit() and len(expires) < 16 and signature.isascii()):
        raise NotFound("File link not found.")
    expected = _file_link_signature(delivery_id, int(expires))
    if not hmac.compare_digest(expected.encode(), signature.encode()) or int(expires) < time.time():
        raise NotFound("File link not found.")
    delivery = Delivery.get_or_none(Delivery.id == delivery_id)
    conn = Connection.get_or_none(Connection.id == delivery.connection_id) if delivery else None
    doc = Document.get_or_none(Document.id == delivery.document_id) if delivery else None
    if conn is None or conn.deleted_at is not None or doc is None or doc.trashed_at is not None:
        raise NotFound("File link not found.")
    with transaction():
        audit.record(f"outil « {conn.name} »", "delivery.file_downloaded", delivery,
                     firm_only=True, details={"document_id": doc.id, "connection_id": conn.id,
                                              "link_expires_at": int(expires)})
    return doc
