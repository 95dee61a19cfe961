"""The outgoing-mail seam: every message ged sends (e-mail connections, invitations,
password resets) goes through ``send()``, over the relay named by GED_SMTP_*.

Nothing else in ged opens an SMTP connection, so another transport (an HTTP mail
API, a local sendmail) would replace this one module.

A document attached with ``attach_file`` is never held in memory: the message is
built with a small placeholder in its place, and the SMTP DATA step streams the
file's base64 lines from the store where the placeholder stands.
"""

from __future__ import annotations

import base64
import io
import secrets
import smtplib
import ssl
from contextlib import ExitStack
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from typing import BinaryIO, Callable, Iterator

from . import runtime
from .models import utcnow


class MailNotConfigured(Exception):
    """No outgoing relay is configured (GED_SMTP_HOST is unset)."""


def sender_domain() -> str:
    """The domain of GED_MAIL_FROM, used to build Message-IDs."""
    address = runtime.config().mail_from
    return address.rpartition("@")[2].strip(" >") or "localhost"


Streams = dict  # base64 line of a placeholder -> a function opening the file it stands for

CHUNK = 57 * 1024  # bytes read at a time: a whole number of 76-character base64 lines


def attach_file(message: EmailMessage, streams: Streams, opener: Callable[[], BinaryIO], *,
                maintype: str, subtype: str, filename: str) -> None:
    """Attach a file that ``send(message, streams=streams)`` will stream, opened then
    by ``opener()``: the message holds a placeholder of a few bytes meanwhile."""
    marker = f"ged-stream-{secrets.token_hex(16)}".encode()
    message.add_attachment(marker, maintype=maintype, subtype=subtype, filename=filename)
    streams[base64.b64encode(marker)] = opener


def send(message: EmailMessage, *, timeout: float | None = None,
         streams: Streams | None = None) -> None:
    """Send one message through the configured relay.

    ``From``, ``Date`` and ``Message-ID`` are filled in when the caller left them
    out. Raises MailNotConfigured, or smtplib/OSError exceptions as the relay
    answers (``smtplib.SMTPResponseException.smtp_code`` tells a temporary 4xx
    from a permanent 5xx)."""
    cfg = runtime.config()
    if not cfg.smtp_host:
        raise MailNotConfigured("No outgoing mail relay is configured (GED_SMTP_HOST).")
    if "From" not in message:
        message["From"] = cfg.mail_from
    if "Date" not in message:
        message["Date"] = format_datetime(utcnow())
    if "Message-ID" not in message:
        message["Message-ID"] = make_msgid(domain=sender_domain())
    timeout = timeout if timeout is not None else 30.0
    context = ssl.create_default_context()
    if cfg.smtp_tls == "ssl":
        smtp = smtplib.SMTP_SSL(cfg.smtp_host, cfg.smtp_port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=timeout)
    with smtp:
        if cfg.smtp_tls == "starttls":
            smtp.starttls(context=context)
        if cfg.smtp_user:
            smtp.login(cfg.smtp_user, cfg.smtp_password or "")
        if streams:
            _send_streamed(smtp, message, streams)
        else:
            smtp.send_message(message)


def _send_streamed(smtp: smtplib.SMTP, message: EmailMessage, streams: Streams) -> None:
    """What ``smtp.send_message`` does, with the DATA step streamed: the files are
    opened first (a missing file fails before anything is sent)."""
    out = io.BytesIO()
    BytesGenerator(out, policy=message.policy.clone(linesep="\r\n")).flatten(message)
    sender = getaddresses([message["From"]])[0][1]
    recipients = [addr for _name, addr in getaddresses(
        message.get_all("To", []) + message.get_all("Cc", []))]
    with ExitStack() as stack:
        files = {line: stack.enter_context(opener()) for line, opener in streams.items()}
        smtp.ehlo_or_helo_if_needed()
        options = ["BODY=8BITMIME"] if smtp.has_extn("8bitmime") else []
        code, reply = smtp.mail(sender, options)
        if code != 250:
            smtp.rset()
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        refused = {}
        for recipient in recipients:
            code, reply = smtp.rcpt(recipient)
            if code not in (250, 251):
                refused[recipient] = (code, reply)
        if len(refused) == len(recipients):
            smtp.rset()
            raise smtplib.SMTPRecipientsRefused(refused)
        code, reply = smtp.docmd("DATA")
        if code != 354:
            smtp.rset()
            raise smtplib.SMTPDataError(code, reply)
        for line in _lines(out.getvalue(), files):
            smtp.send(b"." + line if line.startswith(b".") else line)
        smtp.send(b".\r\n")
        code, reply = smtp.getreply()
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)


def _lines(data: bytes, files: dict[bytes, BinaryIO]) -> Iterator[bytes]:
    """The message's lines (CRLF), each placeholder line replaced by its file's base64."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    for line in data.split(b"\r\n")[:-1]:
        fh = files.get(line)
        if fh is None:
            yield line + b"\r\n"
            continue
        while chunk := fh.read(CHUNK):
            yield base64.encodebytes(chunk).replace(b"\n", b"\r\n")
