"""Faults, injected for real: a worker process SIGKILLed in the middle of a hundred
deliveries, Redis restarted empty (and down during deposits), the tool's HTTP server
down then back, the mail relay down then deferring then accepting, the web server
SIGKILLed under concurrent uploads, the search index corrupted, fifty uploads at
once into SQLite through a multi-process, multi-threaded server. Each ends the same
way: every delivery done (at least once, duplicates with the same webhook-id), no
document lost, nothing half-written, and no error a user should never see.

The long ones are marked ``slow``: CI runs them (GED_SLOW_TESTS=1), a plain local run
skips them (see tests/fixtures/faults.py). tests/test_forwarding.py and
tests/test_archive.py hold the single-delivery and single-upload versions.
"""

from __future__ import annotations

import html
import io
import os
import threading
import time

import httpx
import pytest

from conftest import text_pdf
from fixtures.faults import wait_for

ANNUAL = "Dossier comptable annuel 2026"


def _statuses(connection_id: str) -> dict:
    from ged.db import db
    from ged.models import Delivery

    with db.connection_context():
        return {d.id: (d.status, d.attempts) for d in
                Delivery.select().where(Delivery.connection == connection_id)}


def _hook(firm_tools, world, receiver) -> dict:
    """An http connection of company A to ``receiver``, switched on in Achats."""
    conn = firm_tools.connect(world.company_a, firm_tools.install("webhook", "Webhook"),
                              url=receiver.hook())
    receiver.secrets["current"] = conn["secret"]
    firm_tools.switch(world.folder(world.company_a, ANNUAL, "Achats"), conn, "on")
    return conn


def _deposit_many(firm_tools, world, n: int, prefix: str) -> list[str]:
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    return [firm_tools.upload(achats, f"{prefix}-{i:03d}.pdf", text_pdf(f"{prefix} {i}"))["id"]
            for i in range(n)]


def _assert_delivered_at_least_once(receiver, conn_id: str, doc_ids: list[str]) -> int:
    """Every delivery accepted; every one reached the tool, each request signed and
    carrying its delivery's id as webhook-id and its own document; returns the number
    of duplicates the tool received."""
    from ged.models import Delivery

    deliveries = {d.id: d for d in Delivery.select().where(Delivery.connection == conn_id)}
    assert {d.document_id for d in deliveries.values()} == set(doc_ids)
    assert {d.status for d in deliveries.values()} == {"accepted"}
    hits = [h for h in receiver.hits if h.file is not None]
    assert all(h.verified_with == ["current"] for h in hits), [h.errors for h in hits]
    assert {h.webhook_id for h in hits} == set(deliveries)
    for hit in hits:
        assert hit.metadata["delivery_id"] == hit.webhook_id
        assert hit.metadata["document_id"] == deliveries[hit.webhook_id].document_id
    return len(hits) - len(deliveries)


# --- the worker, Redis, the tool and the relay ------------------------------------------------


@pytest.mark.slow
def test_a_worker_killed_in_the_middle_of_100_deliveries_loses_none(
        app, world, firm_tools, webhook_receiver, ged_worker, tally):
    """A real `ged worker` sends thirty documents, then is SIGKILLed while the tool
    holds the thirty-first request. A new worker finishes the seventy left queued
    and, once the dead worker's lease lapses, its reconciler sends the interrupted
    one again with the same webhook-id."""
    conn = _hook(firm_tools, world, webhook_receiver)
    doc_ids = _deposit_many(firm_tools, world, 100, "lot")
    webhook_receiver.answer(*([200] * 30), "hang")
    # A generous attempt timeout: the kill must land while the request is held.
    first = ged_worker(GED_DELIVERY_TIMEOUT=8)
    wait_for(lambda: len(webhook_receiver.hits) >= 31, 90,
             what=f"31 requests from the first worker\n{first.output()}")
    first.kill()
    webhook_receiver.release()
    states = _statuses(conn["id"])
    interrupted = [d for d, (status, _n) in states.items() if status == "sending"]
    assert len(interrupted) == 1
    assert sum(1 for s, _n in states.values() if s == "accepted") == 30

    second = ged_worker()
    wait_for(lambda: all(s == "accepted" for s, _n in _statuses(conn["id"]).values()), 120,
             what=f"all 100 deliveries accepted\n{second.output()}")
    duplicates = _assert_delivered_at_least_once(webhook_receiver, conn["id"], doc_ids)
    assert duplicates >= 1  # the interrupted one reached the tool twice, under one id
    assert _statuses(conn["id"])[interrupted[0]] == ("accepted", 2)
    tally.add("faults")


