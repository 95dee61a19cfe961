"""The run's environment: a temporary directory, Redis, the processes the benchmark
starts (gunicorn, workers), their peak memory, and ged bound in this process.

Every process the benchmark starts is registered here and stopped by ``close()``
(called from ``finally`` and at exit), in its own process group so gunicorn's
workers go with their master; each also gets SIGKILL from the kernel if the
benchmark itself dies (PR_SET_PDEATHSIG), so nothing outlives the run.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_URL = os.environ.get("GED_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")

# gunicorn as `ged serve` runs it: 2 processes, 4 threads each.
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4


def _die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the benchmark process dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mb(pid: int) -> float | None:
    """The peak resident memory of a live process (VmHWM), in MB."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


@dataclass
class Server:
    """A gunicorn serving an app on a loopback port."""

    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        return children(self.proc.pid)

    def peak_rss(self) -> float | None:
        """The largest peak RSS among the server's worker processes, in MB."""
        values = [v for v in (peak_rss_mb(p) for p in self.worker_pids()) if v is not None]
        return max(values) if values else None


@dataclass
class Database:
    """A database for one phase: a SQLite file, or a PostgreSQL schema of its own."""

    url: str
    kind: str  # sqlite | postgres
    schema: str | None = None


class Harness:
    """The run: temp dir, Redis, processes, and the peak memory seen."""

    def __init__(self, quick: bool, keep: bool = False):
        self.quick = quick
        self.keep = keep
        self.tmp = Path(tempfile.mkdtemp(prefix="ged-bench-"))
        self.procs: list[subprocess.Popen] = []
        self.redis = None
        self.redis_url: str | None = None
        self.external_redis = False
        self.secret_key = secrets.token_hex(24)
        self.memory: list[tuple[str, str, float]] = []  # (kind, label, MB)
        self.results: dict = {}  # figures one section hands to another
        self._schemas: list[str] = []
        self._closed = False
        # Every process of the run inherits this marker (the embedded Redis included), so a
        # leak is recognisable (see the smoke test) and stop() only touches our processes.
        os.environ["GED_BENCH_RUN"] = str(self.tmp)
        atexit.register(self.close)

    # --- services ---------------------------------------------------------------

    def start_redis(self) -> str:
        """REDIS_URL when set, else a private redis-server for this run."""
        url = os.environ.get("REDIS_URL")
        if url:
            self.redis_url, self.external_redis = url, True
        else:
            from ged.fleet import EmbeddedRedis

            self.redis = EmbeddedRedis(self.tmp / "redis").start()
            self.redis_url = self.redis.url
        return self.redis_url

    def redis_conn(self):
        import redis

        return redis.Redis.from_url(self.redis_url)

    def empty_queues(self, *extra: str) -> None:
        """Empty ged's queues (and ``extra``) between phases, without flushing a shared Redis."""
        from rq import Queue

        from ged import queue

        conn = self.redis_conn()
        for name in list(queue.QUEUES) + list(extra):
            Queue(name, connection=conn).empty()
        if not self.external_redis:
            conn.flushdb()

    def postgres_available(self) -> bool:
        return self.postgres_reachable()

    @staticmethod
    def postgres_reachable() -> bool:
        try:
            import psycopg2

            conn = psycopg2.connect(PG_URL, connect_timeout=3)
            conn.close()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not available"
            return False

    def database(self, name: str, kind: str = "sqlite") -> Database:
        """A fresh, empty database for a phase."""
        if kind == "sqlite":
            path = self.tmp / name / "data" / "ged.sqlite3"
            path.parent.mkdir(parents=True, exist_ok=True)
            return Database(f"sqlite:///{path}", "sqlite")
        import psycopg2

        safe = "".join(c if c.isalnum() else "_" for c in name.lower())
        schema = f"bench_{safe}_{uuid.uuid4().hex[:8]}"
        conn = psycopg2.connect(PG_URL, connect_timeout=5)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {schema}")
        conn.close()
        self._schemas.append(schema)
        sep = "&" if "?" in PG_URL else "?"
        return Database(f"{PG_URL}{sep}options=-csearch_path%3D{schema}", "postgres", schema)

    def data_dir(self, name: str) -> Path:
        path = self.tmp / name / "data"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def bind(self, name: str, database: Database, **overrides):
        """Bind ged in this process to a phase's database and data dir, schema migrated."""
        from config import Config
        from ged import runtime
        from ged.db import db
        from ged.schema import migrate

        if db.obj is not None:
            try:
                db.obj.close_all()
            except AttributeError:
                if not db.is_closed():
                    db.close()
        data_dir = self.data_dir(name)
        values = dict(
            data_dir=data_dir,
            database_url=database.url,
            redis_url=self.redis_url,
            secret_key=self.secret_key,
            storage_url=f"file://{data_dir / 'blobs'}",
            allow_private_targets=True,
            reconcile_interval=0,
            max_upload_bytes=50 * 1024 * 1024,
        )
        values.update(overrides)
        cfg = Config(**values)
        runtime.setup(cfg)
        migrate()
        return cfg

    def plain_env(self, **extra) -> dict:
        """The environment of a benchmark subprocess that is not ged (raw limits)."""
        env = dict(os.environ)
        env["REDIS_URL"] = self.redis_url or ""
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def ged_env(self, cfg, **extra) -> dict:
        """The environment of a ged subprocess sharing ``cfg``'s database and data dir."""
        env = dict(os.environ)
        env.update({
            "GED_DATA_DIR": str(cfg.data_dir),
            "DATABASE_URL": cfg.database_url,
            "REDIS_URL": self.redis_url,
            "SECRET_KEY": self.secret_key,
            "GED_STORAGE_URL": cfg.storage_url,
            "GED_ALLOW_PRIVATE_TARGETS": "1",
            "GED_RECONCILE_INTERVAL": "0",
            "GED_MAX_UPLOAD_MB": "50",
            "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        })
        env.update({k: str(v) for k, v in extra.items()})
        return env

    # --- processes --------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        """Start a process of the run (own process group, dies with the benchmark)."""
        log = self.tmp / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(log, "ab")
        env = dict(env or os.environ)
        env["GED_BENCH_RUN"] = str(self.tmp)  # marks the run's processes (see the smoke test)
        proc = subprocess.Popen(argv, env=env, cwd=str(ROOT), stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent)
        fh.close()
        proc.log_path = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 5.0) -> None:
        """Stop a process and its group: SIGTERM, then SIGKILL after ``grace``."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        # Members of its group that outlived the leader (gunicorn workers, OCR children),
        # recognised by this run's marker so no other process is ever touched.
        for pid in self._group_members(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc in self.procs:
            self.procs.remove(proc)

    def _group_members(self, pgid: int) -> list[int]:
        marker = f"GED_BENCH_RUN={self.tmp}".encode()
        members = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                if int(fields[2]) == pgid and marker in (entry / "environ").read_bytes():
                    members.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
        return members

    def gunicorn(self, name: str, app: str, env: dict, workers: int = GUNICORN_WORKERS,
                 threads: int = GUNICORN_THREADS) -> Server:
        """gunicorn serving ``app`` on a free loopback port, once /healthz answers."""
        port = free_port()
        proc = self.spawn(name, [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                                 "--workers", str(workers), "--threads", str(threads),
                                 "--timeout", "300", "--graceful-timeout", "5",
                                 "--log-level", "warning", app], env)
        server = Server(proc, port, proc.log_path)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(server.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{tail(server.log)}")
            time.sleep(0.1)
        # Both workers must be up before the load starts (the first answer came from one).
        deadline = time.monotonic() + 30
        while len(server.worker_pids()) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        return server

    def ged_worker(self, name: str, cfg, *, burst: bool = False, queues: list[str] | None = None,
                   **env_extra) -> subprocess.Popen:
        """A `ged worker` process against the phase's database and Redis."""
        argv = [sys.executable, "-m", "ged.cli", "worker"]
        if burst:
            argv.append("--burst")
        if queues:
            argv += ["--queues", ",".join(queues)]
        return self.spawn(name, argv, self.ged_env(cfg, **env_extra))

    def record_memory(self, kind: str, label: str, mb: float | None) -> None:
        """Remember a peak RSS (kind: web, worker, raw-web, raw-worker) for the memory section."""
        if mb is not None:
            self.memory.append((kind, label, mb))

    # --- end ---------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for proc in list(self.procs):
            self.stop(proc, grace=3)
        if self.redis is not None:
            self.redis.stop()
        drop_schemas(self._schemas)
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def drop_schemas(schemas) -> None:
    """Close ged's pooled connections, then drop the benchmark's PostgreSQL schemas
    (best effort: a failure is printed, never raised)."""
    schemas = list(schemas)
    if not schemas:
        return
    try:
        from ged.db import db

        if db.obj is not None and hasattr(db.obj, "close_all"):
            db.obj.close_all()
        import psycopg2

        conn = psycopg2.connect(PG_URL, connect_timeout=5)
        conn.autocommit = True
        with conn.cursor() as cur:
            for schema in schemas:
                cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.close()
    except Exception as exc:  # noqa: BLE001 - cleanup is best effort
        print(f"warning: could not drop benchmark schemas {schemas}: {exc}", file=sys.stderr)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile ``q`` (0-100) of ``values``."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]
