"""`ged export`: a company (or one folder) as a ZIP file with its manifests."""

from __future__ import annotations

from pathlib import Path

import click

from .common import company_and_folder, progress, setup


@click.command("export")
@click.option("--company", "company_id", required=True, help="company id")
@click.option("--folder", "folder_id", default=None, help="only this folder and below")
@click.option("--for-client", is_flag=True,
              help="the copy for the client: no firm-only folder, no firm-only event")
@click.argument("out", type=click.Path(dir_okay=False, writable=True, path_type=Path))
def export(company_id, folder_id, for_client, out):
    """Export a company's documents (or one folder's) as a ZIP with its manifests."""
    from .. import export as exports

    setup()
    company, folder = company_and_folder(company_id, folder_id)
    built = exports.build(None, company, folder, for_client=for_client)
    with progress(built.size, "export") as bar:
        written = exports.write(built, out, bar.update)
    click.echo(f"{built.documents} document(s), {written} bytes written to {out}")
