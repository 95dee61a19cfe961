"""The e-mail channel: secret drop addresses and the SMTP receiver (`ged smtpd`).

Each company has a secret drop address ``<token>@GED_MAIL_DOMAIN`` (and may have
one per folder). The token is the authorisation: the From header is only a claim,
believed when the MTA in front of ged vouches for it (an ``Authentication-Results``
header from a trusted authserv-id with an aligned DKIM, DMARC or SPF pass);
otherwise the deposit is labelled "unverified sender".

A message is received in bounded memory: DATA is spooled to a file and refused
(552) as soon as it passes the size limit, sessions are capped, and the MIME tree
is read as a stream (``mailparts``) with a bound on its parts, each attachment
decoded straight to a staged file.

What a message holds is sorted three ways. Parts that are not documents are
ignored (signatures, HTML body fragments, pictures shown in the HTML body,
calendar and contact cards, delivery reports). Every other attachment, at any
depth (forwarded messages, opaque S/MIME signed messages), is checked by
``filetypes.check``; the acceptable ones are deposited in one ``documents.deposit``
call per drop address, the others are refused for cause. Refusals are recorded in
the audit trail and, when the sender is authenticated and is no robot, explained
to them in French by e-mail. The message is refused whole (550, with the reasons)
only when nothing acceptable remains.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import tempfile
import threading
import unicodedata
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import getaddresses
from pathlib import Path

import click

from . import audit, companies, documents, filetypes, folders, mailparts, permissions, runtime
from .db import db, transaction
from .errors import GedError, NotFound
from .models import Company, DropAddress, Folder, StaffAssignment, User, utcnow
from .storage import Staged, stage, staging_dir

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 10
MAX_ATTACHMENTS = 50
MAX_PARTS = 500  # MIME entities in one message, forwarded ones included
MAX_FORWARDED = 5  # messages forwarded inside messages
# Base64 makes a file a third bigger; a message may carry two files at the size limit.
MESSAGE_OVERHEAD = 1024 * 1024
# A sender still sending this many times the limit after the 552 is cut off.
OVERRUN_FACTOR = 4


def message_limit(max_upload_bytes: int) -> int:
    """The largest message (bytes on the wire) the receiver accepts."""
    return max_upload_bytes * 2 + MESSAGE_OVERHEAD


# --- drop addresses -----------------------------------------------------------------


def address_of(drop: DropAddress) -> str:
    """The e-mail address of a drop address row."""
    return f"{drop.token}@{runtime.config().mail_domain}"


def target_folder(drop: DropAddress) -> Folder:
    """Where a drop address deposits: its folder, else the company's root folder."""
    if drop.folder_id:
        return Folder.get_by_id(drop.folder_id)
    return folders.root_of(drop.company_id)


def drop_dict(drop: DropAddress, path: str | None = None) -> dict:
    """The API shape of a drop address."""
    return {
        "id": drop.id,
        "address": address_of(drop),
        "company_id": drop.company_id,
        "folder_id": drop.folder_id,
        "folder_path": path if path is not None else folders.display_path(target_folder(drop)),
        "created_at": drop.created_at.isoformat(),
    }


def drop_addresses(user: User, company: Company) -> list[DropAddress]:
    """The company's active drop addresses that ``user`` may see (a folder's address
    only when the user sees the folder), the company-wide one first."""
    rows = list(DropAddress.select().where((DropAddress.company == company.id)
                                           & DropAddress.revoked_at.is_null())
                .order_by(DropAddress.created_at))
    hidden = permissions.hidden_prefixes(user, company.id)
    visible = []
    for drop in rows:
        if drop.folder_id:
            folder = Folder.get_by_id(drop.folder_id)
            if any(folder.path.startswith(p) for p in hidden):
                continue
        visible.append(drop)
    return sorted(visible, key=lambda d: (d.folder_id is not None, d.created_at))


def ensure_drop_address(actor, company: Company, folder: Folder | None = None) -> DropAddress:
    """The active drop address of the company (or folder), created if there is none."""
    return companies.drop_address(company, folder) or companies.regenerate_drop_address(
        actor, company, folder)


def revoke_drop_address(actor, drop: DropAddress) -> None:
    """Stop a (folder) drop address from receiving mail."""
    with transaction():
        DropAddress.update(revoked_at=utcnow()).where(DropAddress.id == drop.id).execute()
        audit.record(actor, "company.drop_address_revoked", drop.company,
                     details={"folder_id": drop.folder_id})


def drop_for_address(address: str, mail_domain: str) -> DropAddress | None:
    """The active drop address an envelope recipient names, or None."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    if not local or domain.lower() != mail_domain.lower():
        return None
    token = local.lower()
    if not re.fullmatch(r"[0-9a-z]{8,64}", token):
        return None
    drop = DropAddress.get_or_none((DropAddress.token == token) & DropAddress.revoked_at.is_null())
    if drop is None:
        return None
    folder = target_folder(drop)
    if any(f.trashed_at is not None for f in folders.ancestors(folder)):
        return None  # its folder went to the trash: the address no longer leads anywhere
    return drop


# --- reading a message ----------------------------------------------------------------


class Refused(Exception):
    """A message ged will not take; ``reply`` is the complete SMTP reply."""

    def __init__(self, reply: str):
        super().__init__(reply)
        self.reply = reply


def _ascii(text: str) -> str:
    """SMTP replies are ASCII: accents dropped, anything else replaced."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^\x20-\x7e]", "?", text)


