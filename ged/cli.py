"""The `ged` command. Every command reads the same configuration as the server
(GED_DATA_DIR, DATABASE_URL, REDIS_URL, ...)."""

from __future__ import annotations

import os
import signal
import sys
import time

import click

from . import runtime


def _setup(migrate: bool = True, need_redis: bool = False, cfg=None):
    """Bind this command to the configuration (and upgrade the schema). A command
    that cannot work without Redis says so clearly when none is configured or running."""
    from .queue import NO_REDIS

    cfg = runtime.setup(cfg)
    if need_redis and not cfg.redis_url:
        raise click.ClickException(NO_REDIS)
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

    _setup(need_redis=True)
    run(burst=burst, queues=queues.split(",") if queues else None)


@cli.command()
def reconcile():
    """Re-enqueue deliveries and extractions that the database says are pending."""
    from . import tasks

    _setup(need_redis=True)
    click.echo(tasks.reconcile())


def _worker_commands() -> list[tuple[str, list[str]]]:
    """The workers `ged serve` runs: (name, `ged` arguments) for each. One worker on
    the light queues (deliveries, indexing, cheap extraction) and one on the ``ocr``
    queue, so that a scan never holds back a delivery; a deployment that wants more
    runs `ged worker` beside it."""
    return [("worker", ["worker", "--queues", "light"]),
            ("ocr worker", ["worker", "--queues", "ocr"])]


def _served_url(host: str, port: int) -> str:
    """The address the web server is reached at when GED_PUBLIC_URL is unset."""
    import socket

    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _gunicorn_control_socket(data_dir) -> list[str]:
    """gunicorn 27's control socket, in the data dir: two instances must not share
    its default path. Nothing for an older gunicorn, which has none."""
    from gunicorn.config import KNOWN_SETTINGS

    if not any(setting.name == "control_socket" for setting in KNOWN_SETTINGS):
        return []
    return ["--control-socket", str(runtime.run_dir(data_dir) / "gunicorn.ctl")]


def _ensure_free(host: str, port: int, what: str, hint: str) -> None:
    """Fail clearly, before starting anything, when ``host:port`` is taken."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port} for {what} "
                                       f"({exc.strerror}): {hint}") from None


@cli.command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@click.option("--workers", "web_workers", default=2, type=int, help="gunicorn processes")
@click.option("--no-worker", is_flag=True, help="web only (run `ged worker` elsewhere)")
@click.option("--no-smtpd", is_flag=True, help="do not run the e-mail drop receiver")
@click.option("--smtpd-listen", default=None,
              help="host:port of the e-mail drop receiver (default GED_SMTPD_LISTEN)")
def serve(host, port, web_workers, no_worker, no_smtpd, smtpd_listen):
    """Run the web server, plus (embedded mode) a private Redis, a worker and the SMTP drop.

    SIGTERM, SIGINT (Ctrl-C) or SIGHUP stop every child within 20 seconds."""
    from config import Config

    from .processes import Supervisor
    from .queue import EmbeddedRedis

    cfg = Config.from_env()
    if not cfg.redis_url:
        other = runtime.running_server(cfg.data_dir)
        if other:
            raise click.ClickException(
                f"ged serve already runs on {cfg.data_dir} (pid {other.get('pid')}, "
                f"{other.get('url')}): stop it, or give this one its own GED_DATA_DIR")
    cfg = _setup(cfg=cfg)
    _ensure_free(host, port, "the web server", "pass --port")
    listen = None
    if not no_smtpd and _has_module("ged.smtpd"):
        from .smtpd import parse_listen

        listen = smtpd_listen or cfg.smtpd_listen
        _ensure_free(*parse_listen(listen), "the e-mail drop receiver",
                     "pass --smtpd-listen HOST:PORT (or --no-smtpd)")

    stop_signal: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: stop_signal.append(signum))

    env = dict(os.environ, GED_DATA_DIR=str(cfg.data_dir))
    public_url = os.environ.get("GED_PUBLIC_URL") or _served_url(host, port)
    env["GED_PUBLIC_URL"] = public_url
    embedded = outbox = None
    supervisor = Supervisor()
    status = 0
    try:
        if not cfg.redis_url:
            try:
                embedded = EmbeddedRedis(cfg.data_dir / "redis").start()
            except RuntimeError as exc:
                raise click.ClickException(str(exc)) from None
            embedded.forget_previous_run()
            env["REDIS_URL"] = embedded.url
            click.echo(f"embedded Redis on {embedded.address} "
                       f"(password in {embedded.data_dir / 'password'})")
        if not cfg.smtp_host:
            from . import outbox as outbox_module

            outbox = outbox_module.start(cfg.data_dir)
            env.update(GED_SMTP_HOST="127.0.0.1", GED_SMTP_PORT=str(outbox.port),
                       GED_SMTP_TLS="none")
            click.echo(f"no GED_SMTP_HOST: outgoing mail is kept in "
                       f"{outbox_module.outbox_dir(cfg.data_dir)} instead of being sent")
        ged = [sys.executable, "-m", "ged.cli"]
        if not no_worker:
            for name, args in _worker_commands():
                supervisor.add(name, ged + args, env)
        if listen:
            supervisor.add("smtpd", ged + ["smtpd", "--listen", listen], env)
        web = supervisor.add("web server", [
            sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}",
            "--workers", str(web_workers), "--threads", "4", "--timeout", "300",
            "--graceful-timeout", "10", "--access-logfile", "-",
            *_gunicorn_control_socket(cfg.data_dir), "ged.wsgi:app"],
            env, essential=True)
        supervisor.start()
        if embedded:
            runtime.write_runtime_file(cfg.data_dir, {
                "pid": os.getpid(), "redis_url": embedded.url, "url": public_url,
                "smtpd": listen, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        click.echo(f"ged serving on http://{host}:{port}"
                   + (f" (links point to {public_url})" if public_url != f"http://{host}:{port}" else ""))
        while not stop_signal:
            ended = supervisor.check()
            if ended is web:
                click.echo(f"ged serve: the web server exited (status {web.process.returncode}); "
                           "stopping", err=True)
                status = 1
                break
            time.sleep(0.2)
    finally:
        click.echo("ged serve: stopping")
        supervisor.stop()
        if outbox:
            outbox.stop()
        if embedded:
            runtime.remove_runtime_file(cfg.data_dir, os.getpid())
            embedded.stop()
    click.echo("ged serve: stopped")
    sys.exit(status)


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
    from .queue import NoRedis

    _register_extensions()
    try:
        cli(prog_name="ged")
    except NoRedis as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
