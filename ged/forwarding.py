"""Forwarding: the delivery job, the http and e-mail senders, signatures, and the
checks that keep outbound requests off private networks.

A delivery moves ``queued`` → ``sending`` → ``sent`` (e-mail) or ``accepted``
(http, 2xx) → ``validated``/``rejected`` (the tool's verdict), or ``failed``.
Between attempts it is ``queued`` again with ``next_attempt_at`` set. Every
transition is a guarded UPDATE (``WHERE status IN (...)``), so a late retry or a
duplicate job never moves a delivery backwards.

Jobs: the attempt after ``n`` attempts runs as RQ job ``deliveries.job_id(id, n)``.
A Redis lease (``ged:delivery-lease:<id>``, expiring a little after the longest an
attempt may take) says a worker is sending right now; ``reconcile()`` re-enqueues
what the database says is pending and Redis does not hold, including deliveries
left ``sending`` by a worker that died (no lease any more).

Http requests follow the Standard Webhooks specification (``webhook-id`` = the
delivery id on every retry, HMAC-SHA256 over ``id.timestamp.body``). The body is
the JSON envelope (pure ASCII, so the published verifiers check it whatever the
document's bytes: the file is a signed link and, up to ``inline_max_bytes``,
base64), or multipart for upload endpoints. Either is streamed from the blob store
twice (once to sign, once to send), never held whole in memory.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.policy
import email.utils
import hashlib
import hmac
import ipaddress
import json
import os
import logging
import math
import secrets
import smtplib
import socket
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Iterable, Iterator
from urllib.parse import quote, urlsplit

import httpcore
import httpx

from . import audit, deliveries, filetypes, folders, integrations, mail, permissions, queue, runtime
from .db import transaction
from .deliveries import IN_FLIGHT
from .errors import Invalid, NotFound, Unauthorized
from .models import Blob, Company, Connection, Delivery, Document, Folder, utcnow
from .storage import iter_blob

log = logging.getLogger(__name__)

ACTOR = "transmission"  # how the forwarding worker appears in the audit trail
USER_AGENT = "ged-forwarding/1"
RESPONSE_EXCERPT = 2048
SEND_BUFFER = 256 * 1024  # bytes written at a time when sending a body
STATUS_TOLERANCE = 300  # seconds a tool's status message timestamp may be off
VERDICTS = ("validated", "rejected")


# --- outcomes of one attempt -------------------------------------------------------------


@dataclass
class Outcome:
    """What one attempt came to: ``success`` (status sent/accepted), ``retry`` or ``fail``."""

    kind: str
    status: str | None = None
    error: str | None = None
    status_code: int | None = None
    retry_after: float | None = None
    pause: bool = False


def _success(status: str, code: int | None = None) -> Outcome:
    return Outcome("success", status=status, status_code=code)


def _retry(error: str, code: int | None = None, retry_after: float | None = None) -> Outcome:
    return Outcome("retry", error=error, status_code=code, retry_after=retry_after)


def _fail(error: str, code: int | None = None, pause: bool = False) -> Outcome:
    return Outcome("fail", error=error, status_code=code, pause=pause)


# --- outbound targets: server-side request forgery ---------------------------------------


class TargetRefused(Exception):
    """A URL ged will not send to (scheme, credentials, or a non-public address)."""

    code = "target_not_allowed"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


def is_public_address(value: str) -> bool:
    """True for a globally routable unicast address (not loopback, private, link-local,
    shared, reserved, multicast, or an IPv6 wrapper around one of those)."""
    try:
        ip = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return is_public_address(str(embedded))
        if ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64: the IPv4 address inside
            return is_public_address(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    if any(ip in net for net in _NOT_PUBLIC):
        return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


# Ranges some Python versions' tables count as global although they are not publicly
# routable: 192.0.0.0/24 (IETF protocol assignments; 192.0.0.192 is a cloud metadata
# address) is only partly listed before Python 3.12.4.
_NOT_PUBLIC = (ipaddress.ip_network("192.0.0.0/24"),)


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def check_url(url: str, *, allow_private: bool | None = None, resolve: bool = True) -> str:
    """Check a connection URL; returns it, or raises TargetRefused with a clear reason.

    By default only ``https`` to hosts whose every address is public;
    GED_ALLOW_PRIVATE_TARGETS=1 also allows plain ``http`` and private addresses."""
    if allow_private is None:
        allow_private = runtime.config().allow_private_targets
    if len(url) > 2000:
        raise TargetRefused("The URL is too long (2000 characters at most).", "invalid_url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TargetRefused("The URL is not valid.", "invalid_url") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise TargetRefused("The URL must start with https://"
                            + ("" if allow_private else " (plain http is refused)") + ".",
                            "invalid_url")
    if not parts.hostname:
        raise TargetRefused("The URL has no host name.", "invalid_url")
    if parts.username or parts.password:
        raise TargetRefused("Put credentials in the connection's headers option, not in the URL.",
                            "invalid_url")
    if any(c in url for c in "\r\n\t\0 "):
        raise TargetRefused("The URL contains spaces or control characters.", "invalid_url")
    if allow_private or not resolve:
        return url
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = _resolve(parts.hostname, port)
    except (socket.gaierror, UnicodeError):
        raise TargetRefused(f"The host name {parts.hostname!r} does not resolve.",
                            "unresolvable_host") from None
    refused = [a for a in addresses if not is_public_address(a)]
    if refused or not addresses:
        raise TargetRefused(f"{parts.hostname} resolves to a private or reserved address "
                            f"({', '.join(refused) or 'none'}); ged only sends to public addresses.")
    return url


class _GuardedBackend(httpcore.SyncBackend):
    """Connects only to checked addresses: the name is resolved here, every address
    checked, and the socket opened to the checked address itself, so a DNS answer
    that changes between the check and the connection (rebinding) gains nothing."""

    def __init__(self, allow_private: bool):
        self.allow_private = allow_private

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            addresses = _resolve(host, port)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from None
        if not self.allow_private:
            refused = [a for a in addresses if not is_public_address(a)]
            if refused or not addresses:
                raise TargetRefused(f"{host} resolves to a private or reserved address "
                                    f"({', '.join(refused) or 'none'}); ged only sends to "
                                    "public addresses.")
        last: Exception = httpcore.ConnectError(f"{host}: no address")
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last


_CLIENTS: dict[tuple, httpx.Client] = {}


def _client(cfg) -> httpx.Client:
    """The process's HTTP client for these settings, kept between deliveries: building
    one loads the CA bundle (milliseconds each time), and a kept client reuses its
    connections to a tool that receives many documents in a row."""
    key = (os.getpid(), cfg.allow_private_targets, cfg.delivery_timeout,
           cfg.delivery_connect_timeout)
    client = _CLIENTS.get(key)
    if client is None or client.is_closed:
        transport = httpx.HTTPTransport(trust_env=False, retries=0)
        # httpx has no hook on the connect step: give the transport a pool whose network
        # backend checks every address it connects to.
        # TCP_NODELAY: a request is headers then body; with Nagle's algorithm the body's
        # last segment can wait for the tool's delayed ACK (40 ms a request).
        transport._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=20,
            keepalive_expiry=30.0, network_backend=_GuardedBackend(cfg.allow_private_targets),
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        client = httpx.Client(transport=transport, follow_redirects=False, trust_env=False,
                              timeout=httpx.Timeout(cfg.delivery_timeout,
                                                    connect=cfg.delivery_connect_timeout))
        _CLIENTS[key] = client
    return client


# --- Standard Webhooks signatures ---------------------------------------------------------


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def signing_secrets(conn: Connection, now: dt.datetime | None = None) -> list[str]:
    """The secrets that sign (and verify) for a connection: the current one, plus the
    previous one during the grace period after a rotation."""
    now = now or utcnow()
    found = [conn.secret] if conn.secret else []
    if conn.previous_secret and conn.previous_secret_until and conn.previous_secret_until > now:
        found.append(conn.previous_secret)
    return found


def sign(secrets_: list[str], msg_id: str, timestamp: int, chunks: Iterable[bytes]) -> str:
    """The ``webhook-signature`` header: ``v1,<base64 HMAC>`` per secret, space-separated."""
    prefix = f"{msg_id}.{timestamp}.".encode()
    macs = [hmac.new(_key(s), prefix, hashlib.sha256) for s in secrets_]
    for chunk in chunks:
        for mac in macs:
            mac.update(chunk)
    return " ".join("v1," + base64.b64encode(mac.digest()).decode() for mac in macs)


def signature_matches(secrets_: list[str], msg_id: str, timestamp: str, body: bytes,
                      header: str) -> bool:
    """True if one of the header's ``v1`` signatures is that of one of the secrets."""
    given = []
    for part in header.split(" "):
        version, _, value = part.partition(",")
        if version == "v1" and value:
            try:
                given.append(base64.b64decode(value, validate=True))
            except ValueError:
                continue
    for secret in secrets_:
        expected = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body,
                            hashlib.sha256).digest()
        if any(hmac.compare_digest(expected, g) for g in given):
            return True
    return False


