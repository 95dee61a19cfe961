"""`ged purge` and `ged erase-user`: what retention allows to go, and a departed
user's personal data."""

from __future__ import annotations

import click

from ..errors import Conflict
from ..models import User
from .common import setup


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="list what would be removed, remove nothing")
def purge(dry_run):
    """Permanently remove trashed documents whose retention has ended."""
    from .. import archive

    setup()
    result = archive.purge(dry_run=dry_run)
    for entry in result["documents"]:
        click.echo(f"{'would remove' if dry_run else 'removed'}: {entry['name']} "
                   f"({entry['sha256'][:12]}, trashed {entry['trashed_at'][:10]} by "
                   f"{entry['trashed_by'] or '?'}, kept until {entry['retain_until'] or '-'})")
    for entry in result["kept"]:
        click.echo(f"kept: {entry['name']}: {entry['reason']}")
    if dry_run:
        click.echo(f"{len(result['documents'])} document(s) would be removed (dry run)")
    else:
        click.echo(f"{result['removed']} document(s) removed, {result['blobs_freed']} blob(s) freed")


@click.command("erase-user")
@click.argument("email")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def erase_user(email, yes):
    """Erase a departed user's personal data; their documents and the audit trail stay."""
    from .. import archive

    setup()
    user = User.get_or_none(User.email == email.strip().lower())
    if user is None:
        raise click.ClickException("no such user")
    if not yes:
        click.confirm(f"Erase the personal data of {user.name} <{user.email}>? This cannot "
                      "be undone", abort=True)
    try:
        name = archive.erase_user("ged erase-user", user)
    except Conflict as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"erased; their documents and audit events now name {name!r}")
