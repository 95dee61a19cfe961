"""The e-mail channel's receiver: an SMTP server (aiosmtpd) taking mail for the
secret drop addresses (``ged.drops``) and depositing its attachments.

A message is received in bounded memory: DATA is spooled to a file and refused
(552) as soon as it passes the size limit, sessions are capped, and the MIME tree
is read as a stream (``ged.mailparts``) with a bound on its parts, each attachment
decoded straight to a staged file. The acceptable attachments are deposited in one
``documents.deposit`` call per drop address; refusals are recorded in the audit
trail and, when the sender is authenticated and is no robot, explained to them in
French by e-mail. The message is refused whole (550, with the reasons) only when
nothing acceptable remains. `ged smtpd` (``ged.cli.smtpd``) runs the server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
import unicodedata
from email.message import EmailMessage, Message
from pathlib import Path

from . import audit, documents, drops, french, mail, mailparts, runtime
from .blobs import stage, staging_dir
from .db import db, transaction
from .errors import GedError, NotFound
from .mailparts import Reading, Refusal
from .models import Company, DropAddress

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 10
MAX_ATTACHMENTS = 50
# A sender still sending this many times the limit after the 552 is cut off.
OVERRUN_FACTOR = 4

# The sender is told in French why an attachment was not deposited: the mail
# reasons' wording here, the file checks' the pages' (ged/french.py).
REASONS_FR = {
    "encrypted_message": "le message est chiffré (S/MIME ou PGP) : ged ne peut pas le lire. "
                         "Envoyez les pièces sans chiffrement.",
    "signed_unreadable": "le message signé (smime.p7m) n'a pas pu être lu.",
    "forwarded_too_deep": f"message transféré sur plus de {mailparts.MAX_FORWARDED} niveaux : "
                          "transférez directement les pièces jointes.",
    "tnef": "pièce winmail.dat d'Outlook (format texte enrichi) : les fichiers qu'elle "
            "contient ne peuvent pas être lus. Renvoyez le message au format HTML ou texte brut.",
    "file_too_large": "le fichier dépasse la taille maximale autorisée.",
    "empty_file": "le fichier est vide.",
}


def reason_fr(item: Refusal) -> str:
    """Why an attachment was refused, in French for its sender."""
    return REASONS_FR.get(item.code) or french.ERRORS.get(item.code) or item.reason


class Refused(Exception):
    """A message ged will not take; ``reply`` is the complete SMTP reply."""

    def __init__(self, reply: str):
        super().__init__(reply)
        self.reply = reply


def _ascii(text: str) -> str:
    """SMTP replies are ASCII: accents dropped, anything else replaced."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^\x20-\x7e]", "?", text)


# --- receiving a message ---------------------------------------------------------------


def check_recipient(address: str) -> str | None:
    """None when ``address`` is an active drop address, else the SMTP refusal."""
    cfg = runtime.config()
    with db.connection_context():
        drop = drops.for_address(address, cfg.mail_domain)
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
                targets = _recipients(cfg, rcpt_tos)
            except Refused:
                return
            _record_refusal(cfg, targets, headers, mail_from or "",
                            f"message larger than the limit of {limit} bytes")
    except Exception:  # noqa: BLE001 - the 552 stands; only the record is missing
        log.exception("could not record an oversized drop mail")


def _recipients(cfg, rcpt_tos: list[str]) -> list[DropAddress]:
    """The drop addresses the envelope names, each once; Refused when one is gone."""
    targets = []
    for rcpt in dict.fromkeys(r.lower() for r in rcpt_tos):
        drop = drops.for_address(rcpt, cfg.mail_domain)
        if drop is None:  # revoked between RCPT and the end of DATA
            raise Refused("550 5.1.1 Unknown drop address")
        if drop.id not in {d.id for d in targets}:
            targets.append(drop)
    if not targets:
        raise Refused("554 5.5.1 No valid recipients")
    if len(targets) > MAX_RECIPIENTS:
        raise Refused(f"552 5.5.3 Too many recipients (at most {MAX_RECIPIENTS})")
    return targets


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