# Parts that are not documents: ignored, never refused.
NOT_DOCUMENTS = {
    "application/pkcs7-signature": "signature",
    "application/x-pkcs7-signature": "signature",
    "application/pgp-signature": "signature",
    "application/pgp-keys": "PGP key",
    "application/pgp-encrypted": "PGP control part",
    "text/calendar": "calendar invitation",
    "application/ics": "calendar invitation",
    "text/vcard": "contact card",
    "text/x-vcard": "contact card",
    "text/directory": "contact card",
    "message/delivery-status": "delivery report",
    "message/global-delivery-status": "delivery report",
    "message/disposition-notification": "read receipt",
    "message/global-disposition-notification": "read receipt",
    "message/feedback-report": "delivery report",
    "text/rfc822-headers": "delivery report",
    "message/global-headers": "delivery report",
}
SIGNATURE_NAMES = re.compile(r"(?i)^(smime\.p7s|.*\.p7s|signature\.asc|.*\.sig)$")
# Outlook/Exchange split an HTML body around attachments into ATT00001.htm pieces.
BODY_FRAGMENT = re.compile(r"(?i)^att\d{3,}\.(htm|html|txt)$")
# Names mail clients give pictures pasted into a body or a signature.
GENERIC_IMAGE = re.compile(
    r"(?i)^(image\d*|outlook-[\w-]*|~wrl\d+|inline[-_]?image[-_\d]*|pastedgraphic[-_\d]*"
    r"|logo[\w-]*|signature[\w-]*|banner[\w-]*|ii_[\w-]+)\.(png|jpe?g|gif|bmp|tiff?)$")
BODY_IMAGE_MAX_SIDE = 800  # pixels: a picture this small shown in the body is decoration
DOCUMENT_IMAGE = re.compile(r"(?i)\.(jpe?g|png|tiff?|heic|heif)$")
PKCS7_MIME = {"application/pkcs7-mime", "application/x-pkcs7-mime"}
TNEF = {"application/ms-tnef", "application/vnd.ms-tnef"}

# Reasons proper to e-mail (the file checks' reasons come from filetypes).
MAIL_REASONS = {
    "encrypted_message": (
        "encrypted message (S/MIME or PGP): ged cannot read it",
        "le message est chiffré (S/MIME ou PGP) : ged ne peut pas le lire. Envoyez les "
        "pièces sans chiffrement."),
    "signed_unreadable": (
        "signed message (smime.p7m) whose content could not be read",
        "le message signé (smime.p7m) n'a pas pu être lu."),
    "forwarded_too_deep": (
        f"message forwarded more than {MAX_FORWARDED} levels deep",
        f"message transféré sur plus de {MAX_FORWARDED} niveaux : transférez directement "
        "les pièces jointes."),
    "tnef": (
        "Outlook winmail.dat (rich text format): the files inside cannot be read; send "
        "again in HTML or plain text format",
        "pièce winmail.dat d'Outlook (format texte enrichi) : les fichiers qu'elle contient "
        "ne peuvent pas être lus. Renvoyez le message au format HTML ou texte brut."),
    "file_too_large": (
        "file larger than the size limit",
        "le fichier dépasse la taille maximale autorisée."),
    "empty_file": ("the file is empty", "le fichier est vide."),
}


@dataclass
class Refusal:
    """An attachment refused for cause: its name, a code, and the reason in English
    (SMTP replies, logs) and French (the reply to the sender)."""

    name: str
    code: str
    reason: str
    reason_fr: str

    def as_dict(self) -> dict:
        return {"name": self.name, "code": self.code, "reason": self.reason}


def refusal(name: str, code: str, message: str | None = None) -> Refusal:
    """A Refusal with its French wording: the web's for the file checks, else ours."""
    english, french = MAIL_REASONS.get(code, (message or code, None))
    if french is None:
        try:
            from .web import ERROR_FR
        except ImportError:  # pragma: no cover - the web package is always there
            ERROR_FR = {}
        french = ERROR_FR.get(code) or message or code
    return Refusal(name, code, message or english, french)


@dataclass
class Reading:
    """A message sorted: the files to deposit (checked, staged), the attachments
    refused for cause, and the parts ignored because they are not documents."""

    headers: Message
    accepted: list[tuple[str, Staged]] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    ignored: list[dict] = field(default_factory=list)
    report: bool = False

    def discard(self) -> None:
        for _name, staged in self.accepted:
            staged.discard()


