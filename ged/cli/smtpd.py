"""`ged smtpd`: the e-mail drop receiver (``ged.smtpd``) in the foreground."""

from __future__ import annotations

import signal
import threading

import click

from .common import parse_listen, setup


@click.command("smtpd")
@click.option("--listen", default=None, help="host:port (default GED_SMTPD_LISTEN)")
def smtpd(listen):
    """Receive the e-mail drop mail (attachments to <token>@GED_MAIL_DOMAIN)."""
    from ..smtpd import make_controller

    cfg = setup()
    host, port = parse_listen(listen or cfg.smtpd_listen)
    controller = make_controller(host, port)
    controller.start()
    click.echo(f"ged smtpd receiving mail for @{cfg.mail_domain} on {host}:{port}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1):
        pass
    controller.stop()
