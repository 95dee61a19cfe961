"""Integrity checks: `ged fsck` (the blob store against the database) and
`ged audit verify` (the audit hash chains).

fsck reads every blob the database names and checks its SHA-256 and size, checks
that each document's size is its blob's, and lists the blobs no row names and the
temporary files uploads left behind. It changes nothing unless asked to repair,
and then only removes what is safely garbage: stray blobs and temporary files
older than a grace period (a deposit in flight writes its blob before its row).
A missing or corrupt blob cannot be repaired from nothing: restore it from a
backup.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import click
import peewee as pw

from . import audit, runtime
from .db import db
from .models import Blob, Document, Firm
from .storage import CHUNK, staging_dir

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
    digest, size = hashlib.sha256(), 0
    with store.open(sha256) as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


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


@click.command("fsck")
@click.option("--repair", is_flag=True,
              help=f"remove stray blobs and temporary files older than {GRACE_SECONDS // 60} min")
def fsck_command(repair):
    """Check every blob against its SHA-256 and the store against the database."""
    from tqdm import tqdm

    from .cli import _setup

    _setup(migrate=False)
    with db.connection_context():
        total = Blob.select(pw.fn.SUM(Blob.size)).scalar() or 0
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="fsck",
              disable=None) as bar:
        report = fsck(repair, progress=bar.update)
    for line in report.errors:
        click.echo(f"ERROR: {line}")
    for line in report.warnings:
        click.echo(f"warning: {line}")
    for line in report.repaired:
        click.echo(f"repaired: {line}")
    click.echo(f"{report.blobs_checked} blob(s) ({report.bytes_checked} bytes) and "
               f"{report.documents_checked} document(s) checked: "
               + ("clean" if report.clean else f"{len(report.errors)} error(s)"))
    if not report.clean:
        raise SystemExit(1)


@click.group("audit")
def audit_group():
    """The audit trail."""


@audit_group.command("head")
@click.option("--firm", "firm_id", default=None, help="only this firm's chain")
def audit_head(firm_id):
    """Print each firm's chain head ("firm events hash"). Keep these lines outside the
    database (a log shipped elsewhere, a daily e-mail): `verify --anchor` then also
    proves that no newest event was deleted."""
    from .cli import _setup

    _setup(migrate=False)
    with db.connection_context():
        for fid, events, digest in audit.heads(firm_id):
            click.echo(f"{fid} {events} {digest}")


def _anchors(path) -> dict[str, tuple[int, str]]:
    """The latest anchor per firm in a file of `ged audit head` lines."""
    found: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(open(path, encoding="utf-8"), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[2]) != 64:
            raise click.ClickException(f"{path}:{number}: not a line of `ged audit head`")
        fid, events = parts[0], int(parts[1])
        if events >= found.get(fid, (0, ""))[0]:
            found[fid] = (events, parts[2])
    return found


@audit_group.command("verify")
@click.option("--firm", "firm_id", default=None, help="only this firm's chain")
@click.option("--anchor", "anchor_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="a file of earlier `ged audit head` lines: also detect removed newest events")
def audit_verify(firm_id, anchor_file):
    """Check the audit hash chains: any edited, inserted or deleted event shows."""
    from .cli import _setup
    from .models import AuditEvent

    anchors = _anchors(anchor_file) if anchor_file else None
    if anchors and firm_id:
        anchors = {k: v for k, v in anchors.items() if k == firm_id}
    _setup(migrate=False)
    with db.connection_context():
        problems = audit.verify(firm_id, anchors)
        count = AuditEvent.select().count()
    for problem in problems:
        click.echo(f"PROBLEM: {problem}")
    if problems:
        raise SystemExit(1)
    click.echo(f"audit trail intact: {count} event(s)")


COMMANDS = [fsck_command, audit_group]
