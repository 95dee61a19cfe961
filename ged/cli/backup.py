"""`ged backup` (take or verify a backup) and `ged restore`."""

from __future__ import annotations

from pathlib import Path

import click

from .. import runtime
from .common import progress, setup


class _DefaultCreate(click.Group):
    """`ged backup DEST_DIR` takes a backup; `ged backup verify DEST_DIR` checks one."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["create"] + list(args)
        return super().parse_args(ctx, args)


@click.group("backup", cls=_DefaultCreate)
def backup():
    """Back up the database and the blobs into a directory (ged backup DEST_DIR)."""


@backup.command("create", hidden=True)
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--keep", type=click.IntRange(min=1), default=None,
              help="keep only the N newest snapshots (and the blobs they name)")
def backup_create(dest, keep):
    """Take a consistent backup into DEST (safe while the server runs)."""
    from peewee import fn

    from .. import backup as backups
    from ..db import db
    from ..models import Blob

    setup(migrate=False)
    with db.connection_context():
        total = Blob.select(fn.SUM(Blob.size)).scalar() or 0
    with progress(total, "backup") as bar:
        manifest = backups.backup(dest, keep=keep, progress=bar.update)
    click.echo(f"snapshot {manifest['name']}: {manifest['blob_count']} blob(s) "
               f"({manifest['blob_bytes']} bytes), {manifest['blobs_copied']} new")
    for pruned in manifest.get("pruned", []):
        click.echo(f"pruned snapshot {pruned}")
    for problem in manifest["problems"]:
        click.echo(f"PROBLEM: {problem}", err=True)
    if manifest["problems"]:
        raise SystemExit(1)


@backup.command("verify")
@click.argument("dest", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--snapshot", default=None, help="snapshot name (default: the latest)")
@click.option("--quick", is_flag=True, help="check sizes only, do not re-hash the blobs")
def backup_verify(dest, snapshot, quick):
    """Check a backup: the database file and every blob against their checksums."""
    from .. import backup as backups

    try:
        name, manifest, problems = backups.verify(dest, snapshot, quick=quick)
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    for problem in problems:
        click.echo(f"PROBLEM: {problem}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"snapshot {name} is intact: database and {len(manifest['blobs'])} blob(s) "
               f"match their checksums")


@click.command("restore")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--snapshot", default=None, help="snapshot name (default: the latest)")
def restore(src, snapshot):
    """Restore a backup into an empty data dir / empty database."""
    from .. import backup as backups

    runtime.setup()
    try:
        result = backups.restore(src, snapshot)
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored snapshot {result['snapshot']}: {result['blobs']} blob(s), schema "
               f"version {result['schema_version']}; {result['search']}")
