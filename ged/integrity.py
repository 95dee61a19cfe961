"""Integrity of the blob store against the database (`ged fsck`; the audit hash
chains are checked by ``audit.verify``, `ged audit verify`).

fsck reads every blob the database names and checks its SHA-256 and size, checks
that each document's size is its blob's, and lists the blobs no row names and the
temporary files uploads left behind. It changes nothing unless asked to repair,
and then only removes what is safely garbage: stray blobs and temporary files
older than a grace period (a deposit in flight writes its blob before its row).
A missing or corrupt blob cannot be repaired from nothing: restore it from a
backup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import peewee as pw

from . import runtime
from .blobs import sha256_of, staging_dir
from .db import db
from .models import Blob, Document, Firm

GRACE_SECONDS = 3600


@dataclass
class Report:
    """What fsck found: errors (data at risk), warnings (garbage), what it repaired."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    blobs_checked: int = 0
    bytes_checked: int = 0
    documents_checked: int = 0

    @property
    def clean(self) -> bool:
        return not self.errors


def _hash(store, sha256: str) -> tuple[str, int]:
    with store.open(sha256) as fh:
        found = sha256_of(fh)
    return found.sha256, found.size


def fsck(repair: bool = False, *, grace_seconds: float = GRACE_SECONDS, progress=None) -> Report:
    """Check the blob store against the database (see the module docstring)."""
    cfg = runtime.config()
    store = runtime.store()
    report = Report()
    with db.connection_context():
        rows = dict(Blob.select(Blob.sha256, Blob.size).tuples())
        for sha, size in rows.items():
            try:
                actual, actual_size = _hash(store, sha)
            except FileNotFoundError:
                report.errors.append(f"blob {sha}: named by the database, missing from the store")
                actual = None
            else:
                if actual != sha:
                    report.errors.append(f"blob {sha}: corrupt (its bytes hash to {actual})")
                elif actual_size != size:
                    report.errors.append(f"blob {sha}: {actual_size} bytes, the database says {size}")
                report.bytes_checked += actual_size
            report.blobs_checked += 1
            if progress:
                progress(size)
        mismatched = (Document.select(Document.id, Document.name, Document.size, Blob.size)
                      .join(Blob, pw.JOIN.LEFT_OUTER, on=(Document.blob == Blob.sha256))
                      .where(Blob.sha256.is_null() | (Blob.size != Document.size)).tuples())
        for doc_id, name, doc_size, blob_size in mismatched:
            if blob_size is None:
                report.errors.append(f"document {doc_id} ({name}): no blob row for its bytes")
            else:
                report.errors.append(f"document {doc_id} ({name}): size {doc_size}, its blob "
                                     f"has {blob_size}")
        report.documents_checked = Document.select().count()
        for firm_id, logo in Firm.select(Firm.id, Firm.logo_sha256).where(
                Firm.logo_sha256.is_null(False)).tuples():
            if logo not in rows:
                report.errors.append(f"firm {firm_id}: its logo {logo} has no blob row")
    now = time.time()
    for sha in store.keys():
        if sha in rows:
            continue
        path = store.local_path(sha)
        age = now - path.stat().st_mtime if path is not None and path.exists() else None
        report.warnings.append(f"stray blob {sha}: no row names it")
        if repair and age is not None and age > grace_seconds:
            store.delete(sha)
            report.repaired.append(f"removed stray blob {sha}")
    for leftover in sorted(staging_dir(cfg.data_dir).iterdir()):
        if not leftover.is_file():
            continue
        age = now - leftover.stat().st_mtime
        report.warnings.append(f"temporary file {leftover.name} ({leftover.stat().st_size} bytes): "
                               "an upload in flight, or left by a crash")
        if repair and age > grace_seconds:
            leftover.unlink(missing_ok=True)
            report.repaired.append(f"removed temporary file {leftover.name}")
    return report
