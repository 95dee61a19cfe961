"""The `ged` command. Every command reads the same configuration as the server
(GED_DATA_DIR, DATABASE_URL, REDIS_URL, ...); each lives in the module of its noun
and is registered here."""

from __future__ import annotations

import sys

import click

from . import (accounts, archive, backup, bulk_import, export, health, install, integrity,
               search, serve, smtpd, worker)


@click.group()
def cli():
    """ged: document management for accounting firms."""


cli.add_command(install.init)
cli.add_command(install.demo)
cli.add_command(accounts.create_firm)
cli.add_command(accounts.create_user)
cli.add_command(accounts.token)
cli.add_command(serve.serve)
cli.add_command(worker.worker)
cli.add_command(worker.reconcile)
cli.add_command(smtpd.smtpd)
cli.add_command(health.check)
cli.add_command(bulk_import.import_tree)
cli.add_command(export.export)
cli.add_command(archive.purge)
cli.add_command(archive.erase_user)
cli.add_command(backup.backup)
cli.add_command(backup.restore)
cli.add_command(integrity.fsck)
cli.add_command(integrity.audit)
cli.add_command(search.reindex)


def main():
    """The console script: `ged ...` (also `python -m ged.cli ...`)."""
    from ..fleet import NoRedis

    try:
        cli(prog_name="ged")
    except NoRedis as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
