"""OCR never starves the rest (issue 17), with real Tesseract, real worker processes and
generated scans: a long scan of one firm delays neither another firm's delivery, nor
its search, nor its own short scan (the light queues have a worker of their own, and
OCR turns go to the firm served least recently); a page that takes longer than its
budget is skipped and the document ends "partial" with the text of the pages read;
an extraction that keeps crashing ends "failed" after its attempts instead of being
tried forever; a worker killed in the middle of a page leaves no Tesseract behind.
"""

from __future__ import annotations

import io
import os
import signal

import pytest

from conftest import text_pdf
from fixtures.documents import FONT
from fixtures.faults import wait_for

ANNUAL = "Dossier comptable annuel 2026"
WORDS = ("facture relevé banque client fournisseur montant total paiement échéance compte "
         "règlement virement commande livraison avoir remise").split()


def _dense_page(marker: str, seed: int, dpi: int = 400):
    """An A4 page crammed with small text (many seconds of Tesseract), ``marker`` on
    its first line."""
    import random

    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(seed)
    width, height = int(8.27 * dpi), int(11.69 * dpi)
    img = Image.new("L", (width, height), 250)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, int(9 / 72 * dpi))
    y = int(0.5 * dpi)
    lines = [f"{marker} relevé numéro {seed}"]
    lines += [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(70)]
    for line in lines:
        draw.text((int(0.5 * dpi), y), line, fill=20, font=font)
        y += int(font.size * 1.45)
    return img


def _crammed_page(seed: int, dpi: int = 600, marker: str = "Relevé"):
    """An A4 page of 6-point type from edge to edge: a quarter of a minute of Tesseract
    on an idle machine, more under load."""
    import random

    from PIL import Image, ImageDraw, ImageFont

    rng = random.Random(seed)
    width, height = int(8.27 * dpi), int(11.69 * dpi)
    img = Image.new("L", (width, height), 250)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, int(6 / 72 * dpi))
    y = int(0.3 * dpi)
    line = marker
    while y < height - int(0.3 * dpi):
        draw.text((int(0.3 * dpi), y), line, fill=20, font=font)
        line = " ".join(rng.choice(WORDS) for _ in range(18))
        y += int(font.size * 1.3)
    return img


