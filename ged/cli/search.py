"""`ged reindex`: rebuild the search index from the database (the source of truth)."""

from __future__ import annotations

import click

from .. import search
from ..db import db
from ..models import Firm
from .common import setup


@click.command("reindex")
@click.option("--firm", "firm_id", default=None, help="firm id (default: every firm)")
def reindex(firm_id):
    """Rebuild the search index from the database (the source of truth)."""
    setup()
    with db.connection_context():
        if firm_id and not Firm.select().where(Firm.id == firm_id).exists():
            raise click.ClickException(f"no firm {firm_id}")
        search.init_backend()
        done = search.reindex(firm_id, progress=True)
    for fid, count in done.items():
        click.echo(f"firm {fid}: {count} document(s) indexed")
