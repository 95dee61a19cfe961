"""Who sent a message: the From address, believed only when the MTA in front of
ged vouches for it (an ``Authentication-Results`` header from a trusted
authserv-id with an aligned DKIM, DMARC or SPF pass); who the deposit is then
made as; and whether the sender may be answered at all.
"""

from __future__ import annotations

import re
from email.message import Message
from email.utils import getaddresses

from .. import permissions
from ..models import Company, Folder, StaffAssignment, User

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
