"""Several machines, for real: two `ged serve` hosts and one `ged worker` (three
workers in all), each with its own data dir, sharing PostgreSQL, a private Redis,
an S3 bucket (SeaweedFS) and the secret key, with the PostgreSQL search backend.

The stories: a document deposited through one host downloads byte-identical and
is found through the other, and its bytes are in the bucket and on no host's
disk; a folder switch delivers each document exactly once although three workers
run; killing one host (SIGKILL, web and worker) in the middle of a batch of
deposits and deliveries loses nothing.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, text_pdf
from fixtures.live import process_tree
from fixtures.receivers import WebhookReceiver

PG_URL = os.environ.get("GED_TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test"
PASSWORD = "multi-host password 2026"


def _pg_reachable() -> str | None:
    try:
        import psycopg2

        psycopg2.connect(PG_URL, connect_timeout=3).close()
        return None
    except Exception as exc:  # noqa: BLE001 - reported in the skip message
        return f"{type(exc).__name__}: {exc}".strip()


def _pg_admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(PG_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def wait_for(predicate, timeout: float, what: str):
    """Poll ``predicate`` until it returns something truthy; fail saying ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        time.sleep(0.2)


class SlowReceiver(WebhookReceiver):
    """The real receiver, taking a moment over each request, so deliveries are in
    flight when a host is killed."""

    delay = 0.25

    def _app(self, environ, start_response):
        time.sleep(self.delay)
        return super()._app(environ, start_response)