@pytest.mark.slow
def test_redis_down_during_deposits_then_restarted_empty_loses_no_delivery(
        app, world, firm_tools, webhook_receiver, restartable_redis, ged_worker, tally):
    """Deposits made while Redis is down are acknowledged all the same; deliveries
    queued in a Redis that then restarts empty are gone from Redis, not from the
    database: a worker's reconciler enqueues every one of them again."""
    from ged import queue

    conn = _hook(firm_tools, world, webhook_receiver)
    restartable_redis.stop(wipe=False)
    during_outage = _deposit_many(firm_tools, world, 5, "sans-redis")
    restartable_redis.start()
    queued = _deposit_many(firm_tools, world, 5, "en-file")
    assert queue.queue("deliveries").count >= 5
    restartable_redis.restart_empty()
    assert queue.queue("deliveries").count == 0
    assert {s for s, _n in _statuses(conn["id"]).values()} == {"queued"}

    worker = ged_worker()
    wait_for(lambda: all(s == "accepted" for s, _n in _statuses(conn["id"]).values()), 120,
             what=f"all 10 deliveries accepted\n{worker.output()}")
    _assert_delivered_at_least_once(webhook_receiver, conn["id"], during_outage + queued)
    tally.add("faults", 2)


def test_the_tools_server_down_for_a_while_then_back(
        app, world, firm_tools, outage_receiver, drain_deliveries, tally):
    """Connections refused: the delivery backs off along the schedule; once the tool
    is back, it is delivered, once, under its webhook-id."""
    from ged.models import AuditEvent, Delivery

    cfg = app.config["GED"]
    cfg.delivery_retry_schedule = [0.2, 0.4, 0.8, 1.6, 3.2]
    conn = _hook(firm_tools, world, outage_receiver)
    outage_receiver.down()
    (doc_id,) = _deposit_many(firm_tools, world, 1, "panne")
    delivery = Delivery.get(Delivery.document == doc_id)

    def back_after_three_failures():
        current = Delivery.get_by_id(delivery.id)
        if current.attempts >= 3 and outage_receiver._server is None:
            outage_receiver.up()
        return current.status == "accepted"

    drain_deliveries(until=back_after_three_failures, timeout=60)
    retries = [e.details for e in AuditEvent.select().where(
        (AuditEvent.object_id == delivery.id) & (AuditEvent.action == "delivery.retry_scheduled"))
        .order_by(AuditEvent.seq)]
    assert [r["delay"] for r in retries] == [0.2, 0.4, 0.8]
    assert all("Erreur réseau" in r["error"] for r in retries)
    assert Delivery.get_by_id(delivery.id).attempts == 4
    assert _assert_delivered_at_least_once(outage_receiver, conn["id"], [doc_id]) == 0
    tally.add("faults")


def test_the_mail_relay_down_then_deferring_then_accepting(
        app, world, firm_tools, smtp_sink, drain_deliveries, tally):
    """An e-mail connection: the relay refuses connections, then answers 451, then
    accepts; the message goes out once, with the Message-ID of its delivery."""
    from ged.models import Delivery

    conn = firm_tools.connect(world.company_a, firm_tools.install("jefacture", "JeFacture"),
                              address="achats@jefacture.example")
    firm_tools.switch(world.folder(world.company_a, ANNUAL, "Achats"), conn, "on")
    smtp_sink.stop()
    (doc_id,) = _deposit_many(firm_tools, world, 1, "relais")
    delivery = Delivery.get(Delivery.document == doc_id)

    restarted = []

    def relay_back_after_one_failure():
        current = Delivery.get_by_id(delivery.id)
        if current.attempts >= 1 and not restarted:
            smtp_sink.refuse("451 4.3.0 Mailbox busy, try later")
            smtp_sink.start()
            restarted.append(True)
        return current.status == "sent"

    drain_deliveries(until=relay_back_after_one_failure, timeout=60)
    current = Delivery.get_by_id(delivery.id)
    assert current.status == "sent" and current.attempts == 3
    (mail,) = smtp_sink.to("achats@jefacture.example")
    assert mail.message["Message-ID"].startswith(f"<delivery-{delivery.id}@")
    assert list(mail.attachments()) == ["relais-000.pdf"]
    tally.add("faults")


# --- the web server and the database ------------------------------------------------------------


