"""A quick probe of the Whoosh search engine alone (no web server, no database):
bulk indexing rate, then p50/p95 of each query kind with 20 highlighted snippets.

    .venv/bin/python -m bench.probe_search [--docs 20000] [--companies 50] [--queries 40]

Uses the harness's seeded corpus (bench.corpus) so figures compare with `make bench`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--companies", type=int, default=50)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--dir", type=Path, default=None, help="keep the index here")
    parser.add_argument("--processes", type=int, default=0,
                        help="1: build in this process only (default: one per core)")
    args = parser.parse_args(argv)

    from bench.corpus import company_of, document_text, search_queries
    from config import Config
    from ged import runtime, search
    from ged.search import whoosh as sw

    data_dir = args.dir or Path(tempfile.mkdtemp(prefix="probe-search-"))
    runtime.setup(Config.from_env(data_dir=data_dir, database_url=f"sqlite:///{data_dir}/x.db"))
    firm = "probefirm"
    companies = [f"company{i:03d}" for i in range(args.companies)]
    texts = {}

    def docs():
        for i in range(args.docs):
            text = document_text(i)
            doc_id = f"doc{i:08d}"
            texts[doc_id] = text
            company = companies[company_of(i, args.companies)]
            yield search.IndexDoc(
                id=doc_id, company_id=company, folder_ids=[f"root{company}", f"f{company}"],
                folder_path="/Dossier comptable annuel 2026/Achats", name=f"facture-{i}.pdf",
                content_type="application/pdf",
                deposited_at=dt.datetime(2026, 1, 1) + dt.timedelta(minutes=i), text=text,
                facturx=None)

    if not sw.exists(firm) or args.dir is None:
        gen_start = time.perf_counter()
        all_docs = list(docs())
        gen = time.perf_counter() - gen_start
        class Stream:
            """Like search.DocStream, from memory: builder processes fork with it."""

            def __iter__(self):
                return iter(all_docs)

            def ids(self):
                return list(range(len(all_docs)))

            def load(self, ids):
                return (all_docs[i] for i in ids)

        t0, c0 = time.perf_counter(), time.process_time()
        sw.rebuild(firm, Stream() if args.processes != 1 else all_docs)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"indexed {args.docs} docs in {elapsed:.1f} s: {args.docs / elapsed:.0f} docs/s "
              f"(this process's CPU {cpu:.1f} s; corpus generation {gen:.1f} s, not counted)")
    else:
        for d in docs():
            pass

    rng = random.Random(7)
    queries = {kind: [q for q, _source in qs]
               for kind, qs in search_queries(rng, args.queries, args.docs).items()}
    scopes = {
        "firm-wide": search.Scope(firm, None, [], []),
        "one company": search.Scope(firm, [companies[0]], [], []),
    }
    for scope_name, scope in scopes.items():
        for kind, qs in queries.items():
            times, cpus, totals = [], [], []
            for q in qs:
                parsed = search.parse(q)
                t0, c0 = time.perf_counter(), time.process_time()
                total, hits = sw.search(firm, parsed, scope, offset=0, limit=20)
                [sw.make_snippet(texts[doc_id][:sw.EXCERPT_CHARS], parsed) for doc_id, _ in hits]
                times.append((time.perf_counter() - t0) * 1000)
                cpus.append((time.process_time() - c0) * 1000)
                totals.append(total)
            cpus.sort()
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            cpu95 = cpus[min(len(cpus) - 1, int(len(cpus) * 0.95))]
            print(f"{scope_name:12} {kind:10} p50 {statistics.median(times):7.1f} ms  "
                  f"p95 {p95:7.1f} ms  (CPU p50 {statistics.median(cpus):6.1f} p95 {cpu95:6.1f} ms)"
                  f"  median hits {statistics.median(totals):.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
