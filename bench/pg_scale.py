"""PostgreSQL at scale (issue 10): a million documents in one firm of 300 companies,
metadata and search index in PostgreSQL, and what users wait for there.

``run(quick) -> dict`` builds the data with set-based SQL (generate_series; the
texts come from a pool of generated French documents, so many documents share a
blob, as duplicates do), then measures p50/p95 of:

- a folder listing (``GET /api/v1/folders/{id}``, in-process, ~200 documents);
- a deposit through ``documents.deposit`` to local disk and to S3 (a SeaweedFS
  started for the run), side by side;
- two-word searches with 20 highlighted hits, filtered to one company and
  firm-wide, plus a firm-wide "broad" query whose words are in nearly every
  document; with the RUM index and with GIN;
- Whoosh at a size it handles, with the same queries.

Sizes: full 1,000,000 documents (Whoosh 100,000); quick 5,000 (Whoosh 2,000).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from bench.harness import PG_URL, drop_schemas, percentile  # noqa: E402

SIZES = {
    True: dict(documents=5_000, companies=20, pool=1_000, whoosh=2_000, repeats=10),
    False: dict(documents=1_000_000, companies=300, pool=50_000, whoosh=100_000, repeats=100),
}
PASSWORD = "bench-password-2026"


def _ms(samples: list[float]) -> dict:
    return {"p50_ms": round(percentile(samples, 50) * 1000, 1),
            "p95_ms": round(percentile(samples, 95) * 1000, 1), "n": len(samples)}


def _timed(fn, repeats: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        fn(0)
    samples = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t0)
    return _ms(samples)


class Run:
    """One run: a PostgreSQL schema, a private Redis, a data dir, ged bound to them."""

    def __init__(self, quick: bool):
        self.quick = quick
        self.size = SIZES[quick]
        self.tmp = Path(tempfile.mkdtemp(prefix="ged-pgscale-"))
        self.schema = f"bench_pgscale_{uuid.uuid4().hex[:8]}"
        self.redis = None
        self.seaweed = None
        self.log: list[str] = []

    def say(self, message: str) -> None:
        print(f"  [pg_scale] {message}", flush=True)

    # --- services ---------------------------------------------------------------------

    def start(self):
        import psycopg2

        from config import Config
        from ged import fleet, runtime
        from ged.schema import migrate

        conn = psycopg2.connect(PG_URL, connect_timeout=5)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {self.schema}")
        conn.close()
        self.redis = fleet.EmbeddedRedis(self.tmp / "redis").start()
        sep = "&" if "?" in PG_URL else "?"
        url = f"{PG_URL}{sep}options=-csearch_path%3D{self.schema}"
        data_dir = self.tmp / "data"
        self.cfg = Config(data_dir=data_dir, database_url=url, redis_url=self.redis.url,
                          secret_key=secrets.token_hex(16),
                          storage_url=f"file://{data_dir / 'blobs'}", search_backend="postgres",
                          reconcile_interval=0, max_upload_bytes=50 << 20)
        runtime.setup(self.cfg)
        migrate()

    def close(self):
        drop_schemas([self.schema])
        if self.redis:
            self.redis.stop()
        if self.seaweed:
            self.seaweed.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- data ---------------------------------------------------------------------------

    def build(self) -> dict:
        """The firm, its companies and folders (through ged), then documents, blobs and
        search rows in bulk; returns timings of each step."""
        from ged import accounts, companies, search
        from ged.db import db
        from ged.models import Folder
        from ged.search import source
        from ged.search.postgres import analysis, writer

        from bench import corpus

        timings = {}
        t0 = time.monotonic()
        search.init_backend()
        self.firm, self.admin = accounts.create_firm("Cabinet Échelle", "admin@echelle.example",
                                                     PASSWORD, "Admin")
        self.companies = [companies.create_company(self.admin, self.firm, name=f"Société {i:03}",
                                                   template="annual", year=2026)
                          for i in range(self.size["companies"])]
        _tok, self.token = accounts.create_token(self.admin, self.admin, "bench")
        timings["firm_and_companies_s"] = round(time.monotonic() - t0, 1)

        # Folders: the same number of slots per company, for a set-based assignment.
        per_company: dict[str, list] = {}
        for f in Folder.select(Folder.id, Folder.company, Folder.path).where(
                Folder.parent.is_null(False)).order_by(Folder.id):
            per_company.setdefault(f.company_id, []).append(f.id)
        slots_per = min(len(v) for v in per_company.values())
        self.folders_per_company = slots_per
        db.execute_sql("CREATE TEMP TABLE bench_slot (slot int PRIMARY KEY, company_id text, "
                       "folder_id text)")
        rows = [(ci * slots_per + j, c.id, per_company[c.id][j])
                for ci, c in enumerate(self.companies) for j in range(slots_per)]
        from psycopg2.extras import execute_values

        with db.atomic():
            execute_values(db.cursor(), "INSERT INTO bench_slot VALUES %s", rows, page_size=1000)

        # The text pool: real generated French documents, stored as blobs.
        t0 = time.monotonic()
        pool = []
        for i in range(self.size["pool"]):
            text = corpus.document_text(i)
            pool.append((i, hashlib.sha256(text.encode()).hexdigest(), len(text.encode()), text))
        db.execute_sql("CREATE TEMP TABLE bench_pool (idx int PRIMARY KEY, sha256 text)")
        with db.atomic():
            cur = db.cursor()
            execute_values(cur, "INSERT INTO blob (sha256, size, content_type, created_at, text, "
                                "text_status, pages) VALUES %s",
                           [(sha, size, "application/pdf", dt.datetime(2016, 1, 1), text, "done", 1)
                            for _i, sha, size, text in pool], page_size=500)
            execute_values(cur, "INSERT INTO bench_pool VALUES %s",
                           [(i, sha) for i, sha, _s, _t in pool], page_size=1000)
        timings["text_pool_s"] = round(time.monotonic() - t0, 1)

        # A million documents: one INSERT ... SELECT over generate_series.
        t0 = time.monotonic()
        n, companies_n, pool_n = self.size["documents"], len(self.companies), len(pool)
        with db.atomic():
            db.execute_sql("SET LOCAL synchronous_commit = off")
            db.execute_sql("""
                INSERT INTO document (id, firm_id, company_id, folder_id, name, sha256, size,
                    content_type, channel, deposited_at, deposited_by_label, status,
                    text_status, retain_until, legal_hold, index_dirty)
                SELECT 'b' || lpad(to_hex(g), 25, '0'), %s, s.company_id, s.folder_id,
                       'facture-' || g || '.pdf', p.sha256, 2048, 'application/pdf', 'import',
                       timestamp '2016-01-01' + (g::float8 / %s) * interval '3650 days',
                       'bench', 'deposited', 'done', date '2036-12-31', false, false
                FROM generate_series(1, %s) g
                JOIN bench_slot s ON s.slot = (g %% %s) * %s + ((g / %s) %% %s)
                JOIN bench_pool p ON p.idx = (g::bigint * 7919) %% %s""",
                (self.firm.id, n, n, companies_n, slots_per, companies_n, slots_per, pool_n))
        timings["documents_s"] = round(time.monotonic() - t0, 1)

        # The search rows, with the backend's own tsvector expression; blobs and folders
        # are analysed once each, documents only for their names.
        t0 = time.monotonic()
        names = source.folder_names([f.path for f in Folder.select(Folder.path)])
        folder_rows = []
        for f in Folder.select(Folder.id, Folder.path):
            ids = [p for p in f.path.split("/") if p]
            folder_rows.append((f.id, f.path, "/" + "/".join(names.get(i, "") for i in ids[1:])))
        words = analysis.tsvector_sql
        with db.atomic():
            db.execute_sql("SET LOCAL synchronous_commit = off")
            db.execute_sql("CREATE TEMP TABLE bench_folder_tsv (folder_id text PRIMARY KEY, "
                           "path text, tsv tsvector)")
            execute_values(db.cursor(),
                           "INSERT INTO bench_folder_tsv SELECT v.id, v.path, "
                           f"setweight({words('v.names')}, 'B') FROM (VALUES %s) v(id, path, names)",
                           [(i, p, nm.replace("/", " ")) for i, p, nm in folder_rows], page_size=500)
            db.execute_sql("CREATE TEMP TABLE bench_blob_tsv AS SELECT sha256, "
                           f"setweight({words('left(text, %s)')}, 'D') AS tsv FROM blob",
                           (writer.INDEX_CHARS,))
            db.execute_sql("ALTER TABLE bench_blob_tsv ADD PRIMARY KEY (sha256)")
            db.execute_sql("DROP INDEX IF EXISTS search_entry_tsv_rum")
            db.execute_sql("DROP INDEX IF EXISTS search_entry_tsv_gin")
            db.execute_sql(f"""
                INSERT INTO search_entry (document_id, firm_id, company_id, folder_path, kind,
                                          invoice, deposited_at, tsv)
                SELECT d.id, d.firm_id, d.company_id, f.path, 'pdf', false, d.deposited_at,
                       setweight({words('d.name')}, 'A') || f.tsv || b.tsv
                FROM document d JOIN bench_folder_tsv f ON f.folder_id = d.folder_id
                JOIN bench_blob_tsv b ON b.sha256 = d.sha256""")
        timings["search_rows_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        db.execute_sql("ANALYZE document")
        db.execute_sql("ANALYZE search_entry")
        db.execute_sql("ANALYZE folder")
        timings["analyze_s"] = round(time.monotonic() - t0, 1)
        size = db.execute_sql("SELECT pg_size_pretty(pg_total_relation_size('search_entry')), "
                              "pg_size_pretty(pg_total_relation_size('document'))").fetchone()
        timings["search_entry_size"], timings["document_size"] = size
        return timings

    def text_index(self, kind: str) -> dict:
        """(Re)build the text index as ``kind`` (rum or gin); returns its build time and size."""
        from ged.db import db
        from ged.search.postgres import schema

        db.execute_sql("DROP INDEX IF EXISTS search_entry_tsv_rum")
        db.execute_sql("DROP INDEX IF EXISTS search_entry_tsv_gin")
        db.execute_sql("SET maintenance_work_mem = '1GB'")
        t0 = time.monotonic()
        if kind == "rum":
            rum = schema.rum_schema()
            db.execute_sql(f"CREATE INDEX search_entry_tsv_rum ON search_entry USING rum "
                           f"(tsv {rum}.rum_tsvector_addon_ops, deposited_at) "
                           f"WITH (attach = 'deposited_at', to = 'tsv')")
        else:
            db.execute_sql("CREATE INDEX search_entry_tsv_gin ON search_entry USING gin (tsv)")
        seconds = time.monotonic() - t0
        db.execute_sql("RESET maintenance_work_mem")
        schema.forget()
        assert schema.kind() == kind
        size = db.execute_sql(f"SELECT pg_size_pretty(pg_relation_size("
                              f"'search_entry_tsv_{kind}'))").fetchone()[0]
        return {"build_s": round(seconds, 1), "size": size}

    # --- measures -------------------------------------------------------------------------

    def queries(self, count: int) -> dict:
        from bench import corpus

        rng = random.Random(4242)
        vocab, _ = corpus.vocabulary()
        # Content words of ranks 20-600: each in a few percent to most of the documents.
        content = set(corpus.FRENCH[corpus.FUNCTION_WORDS:])
        real = [w for w in vocab[20:600] if w in content and len(w) >= 4 and "-" not in w]
        two = [" ".join(rng.sample(real, 2)) for _ in range(count)]
        # Words in nearly every document: the worst case for ranking.
        broad = ["facture montant", "facture client", "total facture", "paiement facture"]
        return {"two": two, "broad": (broad * (count // len(broad) + 1))[:count]}

    def search_figures(self, repeats: int, label: str) -> dict:
        from ged import search

        qs = self.queries(repeats)
        rng = random.Random(7)
        companies = [rng.choice(self.companies).id for _ in range(repeats)]
        out = {}
        hits = []

        def company_search(i):
            r = search.query(self.admin, qs["two"][i], company_id=companies[i], limit=20)
            hits.append(len(r["items"]))

        def firm_search(i):
            r = search.query(self.admin, qs["two"][i], limit=20)
            hits.append(len(r["items"]))

        def broad_search(i):
            r = search.query(self.admin, qs["broad"][i], limit=20)
            assert all("<mark>" in item["snippet"] for item in r["items"]), r["items"][:1]
            hits.append(len(r["items"]))

        for key, fn in (("company_two_words", company_search), ("firm_two_words", firm_search),
                        ("firm_broad", broad_search)):
            hits.clear()
            out[key] = _timed(fn, repeats)
            out[key]["mean_hits"] = round(sum(hits) / max(len(hits), 1), 1)
        if self.cfg.search_backend == "postgres":
            out["plans"] = {"firm_broad": self.plan(qs["broad"][0]),
                            "firm_two_words": self.plan(qs["two"][0]),
                            "company_two_words": self.plan(qs["two"][0], companies[0])}
        self.say(f"search {label}: " + ", ".join(f"{k} p50 {v['p50_ms']} / p95 {v['p95_ms']} ms"
                                                 for k, v in out.items() if "p95_ms" in v))
        for key, plan in out.get("plans", {}).items():
            self.say(f"  plan {key}: {plan}")
        return out

    def plan(self, q: str, company_id: str | None = None) -> str:
        """The access path ged chooses for a query, and the plan of its candidate query."""
        from ged import search
        from ged.db import db
        from ged.search.postgres import query as search_postgres

        scope = search.scope_for(self.admin, company_id=company_id)
        tsquery = search_postgres.build_tsquery(search.parse(q))
        where, params = search_postgres._filters(scope)
        window = search_postgres.CANDIDATES
        path, estimate = search_postgres._access_path(tsquery, where, params, window)
        with db.atomic():
            for setting in search_postgres._PATH_SETTINGS[path]:
                db.execute_sql(f"SET LOCAL {setting}")
            rows = db.execute_sql(
                f"EXPLAIN (ANALYZE, COSTS OFF) SELECT e.document_id FROM search_entry e "
                f"WHERE e.tsv @@ %s::tsquery AND {where} "
                f"ORDER BY e.deposited_at DESC, e.document_id DESC LIMIT {window}",
                [tsquery, *params]).fetchall()
        lines = [r[0].strip() for r in rows]
        nodes = [line.split("  (")[0].lstrip("-> ") for line in lines if "->" in line]
        took = next((line for line in lines if line.startswith("Execution")), "")
        return f"{path} path (est. {estimate:,.0f} matches): {' / '.join(nodes)}; {took}"

    def folder_listing(self, repeats: int) -> dict:
        from ged import create_app
        from ged.models import Document, Folder

        app = create_app(self.cfg)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {self.token}"}
        rng = random.Random(11)
        leaves = [f.id for f in Folder.select(Folder.id).where(Folder.parent.is_null(False))
                  if Document.select().where(Document.folder == f.id).limit(1).exists()]
        picks = [rng.choice(leaves) for _ in range(repeats + 3)]
        sizes = []

        def listing(i):
            r = client.get(f"/api/v1/folders/{picks[i]}", headers=headers)
            assert r.status_code == 200, r.data[:200]
            sizes.append(len(r.get_json()["documents"]))

        out = _timed(listing, repeats)
        out["mean_documents"] = round(sum(sizes) / len(sizes))
        return out

    def deposits(self, repeats: int) -> dict:
        """The same deposit path to local disk, then to S3 (SeaweedFS on this machine)."""
        from fixtures.seaweed import start_seaweed

        from ged import documents, runtime
        from ged.blobs import stage_bytes
        from ged.models import Folder

        from bench import corpus

        target = Folder.select().where(Folder.parent.is_null(False)).first()
        base = corpus.text_pdf(corpus.document_text(1, words=400))
        out = {}
        self.seaweed = start_seaweed(self.tmp / "seaweed")
        for key, value in self.seaweed.env.items():
            os.environ[key] = value
        stores = {"local": f"file://{self.cfg.data_dir / 'blobs'}",
                  "s3": f"s3://{self.seaweed.bucket}/pgscale"}
        counter = [0]
        for label, url in stores.items():
            self.cfg.storage_url = url
            self.cfg.s3_endpoint_url = self.seaweed.endpoint_url

            def deposit(_i):
                counter[0] += 1
                data = base + f"\n% {counter[0]}\n".encode()  # distinct bytes each time
                staged = stage_bytes(data, self.cfg.data_dir, self.cfg.max_upload_bytes)
                documents.deposit(self.admin, target,
                                  [documents.Upload(f"depot-{counter[0]}.pdf", staged)], "api")

            out[label] = _timed(deposit, repeats)
            out[label]["bytes"] = len(base)
        runtime.config().storage_url = stores["local"]
        out["s3_over_local_p50"] = round(out["s3"]["p50_ms"] / out["local"]["p50_ms"], 2)
        return out

    def whoosh(self, size: int, repeats: int) -> dict:
        """Whoosh at ``size`` documents of the same firm, the same queries."""
        from ged.models import Document
        from ged.search import source, whoosh

        ids = [r[0] for r in Document.select(Document.id).where(Document.firm == self.firm.id)
               .order_by(Document.id.desc()).limit(size).tuples()]
        self.cfg.search_backend = "whoosh"
        t0 = time.monotonic()
        count = whoosh.rebuild(self.firm.id, source.stream(self.firm.id, ids))
        build = time.monotonic() - t0
        try:
            figures = self.search_figures(repeats, f"whoosh {count}")
        finally:
            self.cfg.search_backend = "postgres"
        self.say(f"whoosh: {count} documents indexed in {build:.0f} s")
        return {"documents": count, "build_s": round(build, 1), **figures}


def run(quick: bool) -> dict:
    """Build the data, measure, and return the figures (see the module docstring)."""
    from ged.db import db

    r = Run(quick)
    result: dict = {"documents": r.size["documents"], "companies": r.size["companies"]}
    try:
        r.start()
        r.say(f"building {r.size['documents']:,} documents")
        result["build"] = r.build()
        result["folders_per_company"] = r.folders_per_company
        r.say(f"built: {result['build']}")
        repeats = r.size["repeats"]
        result["folder_listing"] = r.folder_listing(repeats)
        r.say(f"folder listing: {result['folder_listing']}")
        available = db.execute_sql(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'rum'").fetchone()
        for kind in (["rum"] if available else []) + ["gin"]:
            result[f"index_{kind}"] = r.text_index(kind)
            r.say(f"{kind} index: {result[f'index_{kind}']}")
            result[f"search_{kind}"] = r.search_figures(repeats, kind)
        result["whoosh"] = r.whoosh(r.size["whoosh"], repeats)
        result["deposit"] = r.deposits(max(20, repeats // 2))
        r.say(f"deposit: {result['deposit']}")
    finally:
        r.close()
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=2, default=str))