@pytest.mark.slow
def test_the_server_killed_under_concurrent_uploads_loses_no_acknowledged_document(
        world, server_process, ged_cli, cfg, tally):
    """Eight clients upload in a loop; the server is SIGKILLed mid-stream. Every upload
    that was acknowledged is whole after a restart; no document row lacks its bytes;
    what the crash left (a blob stored whose row never committed, a staged upload)
    is reported by `ged fsck` and, once old enough, removed by `ged fsck --repair`."""
    from ged import integrity
    from ged.models import Document

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    server = server_process()
    acknowledged: dict[str, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def uploader(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            i = 0
            while not stop.is_set():
                i += 1
                data = text_pdf(f"Client {n} envoi {i}") + os.urandom(400_000)
                try:
                    r = http.post(f"/api/v1/folders/{achats.id}/documents",
                                  headers=world.client_a.headers,
                                  files={"file": (f"c{n}-{i}.pdf", data)})
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 201:
                    with lock:
                        acknowledged[r.json()["items"][0]["id"]] = data

    threads = [threading.Thread(target=uploader, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acknowledged) >= 6, 60, what="six acknowledged uploads")
    server.kill()
    stop.set()
    for t in threads:
        t.join(30)

    rows = {d.id for d in Document.select()}
    assert set(acknowledged) <= rows
    report = integrity.fsck()
    assert report.errors == [], report.errors  # every row has its whole blob
    # Make what the crash left older than fsck's grace period, then repair.
    for path in list((cfg.data_dir / "blobs").rglob("*")) + list((cfg.data_dir / "tmp").iterdir()):
        if path.is_file():
            os.utime(path, (time.time() - 7200, time.time() - 7200))
    repaired = ged_cli("fsck", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    after = ged_cli("fsck")
    assert after.returncode == 0 and "warning" not in after.stdout and "clean" in after.stdout
    assert f"{len(rows)} document(s)" in after.stdout

    again = server_process()
    for doc_id, data in acknowledged.items():
        got = httpx.get(f"{again.url}/api/v1/documents/{doc_id}/file",
                        headers=world.client_a.headers, timeout=30)
        assert got.status_code == 200 and got.content == data
    tally.add("faults")


@pytest.mark.slow
def test_fifty_uploads_at_once_into_sqlite_through_a_threaded_server(
        world, threaded_server, ged_cli, tally):
    """Fifty clients deposit at the same instant through gunicorn (2 processes x 8
    threads) into one SQLite database: all are acknowledged, none sees "database is
    locked" or any 5xx, and the audit chain stays intact."""
    from ged import audit
    from ged.models import Document

    achats = world.folder(world.company_a, ANNUAL, "Achats")
    server = threaded_server(workers=2, threads=8)
    start = threading.Barrier(50)
    replies: list[tuple[int, str]] = []
    lock = threading.Lock()

    def one(n: int) -> None:
        data = text_pdf(f"Dépôt simultané {n}")
        with httpx.Client(base_url=server.url, timeout=120) as http:
            start.wait()
            r = http.post(f"/api/v1/folders/{achats.id}/documents",
                          headers=world.client_a.headers, files={"file": (f"s{n}.pdf", data)})
        with lock:
            replies.append((r.status_code, r.text))

    threads = [threading.Thread(target=one, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert len(replies) == 50
    assert [status for status, _text in replies] == [201] * 50, [
        text[:200] for status, text in replies if status != 201]
    assert not any("locked" in text.lower() for _status, text in replies)
    assert Document.select().count() == 50
    assert audit.verify() == []
    fsck = ged_cli("fsck")
    assert fsck.returncode == 0 and "50 blob(s)" in fsck.stdout
    tally.add("faults", 50)


# --- the search index ----------------------------------------------------------------------------


def test_a_corrupted_search_index_is_reported_clearly_then_rebuilt_by_ged_reindex(
        client, web, world, run_jobs, cfg, ged_cli, tally):
    achats = world.folder(world.company_a, ANNUAL, "Achats")
    r = client.post(f"/api/v1/folders/{achats.id}/documents", headers=world.staff.headers,
                    content_type="multipart/form-data",
                    data={"file": [(io.BytesIO(text_pdf("Quittance de loyer")), "loyer.pdf")]})
    assert r.status_code == 201
    run_jobs()
    find = {"q": "quittance"}
    assert client.get("/api/v1/search", query_string=find,
                      headers=world.staff.headers).get_json()["total"] == 1
    index_files = [p for p in (cfg.data_dir / "index").rglob("*") if p.is_file()]
    assert index_files
    for path in index_files:
        path.write_bytes(os.urandom(64))
    from ged.search import whoosh as search_whoosh

    search_whoosh.forget()  # the open readers dropped, as in a freshly started process

    r = client.get("/api/v1/search", query_string=find, headers=world.staff.headers)
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "search_unavailable"
    assert "ged reindex" in r.get_json()["error"]["message"]
    page = web(world.staff).get("/recherche?q=quittance")
    assert page.status_code == 503
    assert "La recherche est momentanément indisponible" in html.unescape(
        page.get_data(as_text=True))

    rebuilt = ged_cli("reindex")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    r = client.get("/api/v1/search", query_string=find, headers=world.staff.headers)
    assert r.status_code == 200 and [i["name"] for i in r.get_json()["items"]] == ["loyer.pdf"]
    tally.add("faults")


# --- the summary itself -----------------------------------------------------------------------


def test_the_reliability_summary_names_what_failed_instead_of_claiming_nothing_was_lost(
        tmp_path):
    """A run where a fault test counted and passed but another test failed (one that
    never counts, as the multi-host tests did) does not end with "nothing was lost"."""
    import subprocess
    import sys

    from conftest import ROOT

    (tmp_path / "test_sample.py").write_text(
        "def test_counted(tally):\n"
        "    tally.add('faults', 3)\n\n"
        "def test_host_killed_and_a_delivery_late():\n"
        "    assert False, 'still waiting for every document to be delivered'\n")

    def run(*args):
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "-p", "fixtures.summary", *args, str(tmp_path)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT / "tests")})
        return done.stdout

    out = run()
    assert "faults: 3 faults injected" in out and "nothing was lost." in out
    assert "Nothing leaked and nothing was lost." not in out
    assert "NOT PROVEN: 1 test(s) failed" in out
    assert "test_sample.py::test_host_killed_and_a_delivery_late" in out

    out = run("-k", "counted")
    assert "Nothing leaked and nothing was lost." in out and "NOT PROVEN" not in out