def _choose(part: mailparts.Part) -> str:
    """What to do with a leaf's body, from its headers alone."""
    ctype = part.content_type
    name = part.filename or ""
    if "multipart/report" in part.ancestors:
        part.extra["ignored"] = "delivery report"
        return mailparts.SKIP
    if "multipart/encrypted" in part.ancestors and ctype != "application/pgp-encrypted":
        part.extra["refused"] = "encrypted_message"
        return mailparts.SKIP
    if ctype in NOT_DOCUMENTS:
        part.extra["ignored"] = NOT_DOCUMENTS[ctype]
        return mailparts.SKIP
    if SIGNATURE_NAMES.match(name):
        part.extra["ignored"] = "signature"
        return mailparts.SKIP
    if BODY_FRAGMENT.match(name):
        part.extra["ignored"] = "body fragment"
        return mailparts.HTML if ctype == "text/html" else mailparts.SKIP
    if ctype == "text/html" and (not name or part.disposition != "attachment"):
        part.extra["body"] = True
        return mailparts.HTML
    if ctype.startswith("text/") and not name:
        part.extra["body"] = True
        return mailparts.SKIP
    if ctype.startswith("multipart/"):  # a multipart without a boundary
        part.extra["body"] = True
        return mailparts.SKIP
    if _is_container(ctype, name):  # opened later: as large as a message may be
        part.extra["max_bytes"] = message_limit(runtime.config().max_upload_bytes)
    return mailparts.FILE


def _is_container(ctype: str, name: str) -> bool:
    """An attachment that is itself a message: a forward, an .eml, an S/MIME .p7m."""
    name = name.lower()
    return (ctype == "message/rfc822" or ctype in PKCS7_MIME or name.endswith(".eml")
            or name.endswith(".p7m"))


_CID = re.compile(r"""cid:([^"'\s>)]+)""", re.I)
_IMG = re.compile(r"<img\b[^>]*>", re.I)


def _body_references(parts: list[mailparts.Part]) -> tuple[set[str], set[str]]:
    """(every cid: the HTML bodies reference, those Apple Mail marks as attachments
    shown inline: ``<img apple-inline="yes" src="cid:...">``)."""
    shown, attached = set(), set()
    for part in parts:
        if not part.text:
            continue
        shown.update(c.lower() for c in _CID.findall(part.text))
        for tag in _IMG.findall(part.text):
            if "apple-inline" in tag.lower():
                attached.update(c.lower() for c in _CID.findall(tag))
    return shown, attached


def _is_body_picture(part: mailparts.Part, shown: set[str], attached: set[str]) -> bool:
    """A picture shown inside the HTML body (a logo, a signature, a pasted image: it
    has a Content-ID the HTML references, or sits in its multipart/related) is part of
    the body; one the sender attached (named and full-size, or marked so by Apple
    Mail) is a document even when the client displays it inline."""
    cid = (part.content_id or "").lower()
    if not cid or part.disposition == "attachment":
        return False
    if cid not in shown and "multipart/related" not in part.ancestors:
        return False  # related parts are the body's resources, referenced or not
    if cid in attached:
        return False
    if not (part.content_type.startswith("image/") or GENERIC_IMAGE.match(part.filename or "")):
        return False
    if not part.filename or GENERIC_IMAGE.match(part.filename):
        return True
    if part.staged is None:
        return True
    try:
        from PIL import Image

        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
        except ImportError:  # pragma: no cover - optional
            pass
        with Image.open(part.staged.path) as img:
            width, height = img.size
    except Exception:  # noqa: BLE001 - unreadable here: the file checks will say why
        return not DOCUMENT_IMAGE.search(part.filename)  # a GIF or BMP is decoration
    return max(width, height) <= BODY_IMAGE_MAX_SIDE


_UNSAFE_IN_NAMES = re.compile(r'[\\/<>:"|?*\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069\u200e\u200f]')


def mail_filename(raw: str | None, index: int) -> str:
    """The document name for an attachment: the sender's file name made safe (mail
    clients send "C:\\...\\x.pdf", "03/2026.pdf", control characters), else a
    numbered one; a name without extension gets its content's from filetypes."""
    name = (raw or "").rpartition("\\")[2]  # a Windows path: its last component
    name = unicodedata.normalize("NFC", _UNSAFE_IN_NAMES.sub("_", name)).strip().lstrip(".")
    name = name.strip() or f"piece-jointe-{index}"
    if len(name) > 255:
        stem, ext = os.path.splitext(name)
        name = stem[: 255 - len(ext)] + ext
    return name


def read_message(path: Path, cfg) -> Reading:
    """Read the spooled message at ``path``: TooManyParts, Malformed, or its Reading.
    Every staged file not in ``accepted`` is already gone when this returns."""
    reader = mailparts.Reader(_choose, cfg.data_dir, cfg.max_upload_bytes, MAX_PARTS,
                              MAX_FORWARDED)
    with open(path, "rb") as fh:
        headers, parts = reader.walk(fh)
    leaves: list[mailparts.Part] = []
    try:
        queue = list(parts)
        while queue:
            part = queue.pop(0)
            leaves.append(part)
            queue[0:0] = _open_container(reader, part, cfg)
        return _sort(headers, leaves, cfg.max_upload_bytes)
    except BaseException:
        for part in leaves + queue:
            part.discard()
        raise


