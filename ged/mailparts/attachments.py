"""Which parts of a message are documents, read from its spool file.

What a message holds is sorted three ways. Parts that are not documents are
ignored (signatures, HTML body fragments, pictures shown in the HTML body,
calendar and contact cards, delivery reports). Every other attachment, at any
depth (forwarded messages, opaque S/MIME signed messages), is checked by
``filetypes``: the acceptable ones are staged for deposit, the others are refused
for cause (a code and an English reason; the receiver words them for the sender).
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path

from .. import filetypes, runtime
from ..errors import GedError
from ..blobs import Staged
from .reader import FILE, HTML, SKIP, Part, Reader
from .smime import Encrypted, unwrap_signed

MAX_PARTS = 500  # MIME entities in one message, forwarded ones included
MAX_FORWARDED = 5  # messages forwarded inside messages
# Base64 makes a file a third bigger; a message may carry two files at the size limit.
MESSAGE_OVERHEAD = 1024 * 1024


def message_limit(max_upload_bytes: int) -> int:
    """The largest message (bytes on the wire) the receiver accepts."""
    return max_upload_bytes * 2 + MESSAGE_OVERHEAD


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
    "encrypted_message": "encrypted message (S/MIME or PGP): ged cannot read it",
    "signed_unreadable": "signed message (smime.p7m) whose content could not be read",
    "forwarded_too_deep": f"message forwarded more than {MAX_FORWARDED} levels deep",
    "tnef": ("Outlook winmail.dat (rich text format): the files inside cannot be read; send "
             "again in HTML or plain text format"),
    "file_too_large": "file larger than the size limit",
    "empty_file": "the file is empty",
}


@dataclass
class Refusal:
    """An attachment refused for cause: its name, a code (of MAIL_REASONS or of the
    file checks), and the reason in English."""

    name: str
    code: str
    reason: str

    def as_dict(self) -> dict:
        return {"name": self.name, "code": self.code, "reason": self.reason}


def refusal(name: str, code: str, message: str | None = None) -> Refusal:
    """A Refusal; ``message`` is the file check's own, else the mail reason's."""
    return Refusal(name, code, message or MAIL_REASONS.get(code, code))


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


def _choose(part: Part) -> str:
    """What to do with a leaf's body, from its headers alone."""
    ctype = part.content_type
    name = part.filename or ""
    if "multipart/report" in part.ancestors:
        part.extra["ignored"] = "delivery report"
        return SKIP
    if "multipart/encrypted" in part.ancestors and ctype != "application/pgp-encrypted":
        part.extra["refused"] = "encrypted_message"
        return SKIP
    if ctype in NOT_DOCUMENTS:
        part.extra["ignored"] = NOT_DOCUMENTS[ctype]
        return SKIP
    if SIGNATURE_NAMES.match(name):
        part.extra["ignored"] = "signature"
        return SKIP
    if BODY_FRAGMENT.match(name):
        part.extra["ignored"] = "body fragment"
        return HTML if ctype == "text/html" else SKIP
    if ctype == "text/html" and (not name or part.disposition != "attachment"):
        part.extra["body"] = True
        return HTML
    if ctype.startswith("text/") and not name:
        part.extra["body"] = True
        return SKIP
    if ctype.startswith("multipart/"):  # a multipart without a boundary
        part.extra["body"] = True
        return SKIP
    if _is_container(ctype, name):  # opened later: as large as a message may be
        part.extra["max_bytes"] = message_limit(runtime.config().max_upload_bytes)
    return FILE


def _is_container(ctype: str, name: str) -> bool:
    """An attachment that is itself a message: a forward, an .eml, an S/MIME .p7m."""
    name = name.lower()
    return (ctype == "message/rfc822" or ctype in PKCS7_MIME or name.endswith(".eml")
            or name.endswith(".p7m"))


_CID = re.compile(r"""cid:([^"'\s>)]+)""", re.I)
_IMG = re.compile(r"<img\b[^>]*>", re.I)


def _body_references(parts: list[Part]) -> tuple[set[str], set[str]]:
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


def _is_body_picture(part: Part, shown: set[str], attached: set[str]) -> bool:
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
        import pillow_heif
        from PIL import Image

        pillow_heif.register_heif_opener()
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
    reader = Reader(_choose, cfg.data_dir, cfg.max_upload_bytes, MAX_PARTS,
                              MAX_FORWARDED)
    with open(path, "rb") as fh:
        headers, parts = reader.walk(fh)
    leaves: list[Part] = []
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


def _open_container(reader: Reader, part: Part, cfg) -> list:
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
            content = unwrap_signed(part.staged.path, cfg.data_dir,
                                              message_limit(cfg.max_upload_bytes))
        except Encrypted:
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
            return [Part(headers=part.headers, content_type="application/octet-stream",
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


def _sort(headers: Message, leaves: list[Part], max_bytes: int) -> Reading:
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
