"""What a tool receives: a delivery's envelope (``type``, ``timestamp``, ``data``),
the document as deposited and/or its invoice XML, and for http the request body in
the connection's format.

The JSON format follows Standard Webhooks: the envelope, pure ASCII, the file as a
signed link and, up to ``inline_max_bytes``, as base64. The multipart format (for
upload endpoints) sends the same envelope as a ``metadata`` part beside file parts.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from .. import extraction, filetypes, folders, runtime
from ..blobs import iter_blob
from ..models import Company, Connection, Delivery, Document, utcnow
from .bodies import Body, BlobPiece, Multipart, json_body
from .links import file_link, status_url

EVENT_TYPES = {"switch": "document.deposited", "manual": "document.sent"}
MAX_INVOICE_XML = 20 * 1024 * 1024  # as extraction reads XML files


def metadata(delivery: Delivery, doc: Document) -> dict:
    """The ``data`` of a delivery's envelope, the file aside (API.md lists the fields)."""
    company, folder = doc.company, doc.folder  # joined by the caller's query, or loaded here
    return {
        "delivery_id": delivery.id,
        "document_id": doc.id,
        "name": doc.name,
        "sha256": doc.blob_id,
        "size": doc.size,
        "content_type": doc.content_type,
        "company": {"id": company.id, "name": company.name, "siren": company.siren},
        "folder_path": folders.display_path(folder),
        "deposited_at": doc.deposited_at.isoformat(),
        "channel": doc.channel,
        "trigger": delivery.trigger,
        "status_url": status_url(delivery.id),
        "facturx": doc.blob.facturx,
    }


def invoice_xml_name(name: str) -> str:
    """The invoice XML's file name: the document's, with ``.xml``."""
    stem, dot, _ext = name.rpartition(".")
    return (stem if dot and stem else name) + ".xml"


def invoice_xml(doc: Document) -> tuple[object, dict | None] | None:
    """The invoice XML a document carries, as a piece to send, with its fields: the
    Factur-X/ZUGFeRD XML taken out of a PDF (pikepdf reads only what it needs), or
    the document itself when it is a bare UBL/CII invoice; None for any other document.
    It does not wait for extraction: a delivery may run first."""
    blob = doc.blob
    source = (blob.facturx or {}).get("source")
    pending = blob.facturx is None and blob.text_status == "pending"
    if source in ("ubl", "cii"):
        return BlobPiece(doc.blob_id, doc.size), blob.facturx
    if source == "facturx" or (pending and doc.content_type == filetypes.PDF):
        with extraction.local_copy(doc.blob_id) as path:
            xml = extraction.embedded_invoice_xml(str(path))
        if not xml or len(xml) > MAX_INVOICE_XML:
            return None
        return xml, blob.facturx or extraction.invoice_fields(xml, source="facturx")
    if pending and doc.content_type == filetypes.XML and doc.size <= MAX_INVOICE_XML:
        fields = extraction.invoice_fields(b"".join(iter_blob(runtime.store(), doc.blob_id)))
        if fields:
            return BlobPiece(doc.blob_id, doc.size), fields
    return None


@dataclass
class Payload:
    """What a delivery sends, whatever the channel: the envelope's type, time and data
    (file aside), the original (a blob) when sent, and the invoice XML when sent
    (``xml_is_original`` when the document itself is the XML: sent once)."""

    type: str
    timestamp: str
    data: dict
    original: BlobPiece | None = None
    xml: object = None
    xml_name: str | None = None
    xml_is_original: bool = False

    @property
    def separate_xml(self) -> bool:
        """The XML goes as a file of its own (not when it is the original, sent anyway)."""
        return self.xml is not None and not (self.xml_is_original and self.original is not None)


def payload_for(delivery: Delivery, doc: Document, options: dict) -> Payload:
    """What this delivery sends, as the connection's (effective) options say."""
    data = metadata(delivery, doc)
    sent = Payload(EVENT_TYPES.get(delivery.trigger, "document.deposited"),
                   delivery.created_at.isoformat(), data)
    if options["send_invoice_xml"]:
        found = invoice_xml(doc)
        if found is not None:
            sent.xml, fields = found
            sent.xml_name = invoice_xml_name(doc.name)
            sent.xml_is_original = isinstance(sent.xml, BlobPiece)
            data["facturx"] = data["facturx"] or fields
    # Documents without invoice data always go as deposited (API.md).
    if options["send_original"] or sent.xml is None:
        sent.original = BlobPiece(doc.blob_id, doc.size)
    return sent


def test_payload(conn: Connection) -> Payload:
    """The ``type: "test"`` envelope of a connection test: no document."""
    company = Company.get_by_id(conn.company_id)
    return Payload("test", utcnow().isoformat(), {
        "connection_id": conn.id,
        "company": {"id": company.id, "name": company.name, "siren": company.siren},
        "message": "Test de connexion ged : aucun document n'est joint."})


test_payload.__test__ = False  # not a pytest test, despite its name


def http_body(delivery_id: str | None, sent: Payload, options: dict) -> Body:
    """The request body in the connection's format: the Standard Webhooks JSON envelope
    (the file as a signed link, and inline up to ``inline_max_bytes``), or multipart
    with ``metadata`` (the same envelope, the file's bytes aside) and file parts."""
    data = dict(sent.data)
    if sent.original is not None and delivery_id is not None:
        url, until = file_link(delivery_id)
        data.update(file_url=url, file_url_expires_at=until.isoformat())
    envelope = {"type": sent.type, "timestamp": sent.timestamp, "data": data}
    if options["format"] == "multipart":
        body = Multipart()
        meta = json.dumps(envelope, ensure_ascii=True).encode()
        body.add("metadata", meta, len(meta), "application/json")
        if sent.original is not None:
            body.add(options["file_field"], sent.original,
                     content_type=data["content_type"], filename=data["name"])
        if sent.separate_xml:
            body.add("invoice_xml", sent.xml, content_type=filetypes.XML,
                     filename=sent.xml_name)
        return body
    streamed: dict[str, object] = {}
    token = secrets.token_hex(8)
    limit = options["inline_max_bytes"]
    if sent.original is not None and limit and sent.original.size <= limit:
        data["content_base64"] = marker = f"ged-stream-{token}-content"
        streamed[marker] = sent.original
    if sent.xml is not None:
        data["invoice_xml_name"] = sent.xml_name
        data["invoice_xml_base64"] = marker = f"ged-stream-{token}-xml"
        streamed[marker] = sent.xml
    return json_body(envelope, streamed)
