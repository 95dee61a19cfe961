"""`ged init` (the schema and the storage) and `ged demo` (a firm to try ged with)."""

from __future__ import annotations

import click

from .. import runtime
from .common import setup

DEMO_PASSWORD = "demo-password-2026"


@click.command("init")
def init():
    """Create or upgrade the database schema (idempotent) and prepare the storage."""
    from .. import schema, search

    cfg = runtime.setup()
    version = schema.migrate()
    runtime.store().ensure()
    search.init_backend()
    click.echo(f"schema at version {version}; data dir {cfg.data_dir}")


@click.command("demo")
def demo():
    """Create the demo firm "Cabinet Démo" (idempotent) and print its logins."""
    from .. import demo as demo_data

    setup()
    logins = demo_data.ensure(DEMO_PASSWORD)
    click.echo("Demo logins (password for all: %s):" % DEMO_PASSWORD)
    for role, email in logins:
        click.echo(f"  {role:<8} {email}")