def _short_page(words: str, dpi: int = 300):
    """A small card with one line of large type: read in a fraction of a second."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("L", (int(4 * dpi), int(1 * dpi)), 255)
    ImageDraw.Draw(img).text((40, 60), words, fill=0, font=ImageFont.truetype(FONT, 64))
    return img


def _scan(images, dpi: int) -> bytes:
    """An image-only PDF of ``images`` (what a scanner sends)."""
    buf = io.BytesIO()
    images[0].save(buf, "PDF", resolution=dpi, save_all=True, append_images=images[1:])
    return buf.getvalue()


def _long_scan(marker: str, pages: int) -> bytes:
    return _scan([_dense_page(marker, i, dpi=300) for i in range(pages)], 300)


def _achats(world):
    return world.folder(world.company_a, ANNUAL, "Achats")


def _blob(doc_id: str):
    from ged.db import db
    from ged.models import Blob, Document

    with db.connection_context():
        return Blob.get_by_id(Document.get_by_id(doc_id).blob_id)


# --- budgets and attempts (in this process) -------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_a_page_budget_ends_a_scan_partial_with_the_text_of_the_pages_read(
        app, cfg, world, deposit, run_jobs, client):
    """Three seconds a page: the short first page is read (a fifth of a second on an
    idle machine), the two crammed ones are skipped (a quarter of a minute each); the
    document is "partial", searchable by what was read, and says which pages were
    not read."""
    cfg.ocr_page_seconds, cfg.ocr_processes = 3, 1
    cfg.max_upload_bytes = 50 * 1024 * 1024
    pdf = _scan([_short_page("Reçu Zanzibar acompte versé comptant", dpi=600),
                 _crammed_page(1, marker="Tombouctou"), _crammed_page(2, marker="Ouagadougou")],
                600)
    doc = deposit(world.client_a, _achats(world), "scan-trois-pages.pdf", pdf)
    run_jobs()  # extraction, its OCR turns, then indexing

    blob = _blob(doc.id)
    assert blob.text_status == "partial", (blob.text_status, blob.text_error)
    assert blob.pages == 3 and blob.ocr_state is None
    assert "Zanzibar" in blob.text and "acompte" in blob.text
    assert "Tombouctou" not in blob.text and "Ouagadougou" not in blob.text
    assert "page 2" in blob.text_error and "page 3" in blob.text_error
    assert "3 s" in blob.text_error

    r = client.get(f"/api/v1/documents/{doc.id}", headers=world.client_a.headers)
    assert r.status_code == 200 and r.get_json()["text_status"] == "partial"
    r = client.get("/api/v1/search", query_string={"q": "zanzibar"},
                   headers=world.client_a.headers)
    assert [i["document_id"] for i in r.get_json()["items"]] == [doc.id]


def _drain() -> None:
    """A real RQ worker in burst mode on every queue, without its pub/sub thread: with
    redis-py 8.2 a burst worker whose job failed may wait a minute for that thread to
    stop (its get_message waits for a subscription that has just ended)."""
    from rq import SimpleWorker

    from ged import fleet, queue

    class Worker(SimpleWorker):
        def subscribe(self):
            pass

        def unsubscribe(self):
            pass

    Worker([queue.queue(q) for q in queue.QUEUES], connection=fleet.connection()).work(
        burst=True, with_scheduler=False, logging_level="ERROR")


@pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)
def test_an_extraction_that_keeps_crashing_ends_failed_after_its_attempts(
        app, cfg, world, deposit, redis_conn):
    """The stored file cannot be read (a directory where the blob should be: an I/O
    error, not a bad file): each attempt crashes, the reconciler tries again, and after
    ``extract_max_attempts`` the document is "failed" with the error, for good."""
    from ged import jobs, queue
    from ged.models import Blob

    cfg.extract_max_attempts = 3
    doc = deposit(world.client_a, _achats(world), "notes.txt", "Notes de frais de mars".encode())
    path = cfg.data_dir / "blobs" / doc.blob_id[:2] / doc.blob_id[2:4] / doc.blob_id
    assert path.is_file()
    path.unlink()
    path.mkdir()

    for attempt in range(1, 4):
        _drain()
        blob = Blob.get_by_id(doc.blob_id)
        assert (blob.text_status, blob.extract_attempts) == ("pending", attempt)
        assert "IsADirectoryError" in blob.text_error
        assert jobs.reconcile()["extractions_requeued"] == 1
    _drain()
    blob = Blob.get_by_id(doc.blob_id)
    assert blob.text_status == "failed"
    assert "tried 3 times" in blob.text_error and "IsADirectoryError" in blob.text_error
    assert str(path) not in blob.text_error  # no server path shown to users
    # Nothing is tried again: the reconciler leaves a failed blob alone.
    assert jobs.reconcile()["extractions_requeued"] == 0
    assert queue.queue("extract").count == 0


# --- real workers ---------------------------------------------------------------------------


def _ocr_reading(sha256: str) -> bool:
    from ged import fleet

    return fleet.held(fleet.ocr_lease_key(sha256))


@pytest.mark.slow
def test_a_long_scan_delays_neither_another_firms_delivery_nor_its_search_nor_its_scan(
        app, cfg, world, other_world, client, webhook_receiver, ged_worker):
    """Firm A's eight dense pages are being read by the OCR worker. Meanwhile firm B's
    document is delivered and found by search (the light worker never takes OCR), and
    B's one-page scan is read at the next turn (A's pages wait): all while A's scan is
    still being read."""
    from fixtures.receivers import FirmTools

    cfg.max_upload_bytes = 50 * 1024 * 1024  # a long scan
    ged_worker(queues="light")
    ged_worker(queues="ocr", GED_OCR_PROCESSES="1", GED_OCR_SLICE_SECONDS="1")

    a_doc = FirmTools(client, world).upload(_achats(world), "grand-livre-scanne.pdf",
                                            _long_scan("Kilimandjaro", 8))
    a_sha = _blob(a_doc["id"]).sha256
    wait_for(lambda: _ocr_reading(a_sha), 120, what="the OCR worker reading A's scan")

    tools_b = FirmTools(client, other_world)
    conn = tools_b.connect(other_world.company_a, tools_b.install("webhook", "Outil B"),
                           url=webhook_receiver.hook())
    webhook_receiver.secrets["b"] = conn["secret"]
    tools_b.switch(_achats(other_world), conn, "on")
    b_doc = tools_b.upload(_achats(other_world), "facture-b.pdf",
                           text_pdf("Facture Quetzalcoatl fournitures de bureau"))
    b_scan = tools_b.upload(_achats(other_world), "recu-b.pdf",
                            _scan([_short_page("Reçu Popocatepetl payé comptant")], 300))

    def b_searchable():
        r = client.get("/api/v1/search", query_string={"q": "quetzalcoatl"},
                       headers=other_world.admin.headers)
        assert r.status_code == 200, r.get_json()
        return [i["document_id"] for i in r.get_json()["items"]] == [b_doc["id"]]

    def b_delivered():
        return any(d["status"] == "accepted" for d in tools_b.deliveries(b_doc["id"]))

    wait_for(b_delivered, 90, what="B's document to be delivered")
    wait_for(b_searchable, 90, what="B's document to be searchable")
    wait_for(lambda: _blob(b_scan["id"]).text_status == "done", 120, what="B's scan to be read")
    assert "Popocatepetl" in _blob(b_scan["id"]).text
    a_blob = _blob(a_doc["id"])
    assert a_blob.text_status == "pending" and a_blob.ocr_state["todo"], \
        "A's scan was already read: it should still be in progress"
    assert [h for h in webhook_receiver.hits if h.verified_with == ["b"]]


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


@pytest.mark.slow
def test_killing_the_ocr_worker_mid_page_leaves_no_tesseract_behind(
        app, cfg, world, client, ged_worker, tally):
    """SIGKILL to the worker process alone (not its group, as the OOM killer or a crash
    would): its OCR processes and their Tesseract die with it, at once."""
    from fixtures.live import alive, process_tree
    from fixtures.receivers import FirmTools

    tally.add("faults")
    cfg.max_upload_bytes = 50 * 1024 * 1024  # a long scan
    ged_worker(queues="light")
    worker = ged_worker(queues="ocr", GED_OCR_PROCESSES="2")
    FirmTools(client, world).upload(_achats(world), "scan-serre.pdf",
                                    _scan([_crammed_page(1), _crammed_page(2)], 600))

    def tesseract_running():
        family = process_tree(worker.proc.pid)[1:]
        return family if any(_command(p) == "tesseract" for p in family) else None

    family = wait_for(tesseract_running, 120, what="Tesseract to read the scan")
    readers = [p for p in family if _command(p) == "tesseract"]
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(10)
    # Within seconds, where the pages left alone would take Tesseract many more.
    wait_for(lambda: not any(alive(p) for p in family), 5, interval=0.1,
             what=f"the worker's children {family} (Tesseract {readers}) to end")


@pytest.mark.slow
def test_a_job_whose_worker_was_killed_is_taken_up_again_within_seconds(
        app, cfg, world, deposit, ged_worker, tally):
    """A worker is killed in the middle of an extraction (its read of the stored file
    hangs, as on a stuck network disk). RQ still calls the job "started" (its own
    cleanup comes minutes later), but the worker stopped saying it is alive: the job is
    no longer pending, and the next reconciler pass enqueues it again."""
    from rq.job import Job, JobStatus

    from ged import fleet, jobs, queue
    from ged.models import Blob

    tally.add("faults")
    doc = deposit(world.client_a, _achats(world), "notes.txt", b"Note de frais de mars")
    path = cfg.data_dir / "blobs" / doc.blob_id[:2] / doc.blob_id[2:4] / doc.blob_id
    path.unlink()
    os.mkfifo(path)  # opening it for reading blocks until a writer comes
    worker = ged_worker(queues="light")
    job_id = f"extract-{doc.blob_id}"

    def started():
        return Job.fetch(job_id, connection=fleet.connection()).get_status() == JobStatus.STARTED

    wait_for(started, 60, what="the worker to start the extraction")
    assert queue.job_pending(job_id)
    worker.kill()
    wait_for(lambda: not queue.job_pending(job_id), 60, interval=0.5,
             what="the killed worker's job to count as abandoned")
    assert started()  # RQ alone would still wait for it

    path.unlink()
    path.write_bytes(b"Note de frais de mars")
    assert jobs.reconcile()["extractions_requeued"] == 1
    _drain()
    blob = Blob.get_by_id(doc.blob_id)
    assert blob.text_status == "done" and "Note de frais" in blob.text
