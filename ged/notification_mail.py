"""The e-mail of a notification: French, wearing the firm's name, logo and colour,
with a link straight to the page concerned and a one-click unsubscribe
(``List-Unsubscribe`` and ``List-Unsubscribe-Post``, RFC 8058)."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import formataddr

from markupsafe import escape

from . import mail, runtime
from .firms import ink_for
from .models import Firm, Notification, User

LOGO_MAX_BYTES = 512 * 1024


def _color(firm: Firm) -> str:
    color = firm.primary_color or ""
    return color if re.fullmatch(r"#[0-9a-fA-F]{6}", color) else "#1f4e79"


def _logo(firm: Firm) -> tuple[bytes, str] | None:
    """The firm's logo bytes and type, when it has one of a reasonable size."""
    if not firm.logo_sha256 or not (firm.logo_content_type or "").startswith("image/"):
        return None
    try:
        with runtime.store().open(firm.logo_sha256) as fh:
            data = fh.read(LOGO_MAX_BYTES + 1)
    except Exception:  # noqa: BLE001 - a message without its logo is still worth sending
        return None
    return (data, firm.logo_content_type) if len(data) <= LOGO_MAX_BYTES else None


def _paragraph(text: str, color: str) -> str:
    """One paragraph of a body as HTML. A list ("- item" lines, each optionally followed
    by its "  https://..." line, as a digest writes them) becomes a list whose items
    link to their pages (links to ged itself only)."""
    lines = text.split("\n")
    if not any(line.startswith("- ") for line in lines):
        return f"<p style=\"margin:0 0 12px;white-space:pre-line\">{escape(text)}</p>"
    head, items, own = [], [], runtime.config().public_url.rstrip("/") + "/"
    for line in lines:
        if line.startswith("- "):
            items.append([line[2:], None])
        elif items and line.startswith("  ") and items[-1][1] is None \
                and line.strip().startswith(own) and " " not in line.strip():
            items[-1][1] = line.strip()  # only ged's own pages become links
        elif items:
            items[-1][0] += " " + line.strip()
        else:
            head.append(line)
    out = (f"<p style=\"margin:0 0 6px\"><strong>{escape(' '.join(head))}</strong></p>"
           if head else "")
    lis = "".join(
        f"<li><a href=\"{escape(url)}\" style=\"color:{color}\">{escape(label)}</a></li>"
        if url else f"<li>{escape(label)}</li>" for label, url in items)
    return out + f"<ul style=\"margin:0 0 12px;padding-left:20px\">{lis}</ul>"


def build(row: Notification, user: User, firm: Firm, *, unsubscribe: str, topic_label: str,
          preferences: str) -> EmailMessage:
    """The message for one notification row (its Message-ID derives from the row's id,
    the same on every retry): ``unsubscribe`` is its one-click link, ``topic_label``
    what the user follows, ``preferences`` the link to their settings."""
    cfg = runtime.config()
    msg = EmailMessage()
    msg["From"] = formataddr((firm.name, cfg.mail_from))
    msg["To"] = formataddr((user.name, user.email))
    msg["Subject"] = f"{firm.name} – {row.subject}"
    msg["Message-ID"] = f"<notification-{row.id}@{mail.sender_domain()}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["List-Unsubscribe"] = f"<{unsubscribe}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    footer = (f"Vous recevez ce message car vous suivez {topic_label} dans l'espace "
              f"documentaire de {firm.name}. Pour ne plus le recevoir : {unsubscribe}\n"
              f"Vos préférences : {preferences}")
    text = f"Bonjour {user.name},\n\n{row.body}\n\n"
    if row.link:
        text += f"Voir : {row.link}\n\n"
    msg.set_content(text + "-- \n" + footer + "\n")
    color = _color(firm)
    ink = ink_for(color)
    logo = _logo(firm)
    paragraphs = "".join(_paragraph(p, color) for p in row.body.split("\n\n"))
    button = (f"<p><a href=\"{escape(row.link)}\" style=\"display:inline-block;padding:10px 18px;"
              f"background:{color};color:{ink};text-decoration:none;border-radius:4px\">"
              f"Ouvrir dans l'espace documentaire</a></p>") if row.link else ""
    logo_html = ("<img src=\"cid:logo@ged\" alt=\"\" height=\"40\" "
                 "style=\"vertical-align:middle;margin-right:10px\">") if logo else ""
    html = (
        "<!doctype html><html lang=\"fr\"><body style=\"margin:0;font-family:Arial,sans-serif;"
        "color:#222\">"
        f"<div style=\"background:{color};color:{ink};padding:14px 20px;font-size:18px\">"
        f"{logo_html}<strong>{escape(firm.name)}</strong></div>"
        "<div style=\"padding:20px;max-width:640px\">"
        f"<p>Bonjour {escape(user.name)},</p>{paragraphs}{button}</div>"
        "<div style=\"padding:12px 20px;color:#666;font-size:12px;border-top:1px solid #ddd\">"
        f"Vous recevez ce message car vous suivez {escape(topic_label)}. "
        f"<a href=\"{escape(unsubscribe)}\">Se désabonner</a> · "
        f"<a href=\"{escape(preferences)}\">Mes notifications</a>"
        "</div></body></html>")
    msg.add_alternative(html, subtype="html")
    if logo:
        maintype, _, subtype = logo[1].partition("/")
        msg.get_payload()[1].add_related(logo[0], maintype=maintype, subtype=subtype,
                                         cid="<logo@ged>")
    return msg
