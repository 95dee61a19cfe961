"""Export (réversibilité): a company, or one folder and everything below it, handed
back as a ZIP that is built while it streams.

The archive holds the folder tree with every document under its own name (a
clash in one directory, compared without case as Windows and macOS do, gets
" (2)", " (3)"...), ``manifest.json`` and ``manifest.csv`` (one entry per document:
its path in the archive, SHA-256, size, type, who deposited it, when and how,
status, retention), and ``audit.jsonl`` (the company's audit trail, one event per
line). Documents are read from the blob store chunk by chunk as the ZIP is
written (no compression: PDFs and photos are already compressed), so memory stays
flat whatever the size of the company, and the final size is known in advance.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from zipstream import ZipStream

from . import audit, folders, permissions, runtime
from .blobs import iter_blob, staging_dir
from .db import transaction
from .errors import NotFound
from .models import AuditEvent, Company, Document, Folder, User, utcnow

MANIFEST_FIELDS = ["path", "sha256", "size", "content_type", "deposited_at", "deposited_by",
                   "deposited_by_name", "channel", "status", "retain_until", "legal_hold",
                   "document_id", "name", "folder_path"]
RESERVED = ("manifest.json", "manifest.csv", "audit.jsonl")


@dataclass
class Export:
    """A ready-to-stream export: iterate ``chunks()`` once; ``size`` is its exact length."""

    stream: ZipStream
    filename: str
    documents: int
    document_bytes: int
    _closers: list

    @property
    def size(self) -> int:
        return len(self.stream)

    def chunks(self) -> Iterator[bytes]:
        try:
            yield from self.stream
        finally:
            for closer in self._closers:
                closer.close()


class Names:
    """Unique names per archive directory, compared without case."""

    def __init__(self):
        self.taken: dict[str, set[str]] = defaultdict(set)

    def claim(self, directory: str, name: str) -> str:
        used = self.taken[directory]
        candidate, number = name, 1
        stem, ext = os.path.splitext(name)
        if not stem:  # a name like ".pdf" has no stem to number
            stem, ext = name, ""
        while candidate.lower() in used:
            number += 1
            candidate = f"{stem} ({number}){ext}"
        used.add(candidate.lower())
        return candidate


def build(user: User | None, company: Company, folder: Folder | None = None, *,
          for_client: bool = False) -> Export:
    """Plan the export of ``company`` (or of ``folder`` and below) and record it in
    the audit trail. ``user`` is a firm user (the API) or None (the `ged export`
    command); trashed folders and documents are left out. ``for_client``: the copy a
    firm hands to its client, holding only what a client user may see (no firm-only
    folder, no firm-only event of the audit trail: deliveries, connections, switches,
    internal notes)."""
    if user is not None:
        permissions.require_role(user, "admin", "staff",
                                 message="Only the firm may export a company's documents.")
        hidden = permissions.hidden_prefixes(user, company.id)
    else:
        hidden = [f.path for f in Folder.select(Folder.path).where(
            (Folder.company == company.id) & Folder.trashed_at.is_null(False))]
    if for_client:
        hidden += [f.path for f in Folder.select(Folder.path).where(
            (Folder.company == company.id) & (Folder.firm_only == True))]  # noqa: E712
    top = folder or folders.root_of(company)
    names = Names()
    for reserved in RESERVED:
        names.claim("", reserved)

    tree = [f for f in folders.subtree(top).order_by(Folder.depth, Folder.name, Folder.id)
            if not any(f.path.startswith(p) for p in hidden)]
    directory: dict[str, str] = {}
    paths: dict[str, str] = {}
    base_path = folders.display_path(top)
    for f in tree:
        if f.id == top.id:
            directory[f.id] = "" if folder is None else names.claim("", f.name) + "/"
            paths[f.id] = base_path
        elif f.parent_id in directory:
            parent = directory[f.parent_id]
            directory[f.id] = parent + names.claim(parent, f.name) + "/"
            paths[f.id] = paths[f.parent_id].rstrip("/") + "/" + f.name

    docs = list(Document.select().where(Document.folder.in_(list(directory))
                                        & Document.trashed_at.is_null())
                .order_by(Document.deposited_at, Document.id))
    stream = ZipStream(sized=True)
    for f in tree:
        if directory.get(f.id):
            stream.mkdir(directory[f.id])
    store = runtime.store()
    entries = []
    for doc in docs:
        where = directory[doc.folder_id]
        path = where + names.claim(where, doc.name)
        stream.add(iter_blob(store, doc.blob_id), path, size=doc.size)
        entries.append(_entry(doc, path, paths[doc.folder_id]))

    exported_at = utcnow()
    with transaction():
        audit.record(user or "ged export", "company.exported", company, firm=company.firm_id,
                     details={"folder_id": folder.id if folder else None,
                              "documents": len(docs), "for_client": for_client})
    manifest = {
        "company": {"id": company.id, "name": company.name, "siren": company.siren},
        "folder": {"id": top.id, "path": base_path} if folder else None,
        "exported_at": exported_at.isoformat(),
        "documents": entries,
    }
    stream.add(json.dumps(manifest, ensure_ascii=False, indent=1).encode(), "manifest.json")
    stream.add(_csv(entries), "manifest.csv")
    trail, size = _audit_trail(company, for_client)
    stream.add(_iter_file(trail), "audit.jsonl", size=size)
    return Export(stream, _filename(company, folder), len(docs), sum(d.size for d in docs),
                  [trail])


def _entry(doc: Document, path: str, folder_path: str) -> dict:
    return {
        "path": path,
        "sha256": doc.blob_id,
        "size": doc.size,
        "content_type": doc.content_type,
        "deposited_at": doc.deposited_at.isoformat(),
        "deposited_by": doc.deposited_by_id,
        "deposited_by_name": doc.deposited_by_label,
        "channel": doc.channel,
        "status": doc.status,
        "retain_until": doc.retain_until.isoformat() if doc.retain_until else None,
        "legal_hold": doc.legal_hold,
        "document_id": doc.id,
        "name": doc.name,
        "folder_path": folder_path,
    }


def _csv(entries: list[dict]) -> bytes:
    """The manifest for spreadsheets: UTF-8 with a BOM and ";" separators, which is
    what a French Excel opens correctly with a double click."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=MANIFEST_FIELDS, delimiter=";",
                            lineterminator="\r\n")
    writer.writeheader()
    for entry in entries:
        writer.writerow({k: _cell(entry[k]) for k in MANIFEST_FIELDS})
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# A cell a spreadsheet would read as a formula (or DDE call) when opened.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _cell(value):
    """A manifest value as a CSV cell. Text that a spreadsheet would run as a formula
    (a document named ``=HYPERLINK(...)``) gets a leading apostrophe, which shows it
    as text (OWASP's advice for CSV injection); manifest.json keeps the exact name."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _audit_trail(company: Company, for_client: bool = False):
    """The company's audit events, one JSON object per line, spooled to an
    anonymous temporary file (so its size is known and memory stays flat). For a
    client, the firm-only events are left out (each event keeps its hashes: the chain
    stays checkable against the firm's own copy)."""
    trail = tempfile.TemporaryFile(dir=staging_dir(runtime.config().data_dir))
    where = AuditEvent.company_id == company.id
    if for_client:
        where &= AuditEvent.firm_only == False  # noqa: E712
    query = AuditEvent.select().where(where).order_by(AuditEvent.seq)
    for event in query.iterator():
        line = audit.to_dict(event)
        line["prev_hash"], line["hash"] = event.prev_hash, event.hash
        trail.write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
    size = trail.tell()
    trail.seek(0)
    return trail, size


def _iter_file(fh, chunk: int = 256 * 1024) -> Iterator[bytes]:
    while True:
        data = fh.read(chunk)
        if not data:
            return
        yield data


def prepare(user: User, company_id: str, folder_id: str | None = None, *,
            for_client: bool = False) -> Export:
    """An export asked for over HTTP (the API and the web page alike): firm users of
    the company; the folder must be the company's."""
    company = permissions.company_for(user, company_id)
    permissions.require_role(user, "admin", "staff",
                             message="Only the firm may export a company's documents.")
    folder = None
    if folder_id:
        folder = permissions.folder_for(user, folder_id)
        if folder.company_id != company.id:
            raise NotFound("Folder not found.")
    return build(user, company, folder, for_client=for_client)


def _filename(company: Company, folder: Folder | None) -> str:
    label = company.name + (f" - {folder.name}" if folder else "")
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    ascii_label = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_label).strip("-") or "export"
    return f"export-{ascii_label}-{utcnow():%Y%m%d}.zip"


def write(export: Export, out: Path, progress=None) -> int:
    """Write an export to ``out`` (through a temporary file renamed at the end, so a
    failed export never leaves a truncated ZIP behind); returns the bytes written."""
    out = Path(out)
    tmp = out.with_name(out.name + ".partial")
    written = 0
    try:
        with open(tmp, "wb") as fh:
            for chunk in export.chunks():
                fh.write(chunk)
                written += len(chunk)
                if progress is not None:
                    progress(len(chunk))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written
