"""The e-mail sender: one message per delivery, the document and/or its invoice XML
attached (streamed by ``mail.send``), headers encoded so that any Unicode name makes
a valid message."""

from __future__ import annotations

import base64
import email.policy
import json
import smtplib
import socket
from email.message import EmailMessage
from urllib.parse import quote

from .. import filetypes, formats, mail, runtime
from ..models import Connection, Delivery, Document
from .bodies import BlobPiece
from .envelope import payload_for
from .options import effective_options
from .outcome import FILE_MISSING, Outcome, fail, retry, success

# What sending a message can end in besides success.
SMTP_ERRORS = (mail.MailNotConfigured, smtplib.SMTPException, OSError)


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
    if isinstance(piece, BlobPiece):
        store = runtime.store()
        mail.attach_file(msg, streams, lambda: store.open(piece.sha256), filename=None, **kind)
    else:
        msg.add_attachment(piece, **kind)
    part = msg.get_payload()[-1]
    _set_header(part, "Content-Disposition", _rfc2231_filename("attachment", filename))


def message(delivery: Delivery, doc: Document, conn: Connection
            ) -> tuple[EmailMessage, mail.Streams]:
    """The message of an e-mail delivery: the document (streamed by mail.send) and/or
    its invoice XML as attachments, headers encoded for any name."""
    options = effective_options(conn)
    sent = payload_for(delivery, doc, options)
    meta = sent.data
    company = meta["company"]
    msg = EmailMessage()
    msg["To"] = conn.address
    _set_header(msg, "Subject", _rfc2047(f"[{company['name']}] {meta['folder_path']} — {doc.name}"))
    # Derived from the delivery id: a retry carries the same Message-ID, so the tool
    # (or a human) recognises a duplicate.
    msg["Message-ID"] = f"<delivery-{delivery.id}@{mail.sender_domain()}>"
    msg["X-Ged-Delivery-Id"] = delivery.id
    attached = []
    if sent.original is not None:
        attached.append(f"{doc.name} ({formats.size(doc.size)}, tel que déposé)")
    if sent.separate_xml:
        attached.append(f"{sent.xml_name} (XML de la facture électronique)")
    msg.set_content(
        "Document transmis par ged.\n\n"
        f"Entreprise : {company['name']}"
        + (f" (SIREN {company['siren']})" if company["siren"] else "") + "\n"
        f"Dossier : {meta['folder_path']}\n"
        f"Document : {doc.name}\n"
        f"Déposé le : {formats.datetime_long(doc.deposited_at)}\n"
        f"SHA-256 : {doc.blob_id}\n"
        f"Pièces jointes : {' ; '.join(attached)}\n")
    streams: mail.Streams = {}
    if sent.original is not None:
        _attach(msg, streams, sent.original, doc.content_type, doc.name)
    if sent.separate_xml:
        _attach(msg, streams, sent.xml, filetypes.XML, sent.xml_name)
    if options["attach_metadata"]:
        _attach(msg, streams, json.dumps(meta, ensure_ascii=False, indent=2).encode(),
                "application/json", "metadata.json")
    return msg, streams


def test_message(conn: Connection, company_name: str) -> EmailMessage:
    """The message of a connection test: no document."""
    msg = EmailMessage()
    msg["To"] = conn.address
    _set_header(msg, "Subject", _rfc2047(f"[{company_name}] Test de connexion ged"))
    msg.set_content(f"Message de test envoyé par ged pour la connexion « {conn.name} » de "
                    f"{company_name}. Aucun document n'est joint.")
    return msg


test_message.__test__ = False  # not a pytest test, despite its name


def smtp_outcome(exc: Exception) -> Outcome:
    """What a message the relay did not take (one of SMTP_ERRORS) means for the delivery."""
    if isinstance(exc, mail.MailNotConfigured):
        return fail("Aucun relais d'envoi d'e-mails n'est configuré (GED_SMTP_HOST).")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _msg in exc.recipients.values()]
        text = "; ".join(f"{c} {m.decode(errors='replace') if isinstance(m, bytes) else m}"
                         for c, m in exc.recipients.values())
        if codes and all(400 <= c < 500 for c in codes):
            return retry(f"Le relais a différé le message : {text}")
        return fail(f"Le relais a refusé l'adresse du destinataire : {text}")
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        if 400 <= exc.smtp_code < 500:
            return retry(f"Le relais a différé le message : {exc.smtp_code} {text}")
        return fail(f"Le relais a refusé le message : {exc.smtp_code} {text}")
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return retry("Délai dépassé : le relais d'e-mails n'a pas répondu à temps.")
    return retry(f"Erreur d'envoi de l'e-mail : {exc or type(exc).__name__}")


def deliver(cfg, delivery: Delivery, doc: Document, conn: Connection, lease) -> Outcome:
    """One attempt at an e-mail delivery; ``lease`` is extended once the message is built."""
    try:
        msg, streams = message(delivery, doc, conn)
    except FileNotFoundError:
        return fail(FILE_MISSING)
    lease.extend()
    try:
        mail.send(msg, timeout=cfg.delivery_timeout, streams=streams)
    except FileNotFoundError:  # opened before anything is sent
        return fail(FILE_MISSING)
    except SMTP_ERRORS as exc:
        return smtp_outcome(exc)
    return success("sent")
