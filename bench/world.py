"""The data a benchmark phase needs, made through ged's own functions where they
exist (firm, users, companies, tokens, switches, deposits) and by bulk inserts
only for volume that no user would create one by one (10,000 folders, 100,000
indexed documents)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

PASSWORD = "bench-password-2026"


@dataclass
class Firm:
    firm: object
    admin: object
    token: str
    company: object

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


def make_firm(name: str = "Cabinet Bench", domain: str = "bench.example") -> Firm:
    """A firm with its admin (and an API token) and one company with the annual tree."""
    from ged import accounts, companies
    from ged.db import db

    with db.connection_context():
        firm, admin = accounts.create_firm(name, f"admin@{domain}", PASSWORD, "Admin Bench")
        company = companies.create_company(admin, firm, name="Boulangerie Martin",
                                           template="annual", year=2026)
        _tok, plain = accounts.create_token(admin, admin, "bench")
    return Firm(firm, admin, plain, company)


def folder(company, *names):
    """A folder of ``company`` by its names below the root."""
    from ged.models import Folder

    current = Folder.get((Folder.company == company.id) & Folder.parent.is_null())
    for name in names:
        current = Folder.get((Folder.parent == current.id) & (Folder.name == name))
    return current


def achats(company):
    return folder(company, "Dossier comptable annuel 2026", "Achats")


def http_connection(firm: Firm, company, url: str, name: str = "Webhook"):
    """An http connection of ``company`` to ``url``, made by the firm's admin through
    ``ged.integrations`` (install the generic webhook preset, then connect)."""
    from ged import integrations
    from ged.db import db

    with db.connection_context():
        integration = integrations.install(firm.admin, firm.firm, preset="webhook", name=name)
        conn, _secret = integrations.connect(firm.admin, company, integration, name=name, url=url)
    return conn


def deposit_bytes(firm: Firm, target, files: list[tuple[str, bytes]], channel: str = "api"):
    """Deposit files through ged's one deposit path, as ``firm``'s admin."""
    from ged import documents, runtime
    from ged.blobs import stage_bytes

    cfg = runtime.config()
    uploads = [documents.Upload(name, stage_bytes(data, cfg.data_dir, cfg.max_upload_bytes))
               for name, data in files]
    return documents.deposit(firm.admin, target, uploads, channel)


def bulk_subtree(company, parent, fanout: tuple[int, ...]) -> list:
    """Folders below ``parent``: ``fanout[0]`` children, each with ``fanout[1]`` children...
    Inserted in bulk with their materialised paths; returns the leaves' (id, path)."""
    from ged.db import new_id, transaction
    from ged.models import Folder

    level = [(parent.id, parent.path, parent.depth)]
    rows: list[dict] = []
    for depth_index, count in enumerate(fanout):
        next_level = []
        for pid, ppath, pdepth in level:
            for n in range(count):
                fid = new_id()
                row = {"id": fid, "company": company.id, "parent": pid,
                       "name": f"Dossier {depth_index + 1}.{n + 1:03d}",
                       "path": f"{ppath}{fid}/", "depth": pdepth + 1}
                rows.append(row)
                next_level.append((fid, row["path"], pdepth + 1))
        level = next_level
    with transaction():
        for start in range(0, len(rows), 500):
            Folder.insert_many(rows[start:start + 500]).execute()
    return level


def bulk_documents(firm_id: str, items, *, content_type: str = "application/pdf",
                   batch: int = 1000) -> int:
    """Documents whose text is already extracted, inserted in bulk and marked for
    indexing; ``items`` yields (company_id, folder_id, name, text). Returns the count."""
    from ged.db import new_id, transaction
    from ged.models import Blob, Document

    start_day = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    blobs, docs, count = [], [], 0

    def flush():
        with transaction():
            Blob.insert_many(blobs).on_conflict_ignore().execute()
            Document.insert_many(docs).execute()
        blobs.clear()
        docs.clear()

    for i, (company_id, folder_id, name, text) in enumerate(items):
        data = text.encode()
        sha = hashlib.sha256(data).hexdigest()
        blobs.append({"sha256": sha, "size": len(data), "content_type": content_type,
                      "text": text, "text_status": "done", "pages": 1})
        docs.append({"id": new_id(), "firm": firm_id, "company": company_id,
                     "folder": folder_id, "name": name, "blob": sha,
                     "size": len(data), "content_type": content_type, "channel": "import",
                     "deposited_at": start_day + dt.timedelta(minutes=7 * i),
                     "deposited_by_label": "bench", "text_status": "done",
                     "index_dirty": True, "retain_until": dt.date(2036, 12, 31)})
        count += 1
        if len(docs) >= batch:
            flush()
    if docs:
        flush()
    return count
