"""`ged serve`: the web server and, in the embedded mode, everything it needs beside
it (a private Redis, the workers, the e-mail drop receiver, the outbox)."""

from __future__ import annotations

import os
import signal
import sys
import time

import click

from .. import runtime
from .common import parse_listen, setup


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


@click.command("serve")
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

    from ..fleet import EmbeddedRedis
    from ..processes import Supervisor

    cfg = Config.from_env()
    if not cfg.redis_url:
        other = runtime.running_server(cfg.data_dir)
        if other:
            raise click.ClickException(
                f"ged serve already runs on {cfg.data_dir} (pid {other.get('pid')}, "
                f"{other.get('url')}): stop it, or give this one its own GED_DATA_DIR")
    cfg = setup(cfg=cfg)
    _ensure_free(host, port, "the web server", "pass --port")
    listen = None
    if not no_smtpd:
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
            from .. import outbox as outbox_module

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
