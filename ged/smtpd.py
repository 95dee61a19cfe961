"""The e-mail channel: secret drop addresses and the SMTP receiver (`ged smtpd`).

Each company has a secret drop address ``<token>@GED_MAIL_DOMAIN`` (and may have
one per folder). Every attachment of a message sent to it is deposited through
``documents.deposit`` with channel ``email``. The token is the authorisation: the
From header is only a claim, believed when the MTA in front of ged vouches for it
(an ``Authentication-Results`` header from a trusted authserv-id with an aligned
DKIM, DMARC or SPF pass); otherwise the deposit is labelled "unverified sender".

A message is all or nothing: an unknown address is refused at RCPT time, and a
message with no usable attachment, too many recipients or attachments, one bad
attachment, or more data than the limit is refused with a 5xx reply naming the
problem, before anything is stored.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import mimetypes
import re
import signal
import threading
import unicodedata
from dataclasses import dataclass
from email.message import EmailMessage

import click

from . import audit, companies, documents, filetypes, folders, permissions, runtime
from .db import db, transaction
from .errors import GedError, NotFound
from .models import Company, DropAddress, Folder, StaffAssignment, User, utcnow
from .storage import stage_bytes

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 10
MAX_ATTACHMENTS = 50
# Base64 makes a file a third bigger; a message may carry two files at the size limit.
MESSAGE_OVERHEAD = 1024 * 1024


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


def attachments_of(message: EmailMessage) -> list[tuple[str, bytes]]:
    """The (name, bytes) of every attachment, at any depth (forwarded messages
    included); the text body and images embedded in the HTML body are not attachments."""
    embedded = set()
    for part in message.walk():
        if part.get_content_type() == "text/html":
            try:
                html = part.get_content()
            except (LookupError, ValueError):
                continue
            embedded.update(c.lower() for c in re.findall(r"cid:([^\"'\s>)]+)", html))
    found = []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if disposition != "attachment" and not filename:
            continue  # the body of the message
        content_id = (part.get("Content-ID") or "").strip().strip("<>").lower()
        if disposition != "attachment" and content_id and content_id in embedded:
            continue  # a logo or picture shown inside the HTML body
        if not filename:
            ext = mimetypes.guess_extension(part.get_content_type()) or ".bin"
            filename = f"piece-jointe-{len(found) + 1}{ext}"
        found.append((str(filename).strip(), part.get_payload(decode=True) or b""))
    return found


def sender_of(message: EmailMessage, trusted_authserv: list[str]) -> tuple[str | None, bool]:
    """The From address and whether the MTA in front of ged vouched for it.

    Only the topmost Authentication-Results header counts (the one the nearest MTA
    added; a forger's own header would sit below it), and only from a trusted
    authserv-id, with a DMARC pass, or a DKIM or SPF pass for the From's domain."""
    try:
        found = [a.addr_spec for header in message.get_all("From", [])
                 for a in getattr(header, "addresses", ())]
    except (TypeError, ValueError, AttributeError):
        found = []
    found = [a for a in found if a and "@" in a]
    if len(found) != 1:
        return None, False
    address = found[0].strip().lower()
    results = message.get_all("Authentication-Results") or []
    if not trusted_authserv or not results:
        return address, False
    authserv, _, rest = str(results[0]).partition(";")
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


@dataclass
class Checked:
    """An attachment that passed the deposit checks, with its bytes."""

    name: str
    data: bytes


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


def receive(rcpt_tos: list[str], raw: bytes) -> str:
    """Deposit every attachment of a message into each drop address it was sent to;
    returns the SMTP reply. All or nothing: any refusal stores nothing."""
    cfg = runtime.config()
    try:
        with db.connection_context():
            return _receive(cfg, rcpt_tos, raw)
    except Refused as exc:
        log.info("drop mail refused: %s", exc.reply)
        return exc.reply


def _receive(cfg, rcpt_tos: list[str], raw: bytes) -> str:
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
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = attachments_of(message)
    except Exception:  # noqa: BLE001 - any parser failure is the sender's malformed message
        log.info("unreadable drop message", exc_info=True)
        raise Refused("550 5.6.0 The message could not be read (malformed MIME)") from None
    if not parts:
        raise Refused("550 5.6.0 No attachment found: nothing was deposited. Attach the "
                      "documents (PDF, images, office files) to the message")
    if len(parts) > MAX_ATTACHMENTS:
        raise Refused(f"552 5.3.4 Too many attachments ({len(parts)}; at most "
                      f"{MAX_ATTACHMENTS}): send them in several messages")
    checked, bad = _check_attachments(cfg, parts)
    if bad:
        lines = [f"{_ascii(name)[:80]!r}: {_ascii(reason)[:160]}" for name, reason in bad[:10]]
        if len(bad) > 10:
            lines.append(f"and {len(bad) - 10} more")
        head = f"Message refused, nothing was deposited: {len(bad)} attachment(s) not accepted"
        body = [head] + lines
        return "\r\n".join(
            ("550 " if i == len(body) - 1 else "550-") + "5.6.0 " + line
            for i, line in enumerate(body))
    address, verified = sender_of(message, cfg.smtpd_trusted_authserv)
    count = 0
    for drop in drops:
        company = Company.get_by_id(drop.company_id)
        folder = target_folder(drop)
        actor, label = depositor(address, verified, company, folder)
        uploads = [documents.Upload(c.name, stage_bytes(c.data, cfg.data_dir,
                                                        cfg.max_upload_bytes)) for c in checked]
        try:
            docs = documents.deposit(actor, folder, uploads, "email", label=label)
        except NotFound:
            raise Refused("550 5.1.1 Unknown drop address") from None
        except GedError as exc:
            raise Refused(f"550 5.6.0 Message refused: {_ascii(exc.message)}") from None
        count += len(docs)
    return f"250 2.0.0 {count} document(s) deposited"


def _check_attachments(cfg, parts: list[tuple[str, bytes]]) -> tuple[list[Checked], list]:
    """Run every attachment through the checks ``deposit`` makes, so that the
    refusal can list every bad one (deposit stops at the first)."""
    checked, bad = [], []
    for raw_name, data in parts:
        try:
            name = filetypes.clean_filename(raw_name)
            if not data:
                raise GedError("the file is empty", "empty_file")
            staged = stage_bytes(data, cfg.data_dir, cfg.max_upload_bytes)
            try:
                filetypes.check(staged.path, staged.head, name)
            finally:
                staged.discard()
        except GedError as exc:
            bad.append((raw_name or "?", exc.message))
            continue
        checked.append(Checked(name, data))
    return checked, bad


# --- the SMTP server ----------------------------------------------------------------------


class DropHandler:
    """aiosmtpd handler: refuses unknown recipients at RCPT, deposits at the end of DATA.

    The database and file work runs in a thread so the event loop keeps serving
    other connections."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"552 5.5.3 Too many recipients (at most {MAX_RECIPIENTS})"
        loop = asyncio.get_running_loop()
        try:
            refusal = await loop.run_in_executor(None, check_recipient, address)
        except Exception:  # noqa: BLE001 - the database may be down: ask to retry later
            log.exception("could not check drop address %s", address)
            return "451 4.3.0 Temporary failure, please try again later"
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, receive, list(envelope.rcpt_tos),
                                              envelope.original_content or b"")
        except Exception:  # noqa: BLE001 - the sender's MTA will retry
            log.exception("drop mail failed")
            return "451 4.3.0 Temporary failure, please try again later"


def make_controller(host: str, port: int):
    """An aiosmtpd Controller (a server thread) receiving drop mail on host:port."""
    from aiosmtpd.controller import Controller

    cfg = runtime.config()
    return Controller(DropHandler(), hostname=host, port=port,
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
