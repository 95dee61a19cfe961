"""The `ged` command. Every command reads the same configuration as the server
(GED_DATA_DIR, DATABASE_URL, REDIS_URL, ...)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click

from . import runtime


def _setup(migrate: bool = True):
    cfg = runtime.setup()
    if migrate:
        from .schema import migrate as run_migrations

        run_migrations()
    return cfg


@click.group()
def cli():
    """ged: document management for accounting firms."""


@cli.command()
def init():
    """Create or upgrade the database schema (idempotent) and prepare the storage."""
    from . import schema

    cfg = runtime.setup()
    version = schema.migrate()
    store = runtime.store()
    if hasattr(store, "ensure"):
        store.ensure()
    try:
        from . import search

        search.init_backend()
    except (ImportError, AttributeError):
        pass
    click.echo(f"schema at version {version}; data dir {cfg.data_dir}")


@cli.command("create-firm")
@click.argument("name")
@click.option("--admin-email", required=True)
@click.option("--admin-password", required=True)
@click.option("--admin-name", default=None)
def create_firm(name, admin_email, admin_password, admin_name):
    """Create a firm and its first admin."""
    from . import accounts
    from .errors import GedError

    _setup()
    try:
        firm, admin = accounts.create_firm(name, admin_email, admin_password, admin_name)
    except GedError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"firm {firm.id} created; admin {admin.email} ({admin.id})")


@cli.command("create-user")
@click.option("--firm", "firm_id", default=None, help="firm id (default: the only firm)")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["admin", "staff", "client"]), required=True)
@click.option("--company", "company_id", default=None, help="company id, for a client user")
@click.option("--password", default=None)
def create_user(firm_id, email, name, role, company_id, password):
    """Create a user."""
    from . import accounts
    from .errors import GedError
    from .models import Company

    _setup()
    firm = _firm(firm_id)
    company = Company.get_or_none((Company.id == company_id) & (Company.firm == firm.id)) if company_id else None
    if company_id and company is None:
        raise click.ClickException("unknown company")
    try:
        user = accounts.create_user("ged create-user", firm, email=email, name=name, role=role,
                                    company=company, password=password)
    except GedError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"user {user.email} created ({user.id})")


def _firm(firm_id):
    from .models import Firm

    if firm_id:
        firm = Firm.get_or_none(Firm.id == firm_id)
    else:
        firms = list(Firm.select().limit(2))
        if len(firms) > 1:
            raise click.ClickException("several firms exist: pass --firm")
        firm = firms[0] if firms else None
    if firm is None:
        raise click.ClickException("no such firm")
    return firm


@cli.group()
def token():
    """API tokens."""


@token.command("create")
@click.option("--email", required=True, help="the user the token acts as")
@click.option("--name", default="cli")
@click.option("--expires-in-days", type=int, default=None)
def token_create(email, name, expires_in_days):
    """Create an API token and print it (shown once)."""
    from . import accounts
    from .models import User

    _setup()
    user = User.get_or_none(User.email == email.strip().lower())
    if user is None:
        raise click.ClickException("no such user")
    _tok, plain = accounts.create_token("ged token create", user, name, expires_in_days)
    click.echo(plain)


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id):
    """Revoke an API token by its id."""
    from . import accounts
    from .models import ApiToken

    _setup()
    tok = ApiToken.get_or_none(ApiToken.id == token_id)
    if tok is None:
        raise click.ClickException("no such token")
    accounts.revoke_token("ged token revoke", tok)
    click.echo("revoked")


DEMO_PASSWORD = "demo-password-2026"


@cli.command()
def demo():
    """Create the demo firm "Cabinet Démo" (idempotent) and print its logins."""
    from . import demo as demo_data

    _setup()
    logins = demo_data.ensure(DEMO_PASSWORD)
    click.echo("Demo logins (password for all: %s):" % DEMO_PASSWORD)
    for role, email in logins:
        click.echo(f"  {role:<8} {email}")


@cli.command()
@click.option("--burst", is_flag=True, help="process what is queued, then exit")
@click.option("--queues", default=None, help="comma-separated queues (default: all)")
def worker(burst, queues):
    """Run a worker (deliveries, extraction, indexing) against REDIS_URL."""
    from .worker import run

    _setup()
    run(burst=burst, queues=queues.split(",") if queues else None)


@cli.command()
def reconcile():
    """Re-enqueue deliveries and extractions that the database says are pending."""
    from . import tasks

    _setup()
    click.echo(tasks.reconcile())


@cli.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@click.option("--workers", "web_workers", default=2, type=int, help="gunicorn processes")
@click.option("--no-worker", is_flag=True, help="web only (run `ged worker` elsewhere)")
@click.option("--no-smtpd", is_flag=True, help="do not run the e-mail drop receiver")
def serve(host, port, web_workers, no_worker, no_smtpd):
    """Run the web server, plus (embedded mode) a private Redis, a worker and the SMTP drop."""
    from .queue import EmbeddedRedis

    cfg = _setup()
    env = dict(os.environ)
    embedded = None
    if not cfg.redis_url:
        embedded = EmbeddedRedis(cfg.data_dir / "redis").start()
        env["REDIS_URL"] = embedded.url
        click.echo(f"embedded Redis on {embedded.url}")
    env["GED_DATA_DIR"] = str(cfg.data_dir)
    outbox = None
    if not cfg.smtp_host:
        from . import outbox as outbox_module

        outbox = outbox_module.start(cfg.data_dir)
        env.update(GED_SMTP_HOST="127.0.0.1", GED_SMTP_PORT=str(outbox.port), GED_SMTP_TLS="none")
        click.echo(f"no GED_SMTP_HOST: outgoing mail is kept in "
                   f"{outbox_module.outbox_dir(cfg.data_dir)} instead of being sent")
    children: list[subprocess.Popen] = []
    me = [sys.executable, "-m", "ged.cli"]
    if not no_worker:
        children.append(subprocess.Popen(me + ["worker"], env=env))
    if not no_smtpd and _has_module("ged.smtpd"):
        children.append(subprocess.Popen(me + ["smtpd"], env=env))
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}",
                            "--workers", str(web_workers), "--threads", "4",
                            "--timeout", "300", "--graceful-timeout", "10",
                            "--access-logfile", "-", "ged.wsgi:app"], env=env)
    children.append(web)
    click.echo(f"ged serving on http://{host}:{port}")

    def stop(*_):
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded:
            embedded.stop()
        if outbox:
            outbox.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while True:
            for child in children:
                if child.poll() is not None:
                    if child is web:
                        click.echo("web server exited", err=True)
                        stop()
                    # A worker or smtpd that died is restarted: deposits keep flowing.
                    idx = children.index(child)
                    children[idx] = subprocess.Popen(child.args, env=env)
            time.sleep(1)
    finally:
        stop()


def company_and_folder(company_id: str, folder_id: str | None):
    """The --company and --folder options of a command: (company, folder or None), or a
    clear error when either does not exist (or the folder is in the trash)."""
    from .models import Company, Folder

    company = Company.get_or_none(Company.id == company_id)
    if company is None:
        raise click.ClickException("no such company")
    folder = None
    if folder_id:
        folder = Folder.get_or_none((Folder.id == folder_id) & (Folder.company == company.id))
        if folder is None or folder.trashed_at is not None:
            raise click.ClickException("no such folder in this company")
    return company, folder


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@cli.command()
def check():
    """Check that the database, Redis and the storage answer."""
    from . import health

    _setup(migrate=False)
    result = health.checks()
    for key, value in result.items():
        click.echo(f"{key}: {value}")
    if any(v != "ok" for v in result.values()):
        sys.exit(1)


def _register_extensions() -> None:
    """Commands that live in the module of their noun (import, smtpd, reindex, ...)."""
    import importlib

    for module_name in ("ged.smtpd", "ged.bulk_import", "ged.search", "ged.integrity",
                        "ged.archive"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        for command in getattr(module, "COMMANDS", []):
            cli.add_command(command)


def main():
    _register_extensions()
    cli(prog_name="ged")


if __name__ == "__main__":
    main()
