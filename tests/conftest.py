"""Shared fixtures: a real Redis, a real database (SQLite, and PostgreSQL when
GED_TEST_DATABASE_URL is set), the app, and a small firm to play with."""

from __future__ import annotations

import io
import os
import secrets
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis as redis_lib

ROOT = Path(__file__).resolve().parents[1]

# Cheap password hashing for the suite (and the servers it starts, which inherit the
# environment): argon2's default cost made fixtures spend seconds hashing. Production
# keeps the library's defaults; check_password rehashes at the configured cost.
os.environ.setdefault("GED_PASSWORD_HASH_TIME_COST", "1")
os.environ.setdefault("GED_PASSWORD_HASH_MEMORY_KIB", "1024")
os.environ.setdefault("GED_PASSWORD_HASH_PARALLELISM", "1")
sys.path.insert(0, str(ROOT))

from config import Config  # noqa: E402

PG_URL = os.environ.get("GED_TEST_DATABASE_URL")

# Shared fixtures of each area live in tests/fixtures/<area>.py (SMTP server, HTTP
# receiver, live server, browser...), loaded here as pytest plugins.
pytest_plugins = sorted(
    f"fixtures.{p.stem}" for p in (ROOT / "tests" / "fixtures").glob("*.py") if p.stem != "__init__"
)


# --- Redis -------------------------------------------------------------------------


def _worker_db(url: str) -> str:
    """Under pytest-xdist each worker flushes and fills a database of its own on the
    shared Redis (gw0 keeps the URL's, gw1 the next one...)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{base + int(worker[2:])}"))


if os.environ.get("REDIS_URL"):
    # Rewritten in the environment itself, so the servers and commands a test starts
    # use the same database as the test.
    os.environ["REDIS_URL"] = _worker_db(os.environ["REDIS_URL"])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """REDIS_URL when set (CI uses the machine's Redis), else a private redis-server."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from ged.fleet import EmbeddedRedis

    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_conn(redis_url):
    conn = redis_lib.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()


# --- database ------------------------------------------------------------------------


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def _pg_admin(sql: str) -> None:
    import psycopg2

    conn = psycopg2.connect(PG_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


@pytest.fixture(params=["sqlite"])
def database_url(request, tmp_path):
    """The database of one test. Data-layer tests parametrize it with "postgres"."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ged.sqlite3'}"
        return
    if not PG_URL:
        pytest.skip("GED_TEST_DATABASE_URL is not set: PostgreSQL case skipped")
    schema = "t_" + uuid.uuid4().hex[:12]
    _pg_admin(f"CREATE SCHEMA {schema}")
    yield _pg_schema_url(PG_URL, schema)
    from ged.db import db

    if db.obj is not None:
        try:
            db.obj.close_all()
        except AttributeError:
            db.close()
    _pg_admin(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def cfg(tmp_path, database_url, redis_url, redis_conn):
    """A Config for one test: its own data dir and database, the shared Redis (flushed)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return Config(
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis_url,
        secret_key=secrets.token_hex(16),
        storage_url=f"file://{data_dir / 'blobs'}",
        delivery_retry_schedule=[0.2, 0.2, 0.2, 0.2],
        allow_private_targets=True,
        reconcile_interval=0,
        max_upload_bytes=5 * 1024 * 1024,
        testing=True,
    )


@pytest.fixture
def app(cfg):
    from ged import create_app
    from ged.schema import migrate

    application = create_app(cfg)
    migrate()
    yield application
    from ged.db import db

    if not db.is_closed():
        db.close()


@pytest.fixture
def client(app):
    return app.test_client()


# --- a small world --------------------------------------------------------------------


@dataclass
class Actor:
    user: object
    token: str
    password: str

    @property
    def headers(self):
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    """A firm with an admin, a staff member assigned to company A, a client of A,
    a client of B; companies A (annual tree) and B."""

    firm: object
    company_a: object
    company_b: object
    admin: Actor
    staff: Actor
    client_a: Actor
    client_b: Actor
    extra: dict = field(default_factory=dict)

    def folder(self, company, *names):
        """A folder of ``company`` by its names below the root."""
        from ged.models import Folder

        folder = Folder.get((Folder.company == company.id) & Folder.parent.is_null())
        for name in names:
            folder = Folder.get((Folder.parent == folder.id) & (Folder.name == name))
        return folder


PASSWORD = "correct horse battery"


def make_firm(name: str, domain: str, year: int = 2026) -> World:
    from ged import accounts, companies

    firm, admin = accounts.create_firm(name, f"admin@{domain}", PASSWORD, "Admin")
    staff = accounts.create_user(admin, firm, email=f"staff@{domain}", name="Staff",
                                 role="staff", password=PASSWORD)
    a = companies.create_company(admin, firm, name=f"A of {name}", siren="732829320",
                                 template="annual", year=year)
    b = companies.create_company(admin, firm, name=f"B of {name}", template="annual", year=year)
    companies.assign_staff(admin, a, [staff.id])
    client_a = accounts.create_user(admin, firm, email=f"client-a@{domain}", name="Client A",
                                    role="client", company=a, password=PASSWORD)
    client_b = accounts.create_user(admin, firm, email=f"client-b@{domain}", name="Client B",
                                    role="client", company=b, password=PASSWORD)

    def actor(user):
        return Actor(user, accounts.create_token(user, user, "tests")[1], PASSWORD)

    return World(firm, a, b, actor(admin), actor(staff), actor(client_a), actor(client_b))


@pytest.fixture
def world(app):
    with app.app_context():
        return make_firm("Cabinet Un", "un.example")


@pytest.fixture
def other_world(app, world):
    return make_firm("Cabinet Deux", "deux.example")


# --- files ------------------------------------------------------------------------------


def text_pdf(text: str = "Facture 42 fournisseur Dupont", pages: int = 1) -> bytes:
    """A real PDF with a text layer."""
    from fpdf import FPDF

    pdf = FPDF()
    for i in range(pages):
        pdf.add_page()
        pdf.set_font("helvetica", size=14)
        pdf.multi_cell(0, 10, text if pages == 1 else f"{text} page {i + 1}")
    return bytes(pdf.output())


def png_bytes(width: int = 40, height: int = 30, color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def files():
    class Files:
        pdf = staticmethod(text_pdf)
        png = staticmethod(png_bytes)

    return Files


# --- running the worker ------------------------------------------------------------------


@pytest.fixture
def run_jobs(app, redis_conn):
    """Drain the queues with a real RQ worker (burst mode, in this process)."""
    from rq import SimpleWorker

    from ged import fleet, queue

    class BurstWorker(SimpleWorker):
        """No pub/sub channel: a burst worker takes no remote command, and redis-py 8's
        PubSub thread can hold RQ's teardown for its whole 60 s poll."""

        def subscribe(self):
            self.pubsub_thread = None

        def unsubscribe(self):
            pass

    def run(queues=None):
        worker = BurstWorker([queue.queue(q) for q in (queues or queue.QUEUES)],
                             connection=fleet.connection())
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")

    return run


def web_login(test_client, email: str, password: str = PASSWORD):
    """Log a Flask test client in through the real login form (with its CSRF token)."""
    import re

    page = test_client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = test_client.post("/login", data={"email": email, "password": password,
                                             "csrf_token": token})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    return test_client


def csrf_token_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
