"""`ged check`: do the database, Redis and the storage answer?"""

from __future__ import annotations

import sys

import click

from .common import setup


@click.command("check")
def check():
    """Check that the database, Redis and the storage answer."""
    from .. import health

    setup(migrate=False)
    result = health.checks()
    for key, value in result.items():
        click.echo(f"{key}: {value}")
    if any(v != "ok" for v in result.values()):
        sys.exit(1)
