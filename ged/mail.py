"""The outgoing-mail seam: every message ged sends (e-mail connections, invitations,
password resets) goes through ``send()``, over the relay named by GED_SMTP_*.

Nothing else in ged opens an SMTP connection, so another transport (an HTTP mail
API, a local sendmail) would replace this one module.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from . import runtime
from .models import utcnow


class MailNotConfigured(Exception):
    """No outgoing relay is configured (GED_SMTP_HOST is unset)."""


def sender_domain() -> str:
    """The domain of GED_MAIL_FROM, used to build Message-IDs."""
    address = runtime.config().mail_from
    return address.rpartition("@")[2].strip(" >") or "localhost"


def send(message: EmailMessage, *, timeout: float | None = None) -> None:
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
        smtp.send_message(message)
