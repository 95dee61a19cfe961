"""`ged fsck` (the blob store against the database) and `ged audit head|verify`
(the audit hash chains)."""

from __future__ import annotations

import click

from .. import integrity
from ..db import db
from .common import progress, setup


@click.command("fsck")
@click.option("--repair", is_flag=True,
              help=f"remove stray blobs and temporary files older than {integrity.GRACE_SECONDS // 60} min")
def fsck(repair):
    """Check every blob against its SHA-256 and the store against the database."""
    import peewee as pw

    from ..models import Blob

    setup(migrate=False)
    with db.connection_context():
        total = Blob.select(pw.fn.SUM(Blob.size)).scalar() or 0
    with progress(total, "fsck") as bar:
        report = integrity.fsck(repair, progress=bar.update)
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
def audit():
    """The audit trail."""


@audit.command("head")
@click.option("--firm", "firm_id", default=None, help="only this firm's chain")
def audit_head(firm_id):
    """Print each firm's chain head ("firm events hash"). Keep these lines outside the
    database (a log shipped elsewhere, a daily e-mail): `verify --anchor` then also
    proves that no newest event was deleted."""
    from .. import audit as trail

    setup(migrate=False)
    with db.connection_context():
        for fid, events, digest in trail.heads(firm_id):
            click.echo(f"{fid} {events} {digest}")


def _anchors(path) -> dict[str, tuple[int, str]]:
    """The latest anchor per firm in a file of `ged audit head` lines."""
    found: dict[str, tuple[int, str]] = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 3 or not parts[1].isdigit() or len(parts[2]) != 64:
                raise click.ClickException(f"{path}:{number}: not a line of `ged audit head`")
            fid, events = parts[0], int(parts[1])
            if events >= found.get(fid, (0, ""))[0]:
                found[fid] = (events, parts[2])
    return found


@audit.command("verify")
@click.option("--firm", "firm_id", default=None, help="only this firm's chain")
@click.option("--anchor", "anchor_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="a file of earlier `ged audit head` lines: also detect removed newest events")
def audit_verify(firm_id, anchor_file):
    """Check the audit hash chains: any edited, inserted or deleted event shows."""
    from .. import audit as trail
    from ..models import AuditEvent

    anchors = _anchors(anchor_file) if anchor_file else None
    if anchors and firm_id:
        anchors = {k: v for k, v in anchors.items() if k == firm_id}
    setup(migrate=False)
    with db.connection_context():
        problems = trail.verify(firm_id, anchors)
        count = AuditEvent.select().count()
    for problem in problems:
        click.echo(f"PROBLEM: {problem}")
    if problems:
        raise SystemExit(1)
    click.echo(f"audit trail intact: {count} event(s)")
