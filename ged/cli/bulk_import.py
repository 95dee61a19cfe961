"""`ged import`: a directory tree into a company's folders (resumable)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import GedError
from .common import company_and_folder, progress, setup


@click.command("import")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--company", "company_id", required=True, help="company id")
@click.option("--folder", "folder_id", default=None, help="target folder id (default: root)")
def import_tree(src, company_id, folder_id):
    """Import a directory tree into a company's folders (resumable)."""
    from .. import bulk_import

    setup()
    company, target = company_and_folder(company_id, folder_id)
    total = len(bulk_import.plan(src.resolve()).files)
    with progress(total, "import", unit="file") as bar:
        try:
            report = bulk_import.import_tree(src, company, target, progress=bar.update)
        except GedError as exc:
            raise click.ClickException(exc.message) from None
    click.echo(f"{report.deposited} deposited, {report.skipped} already there (skipped), "
               f"{len(report.refused)} refused, {report.folders_created} folder(s) created"
               + (f", {report.ignored} system file(s) left out" if report.ignored else ""))
    for relative, reason in report.refused:
        click.echo(f"refused: {relative}: {reason}")
    if report.refused:
        raise SystemExit(1)