def _open_container(reader: mailparts.Reader, part: mailparts.Part, cfg) -> list:
    """The parts inside an attachment that is itself a message (an encoded forward,
    an .eml, an opaque S/MIME signed message); [] for any other part. The container
    itself is then discarded, or marked refused when it cannot be opened."""
    if part.staged is None:
        return []
    name = (part.filename or "").lower()
    ctype = part.content_type
    if ctype == "message/rfc822" or name.endswith(".eml"):
        if part.forwarded >= MAX_FORWARDED:
            part.extra["refused"] = "forwarded_too_deep"
            part.discard()
            return []
        with open(part.staged.path, "rb") as fh:
            _headers, inner = reader.walk(fh, part.forwarded + 1,
                                          part.ancestors + ("message/rfc822",))
        part.discard()
        part.extra["container"] = True
        return inner
    if ctype in PKCS7_MIME or name.endswith(".p7m"):
        try:
            content = mailparts.unwrap_signed(part.staged.path, cfg.data_dir,
                                              message_limit(cfg.max_upload_bytes))
        except mailparts.Encrypted:
            content = None
            part.extra["refused"] = "encrypted_message"
        else:
            if content is None:
                part.extra["refused"] = "signed_unreadable"
        part.discard()
        if content is None:
            return []
        part.extra["container"] = True
        inner_name = part.filename[:-4] if name.endswith(".p7m") else ""
        if inner_name and os.path.splitext(inner_name)[1] and name != "smime.p7m":
            # A signed file (facture.pdf.p7m), not a signed message: the file is the content.
            return [mailparts.Part(headers=part.headers, content_type="application/octet-stream",
                                   disposition="attachment", filename=inner_name,
                                   content_id=None, encoding="binary", ancestors=part.ancestors,
                                   forwarded=part.forwarded, staged=content)]
        try:
            with open(content.path, "rb") as fh:
                _headers, inner = reader.walk(fh, part.forwarded, part.ancestors + (ctype,))
        finally:
            content.discard()
        return inner
    return []


def _sort(headers: Message, leaves: list[mailparts.Part], max_bytes: int) -> Reading:
    """Ignored, refused or accepted, for each leaf (its staged file discarded unless
    accepted)."""
    reading = Reading(headers=headers)
    top = headers.get_content_type() if headers is not None else "text/plain"
    reading.report = top == "multipart/report"
    shown, attached = _body_references(leaves)
    seen = set()
    index = 0
    try:
        for part in leaves:
            if part.extra.get("container") or part.extra.get("body"):
                part.discard()
                continue
            label = part.filename or part.content_type
            if part.extra.get("ignored"):
                reading.ignored.append({"name": label, "why": part.extra["ignored"]})
                part.discard()
                continue
            if part.extra.get("refused"):
                reading.refused.append(refusal(label, part.extra["refused"]))
                part.discard()
                continue
            if TNEF & {part.content_type} or (part.filename or "").lower() == "winmail.dat":
                reading.refused.append(refusal(part.filename or "winmail.dat", "tnef"))
                part.discard()
                continue
            if _is_body_picture(part, shown, attached):
                reading.ignored.append({"name": label, "why": "picture in the body"})
                part.discard()
                continue
            index += 1
            name = mail_filename(part.filename, index)
            if part.too_large or part.staged is None or part.staged.size > max_bytes:
                reading.refused.append(refusal(name, "file_too_large"))
                part.discard()
                continue
            staged, part.staged = part.staged, None
            if staged.size == 0:
                reading.refused.append(refusal(name, "empty_file"))
                staged.discard()
                continue
            try:  # the checks deposit() makes, one file at a time
                name = filetypes.clean_filename(name)
                name = filetypes.inspect(staged.path, staged.head, name).name
            except GedError as exc:
                reading.refused.append(refusal(name, exc.code, exc.message))
                staged.discard()
                continue
            if (name, staged.sha256) in seen:  # the same file twice (a forward and its original)
                staged.discard()
                continue
            seen.add((name, staged.sha256))
            reading.accepted.append((name, staged))
    except BaseException:
        reading.discard()
        for part in leaves:
            part.discard()
        raise
    return reading


def sender_of(message: Message, trusted_authserv: list[str]) -> tuple[str | None, bool]:
    """The From address and whether the MTA in front of ged vouched for it.

    Only the topmost Authentication-Results header counts (the one the nearest MTA
    added; a forger's own header would sit below it), and only from a trusted
    authserv-id, with a DMARC pass, or a DKIM or SPF pass for the From's domain."""
    found = [addr for _name, addr in getaddresses([str(h) for h in message.get_all("From", [])])]
    found = [a for a in found if a and "@" in a]
    if len(found) != 1:
        return None, False
    address = found[0].strip().lower()
    results = message.get_all("Authentication-Results") or []
    if not trusted_authserv or not results:
        return address, False
    authserv, _, rest = " ".join(str(results[0]).split()).partition(";")
    if not authserv.split() or authserv.split()[0].lower() not in trusted_authserv:
        return address, False
    domain = re.escape(address.rpartition("@")[2])
    for clause in rest.split(";"):
        clause = " ".join(clause.lower().split())
        if re.match(r"dmarc=pass\b", clause) and re.search(rf"header\.from={domain}(\s|$)", clause):
            return address, True
        if re.match(r"dkim=pass\b", clause) and re.search(
                rf"header\.(d={domain}|i=[^\s]*@{domain})(\s|$)", clause):
            return address, True
        if re.match(r"spf=pass\b", clause) and re.search(
                rf"smtp\.mailfrom=([^\s]*@)?{domain}(\s|$)", clause):
            return address, True
    return address, False


