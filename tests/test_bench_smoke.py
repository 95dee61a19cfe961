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
       9: "Export"}
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
