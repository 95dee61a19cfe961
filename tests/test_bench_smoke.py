"""The benchmark harness in quick mode, so it never rots: `python -m bench --quick`
runs every section against the real server, worker, Redis and receiver, and writes
a report with every section and its numbers. Nothing here asserts on times."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Sections that need only what the foundation provides: they must always have numbers.
ALWAYS = {1: "Deposit", 2: "Switch cost", 3: "Raw RQ", 4: "Memory"}
ALL = {**ALWAYS, 5: "Deposit to delivered", 6: "Forwarding throughput", 7: "OCR", 8: "Search",
       9: "Export", 10: "PostgreSQL at"}
NUMBER = re.compile(r"\d[\d ]*(\.\d+)? ?(ms|/s|MB/s|MB|s|%)")


def _section(report: str, number: int) -> str:
    match = re.search(rf"^## {number}\. .*?(?=^## \d+\. |\Z)", report, re.S | re.M)
    assert match, f"section {number} is missing from the report"
    return match.group(0)


def test_quick_benchmark_writes_every_section_with_numbers(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = out.read_text()

    # The header says what ran where.
    assert re.search(r"\*\*Machine\*\*: \d+ cores, \d+ GB RAM", report)
    assert "**Command**: `python -m bench --quick`" in report
    assert "| # | figure | measure | ged | raw limit | ged / raw | target | met? |" in report

    for number, title in ALL.items():
        body = _section(report, number)
        assert title in body.splitlines()[0]
        # A feature's failure is reported, never hidden: no section may have crashed.
        assert "the run failed" not in body, body
        if number in ALWAYS or "not measured:" not in body:
            rows = [line for line in body.splitlines() if line.startswith("| ")][1:]
            assert rows, f"section {number} has no table:\n{body}"
            # every row shows ged's figure, and the section has a raw limit beside it
            assert all(NUMBER.search(row.split("|")[2]) for row in rows), body
            assert any(NUMBER.search(row.split("|")[3]) for row in rows), body
        else:
            assert re.search(r"not measured: \S", body)

    # Targets are checked and reported as met or not.
    assert re.search(r"\| (yes|\*\*no\*\*) \|", report)
    # The tables were printed as each section finished, and nothing outlived the run.
    assert "== 1. Deposit" in result.stdout
    run_dir = re.search(r"^run directory: (\S+)$", result.stdout, re.M).group(1)
    assert not Path(run_dir).exists()
    assert not _processes_mentioning(run_dir), "benchmark processes outlived the run"


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment names ``text`` (every process
    the benchmark starts gets its run directory in one or the other)."""
    found = []
    needle = text.encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        for name in ("cmdline", "environ"):
            try:
                if needle in (proc / name).read_bytes():
                    found.append(int(proc.name))
                    break
            except OSError:
                continue
    return found


def test_a_section_not_measured_in_a_run_keeps_its_previous_figures():
    """`make bench` without --scale rewrites BENCHMARKS.md but keeps the million-document
    figures of the last `make bench-scale`, marked as carried over."""
    import datetime as dt

    sys.path.insert(0, str(ROOT))
    from bench.report import Section, markdown, previous_sections

    info = {"cores": 2, "ram_gb": 24.0, "cpu": "cpu", "kernel": "k", "python": "3.11",
            "tesseract": "tesseract 5", "loadavg": (0.1, 0.1, 0.1)}
    when = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
    scale = Section(10, "pg_scale", "PostgreSQL at 1 000 000 documents")
    scale.add("RUM: firm-wide two words, p95", 123.0, "ms", 4.0, "< 300 ms", True)
    first = markdown([scale], quick=False, command="python -m bench --only pg_scale",
                     started=when, seconds=60, info=info, load_after=(0.1, 0.1, 0.1))
    deposit = Section(1, "deposit", "Deposit")
    deposit.add("SQLite: 1 client, p50", 12.0, "ms", 3.0, "< 30 ms", True)
    second = markdown([deposit], quick=False, command="python -m bench", started=when,
                      seconds=60, info=info, load_after=(0.1, 0.1, 0.1),
                      carried=previous_sections(first))
    assert "## 1. Deposit" in second and "## 10. PostgreSQL at 1 000 000 documents" in second
    assert second.index("## 1. Deposit") < second.index("## 10. PostgreSQL")
    assert "| 10 | PostgreSQL at 1 000 000 documents | RUM: firm-wide two words, p95 | 123 ms" \
        in second
    assert "_Carried over from the run of 2026-11-23 12:00 UTC" in second
    # Measured again, the section replaces the carried one.
    third = markdown([deposit, scale], quick=False, command="python -m bench --scale",
                     started=when, seconds=60, info=info, load_after=(0.1, 0.1, 0.1),
                     carried=previous_sections(second))
    assert third.count("## 10. PostgreSQL") == 1 and "Carried over" not in third