def depositor(address: str | None, verified: bool, company: Company,
              folder: Folder) -> tuple[User | None, str | None]:
    """(actor, label) for a deposit by e-mail: the user when a verified From is an
    active user who may deposit in the folder, else no user and a label saying who
    the message claims to be from."""
    if address and verified:
        user = User.get_or_none((User.email == address) & (User.active == True)  # noqa: E712
                                & (User.firm == company.firm_id))
        if user is not None and _may_deposit(user, company, folder):
            return user, None
        return None, f"E-mail de {address}"[:300]
    if address:
        return None, f"E-mail de {address} (expéditeur non vérifié)"[:300]
    return None, "E-mail (expéditeur non vérifié)"


def _may_deposit(user: User, company: Company, folder: Folder) -> bool:
    if user.role == "client" and user.company_id != company.id:
        return False
    if user.role == "staff" and not StaffAssignment.select().where(
            (StaffAssignment.user == user.id) & (StaffAssignment.company == company.id)).exists():
        return False
    return permissions.folder_visible(user, Folder.get_by_id(folder.id))


# --- receiving a message ---------------------------------------------------------------


def check_recipient(address: str) -> str | None:
    """None when ``address`` is an active drop address, else the SMTP refusal."""
    cfg = runtime.config()
    with db.connection_context():
        drop = drop_for_address(address, cfg.mail_domain)
    if drop is not None:
        return None
    domain = address.rpartition("@")[2].strip(">").lower()
    if domain != cfg.mail_domain.lower():
        return f"550 5.7.1 Relaying denied: this server only receives mail for @{cfg.mail_domain}"
    return ("550 5.1.1 Unknown drop address: it may have been replaced; ask your "
            "accounting firm for the current one")


def receive(rcpt_tos: list[str], spool: Path, mail_from: str | None = None) -> str:
    """Deposit every acceptable attachment of the message spooled at ``spool`` into
    each drop address it was sent to; returns the SMTP reply. The spool file is
    consumed (removed) whatever happens: the SMTP session may be gone by then."""
    cfg = runtime.config()
    try:
        with db.connection_context():
            return _receive(cfg, rcpt_tos, Path(spool), mail_from or "")
    except Refused as exc:
        log.info("drop mail refused: %s", exc.reply)
        return exc.reply
    finally:
        Path(spool).unlink(missing_ok=True)


def record_oversize(rcpt_tos: list[str], headers: Message | None, mail_from: str | None,
                    limit: int) -> None:
    """Record in the audit trail a message refused (552) for its size."""
    cfg = runtime.config()
    try:
        with db.connection_context():
            try:
                drops = _drops(cfg, rcpt_tos)
            except Refused:
                return
            _record_refusal(cfg, drops, headers, mail_from or "",
                            f"message larger than the limit of {limit} bytes")
    except Exception:  # noqa: BLE001 - the 552 stands; only the record is missing
        log.exception("could not record an oversized drop mail")


def _drops(cfg, rcpt_tos: list[str]) -> list[DropAddress]:
    drops = []
    for rcpt in dict.fromkeys(r.lower() for r in rcpt_tos):
        drop = drop_for_address(rcpt, cfg.mail_domain)
        if drop is None:  # revoked between RCPT and the end of DATA
            raise Refused("550 5.1.1 Unknown drop address")
        if drop.id not in {d.id for d in drops}:
            drops.append(drop)
    if not drops:
        raise Refused("554 5.5.1 No valid recipients")
    if len(drops) > MAX_RECIPIENTS:
        raise Refused(f"552 5.5.3 Too many recipients (at most {MAX_RECIPIENTS})")
    return drops


def _smtp_lines(code: str, lines: list[str]) -> str:
    """A (multi-line) SMTP reply: ``code`` is e.g. "550 5.6.0"."""
    status, enhanced = code.split(" ", 1)
    lines = [_ascii(line)[:400] for line in lines]
    return "\r\n".join(f"{status}{' ' if i == len(lines) - 1 else '-'}{enhanced} {line}"
                       for i, line in enumerate(lines))


def _refusal_lines(refused: list[Refusal]) -> list[str]:
    lines = [f"{_ascii(r.name)[:80]!r}: {_ascii(r.reason)[:160]}" for r in refused[:10]]
    if len(refused) > 10:
        lines.append(f"and {len(refused) - 10} more")
    return lines


def _headline(headers: Message | None, mail_from: str) -> dict:
    """What the audit trail keeps of a message to recognise it."""
    if headers is None:
        return {"mail_from": mail_from[:200]}
    return {"message_id": str(headers.get("Message-ID", "") or "").strip()[:200],
            "from": str(headers.get("From", "") or "")[:200],
            "subject": mailparts.decode_words(str(headers.get("Subject", "") or ""))[:200],
            "mail_from": mail_from[:200]}


def _record_refusal(cfg, drops: list[DropAddress], headers: Message | None, mail_from: str,
                    reason: str, reading: Reading | None = None) -> None:
    """One audit event per company the refused message was sent to."""
    address, verified = sender_of(headers, cfg.smtpd_trusted_authserv) if headers else (None, False)
    for drop in drops:
        company = Company.get_by_id(drop.company_id)
        folder = target_folder(drop)
        actor, label = depositor(address, verified, company, folder)
        details = dict(_headline(headers, mail_from), reason=reason, folder_id=folder.id)
        if reading is not None:
            details["refused"] = [r.as_dict() for r in reading.refused[:50]]
            details["ignored"] = reading.ignored[:50]
        with transaction():
            audit.record(actor or label, "email.refused", firm=company.firm_id, company=company,
                         details=details)


