"""10. PostgreSQL at 1,000,000 documents (issue 10): folder listing, deposit to local
disk and to S3, company-filtered and firm-wide two-word searches with 20 highlighted
hits (RUM and GIN), and Whoosh beside it at the size it handles.

Building a million documents takes longer than the rest of the benchmark together, so a
full run measures this section only when asked (`python -m bench --scale`, or
`make bench-scale`); otherwise BENCHMARKS.md carries over its figures from the last
run that measured them. The quick mode measures it at 5,000 documents."""

from __future__ import annotations

from ..report import Section

NUMBER, KEY, TITLE = 10, "pg_scale", "PostgreSQL at 1,000,000 documents"
ON_REQUEST = True  # a full run measures it only with --scale


def unavailable() -> str | None:
    from ..harness import Harness

    if not Harness.postgres_reachable():
        return "PostgreSQL did not answer at the benchmark's address (GED_BENCH_DATABASE_URL)"
    return None


def run(h) -> Section:
    from .. import pg_scale

    r = pg_scale.run(h.quick)
    n = r["documents"]
    section = Section(
        NUMBER, KEY, f"PostgreSQL at {_n(n)} documents",
        raw_label="for searches, the candidate query alone as PostgreSQL executes it "
                  "(EXPLAIN ANALYZE of the index scan that finds the 1,000 newest matches, "
                  "no ranking, no snippets, no permission join); for deposits to S3, the same "
                  f"deposit to the local disk; Whoosh at {_n(r['whoosh']['documents'])} "
                  "documents beside it.")
    listing = r["folder_listing"]
    section.add(f"folder listing (~{listing['mean_documents']:.0f} documents), p50",
                listing["p50_ms"], "ms")
    section.add("folder listing, p95", listing["p95_ms"], "ms")

    kinds = [k for k in ("rum", "gin") if f"search_{k}" in r]
    targets = {"company_two_words": ("company-filtered two words", 100),
               "firm_two_words": ("firm-wide two words", 300),
               "firm_broad": ("firm-wide, words in nearly every document", 300)}
    for kind in kinds:
        figures = r[f"search_{kind}"]
        plans = figures.get("plans", {})
        for key, (label, target) in targets.items():
            fig = figures[key]
            raw = _execution_ms(plans.get(key, ""))
            section.add(f"{kind.upper()}: {label}, p50", fig["p50_ms"], "ms", raw)
            section.add(f"{kind.upper()}: {label}, p95", fig["p95_ms"], "ms", raw,
                        f"< {target} ms", fig["p95_ms"] < target)
    whoosh = r["whoosh"]
    for key, (label, _target) in targets.items():
        section.add(f"Whoosh ({_n(whoosh['documents'])} documents): {label}, p95",
                    whoosh[key]["p95_ms"], "ms")
    dep = r["deposit"]
    section.add("deposit to S3 (SeaweedFS), p50", dep["s3"]["p50_ms"], "ms",
                dep["local"]["p50_ms"], "≤ 2 × local disk",
                dep["s3"]["p50_ms"] <= 2 * dep["local"]["p50_ms"])
    section.add("deposit to S3 (SeaweedFS), p95", dep["s3"]["p95_ms"], "ms", dep["local"]["p95_ms"])

    build = r["build"]
    section.notes.append(
        f"One firm of {r['companies']} companies, {_n(n)} documents spread over "
        f"{r['folders_per_company']} folders per company and ten years of deposit dates; the "
        "texts come from a pool of generated French documents of ~300 words (as duplicates "
        f"share a blob). Search table {build['search_entry_size']}, document table "
        f"{build['document_size']}; index builds: "
        + ", ".join(f"{k.upper()} {r[f'index_{k}']['build_s']} s ({r[f'index_{k}']['size']})"
                    for k in kinds)
        + f"; Whoosh index of {_n(whoosh['documents'])} documents built in {whoosh['build_s']} s.")
    section.notes.append(
        "Searches go through `ged.search.query` as the firm's admin (permission filter, "
        "20 hits, `ts_headline` snippets); the raw column is the execution time PostgreSQL "
        "reports for the candidate index scan of one such query.")
    section.notes.append(
        "Broad queries (words in most documents) rank only the 1,000 newest matches, found "
        "by walking the documents newest first, then order the rest by date; `total` is exact "
        "up to 1,000 and the planner's estimate beyond (see README, Running on several "
        "machines). Plans chosen: " + "; ".join(
            f"{k.upper()} {key}: {r[f'search_{k}'].get('plans', {}).get(key, '?')}"
            for k in kinds for key in ("firm_broad",)))
    section.limits.append(
        "Each query also pays for 20 `ts_headline` snippets over ~300-word texts, the "
        "permission join and the JSON reply; the candidate scan itself is the raw column.")
    return section


def _n(count: int) -> str:
    return f"{count:,}".replace(",", "\u202f")


def _execution_ms(plan: str) -> float | None:
    """The 'Execution Time: X ms' of an EXPLAIN ANALYZE summary line."""
    import re

    match = re.search(r"Execution Time: ([\d.]+) ms", plan)
    return float(match.group(1)) if match else None
