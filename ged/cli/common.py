"""What every command shares: binding to the configuration, the --company/--folder
and --firm options, listen addresses, and progress bars."""

from __future__ import annotations

import click

from .. import runtime
from ..fleet import NO_REDIS
from ..models import Company, Firm, Folder
from ..schema import migrate as run_migrations


def setup(migrate: bool = True, need_redis: bool = False, cfg=None):
    """Bind this command to the configuration (and upgrade the schema). A command
    that cannot work without Redis says so clearly when none is configured or running."""
    cfg = runtime.setup(cfg)
    if need_redis and not cfg.redis_url:
        raise click.ClickException(NO_REDIS)
    if migrate:
        run_migrations()
    return cfg


def company_and_folder(company_id: str, folder_id: str | None):
    """The --company and --folder options of a command: (company, folder or None), or a
    clear error when either does not exist (or the folder is in the trash)."""
    company = Company.get_or_none(Company.id == company_id)
    if company is None:
        raise click.ClickException("no such company")
    folder = None
    if folder_id:
        folder = Folder.get_or_none((Folder.id == folder_id) & (Folder.company == company.id))
        if folder is None or folder.trashed_at is not None:
            raise click.ClickException("no such folder in this company")
    return company, folder


def firm(firm_id: str | None) -> Firm:
    """The --firm option: that firm, or the only one when none is given."""
    if firm_id:
        found = Firm.get_or_none(Firm.id == firm_id)
    else:
        firms = list(Firm.select().limit(2))
        if len(firms) > 1:
            raise click.ClickException("several firms exist: pass --firm")
        found = firms[0] if firms else None
    if found is None:
        raise click.ClickException("no such firm")
    return found


def parse_listen(listen: str) -> tuple[str, int]:
    """(host, port) of a ``host:port`` listen address (``[::1]:25`` for IPv6)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def progress(total: int, desc: str, unit: str = "B"):
    """A progress bar on a terminal (none when the output is not one)."""
    from tqdm import tqdm

    if unit == "B":
        return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                    disable=None)
    return tqdm(total=total, unit=unit, desc=desc, disable=None)