def _receive(cfg, rcpt_tos: list[str], spool: Path, mail_from: str) -> str:
    drops = _drops(cfg, rcpt_tos)
    try:
        reading = read_message(spool, cfg)
    except mailparts.TooManyParts:
        _record_refusal(cfg, drops, mailparts.read_top_headers(spool), mail_from,
                        f"more than {MAX_PARTS} MIME parts")
        raise Refused(f"552 5.3.4 Too many MIME parts (more than {MAX_PARTS}): send the "
                      "documents in several messages") from None
    except Exception:  # noqa: BLE001 - any parser failure is the sender's malformed message
        log.info("unreadable drop message", exc_info=True)
        _record_refusal(cfg, drops, mailparts.read_top_headers(spool), mail_from,
                        "malformed MIME")
        raise Refused("550 5.6.0 The message could not be read (malformed MIME)") from None
    try:
        return _deposit(cfg, drops, reading, mail_from)
    finally:
        reading.discard()


def _deposit(cfg, drops: list[DropAddress], reading: Reading, mail_from: str) -> str:
    headers = reading.headers
    if reading.report:
        _record_refusal(cfg, drops, headers, mail_from, "delivery report", reading)
        raise Refused("550 5.6.0 Delivery reports are not deposited")
    if not reading.accepted:
        _record_refusal(cfg, drops, headers, mail_from, "nothing to deposit", reading)
        _reply_to_sender(cfg, headers, mail_from, [], reading.refused)
        if not reading.refused:
            raise Refused("550 5.6.0 No attachment found: nothing was deposited. Attach the "
                          "documents (PDF, images, office files) to the message")
        head = (f"Message refused, nothing was deposited: {len(reading.refused)} "
                f"attachment(s) not accepted")
        raise Refused(_smtp_lines("550 5.6.0", [head] + _refusal_lines(reading.refused)))
    if len(reading.accepted) > MAX_ATTACHMENTS:
        _record_refusal(cfg, drops, headers, mail_from, "too many attachments", reading)
        raise Refused(f"552 5.3.4 Too many attachments ({len(reading.accepted)}; at most "
                      f"{MAX_ATTACHMENTS}): send them in several messages")
    address, verified = sender_of(headers, cfg.smtpd_trusted_authserv)
    # deposit() consumes its staged files: each further drop address gets copies.
    batches = [list(reading.accepted)]
    for _drop in drops[1:]:
        batch = []
        for name, staged in reading.accepted:
            with open(staged.path, "rb") as fh:
                batch.append((name, stage(fh, cfg.data_dir, cfg.max_upload_bytes)))
        batches.append(batch)
    reading.accepted = []
    count, names, failed, warnings = 0, [], [], []
    try:
        for drop, batch in zip(drops, batches):
            company = Company.get_by_id(drop.company_id)
            folder = target_folder(drop)
            actor, label = depositor(address, verified, company, folder)
            uploads = [documents.Upload(name, staged) for name, staged in batch]
            try:
                docs = documents.deposit(actor, folder, uploads, "email", label=label)
            except GedError as exc:  # the folder went away, or a check changed since
                log.warning("drop mail deposit failed for %s: %s", drop.id, exc.message)
                failed.append(exc)
                _record_refusal(cfg, [drop], headers, mail_from,
                                f"deposit refused: {exc.message}", reading)
                continue
            details = dict(_headline(headers, mail_from), folder_id=folder.id,
                           documents=[d.id for d in docs],
                           refused=[r.as_dict() for r in reading.refused[:50]],
                           ignored=reading.ignored[:50])
            with transaction():
                audit.record(actor or label, "email.received", firm=company.firm_id,
                             company=company, details=details)
            count += len(docs)
            names = [d.name for d in docs]
            warnings = documents.warnings_of(docs)
    finally:
        for batch in batches:  # deposit() removed its own; this is for an unexpected error
            for _name, staged in batch:
                staged.discard()
    if not count:
        exc = failed[0]
        if isinstance(exc, NotFound):
            raise Refused("550 5.1.1 Unknown drop address")
        raise Refused(f"550 5.6.0 Message refused: {_ascii(exc.message)}")
    _reply_to_sender(cfg, headers, mail_from, names, reading.refused, warnings)
    notes = [f"{_ascii(w['name'])[:80]!r} kept: {_ascii(w['message'])[:160]}"
             for w in warnings[:10]]
    if reading.refused:
        head = f"{count} document(s) deposited; {len(reading.refused)} attachment(s) not accepted"
        return _smtp_lines("250 2.0.0", [head] + _refusal_lines(reading.refused) + notes)
    return _smtp_lines("250 2.0.0", [f"{count} document(s) deposited"] + notes)


# --- telling the sender ---------------------------------------------------------------

_ROBOT_SENDER = re.compile(r"(?i)^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?)"
                           r"([+-].*)?@")


