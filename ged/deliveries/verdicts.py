"""The tool's verdict on a delivery it received: ``POST /deliveries/{id}/status``,
signed by the tool like a delivery (Standard Webhooks), ``validated`` or ``rejected``,
final once given."""

from __future__ import annotations

import time

from .. import audit, fleet, notification_events
from ..db import transaction
from ..errors import Conflict, Invalid, NotFound, Unauthorized
from ..models import Connection, Delivery, utcnow
from .signing import signature_matches, signing_secrets
from .status import mark_success, refresh_document_status

STATUS_TOLERANCE = 300  # seconds a tool's status message timestamp may be off
VERDICTS = ("validated", "rejected")


def authenticate_status(delivery_id: str, headers, body: bytes) -> tuple[Delivery, Connection, str]:
    """Check a tool's status message as API.md says: the delivery exists and is an http
    one, the Standard Webhooks signature is that of its connection (current or
    previous secret), the timestamp is within 5 minutes. Returns (delivery, connection,
    webhook-id); raises NotFound or Unauthorized. A signature valid for another
    connection of the firm is NotFound: a tool sees only its own deliveries."""
    delivery = Delivery.get_or_none(Delivery.id == str(delivery_id))
    conn = Connection.get_or_none(Connection.id == delivery.connection_id) if delivery else None
    if conn is None or conn.kind != "http":
        raise NotFound("Delivery not found.")
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signature = headers.get("webhook-signature", "")
    if not (msg_id and timestamp and signature) or len(msg_id) > 200:
        raise Unauthorized("Sign the message with the webhook-id, webhook-timestamp and "
                           "webhook-signature headers (Standard Webhooks).", "missing_signature")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise Unauthorized("webhook-timestamp must be Unix seconds.", "bad_timestamp") from None
    if abs(time.time() - sent_at) > STATUS_TOLERANCE:
        raise Unauthorized("The webhook-timestamp is more than 5 minutes away from now.",
                           "stale_timestamp")
    if signature_matches(signing_secrets(conn), msg_id, timestamp, body, signature):
        return delivery, conn, msg_id
    others = Connection.select().where((Connection.firm == conn.firm_id) & (Connection.kind == "http")
                                       & (Connection.id != conn.id) & Connection.deleted_at.is_null())
    if any(signature_matches(signing_secrets(o), msg_id, timestamp, body, signature) for o in others):
        raise NotFound("Delivery not found.")
    raise Unauthorized("The signature does not match this delivery's connection.", "bad_signature")


def remember_message(conn: Connection, msg_id: str) -> bool:
    """Remember a status message's webhook-id for the tolerance window; False if it was
    already seen (a replay)."""
    return fleet.once(fleet.status_seen_key(conn.id, msg_id), 2 * STATUS_TOLERANCE + 60)


def record_verdict(delivery: Delivery, conn: Connection, status: str,
                   message: str | None) -> Delivery:
    """The tool's verdict on a delivery it received. ``validated`` and ``rejected`` are
    final: a repeated verdict changes nothing, a contrary one is a Conflict."""
    if status not in VERDICTS:
        raise Invalid('status must be "validated" or "rejected".', "invalid_status")
    message = (message or "").strip()[:2000] or None
    now = utcnow()
    # Any state the tool can have received the document in: it may answer before our
    # worker has recorded its 2xx, or after our side timed out.
    movable = Delivery.status.in_(("queued", "sending", "accepted", "failed"))
    with transaction():
        moved = Delivery.update(status=status, message=message, updated_at=now).where(
            (Delivery.id == delivery.id) & movable & (Delivery.attempts > 0)).execute()
        if moved:
            if status == "validated":
                mark_success(delivery, now)
            else:
                refresh_document_status(delivery.document_id)
            audit.record(f"outil « {conn.name} »", f"delivery.{status}", delivery, firm_only=True,
                         details={"document_id": delivery.document_id,
                                  "connection_id": conn.id, "message": message})
    if moved and status == "rejected":
        notification_events.document_rejected(delivery.document_id, delivery.id)
    current = Delivery.get_by_id(delivery.id)
    if not moved and current.status in VERDICTS and current.status != status:
        raise Conflict(f"This delivery is already {current.status}; a verdict is final.",
                       "already_final")
    if not moved and current.status not in VERDICTS:
        raise Conflict("This delivery has not been sent yet.", "not_sent")
    return current