def _record_refusal(cfg, targets: list[DropAddress], headers: Message | None, mail_from: str,
                    reason: str, reading: Reading | None = None) -> None:
    """One audit event per company the refused message was sent to."""
    address, verified = mailparts.sender_of(headers, cfg.smtpd_trusted_authserv) if headers else (None, False)
    for drop in targets:
        company = Company.get_by_id(drop.company_id)
        folder = drops.target_folder(drop)
        actor, label = mailparts.depositor(address, verified, company, folder)
        details = dict(_headline(headers, mail_from), reason=reason, folder_id=folder.id)
        if reading is not None:
            details["refused"] = [r.as_dict() for r in reading.refused[:50]]
            details["ignored"] = reading.ignored[:50]
        with transaction():
            audit.record(actor or label, "email.refused", firm=company.firm_id, company=company,
                         details=details)


def _receive(cfg, rcpt_tos: list[str], spool: Path, mail_from: str) -> str:
    targets = _recipients(cfg, rcpt_tos)
    try:
        reading = mailparts.read_message(spool, cfg)
    except mailparts.TooManyParts:
        _record_refusal(cfg, targets, mailparts.read_top_headers(spool), mail_from,
                        f"more than {mailparts.MAX_PARTS} MIME parts")
        raise Refused(f"552 5.3.4 Too many MIME parts (more than {mailparts.MAX_PARTS}): send the "
                      "documents in several messages") from None
    except Exception:  # noqa: BLE001 - any parser failure is the sender's malformed message
        log.info("unreadable drop message", exc_info=True)
        _record_refusal(cfg, targets, mailparts.read_top_headers(spool), mail_from,
                        "malformed MIME")
        raise Refused("550 5.6.0 The message could not be read (malformed MIME)") from None
    try:
        return _deposit(cfg, targets, reading, mail_from)
    finally:
        reading.discard()


def _deposit(cfg, targets: list[DropAddress], reading: Reading, mail_from: str) -> str:
    headers = reading.headers
    if reading.report:
        _record_refusal(cfg, targets, headers, mail_from, "delivery report", reading)
        raise Refused("550 5.6.0 Delivery reports are not deposited")
    if not reading.accepted:
        _record_refusal(cfg, targets, headers, mail_from, "nothing to deposit", reading)
        _reply_to_sender(cfg, headers, mail_from, [], reading.refused)
        if not reading.refused:
            raise Refused("550 5.6.0 No attachment found: nothing was deposited. Attach the "
                          "documents (PDF, images, office files) to the message")
        head = (f"Message refused, nothing was deposited: {len(reading.refused)} "
                f"attachment(s) not accepted")
        raise Refused(_smtp_lines("550 5.6.0", [head] + _refusal_lines(reading.refused)))
    if len(reading.accepted) > MAX_ATTACHMENTS:
        _record_refusal(cfg, targets, headers, mail_from, "too many attachments", reading)
        raise Refused(f"552 5.3.4 Too many attachments ({len(reading.accepted)}; at most "
                      f"{MAX_ATTACHMENTS}): send them in several messages")
    address, verified = mailparts.sender_of(headers, cfg.smtpd_trusted_authserv)
    # deposit() consumes its staged files: each further drop address gets copies.
    batches = [list(reading.accepted)]
    for _drop in targets[1:]:
        batch = []
        for name, staged in reading.accepted:
            with open(staged.path, "rb") as fh:
                batch.append((name, stage(fh, cfg.data_dir, cfg.max_upload_bytes)))
        batches.append(batch)
    reading.accepted = []
    count, names, failed, warnings = 0, [], [], []
    try:
        for drop, batch in zip(targets, batches):
            company = Company.get_by_id(drop.company_id)
            folder = drops.target_folder(drop)
            actor, label = mailparts.depositor(address, verified, company, folder)
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
        lines += ["", "À noter :"]
        lines += [f"  - {french.warning(w)}"
                  if w["code"] in french.WARNINGS else f"  - {w['name']} : {w['message']}"
                  for w in warnings[:50]]
    if refused:
        lines += ["", "Les pièces jointes suivantes n'ont pas été déposées :"]
        lines += [f"  - {item.name} : {reason_fr(item)}" for item in refused[:50]]
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
    to = mailparts.may_reply(cfg, headers, mail_from)
    if to is None:
        return
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
                          data_size_limit=mailparts.message_limit(cfg.max_upload_bytes),
                          server_hostname=cfg.mail_domain, ident="ged drop")