def may_reply(cfg, headers: Message, mail_from: str) -> str | None:
    """The address to explain refusals to, or None: only an authenticated sender (the
    MTA in front vouched for the From), never a null envelope sender, an automatic
    message (RFC 3834), a list, or one of ged's own addresses (no loops, no backscatter)."""
    if not mail_from or mail_from == "<>":
        return None
    address, verified = sender_of(headers, cfg.smtpd_trusted_authserv)
    if not address or not verified:
        return None
    auto = str(headers.get("Auto-Submitted", "no") or "no").strip().lower()
    if not auto.startswith("no"):
        return None
    if str(headers.get("Precedence", "")).strip().lower() in {"bulk", "junk", "list",
                                                                "auto_reply"}:
        return None
    if any(h in headers for h in ("List-Id", "List-Unsubscribe", "X-Autoreply",
                                  "X-Autorespond")):
        return None
    # Exchange's way of asking for no automatic answer (its own robots send it).
    suppress = {v.strip().lower()
                for v in str(headers.get("X-Auto-Response-Suppress", "")).split(",")}
    if suppress & {"all", "autoreply"}:
        return None
    if _ROBOT_SENDER.match(address) or _ROBOT_SENDER.match(mail_from):
        return None
    domain = address.rpartition("@")[2]
    if domain == cfg.mail_domain.lower() or address == cfg.mail_from.lower():
        return None
    return address


def reply_message(cfg, to: str, headers: Message, deposited: list[str],
                  refused: list[Refusal], warnings: list[dict] = ()) -> EmailMessage:
    """The French message listing what was not deposited and why, and what was
    deposited with a warning."""
    subject = " ".join(mailparts.decode_words(str(headers.get("Subject", "") or "")).split())
    title = "Pièces jointes non déposées" if refused else "Pièces déposées, à vérifier"
    msg = EmailMessage()
    msg["From"] = cfg.mail_from
    msg["To"] = to
    msg["Subject"] = (f"{title} : {subject}" if subject else title)[:250]
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    original = str(headers.get("Message-ID", "") or "").strip()
    if re.fullmatch(r"<[^<>\s]{1,250}>", original):
        msg["In-Reply-To"] = original
        msg["References"] = original
    lines = ["Bonjour,", ""]
    about = f"« {subject} »" if subject else "sans objet"
    if deposited:
        lines.append(f"Votre message {about} a bien été reçu. "
                     f"{len(deposited)} document(s) ont été déposé(s) :")
        lines += [f"  - {name}" for name in deposited[:50]]
    else:
        lines.append(f"Votre message {about} a été reçu, mais aucun document n'a pu être "
                     "déposé.")
    if warnings:
        from .web import WARNING_FR

        lines += ["", "À noter :"]
        lines += [f"  - {WARNING_FR[w['code']].format(name=w['name'])}"
                  if w["code"] in WARNING_FR else f"  - {w['name']} : {w['message']}"
                  for w in warnings[:50]]
    if refused:
        lines += ["", "Les pièces jointes suivantes n'ont pas été déposées :"]
        lines += [f"  - {item.name} : {item.reason_fr}" for item in refused[:50]]
        if len(refused) > 50:
            lines.append(f"  - et {len(refused) - 50} autre(s)")
        lines += ["", "Vous pouvez les envoyer à nouveau une fois corrigées (PDF, images, "
                  "documents bureautiques, XML, CSV ou texte), ou les déposer depuis votre "
                  "espace."]
    lines += ["", "Ce message est envoyé automatiquement ; inutile d'y répondre."]
    msg.set_content("\n".join(lines))
    return msg


def _reply_to_sender(cfg, headers: Message, mail_from: str, deposited: list[str],
                     refused: list[Refusal], warnings: list[dict] = ()) -> None:
    """Explain the refusals (and warnings) to the sender when allowed; a relay failure
    is logged only (the audit trail has the refusals)."""
    if not refused and not warnings:
        return
    to = may_reply(cfg, headers, mail_from)
    if to is None:
        return
    from . import mail

    try:
        mail.send(reply_message(cfg, to, headers, deposited, refused, warnings), timeout=15)
    except mail.MailNotConfigured:
        log.info("no outgoing relay: the refusals were not explained to %s", to)
    except Exception:  # noqa: BLE001 - the deposit stands; the sender is told by the audit trail
        log.warning("could not send the refusal notice to %s", to, exc_info=True)


# --- the SMTP server ----------------------------------------------------------------------


