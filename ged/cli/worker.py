"""`ged worker` and `ged reconcile`: the background work against REDIS_URL."""

from __future__ import annotations

import click

from .common import setup


@click.command("worker")
@click.option("--burst", is_flag=True, help="process what is queued, then exit")
@click.option("--queues", default=None, help="comma-separated queues (default: all)")
def worker(burst, queues):
    """Run a worker (deliveries, extraction, indexing) against REDIS_URL."""
    from ..worker import run

    setup(need_redis=True)
    run(burst=burst, queues=queues.split(",") if queues else None)


@click.command("reconcile")
def reconcile():
    """Re-enqueue deliveries and extractions that the database says are pending."""
    from .. import jobs

    setup(need_redis=True)
    click.echo(jobs.reconcile())
