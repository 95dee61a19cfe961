"""`ged serve` as a process, for real: the command a user runs (`make run`), on a
temporary data dir and free ports, with its private Redis, worker, drop receiver and
gunicorn. It stops whole and clean on SIGTERM (systemd) and on Ctrl-C (SIGINT to the
terminal's group); every other command finds its Redis while it runs, and says
clearly when none runs; its Redis wants a password; two run side by side; and a
retry due after a crash and a restart runs on time."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import redis as redis_lib

from conftest import ROOT, text_pdf
from fixtures.faults import wait_for
from fixtures.live import alive, kill_tree, process_tree
from fixtures.receivers import free_port

NO_REDIS = "no embedded Redis is running; start `ged serve` or set REDIS_URL"


def _env(data_dir: Path, **extra) -> dict:
    """The environment of a user's shell: nothing of the test suite's Redis or data."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GED_", "PYTEST")) and k not in ("REDIS_URL", "DATABASE_URL")}
    env.update({k: v for k, v in os.environ.items() if k.startswith("GED_PASSWORD_HASH_")})
    env.update(GED_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", **extra)
    return env


def ged(data_dir: Path, *args: str, **extra) -> subprocess.CompletedProcess:
    """Run the `ged` command on a data dir (as a user would, in another terminal)."""
    return subprocess.run([sys.executable, "-m", "ged.cli", *args], cwd=ROOT,
                          env=_env(data_dir, **extra), capture_output=True, text=True,
                          timeout=120)


class Serve:
    """`ged serve` in a process group of its own, as a terminal runs it."""

    def __init__(self, data_dir: Path, port: int | None = None, smtpd_port: int | None = None,
                 extra_args: tuple = (), **extra_env):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.smtpd_port = smtpd_port or free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log = data_dir.parent / f"serve-{data_dir.name}-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ged.cli", "serve", "--port", str(self.port),
                 "--smtpd-listen", f"127.0.0.1:{self.smtpd_port}", "--workers", "1",
                 *extra_args],
                cwd=ROOT, env=_env(data_dir, **extra_env), stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> "Serve":
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"ged serve exited:\n{self.output()[-3000:]}")
            if "receiving mail" not in self.output():
                return False
            try:
                return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, 0.2, "ged serve to answer /healthz")
        return self

    def tree(self) -> dict[int, str]:
        """Every process of the server: pid -> command line."""
        found = {}
        for pid in process_tree(self.proc.pid):
            try:
                found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                pass
        return found

    def runtime(self) -> dict:
        return json.loads((self.data_dir / "run" / "embedded.json").read_text())

    def stop(self) -> None:
        """End of test: SIGTERM, then SIGKILL to whatever is left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(25)
            except subprocess.TimeoutExpired:
                pass
        kill_tree(self.proc.pid)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture
def serve(tmp_path):
    """``serve(data_dir=None, **env)`` starts `ged serve`; all are stopped at the end."""
    started: list[Serve] = []

    def start(data_dir: Path | None = None, **kwargs) -> Serve:
        server = Serve(data_dir or tmp_path / f"data{len(started)}", **kwargs)
        started.append(server)
        return server.wait_ready()

    yield start
    for server in started:
        server.stop()


def _bindable(port: int) -> bool:
    """What the next `ged serve` does: bind the port (SO_REUSEADDR, as gunicorn does)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _assert_stopped_cleanly(server: Serve, tree: dict[int, str]) -> None:
    """Every process gone, exit 0, no traceback, the ports free, the runtime file gone."""
    assert server.proc.wait(20) == 0, server.output()[-3000:]
    still = {pid: cmd for pid, cmd in tree.items() if alive(pid)}
    assert not still, f"left running after ged serve exited: {still}"
    output = server.output()
    assert "Traceback" not in output, output[-3000:]
    assert "ged serve: stopped" in output
    assert _bindable(server.port) and _bindable(server.smtpd_port)
    assert not (server.data_dir / "run" / "embedded.json").exists()