def _smtp_class():
    from aiosmtpd.smtp import MISSING, SMTP

    class DropSMTP(SMTP):
        """aiosmtpd's SMTP with DATA spooled to a file (no line length limit, the size
        limit enforced while receiving) and a cap on simultaneous sessions."""

        line_length_limit = mailparts.PIECE  # the stream buffer; DATA lines may be longer

        def __init__(self, handler, *, sessions: "Sessions", spool_dir: Path, **kwargs):
            super().__init__(handler, **kwargs)
            self.sessions = sessions
            self.spool_dir = spool_dir
            self.counted = None

        def connection_made(self, transport):
            fresh = self.transport is None  # not the STARTTLS upgrade of a session
            super().connection_made(transport)
            if fresh:
                self.counted = self.sessions.enter()

        def connection_lost(self, error):
            if self.counted:
                self.sessions.leave()
                self.counted = False
            super().connection_lost(error)

        async def _handle_client(self):
            if self.counted is False:
                await self.push("421 4.7.0 Too many simultaneous connections, try again later")
                self.transport.close()
                return
            await super()._handle_client()

        async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's name
            if await self.check_helo_needed():
                return
            if await self.check_auth_needed("DATA"):
                return
            if not self.envelope.rcpt_tos:
                await self.push("503 Error: need RCPT command")
                return
            if arg:
                await self.push("501 Syntax: DATA")
                return
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            fd, name = tempfile.mkstemp(prefix="mail-in-", dir=staging_dir(self.spool_dir))
            path = Path(name)
            handed = False  # once a worker thread has the spool, that thread removes it
            try:
                with os.fdopen(fd, "wb") as out:
                    complete = await self._spool(out, path)
                if not complete:
                    self._set_post_data_state()
                    return
                self._reset_timeout()
                self.envelope.spool = path
                handed = True
                status = await self._call_handler_hook("DATA")
                self._set_post_data_state()
                await self.push("250 OK" if status is MISSING else status)
            finally:
                if not handed:
                    path.unlink(missing_ok=True)

        async def _too_big(self, out, path: Path) -> None:
            """Answer 552 now, and record the refusal (from the headers received) in
            a thread, whether or not the sender stays to read the answer."""
            limit = self.data_size_limit
            log.info("drop mail over the size limit (%d bytes): refused", limit)
            out.flush()
            headers = mailparts.read_top_headers(path)
            asyncio.get_running_loop().run_in_executor(
                None, record_oversize, list(self.envelope.rcpt_tos), headers,
                self.envelope.mail_from, limit)
            await self.push(f"552 5.3.4 Message too big (limit {limit} bytes): nothing was "
                            "deposited")

        async def _spool(self, out, path: Path) -> bool | None:
            """Copy DATA to ``out`` (dot-unstuffed) until the lone dot; past the size
            limit, answer 552 at once and keep only what came before. True when
            complete, False when too big, None when the connection ended."""
            limit = self.data_size_limit
            tail = b"\r\n"  # the wire bytes just before the current block
            size, over = 0, False
            while True:
                try:
                    block = await self._reader.readuntil(b".\r\n")
                    found = True
                except asyncio.LimitOverrunError as exc:
                    block = await self._reader.read(exc.consumed)
                    found = False
                except asyncio.IncompleteReadError:
                    self.transport.close()
                    return None
                self._reset_timeout()
                end = found and (tail + block).endswith(b"\r\n.\r\n")
                data = block[:-3] if end else block
                size += len(data)
                if not over and limit and size > limit:
                    over = True
                    await self._too_big(out, path)
                if not over:
                    out.write((tail[-2:] + data).replace(b"\r\n.", b"\r\n")[2:])
                elif size > limit * OVERRUN_FACTOR:
                    self.transport.close()
                    return None
                tail = (tail + block)[-4:]
                if end:
                    return not over

    return DropSMTP


class Sessions:
    """Counts the receiver's open SMTP sessions (touched only by its event loop)."""

    def __init__(self, limit: int):
        self.limit = max(1, int(limit))
        self.active = 0

    def enter(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1


class DropHandler:
    """aiosmtpd handler: refuses unknown recipients at RCPT, deposits at the end of DATA.

    The database and file work runs in a thread so the event loop keeps serving
    other connections."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"552 5.5.3 Too many recipients (at most {MAX_RECIPIENTS})"
        loop = asyncio.get_running_loop()
        try:
            refusal_reply = await loop.run_in_executor(None, check_recipient, address)
        except Exception:  # noqa: BLE001 - the database may be down: ask to retry later
            log.exception("could not check drop address %s", address)
            return "451 4.3.0 Temporary failure, please try again later"
        if refusal_reply:
            return refusal_reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        loop = asyncio.get_running_loop()
        try:  # receive() owns the spool from here (it removes it)
            return await loop.run_in_executor(None, receive, list(envelope.rcpt_tos),
                                              envelope.spool, envelope.mail_from)
        except Exception:  # noqa: BLE001 - the sender's MTA will retry
            log.exception("drop mail failed")
            return "451 4.3.0 Temporary failure, please try again later"


def make_controller(host: str, port: int):
    """An aiosmtpd Controller (a server thread) receiving drop mail on host:port."""
    from aiosmtpd.controller import Controller

    cfg = runtime.config()
    smtp_class = _smtp_class()

    class DropController(Controller):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.sessions = Sessions(cfg.smtpd_max_sessions)

        def factory(self):
            return smtp_class(self.handler, sessions=self.sessions, spool_dir=cfg.data_dir,
                              **self.SMTP_kwargs)

    return DropController(DropHandler(), hostname=host, port=port,
                          data_size_limit=message_limit(cfg.max_upload_bytes),
                          server_hostname=cfg.mail_domain, ident="ged drop")


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


@click.command("smtpd")
@click.option("--listen", default=None, help="host:port (default GED_SMTPD_LISTEN)")
def smtpd(listen):
    """Receive the e-mail drop mail (attachments to <token>@GED_MAIL_DOMAIN)."""
    from .cli import _setup

    cfg = _setup()
    host, port = parse_listen(listen or cfg.smtpd_listen)
    controller = make_controller(host, port)
    controller.start()
    click.echo(f"ged smtpd receiving mail for @{cfg.mail_domain} on {host}:{port}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1):
        pass
    controller.stop()


COMMANDS = [smtpd]