@dataclass
class Host:
    """One machine of the fleet: its processes (one process group) and data dir."""

    name: str
    data_dir: Path
    proc: subprocess.Popen
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self, sig=signal.SIGKILL) -> None:
        if sig == signal.SIGKILL:
            # `ged serve` runs each child in a group of its own, and they get SIGTERM (a
            # graceful stop) when it dies: kill every process of the host, children
            # first, as when the machine is lost.
            for pid in reversed(process_tree(self.proc.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self.kill(signal.SIGKILL)  # whatever of the group is left (gunicorn workers)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


@dataclass
class Fleet:
    env: dict
    hosts: dict
    token: str
    storage_prefix: str
    receiver: SlowReceiver
    seaweed: object
    extra: dict = field(default_factory=dict)

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def api(self, host: str, method: str, path: str, **kwargs) -> httpx.Response:
        kwargs.setdefault("timeout", 60)
        return httpx.request(method, self.hosts[host].url + "/api/v1" + path,
                             headers=self.headers, **kwargs)

    def deposit(self, host: str, folder_id: str, name: str, data: bytes) -> dict:
        r = self.api(host, "POST", f"/folders/{folder_id}/documents",
                     files={"file": (name, data, "application/pdf")})
        assert r.status_code == 201, r.text
        return r.json()["items"][0]

    def folder(self, host: str, folder_id: str) -> dict:
        r = self.api(host, "GET", f"/folders/{folder_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def child(self, host: str, folder_id: str, name_start: str) -> str:
        return next(c["id"] for c in self.folder(host, folder_id)["children"]
                    if c["name"].startswith(name_start))


def _ged(env: dict, *args: str, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "ged.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, **kwargs)
    assert done.returncode == 0, f"ged {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(name: str, argv: list[str], env: dict, data_dir: Path, port: int | None = None) -> Host:
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir.parent / f"{name}.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "ged.cli", *argv], cwd=ROOT,
                            env={**env, "GED_DATA_DIR": str(data_dir)}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return Host(name, data_dir, proc, port)


def _serve(name: str, env: dict, root: Path) -> Host:
    port = _free_port()
    host = _start(name, ["serve", "--no-smtpd", "--host", "127.0.0.1", "--port", str(port),
                         "--workers", "1"], env, root / name, port)

    def healthy():
        if host.proc.poll() is not None:
            log = (root / f"{name}.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"{name} exited:\n{log}")
        try:
            return httpx.get(host.url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 60, f"{name} to serve")
    return host


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, seaweed):
    reason = _pg_reachable()
    if reason:
        pytest.skip(f"PostgreSQL is unreachable at {PG_URL} ({reason}): multi-host tests skipped")
    from ged.fleet import EmbeddedRedis

    root = tmp_path_factory.mktemp("fleet")
    schema = "mh_" + uuid.uuid4().hex[:12]
    _pg_admin(f"CREATE SCHEMA {schema}")
    redis = EmbeddedRedis(root / "redis").start()
    receiver = SlowReceiver().start()
    prefix = f"mh-{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in PG_URL else "?"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GED_", "PYTEST"))},
        **seaweed.env,
        "DATABASE_URL": f"{PG_URL}{sep}options=-csearch_path%3D{schema}",
        "REDIS_URL": redis.url,
        "GED_STORAGE_URL": f"s3://{seaweed.bucket}/{prefix}",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "GED_SEARCH_BACKEND": "postgres",
        "GED_ALLOW_PRIVATE_TARGETS": "1",
        "GED_RECONCILE_INTERVAL": "2",
        "GED_DELIVERY_RETRY_SCHEDULE": "1,1,2,2,2",
        "GED_DELIVERY_CONNECT_TIMEOUT": "2",
        "GED_DELIVERY_TIMEOUT": "5",
        "GED_DATA_DIR": str(root / "admin"),
    }
    hosts: dict = {}
    try:
        _ged(env, "init")
        _ged(env, "create-firm", "Cabinet Multi", "--admin-email", "admin@multi.example",
             "--admin-password", PASSWORD)
        token = _ged(env, "token", "create", "--email", "admin@multi.example").stdout.strip()
        hosts["a"] = _serve("host-a", env, root)
        hosts["b"] = _serve("host-b", env, root)
        hosts["w"] = _start("worker", ["worker"], env, root / "worker")
        fleet = Fleet(env, hosts, token, prefix, receiver, seaweed)
        # A company with the annual tree, an http connection to the receiver.
        r = fleet.api("a", "POST", "/companies", json={"name": "Boulangerie Multi",
                                                       "template": "annual"})
        assert r.status_code == 201, r.text
        company = r.json()
        year = fleet.child("a", company["root_folder_id"], "Dossier comptable annuel")
        fleet.extra.update(company=company, year=year,
                           achats=fleet.child("a", year, "Achats"),
                           ventes=fleet.child("a", year, "Ventes"))
        r = fleet.api("a", "POST", "/integrations", json={"kind": "http", "name": "Outil"})
        assert r.status_code == 201, r.text
        r = fleet.api("b", "POST", f"/companies/{company['id']}/connections",
                      json={"integration_id": r.json()["id"], "url": receiver.hook()})
        assert r.status_code == 201, r.text
        fleet.extra["connection"] = r.json()
        receiver.secrets["connection"] = r.json()["secret"]
        yield fleet
    finally:
        for host in hosts.values():
            host.stop()
        receiver.stop()
        redis.stop()
        _pg_admin(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _files_with(data_dirs: list[Path], data: bytes) -> list[Path]:
    found = []
    for base in data_dirs:
        for path in base.rglob("*"):
            if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
                found.append(path)
    return found


def test_deposit_on_one_host_downloads_and_is_found_on_the_other(fleet):
    pdf = text_pdf("Facture multihote fournisseur Zébulon-Quincaillerie 2026")
    doc = fleet.deposit("a", fleet.extra["achats"], "facture-zebulon.pdf", pdf)

    r = fleet.api("b", "GET", f"/documents/{doc['id']}/file")
    assert r.status_code == 200 and r.content == pdf

    sha = hashlib.sha256(pdf).hexdigest()
    key = f"{fleet.storage_prefix}/{sha[:2]}/{sha[2:4]}/{sha}"
    assert key in fleet.seaweed.keys(fleet.storage_prefix + "/")

    def found():
        r = fleet.api("b", "GET", "/search", params={"q": "zébulon quincaillerie"})
        assert r.status_code == 200, r.text
        return r.json() if r.json()["total"] else None

    body = wait_for(found, 60, "the document to be searchable through host B")
    assert [i["document_id"] for i in body["items"]] == [doc["id"]]
    assert "<mark>" in body["items"][0]["snippet"]
    # Once its text is read (the extraction works on a temporary copy, removed after),
    # no host keeps the bytes.
    assert not _files_with([h.data_dir for h in fleet.hosts.values()], pdf)


def _switch_on(fleet, folder_id: str) -> None:
    r = fleet.api("a", "PUT", f"/folders/{folder_id}/switches/{fleet.extra['connection']['id']}",
                  json={"state": "on"})
    assert r.status_code == 200 and r.json()["effective"] is True, r.text


def _hits_by_document(fleet) -> dict:
    by_doc: dict = {}
    for hit in fleet.receiver.hits:
        if hit.metadata and hit.metadata.get("document_id"):
            by_doc.setdefault(hit.metadata["document_id"], []).append(hit)
    return by_doc


def _deliveries(fleet, doc_id: str, host: str = "b") -> list:
    r = fleet.api(host, "GET", f"/documents/{doc_id}/deliveries")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_folder_switch_delivers_each_document_once_with_three_workers(fleet):
    achats = fleet.extra["achats"]
    _switch_on(fleet, achats)
    docs = []
    for i in range(12):
        host = "a" if i % 2 else "b"
        docs.append(fleet.deposit(host, achats, f"achat-{i:02}.pdf", text_pdf(f"Achat numéro {i}")))
    ids = {d["id"] for d in docs}

    def all_accepted():
        return all(any(d["status"] == "accepted" for d in _deliveries(fleet, doc_id))
                   for doc_id in ids)

    wait_for(all_accepted, 90, "every delivery to be accepted")
    by_doc = _hits_by_document(fleet)
    for doc_id in ids:
        hits = by_doc.get(doc_id, [])
        assert len(hits) == 1, f"{doc_id} received {len(hits)} times"
        assert hits[0].verified_with == ["connection"], hits[0].errors
        assert hits[0].webhook_id == _deliveries(fleet, doc_id)[0]["id"]
    for doc in docs:
        assert fleet.api("a", "GET", f"/documents/{doc['id']}").json()["status"] == "validated"


def _undelivered_report(fleet, doc_ids) -> str:
    """Where each undelivered document's deliveries stand, in the database and in RQ:
    tells a delivery lost (nothing pending anywhere) from a late one."""
    import redis as redis_lib
    from rq.job import Job
    from rq.exceptions import NoSuchJobError

    conn = redis_lib.Redis.from_url(fleet.env["REDIS_URL"])
    by_doc = _hits_by_document(fleet)
    lines = []
    for doc_id in sorted(doc_ids):
        items = _deliveries(fleet, doc_id)
        if by_doc.get(doc_id) and any(d["status"] == "accepted" for d in items):
            continue
        for d in items:
            jobs = []
            for n in range(d["attempts"] + 1):
                job_id = f"delivery-{d['id']}" + (f"-{n}" if n else "")
                try:
                    job = Job.fetch(job_id, connection=conn)
                    jobs.append(f"{job_id}={job.get_status(refresh=False)}"
                                f"@{job.worker_name or '-'}")
                except NoSuchJobError:
                    pass
            lease = conn.ttl(f"ged:delivery-lease:{d['id']}")
            lines.append(f"  {doc_id}: {d['status']} attempts={d['attempts']} "
                         f"updated={d['updated_at']} next={d['next_attempt_at']} "
                         f"error={d['last_error']!r} lease_ttl={lease} jobs={jobs} "
                         f"hits={len(by_doc.get(doc_id, []))}")
        if not items:
            lines.append(f"  {doc_id}: no delivery at all")
    return "\n".join(lines)


def test_killing_a_host_mid_batch_loses_nothing(fleet, tally):
    tally.add("faults")
    ventes = fleet.extra["ventes"]
    _switch_on(fleet, ventes)
    acknowledged: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def depositor(prefix: str, first_host: str, count: int):
        host = first_host
        for i in range(count):
            data = text_pdf(f"Vente {prefix} numéro {i}")
            try:
                r = fleet.api(host, "POST", f"/folders/{ventes}/documents", timeout=30,
                              files={"file": (f"vente-{prefix}-{i:02}.pdf", data,
                                              "application/pdf")})
            except httpx.HTTPError:
                # The host died under the request, as a load balancer would see it:
                # send the next ones to the host that is left.
                host = "b"
                continue
            if r.status_code != 201:
                host = "b"
                continue
            with lock:
                acknowledged.append(r.json()["items"][0]["id"])
                if len(acknowledged) == 10 and not killed.is_set():
                    killed.set()
                    fleet.hosts["a"].kill()  # web, its worker and all: SIGKILL

    threads = [threading.Thread(target=depositor, args=("a", "a", 12)),
               threading.Thread(target=depositor, args=("b", "b", 12))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert killed.is_set() and fleet.hosts["a"].proc.wait(10) is not None

    # What the database holds (acknowledged deposits, and any whose reply was lost).
    listed = {d["id"] for d in fleet.folder("b", ventes)["documents"]}
    assert set(acknowledged) <= listed
    assert len(acknowledged) >= 20

    def everything_delivered():
        by_doc = _hits_by_document(fleet)
        if not all(by_doc.get(doc_id) for doc_id in listed):
            return False
        return all(any(d["status"] == "accepted" for d in _deliveries(fleet, doc_id))
                   for doc_id in listed)

    try:
        wait_for(everything_delivered, 120, "every document of the batch to be delivered")
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{_undelivered_report(fleet, listed)}") from None
    by_doc = _hits_by_document(fleet)
    for doc_id in listed:
        hits = by_doc[doc_id]
        assert all(h.verified_with == ["connection"] for h in hits)
        # Sent twice only when a worker died mid-send: the same webhook-id both times,
        # so the tool recognises the duplicate.
        assert len({h.webhook_id for h in hits}) == 1, [h.webhook_id for h in hits]


def test_periodic_work_starts_once_per_interval_across_the_fleet(app, redis_conn):
    """Every worker's timer asks; one pass starts per interval, whoever asks first."""
    from ged.fleet import periodic_turn

    assert periodic_turn("reconcile", 30) is True
    assert [periodic_turn("reconcile", 30) for _ in range(3)] == [False, False, False]
    assert periodic_turn("purge", 30) is True  # each kind of work has its own turn
    assert 0 < redis_conn.ttl("ged:periodic:reconcile") <= 30