# --- request bodies -----------------------------------------------------------------------


class _Blob:
    """The bytes of a blob of the store, read only while the body is iterated."""

    def __init__(self, sha256: str, size: int):
        self.sha256, self.size = sha256, size

    def __len__(self) -> int:
        return self.size

    def chunks(self) -> Iterator[bytes]:
        yield from iter_blob(runtime.store(), self.sha256)


class _Base64:
    """A piece (bytes or a blob) as base64 text, encoded as it is read: a multiple of
    3 bytes at a time, so the encoded chunks join into one valid base64 string."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self) -> int:
        return 4 * math.ceil(len(self.inner) / 3)

    def chunks(self) -> Iterator[bytes]:
        carry = b""
        for chunk in _piece_chunks(self.inner):
            data = carry + chunk
            cut = len(data) - len(data) % 3
            if cut:
                yield base64.b64encode(data[:cut])
            carry = data[cut:]
        if carry:
            yield base64.b64encode(carry)


def _piece_chunks(piece) -> Iterator[bytes]:
    if isinstance(piece, bytes):
        if piece:
            yield piece
    else:
        yield from piece.chunks()


class _Body:
    """A request body made of pieces (bytes, a blob, a blob's base64): it can be
    iterated more than once (sign, then send) and knows its length without reading a
    blob, so a large document is never held in memory."""

    def __init__(self, content_type: str):
        self.content_type = content_type
        self.pieces: list = []

    def __len__(self) -> int:
        return sum(len(p) for p in self.pieces)

    def chunks(self) -> Iterator[bytes]:
        for piece in self.pieces:
            yield from _piece_chunks(piece)


def _json_body(envelope: dict, streamed: dict[str, object]) -> _Body:
    """The envelope as JSON, each placeholder string of ``streamed`` (found as a value)
    replaced by its piece's base64. The JSON is pure ASCII (``\\u`` escapes), so a
    verifier that reads the body as text, in any language, gets it unchanged."""
    text = json.dumps(envelope, ensure_ascii=True).encode()
    body = _Body("application/json")
    at = 0
    found = sorted((text.index(f'"{marker}"'.encode()), marker) for marker in streamed)
    for position, marker in found:
        body.pieces += [text[at:position + 1], _Base64(streamed[marker])]
        at = position + 1 + len(marker)
    body.pieces.append(text[at:])
    return body


class _Multipart(_Body):
    """A multipart/form-data body whose parts are bytes or blobs of the store."""

    def __init__(self):
        self.boundary = "ged-" + secrets.token_hex(16)
        super().__init__(f"multipart/form-data; boundary={self.boundary}")

    @staticmethod
    def _quote(value: str) -> str:
        # As browsers encode form-data names (WHATWG): UTF-8, with " CR LF escaped.
        return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")

    def add(self, name: str, content, size: int | None = None,
            content_type: str = "application/octet-stream", filename: str | None = None) -> None:
        """A part: ``content`` is bytes, a piece, or the sha256 of a blob of ``size`` bytes."""
        if isinstance(content, str):
            content = _Blob(content, size)
        disposition = f'form-data; name="{self._quote(name)}"'
        if filename is not None:
            # Raw UTF-8 as RFC 7578 and browsers send it (it forbids filename*).
            disposition += f'; filename="{self._quote(filename)}"'
        self.pieces += [(f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n"
                         f"Content-Type: {content_type}\r\n\r\n").encode(), content, b"\r\n"]

    def _tail(self) -> bytes:
        return f"--{self.boundary}--\r\n".encode()

    def __len__(self) -> int:
        return super().__len__() + len(self._tail())

    def chunks(self) -> Iterator[bytes]:
        yield from super().chunks()
        yield self._tail()


class AttemptTimeout(Exception):
    """An attempt ran past its total time bound."""


def _post(cfg, url: str, headers: dict, body: _Body) -> tuple[int, httpx.Headers, str]:
    """POST the body; returns (status, headers, start of the response body). The
    attempt is bounded by the connect timeout plus the total timeout."""
    deadline = time.monotonic() + cfg.delivery_connect_timeout + cfg.delivery_timeout

    def bounded(chunks: Iterator[bytes]) -> Iterator[bytes]:
        # The body's small pieces (part headers, JSON around the base64) joined into
        # writes of up to SEND_BUFFER bytes: fewer system calls and packets.
        pending = bytearray()
        for chunk in chunks:
            if time.monotonic() > deadline:
                raise AttemptTimeout()
            pending += chunk
            if len(pending) >= SEND_BUFFER:
                yield bytes(pending)
                pending.clear()
        if pending:
            yield bytes(pending)

    client = _client(cfg)
    with client.stream("POST", url, headers=headers, content=bounded(body.chunks())) as resp:
        excerpt = b""
        for chunk in resp.iter_bytes():
            excerpt += chunk
            if len(excerpt) >= RESPONSE_EXCERPT or time.monotonic() > deadline:
                break
        return resp.status_code, resp.headers, excerpt[:RESPONSE_EXCERPT].decode(
            "utf-8", "replace")


def _signed_headers(conn: Connection, msg_id: str, body: _Body) -> dict:
    """The request's headers: the connection's static ones (e.g. a tool's Authorization),
    then the Standard Webhooks signature over the body, streamed through the HMAC."""
    timestamp = int(time.time())
    headers = dict(integrations.effective_options(conn).get("headers") or {})
    headers.update({
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(signing_secrets(conn), msg_id, timestamp, body.chunks()),
        "content-type": body.content_type,
        "content-length": str(len(body)),
        "user-agent": USER_AGENT,
    })
    return headers


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return (text[:300] + "…") if len(text) > 300 else text


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max((when - utcnow()).total_seconds(), 0.0)


def classify(status: int, headers: httpx.Headers, text: str) -> Outcome:
    """What an http answer means for the delivery (API.md, "What an http connection receives")."""
    said = f" : {_excerpt(text)}" if text.strip() else ""
    if 200 <= status < 300:
        return _success("accepted", status)
    if 300 <= status < 400:
        location = headers.get("location") or "?"
        return _fail(f"L'outil a répondu par une redirection (HTTP {status} vers {location}). "
                     "Les redirections ne sont pas suivies : corrigez l'URL de la connexion.",
                     status)
    if status == 410:
        return _fail(f"L'outil a répondu HTTP 410 (Gone) : cette adresse n'accepte plus de "
                     f"documents. La connexion a été mise en pause{said}.", status, pause=True)
    if status in (408, 429) or status >= 500:
        return _retry(f"L'outil a répondu HTTP {status}{said}", status, _retry_after(headers))
    return _fail(f"L'outil a refusé le document (HTTP {status}){said}", status)


def _network_outcome(exc: Exception) -> Outcome:
    if isinstance(exc, TargetRefused):
        return _fail(f"Adresse refusée : {exc}")
    if isinstance(exc, (AttemptTimeout, httpx.TimeoutException)):
        return _retry("Délai dépassé : l'outil n'a pas répondu à temps.")
    return _retry(f"Erreur réseau : {exc or type(exc).__name__}")


# --- what a tool receives -----------------------------------------------------------------


def status_url(delivery_id: str) -> str:
    return f"{runtime.config().public_url}/api/v1/deliveries/{delivery_id}/status"


EVENT_TYPES = {"switch": "document.deposited", "manual": "document.sent"}
FILE_LINK_PURPOSE = b"ged/delivery-file-link/v1"
MAX_INVOICE_XML = 20 * 1024 * 1024  # as extraction reads XML files


def metadata(delivery: Delivery, doc: Document) -> dict:
    """The ``data`` of a delivery's envelope, the file aside (API.md lists the fields)."""
    company, folder = doc.company, doc.folder  # joined by _document(), or loaded here
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


def invoice_xml_name(name: str) -> str:
    """The invoice XML's file name: the document's, with ``.xml``."""
    stem, dot, _ext = name.rpartition(".")
    return (stem if dot and stem else name) + ".xml"


def invoice_xml(doc: Document) -> tuple[object, dict | None] | None:
    """The invoice XML a document carries, as a piece to send, with its fields: the
    Factur-X/ZUGFeRD XML taken out of a PDF (pypdf reads the file, not all of it), or
    the document itself when it is a bare UBL/CII invoice; None for any other document.
    It does not wait for extraction: a delivery may run first."""
    from . import extraction

    blob = doc.blob
    source = (blob.facturx or {}).get("source")
    pending = blob.facturx is None and blob.text_status == "pending"
    if source in ("ubl", "cii"):
        return _Blob(doc.blob_id, doc.size), blob.facturx
    if source == "facturx" or (pending and doc.content_type == filetypes.PDF):
        with extraction._local_copy(doc.blob_id) as path:
            xml = extraction._embedded_invoice_xml(str(path))
        if not xml or len(xml) > MAX_INVOICE_XML:
            return None
        return xml, blob.facturx or extraction.invoice_fields(xml, source="facturx")
    if pending and doc.content_type == filetypes.XML and doc.size <= MAX_INVOICE_XML:
        fields = extraction.invoice_fields(b"".join(iter_blob(runtime.store(), doc.blob_id)))
        if fields:
            return _Blob(doc.blob_id, doc.size), fields
    return None


@dataclass
class _Payload:
    """What a delivery sends, whatever the channel: the envelope's type, time and data
    (file aside), the original (a blob) when sent, and the invoice XML when sent
    (``xml_is_original`` when the document itself is the XML: sent once)."""

    type: str
    timestamp: str
    data: dict
    original: _Blob | None = None
    xml: object = None
    xml_name: str | None = None
    xml_is_original: bool = False

    @property
    def separate_xml(self) -> bool:
        """The XML goes as a file of its own (not when it is the original, sent anyway)."""
        return self.xml is not None and not (self.xml_is_original and self.original is not None)


def _payload(delivery: Delivery, doc: Document, options: dict) -> _Payload:
    data = metadata(delivery, doc)
    payload = _Payload(EVENT_TYPES.get(delivery.trigger, "document.deposited"),
                       delivery.created_at.isoformat(), data)
    if options["send_invoice_xml"]:
        found = invoice_xml(doc)
        if found is not None:
            payload.xml, fields = found
            payload.xml_name = invoice_xml_name(doc.name)
            payload.xml_is_original = isinstance(payload.xml, _Blob)
            data["facturx"] = data["facturx"] or fields
    # Documents without invoice data always go as deposited (API.md).
    if options["send_original"] or payload.xml is None:
        payload.original = _Blob(doc.blob_id, doc.size)
    return payload


def _test_payload(conn: Connection) -> _Payload:
    company = Company.get_by_id(conn.company_id)
    return _Payload("test", utcnow().isoformat(), {
        "connection_id": conn.id,
        "company": {"id": company.id, "name": company.name, "siren": company.siren},
        "message": "Test de connexion ged : aucun document n'est joint."})


def _http_body(delivery_id: str | None, payload: _Payload, options: dict) -> _Body:
    """The request body in the connection's format: the Standard Webhooks JSON envelope
    (the file as a signed link, and inline up to ``inline_max_bytes``), or multipart
    with ``metadata`` (the same envelope, the file's bytes aside) and file parts."""
    data = dict(payload.data)
    if payload.original is not None and delivery_id is not None:
        url, until = file_link(delivery_id)
        data.update(file_url=url, file_url_expires_at=until.isoformat())
    envelope = {"type": payload.type, "timestamp": payload.timestamp, "data": data}
    if options["format"] == "multipart":
        body = _Multipart()
        meta = json.dumps(envelope, ensure_ascii=True).encode()
        body.add("metadata", meta, len(meta), "application/json")
        if payload.original is not None:
            body.add(options["file_field"], payload.original,
                     content_type=data["content_type"], filename=data["name"])
        if payload.separate_xml:
            body.add("invoice_xml", payload.xml, content_type=filetypes.XML,
                     filename=payload.xml_name)
        return body
    streamed: dict[str, object] = {}
    token = secrets.token_hex(8)
    limit = options["inline_max_bytes"]
    if payload.original is not None and limit and payload.original.size <= limit:
        data["content_base64"] = marker = f"ged-stream-{token}-content"
        streamed[marker] = payload.original
    if payload.xml is not None:
        data["invoice_xml_name"] = payload.xml_name
        data["invoice_xml_base64"] = marker = f"ged-stream-{token}-xml"
        streamed[marker] = payload.xml
    return _json_body(envelope, streamed)


def _deliver_http(cfg, delivery: Delivery, doc: Document, conn: Connection,
                  lease: "_Lease") -> Outcome:
    try:
        check_url(conn.url, allow_private=cfg.allow_private_targets, resolve=False)
    except TargetRefused as exc:
        return _fail(f"Adresse refusée : {exc}")
    options = integrations.effective_options(conn)
    try:
        body = _http_body(delivery.id, _payload(delivery, doc, options), options)
        headers = _signed_headers(conn, delivery.id, body)
    except FileNotFoundError:
        return _fail("Le fichier est introuvable dans le stockage.")
    lease.extend()  # the clock of the attempt starts now, after the signing pass
    try:
        status, resp_headers, text = _post(cfg, conn.url, headers, body)
    except FileNotFoundError:
        return _fail("Le fichier est introuvable dans le stockage.")
    except (TargetRefused, AttemptTimeout, httpx.TransportError) as exc:
        return _network_outcome(exc)
    return classify(status, resp_headers, text)


# --- e-mail headers: any Unicode name, never a broken message ------------------------------


class _EncodedHeader(str):
    """A header value already encoded to ASCII (RFC 2047 words, RFC 2231 parameters),
    written out as is: the email package would otherwise refold it, and it splits on
    every Unicode line boundary (U+2028, U+0085…) that a name may hold."""

    def __new__(cls, name: str, value: str):
        obj = super().__new__(cls, value)
        obj.name = name
        return obj

    def fold(self, *, policy) -> str:
        return f"{self.name}: {self}".replace("\n", policy.linesep) + policy.linesep

    def __getattr__(self, attr):
        # What the email package asks of a parsed header (content_disposition, params…)
        if attr.startswith("__"):
            raise AttributeError(attr)
        return getattr(email.policy.default.header_factory(self.name, str(self)), attr)


def _set_header(part: EmailMessage, name: str, value: str) -> None:
    del part[name]
    part[name] = _EncodedHeader(name, value)


def _rfc2047(text: str) -> str:
    """``text`` as RFC 2047 encoded words (UTF-8, base64) of at most 75 characters
    each, folded one per line; plain printable ASCII stays as it is."""
    if text.isascii() and text.isprintable() and len(text) < 900 and "=?" not in text:
        return text
    words, current = [], b""
    for ch in text:
        raw = ch.encode("utf-8")
        if len(base64.b64encode(current + raw)) > 75 - len("=?utf-8?b??="):
            words.append(current)
            current = b""
        current += raw
    words.append(current)
    return "\n ".join(f"=?utf-8?b?{base64.b64encode(w).decode()}?=" for w in words if w)


def _rfc2231_filename(disposition: str, filename: str) -> str:
    """A Content-Disposition with the file name as RFC 2231 parameters: percent-encoded
    UTF-8, in continuations short enough for any line limit."""
    if filename.isascii() and filename.isprintable() and len(filename) < 60 \
            and not any(c in filename for c in '"\\'):
        return f'{disposition}; filename="{filename}"'
    # Cut between characters (never inside one's UTF-8 bytes), 60 encoded characters
    # a section at most.
    pieces = [""]
    for ch in filename:
        encoded = quote(ch, safe="")
        if len(pieces[-1]) + len(encoded) > 60:
            pieces.append("")
        pieces[-1] += encoded
    if len(pieces) == 1:
        return f"{disposition}; filename*=utf-8''{pieces[0]}"
    params = [f"filename*{i}*={'utf-8' + chr(39) * 2 if i == 0 else ''}{p}"
              for i, p in enumerate(pieces)]
    return disposition + ";\n " + ";\n ".join(params)


def _attach(msg: EmailMessage, streams: mail.Streams, piece, content_type: str,
            filename: str) -> None:
    maintype, _, subtype = content_type.partition("/")
    kind = {"maintype": maintype or "application", "subtype": subtype or "octet-stream"}
    if isinstance(piece, _Blob):
        store = runtime.store()
        mail.attach_file(msg, streams, lambda: store.open(piece.sha256), filename=None, **kind)
    else:
        msg.add_attachment(piece, **kind)
    part = msg.get_payload()[-1]
    _set_header(part, "Content-Disposition", _rfc2231_filename("attachment", filename))


def _email_message(delivery: Delivery, doc: Document, conn: Connection
                   ) -> tuple[EmailMessage, mail.Streams]:
    """The message of an e-mail delivery: the document (streamed by mail.send) and/or
    its invoice XML as attachments, headers encoded for any name."""
    options = integrations.effective_options(conn)
    payload = _payload(delivery, doc, options)
    meta = payload.data
    company = meta["company"]
    msg = EmailMessage()
    msg["To"] = conn.address
    _set_header(msg, "Subject", _rfc2047(f"[{company['name']}] {meta['folder_path']} — {doc.name}"))
    # Derived from the delivery id: a retry carries the same Message-ID, so the tool
    # (or a human) recognises a duplicate.
    msg["Message-ID"] = f"<delivery-{delivery.id}@{mail.sender_domain()}>"
    msg["X-Ged-Delivery-Id"] = delivery.id
    sent = []
    if payload.original is not None:
        sent.append(f"{doc.name} ({doc.size} octets, tel que déposé)")
    if payload.separate_xml:
        sent.append(f"{payload.xml_name} (XML de la facture électronique)")
    msg.set_content(
        "Document transmis par ged.\n\n"
        f"Entreprise : {company['name']}"
        + (f" (SIREN {company['siren']})" if company["siren"] else "") + "\n"
        f"Dossier : {meta['folder_path']}\n"
        f"Document : {doc.name}\n"
        f"Déposé le : {meta['deposited_at']}\n"
        f"SHA-256 : {doc.blob_id}\n"
        f"Pièces jointes : {' ; '.join(sent)}\n")
    streams: mail.Streams = {}
    if payload.original is not None:
        _attach(msg, streams, payload.original, doc.content_type, doc.name)
    if payload.separate_xml:
        _attach(msg, streams, payload.xml, filetypes.XML, payload.xml_name)
    if options["attach_metadata"]:
        _attach(msg, streams, json.dumps(meta, ensure_ascii=False, indent=2).encode(),
                "application/json", "metadata.json")
    return msg, streams


def _smtp_outcome(exc: Exception) -> Outcome:
    if isinstance(exc, mail.MailNotConfigured):
        return _fail("Aucun relais d'envoi d'e-mails n'est configuré (GED_SMTP_HOST).")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        text = "; ".join(f"{c} {m.decode(errors='replace') if isinstance(m, bytes) else m}"
                         for c, m in exc.recipients.values())
        if codes and all(400 <= c < 500 for c in codes):
            return _retry(f"Le relais a différé le message : {text}")
        return _fail(f"Le relais a refusé l'adresse du destinataire : {text}")
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        if 400 <= exc.smtp_code < 500:
            return _retry(f"Le relais a différé le message : {exc.smtp_code} {text}")
        return _fail(f"Le relais a refusé le message : {exc.smtp_code} {text}")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return _retry("Délai dépassé : le relais d'e-mails n'a pas répondu à temps.")
    return _retry(f"Erreur d'envoi de l'e-mail : {exc or type(exc).__name__}")


def _deliver_email(cfg, delivery: Delivery, doc: Document, conn: Connection,
                   lease: "_Lease") -> Outcome:
    try:
        message, streams = _email_message(delivery, doc, conn)
    except FileNotFoundError:
        return _fail("Le fichier est introuvable dans le stockage.")
    lease.extend()
    try:
        mail.send(message, timeout=cfg.delivery_timeout, streams=streams)
    except FileNotFoundError:  # opened before anything is sent
        return _fail("Le fichier est introuvable dans le stockage.")
    except (mail.MailNotConfigured, smtplib.SMTPException, OSError) as exc:
        return _smtp_outcome(exc)
    return _success("sent")


# --- the delivery job ---------------------------------------------------------------------


class _Lease:
    """A Redis key saying "a worker is sending this delivery now", expiring a little
    after the longest an attempt may take, so a dead worker's lease lapses."""

    _RELEASE = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                "return redis.call('del', KEYS[1]) end return 0")

    def __init__(self, delivery_id: str, seconds: int):
        self.key = lease_key(delivery_id)
        self.seconds = seconds
        self.token = secrets.token_hex(8)

    def acquire(self) -> bool:
        return bool(queue.connection().set(self.key, self.token, nx=True, ex=self.seconds))

    def extend(self) -> None:
        queue.connection().set(self.key, self.token, xx=True, ex=self.seconds)

    def release(self) -> None:
        try:
            queue.connection().eval(self._RELEASE, 1, self.key, self.token)
        except Exception:  # noqa: BLE001 - the key expires anyway
            log.warning("could not release %s", self.key)


def lease_key(delivery_id: str) -> str:
    return f"ged:delivery-lease:{delivery_id}"


def lease_seconds(cfg) -> int:
    return int(math.ceil(cfg.delivery_connect_timeout + cfg.delivery_timeout)) + 2


def retry_delay(schedule: list[float], attempts: int, retry_after: float | None) -> float:
    """Seconds before the next attempt after ``attempts`` attempts: the schedule's step,
    or longer if the tool said so with Retry-After (capped by the longest step)."""
    step = schedule[min(attempts, len(schedule)) - 1] if schedule else 0.0
    if retry_after is not None and schedule:
        step = max(step, min(retry_after, max(schedule)))
    return float(step)


def run(delivery_id: str) -> str:
    """The RQ job: make one attempt at a delivery and record its outcome; schedules the
    next attempt when the outcome calls for one. Safe to run twice."""
    cfg = runtime.config()
    delivery = Delivery.get_or_none(Delivery.id == delivery_id)
    if delivery is None:
        return "missing"
    if delivery.status not in IN_FLIGHT:
        return delivery.status
    if delivery.status == "queued" and delivery.next_attempt_at is not None:
        wait = (delivery.next_attempt_at - utcnow()).total_seconds()
        if wait > 1.0:
            return "early"  # a stray duplicate: the scheduled job will come at its time
        if wait > 0:
            # RQ schedules to the whole second, so a retry may fall due up to a second
            # early; waiting keeps the promised delay (and a tool's Retry-After).
            time.sleep(wait)
    lease = _Lease(delivery.id, lease_seconds(cfg))
    if not lease.acquire():
        return "busy"  # another worker is sending it right now
    try:
        claimed = Delivery.update(status="sending", attempts=Delivery.attempts + 1,
                                  next_attempt_at=None, updated_at=utcnow()).where(
            (Delivery.id == delivery.id) & (Delivery.status == delivery.status)
            & (Delivery.attempts == delivery.attempts)).execute()
        if not claimed:  # another worker moved it since we read it
            return Delivery.get_by_id(delivery.id).status
        # The row is now what we read plus the claim: no need to read it again.
        delivery.status, delivery.attempts = "sending", delivery.attempts + 1
        delivery.next_attempt_at = None
        outcome = _attempt(cfg, delivery, lease)
        return _record(cfg, delivery, outcome)
    finally:
        lease.release()


def _document(document_id: str) -> Document:
    """The document with its blob, company and folder, in one query."""
    return (Document.select(Document, Blob.sha256, Blob.facturx, Blob.text_status, Company,
                            Folder)
            .join(Blob, on=(Document.blob == Blob.sha256)).switch(Document)
            .join(Company, on=(Document.company == Company.id)).switch(Document)
            .join(Folder, on=(Document.folder == Folder.id))
            .where(Document.id == document_id).get())


def _attempt(cfg, delivery: Delivery, lease: _Lease) -> Outcome:
    conn = Connection.get_by_id(delivery.connection_id)
    doc = _document(delivery.document_id)
    if conn.deleted_at is not None:
        return _fail("La connexion a été supprimée.")
    if conn.paused:
        return _fail("La connexion est en pause : rien n'a été envoyé. Après la reprise, "
                     "renvoyez le document à la main.")
    if doc.trashed_at is not None:
        return _fail("Le document a été mis à la corbeille avant son envoi.")
    try:
        if conn.kind == "http":
            return _deliver_http(cfg, delivery, doc, conn, lease)
        return _deliver_email(cfg, delivery, doc, conn, lease)
    except Exception as exc:  # noqa: BLE001 - any surprise is retried, then fails visibly
        log.exception("delivery %s: unexpected error", delivery.id)
        return _retry(f"Erreur interne : {type(exc).__name__}: {exc}")


def _record(cfg, delivery: Delivery, outcome: Outcome) -> str:
    """Write an attempt's outcome (guarded: only a delivery still ``sending`` moves)."""
    now = utcnow()
    details = {"document_id": delivery.document_id, "connection_id": delivery.connection_id,
               "attempts": delivery.attempts, "status_code": outcome.status_code}
    sending = (Delivery.id == delivery.id) & (Delivery.status == "sending")
    if outcome.kind == "success":
        with transaction():
            moved = Delivery.update(status=outcome.status, last_error=None,
                                    updated_at=now).where(sending).execute()
            # Even when a verdict got here first (moved = 0): the tool did answer 2xx.
            _mark_success(delivery, now)
            if moved:
                audit.record(ACTOR, f"delivery.{outcome.status}", delivery, details=details,
                             firm_only=True)
        return outcome.status
    schedule = cfg.delivery_retry_schedule
    if outcome.kind == "retry" and delivery.attempts <= len(schedule):
        delay = retry_delay(schedule, delivery.attempts, outcome.retry_after)
        with transaction():
            moved = Delivery.update(status="queued", last_error=outcome.error,
                                    next_attempt_at=now + dt.timedelta(seconds=delay),
                                    updated_at=now).where(sending).execute()
            if moved:
                audit.record(ACTOR, "delivery.retry_scheduled", delivery, firm_only=True,
                             details={**details, "error": outcome.error, "delay": delay})
        if moved:
            _enqueue_attempt(delivery.id, delivery.attempts, delay)
        return "queued"
    error = outcome.error or "Échec."
    if outcome.kind == "retry":
        error = f"{error} (abandon après {delivery.attempts} tentatives)"
    with transaction():
        moved = Delivery.update(status="failed", last_error=error, updated_at=now).where(
            sending).execute()
        if moved:
            # The document's row is locked before the audit trail's (the order of every path).
            deliveries.refresh_document_status(delivery.document_id)
            audit.record(ACTOR, "delivery.failed", delivery, firm_only=True,
                         details={**details, "error": error})
        if moved and outcome.pause:
            paused = Connection.update(paused=True, paused_reason=error).where(
                (Connection.id == delivery.connection_id) & (Connection.paused == False)  # noqa: E712
            ).execute()
            if paused:
                audit.record(ACTOR, "connection.paused", Connection.get_by_id(
                    delivery.connection_id), firm_only=True, details={"reason": error})
    if moved:
        from . import notification_events

        notification_events.delivery_failed(delivery.id)  # issue 21 (never raises)
    return "failed"


def _mark_success(delivery: Delivery, now: dt.datetime) -> None:
    """A delivery reached the tool: the document's status is recomputed from every
    connection's latest delivery (a verdict may say otherwise) and the connection has
    a last success."""
    deliveries.refresh_document_status(delivery.document_id)
    Connection.update(last_success_at=now).where(Connection.id == delivery.connection_id).execute()


def _enqueue_attempt(delivery_id: str, attempts: int, delay: float) -> None:
    try:
        queue.enqueue_in(delay, "deliveries", "ged.tasks.deliver", delivery_id,
                         job_id=deliveries.job_id(delivery_id, attempts))
    except Exception:  # noqa: BLE001 - the reconciler finds it in the database
        log.exception("could not enqueue delivery %s; the reconciler will", delivery_id)


def reconcile(min_age: float = 10.0, limit: int = 1000) -> dict:
    """Re-enqueue deliveries the database says are pending and Redis does not hold:
    ``queued`` ones whose job is gone (Redis restarted empty, a process died between
    commit and enqueue) and ``sending`` ones whose worker died (lease lapsed).
    ``min_age`` leaves alone rows changed in the last seconds (their job is on its way)."""
    now = utcnow()
    cutoff = now - dt.timedelta(seconds=min_age)
    requeued = recovered = 0
    conn = queue.connection()
    for d in (Delivery.select(Delivery.id, Delivery.attempts, Delivery.next_attempt_at)
              .where((Delivery.status == "queued") & (Delivery.updated_at <= cutoff))
              .order_by(Delivery.updated_at).limit(limit)):
        if queue.job_pending(deliveries.job_id(d.id, d.attempts)):
            continue
        delay = 0.0
        if d.next_attempt_at is not None:
            delay = max((d.next_attempt_at - now).total_seconds(), 0.0)
        _enqueue_attempt(d.id, d.attempts, delay)
        requeued += 1
    for d in (Delivery.select(Delivery.id, Delivery.attempts)
              .where((Delivery.status == "sending") & (Delivery.updated_at <= cutoff))
              .order_by(Delivery.updated_at).limit(limit)):
        if conn.exists(lease_key(d.id)) or queue.job_pending(deliveries.job_id(d.id, d.attempts)):
            continue
        _enqueue_attempt(d.id, d.attempts, 0.0)
        recovered += 1
    if requeued or recovered:
        log.warning("reconcile: %s queued and %s interrupted deliveries re-enqueued",
                    requeued, recovered)
    return {"deliveries_requeued": requeued, "deliveries_recovered": recovered}


# --- by hand --------------------------------------------------------------------------------


def folder_documents(actor, folder: Folder, *, below: bool = True) -> list[Document]:
    """The documents of a folder, and with ``below`` of everything under it, that
    ``actor`` sees (nothing in the trash, nor in a trashed subfolder), for sending a
    folder by hand."""
    visible = [folder.id]
    if below:
        hidden = permissions.hidden_prefixes(actor, folder.company_id)
        visible = [f.id for f in folders.subtree(folder).select(Folder.id, Folder.path)
                   if not any(f.path.startswith(p) for p in hidden)]
    return list(Document.select().where(Document.folder.in_(visible)
                                        & Document.trashed_at.is_null())
                .order_by(Document.deposited_at, Document.id))


@dataclass
class ManualSend:
    """What a send by hand did: the deliveries created, and the documents skipped
    because the tool already has them (or they were replaced)."""

    deliveries: list[Delivery]
    skipped: list[str]


def send_manual(actor, documents: Iterable[Document], connection: Connection, *,
                resend: bool = False) -> ManualSend:
    """Send documents by hand (a selection, or ``folder_documents(folder)``), for the
    web and the API alike: one new delivery each, trigger ``manual``. A document the
    tool already has is skipped unless ``resend`` (see deliveries.send_by_hand)."""
    permissions.require_role(actor, "admin", "staff")
    created, skipped = deliveries.send_by_hand(actor, list(documents), connection,
                                               resend=resend)
    return ManualSend(created, skipped)


# --- connection test ------------------------------------------------------------------------


def test(conn: Connection) -> dict:
    """Try a connection now with the delivery timeouts: a signed ``type: "test"``
    envelope in the connection's format (no file), or a test message. Never raises
    for what the other side does: ``{ok, status_code?, error?, elapsed_ms}``."""
    cfg = runtime.config()
    started = time.monotonic()
    result: dict = {"ok": False}
    payload = _test_payload(conn)
    if conn.kind == "http":
        options = integrations.effective_options(conn)
        try:
            check_url(conn.url, allow_private=cfg.allow_private_targets, resolve=False)
            body = _http_body(None, payload, options)
            headers = _signed_headers(conn, "test_" + secrets.token_hex(12), body)
            status, resp_headers, text = _post(cfg, conn.url, headers, body)
        except (TargetRefused, AttemptTimeout, httpx.TransportError) as exc:
            result["error"] = _network_outcome(exc).error
        else:
            result["status_code"] = status
            outcome = classify(status, resp_headers, text)
            if outcome.kind == "success":
                result["ok"] = True
            else:
                result["error"] = outcome.error.replace(" La connexion a été mise en pause", "")
    else:
        company = payload.data["company"]["name"]
        msg = EmailMessage()
        msg["To"] = conn.address
        _set_header(msg, "Subject", _rfc2047(f"[{company}] Test de connexion ged"))
        msg.set_content(f"Message de test envoyé par ged pour la connexion « {conn.name} » de "
                        f"{company}. Aucun document n'est joint.")
        try:
            mail.send(msg, timeout=cfg.delivery_timeout)
            result["ok"] = True
        except (mail.MailNotConfigured, smtplib.SMTPException, OSError) as exc:
            result["error"] = _smtp_outcome(exc).error
    result["elapsed_ms"] = int((time.monotonic() - started) * 1000)
    return result


test.__test__ = False  # not a pytest test, despite its name


# --- the tool's answers -------------------------------------------------------------------


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
    key = f"ged:status-seen:{conn.id}:{hashlib.sha256(msg_id.encode()).hexdigest()[:32]}"
    return bool(queue.connection().set(key, "1", nx=True, ex=2 * STATUS_TOLERANCE + 60))


def record_verdict(delivery: Delivery, conn: Connection, status: str,
                   message: str | None) -> Delivery:
    """The tool's verdict on a delivery it received. ``validated`` and ``rejected`` are
    final: a repeated verdict changes nothing, a contrary one is a Conflict."""
    from .errors import Conflict

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
                _mark_success(delivery, now)
            else:
                deliveries.refresh_document_status(delivery.document_id)
            audit.record(f"outil « {conn.name} »", f"delivery.{status}", delivery, firm_only=True,
                         details={"document_id": delivery.document_id,
                                  "connection_id": conn.id, "message": message})
    if moved and status == "rejected":
        from . import notification_events

        notification_events.document_rejected(delivery.document_id, delivery.id)  # issue 21
    current = Delivery.get_by_id(delivery.id)
    if not moved and current.status in VERDICTS and current.status != status:
        raise Conflict(f"This delivery is already {current.status}; a verdict is final.",
                       "already_final")
    if not moved and current.status not in VERDICTS:
        raise Conflict("This delivery has not been sent yet.", "not_sent")
    return current