def _kinds(tree: dict[int, str]) -> set[str]:
    kinds = set()
    for cmd in tree.values():
        for kind in ("redis-server", "ged.cli worker", "ged.cli smtpd", "gunicorn"):
            if kind in cmd:
                kinds.add(kind)
    return kinds


def test_sigterm_stops_every_child_and_commands_find_the_running_redis(serve):
    server = serve()
    tree = server.tree()
    assert _kinds(tree) == {"redis-server", "ged.cli worker", "ged.cli smtpd", "gunicorn"}

    # Another terminal: `ged check` and `ged reconcile` find the embedded Redis.
    check = ged(server.data_dir, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "redis: ok" in check.stdout
    reconcile = ged(server.data_dir, "reconcile")
    assert reconcile.returncode == 0, reconcile.stderr

    # The Redis runs pickled jobs: it refuses whoever lacks the password, which only
    # ged's user can read.
    runtime_file = server.data_dir / "run" / "embedded.json"
    password_file = server.data_dir / "redis" / "password"
    assert stat.S_IMODE(runtime_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((server.data_dir / "redis").stat().st_mode) == 0o700
    url = urlparse(server.runtime()["redis_url"])
    assert url.password == password_file.read_text().strip()
    stranger = redis_lib.Redis(host=url.hostname, port=url.port, socket_connect_timeout=2)
    with pytest.raises(redis_lib.AuthenticationError):
        stranger.ping()
    with pytest.raises(redis_lib.AuthenticationError):
        stranger.execute_command("KEYS", "*")
    assert redis_lib.Redis.from_url(server.runtime()["redis_url"]).ping()
    assert url.password not in server.output()  # never printed
    for pid, cmd in server.tree().items():
        assert url.password not in cmd, f"the password is visible in ps: {cmd}"

    server.proc.send_signal(signal.SIGTERM)  # what systemd sends the main process
    _assert_stopped_cleanly(server, tree)

    # Once it has stopped, commands say so instead of failing obscurely.
    for args in (["check"], ["reconcile"], ["worker", "--burst"]):
        done = ged(server.data_dir, *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert NO_REDIS in done.stdout + done.stderr
        assert "Traceback" not in done.stderr


def test_ctrl_c_to_the_terminal_group_stops_everything(serve):
    server = serve()
    tree = server.tree()
    os.killpg(server.proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
    _assert_stopped_cleanly(server, tree)
    # And the next `make run` starts on the same ports.
    again = serve(server.data_dir, port=server.port, smtpd_port=server.smtpd_port)
    assert httpx.get(again.url + "/healthz").status_code == 200


def test_two_instances_side_by_side(serve, tmp_path):
    first = serve(tmp_path / "cabinet-a")
    second = serve(tmp_path / "cabinet-b")
    for server in (first, second):
        check = ged(server.data_dir, "check")
        assert check.returncode == 0 and "redis: ok" in check.stdout, check.stdout
    assert first.runtime()["redis_url"] != second.runtime()["redis_url"]

    # A third on the first's data dir, or on its drop port, is refused clearly.
    same_dir = Serve(first.data_dir)
    assert same_dir.proc.wait(60) == 1
    assert "already runs on" in same_dir.output()
    same_smtpd = Serve(tmp_path / "cabinet-c", smtpd_port=first.smtpd_port)
    assert same_smtpd.proc.wait(60) == 1
    assert "--smtpd-listen" in same_smtpd.output()
    assert "Traceback" not in same_dir.output() + same_smtpd.output()
    for server in (first, second):
        assert httpx.get(server.url + "/healthz").status_code == 200


@pytest.mark.slow
def test_a_retry_after_a_crash_and_restart_runs_on_time(serve, tmp_path, webhook_receiver):
    data_dir = tmp_path / "cabinet"
    env = dict(GED_ALLOW_PRIVATE_TARGETS="1", GED_DELIVERY_RETRY_SCHEDULE="20,20")
    assert ged(data_dir, "create-firm", "Cabinet Serve", "--admin-email", "admin@serve.example",
               "--admin-password", "a-long-password-1", **env).returncode == 0
    token = ged(data_dir, "token", "create", "--email", "admin@serve.example").stdout.strip()
    server = serve(data_dir, **env)

    def api(method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, f"{server.url}/api/v1{path}", timeout=30,
                             headers={"Authorization": f"Bearer {token}"}, **kwargs)

    company = api("POST", "/companies", json={"name": "Boulangerie Serve"}).json()
    doc = api("POST", f"/folders/{company['root_folder_id']}/documents",
              files={"file": ("facture.pdf", text_pdf(), "application/pdf")}).json()["items"][0]
    tool = api("POST", "/integrations", json={"kind": "http", "name": "Outil"}).json()
    conn = api("POST", f"/companies/{company['id']}/connections",
               json={"integration_id": tool["id"], "url": webhook_receiver.hook()}).json()
    webhook_receiver.answer(503)  # the tool is down for the first attempt
    sent = api("POST", f"/documents/{doc['id']}/deliveries", json={"connection_id": conn["id"]})
    assert sent.status_code == 202, sent.text
    delivery_id = sent.json()["id"]

    def attempted():
        items = api("GET", f"/documents/{doc['id']}/deliveries").json()["items"]
        return any(d["id"] == delivery_id and d["attempts"] == 1 and d["status"] != "sending"
                   for d in items)

    wait_for(attempted, 30, 0.2, "the first attempt to be recorded")
    first = webhook_receiver.to()[0]
    # The status URL names the address actually served (no GED_PUBLIC_URL set).
    assert first.metadata["status_url"] == (
        f"http://127.0.0.1:{server.port}/api/v1/deliveries/{delivery_id}/status")

    kill_tree(server.proc.pid)  # the machine dies: every process at once
    server.proc.wait(10)
    # Its runtime file is left behind, but nothing believes it.
    assert (data_dir / "run" / "embedded.json").exists()
    check = ged(data_dir, "check")
    assert check.returncode == 1 and NO_REDIS in check.stdout

    restarted = serve(data_dir, port=server.port, **env)
    due = first.at + 20
    # Before the fix, the dead worker's scheduler lock (reloaded by the private Redis)
    # kept the new scheduler off for ten minutes.
    wait_for(lambda: len(webhook_receiver.to()) >= 2, max(5.0, due - time.time()) + 25, 0.2,
             "the retry to arrive")
    retry = webhook_receiver.to()[1]
    assert retry.webhook_id == first.webhook_id
    assert retry.metadata["status_url"] == first.metadata["status_url"]
    assert restarted.proc.poll() is None


def test_stopping_mid_job_puts_the_job_back_and_leaves_no_process(serve, tmp_path):
    from rq import Queue
    from rq.job import Job

    from ged.fleet import EmbeddedRedis

    server = serve(GED_WORKER_STOP_GRACE="2")
    pid_file = tmp_path / "grandchild.pid"
    queue = Queue("default", connection=redis_lib.Redis.from_url(server.runtime()["redis_url"]))
    # A job that starts a process which starts another (as OCR does: a parsing child
    # runs Tesseract), then waits for it far longer than anyone waits for a stop.
    job = queue.enqueue("subprocess.run", ["sh", "-c", f"sleep 347 & echo $! > {pid_file}; wait"],
                        job_timeout=600)
    wait_for(pid_file.exists, 30, 0.1, "the job to start its processes")
    wait_for(lambda: pid_file.read_text().strip(), 5, 0.1, "the grandchild's pid")
    grandchild = int(pid_file.read_text())
    tree = server.tree()
    assert grandchild in tree

    server.proc.send_signal(signal.SIGTERM)
    _assert_stopped_cleanly(server, tree)
    assert not alive(grandchild)
    assert "abandoned by the stopping worker" in server.output()

    # The job is back on its queue: the next start runs it again.
    redis = EmbeddedRedis(server.data_dir / "redis").start()
    try:
        again = Job.fetch(job.id, connection=redis_lib.Redis.from_url(redis.url))
        assert again.get_status() == "queued"
        assert job.id in Queue("default", connection=again.connection).job_ids
    finally:
        redis.stop()
