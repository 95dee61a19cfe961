"""The house's shape, checked with every run: three layers with no upward import and
no import circle (import-linter's contracts in pyproject.toml), and modules small
enough to read (one noun each)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 620


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "Contracts: 2 kept, 0 broken." in report, report


def test_no_module_over_the_size_of_one_noun():
    too_long = {str(path.relative_to(ROOT)): n for path in sorted((ROOT / "ged").rglob("*.py"))
                if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not too_long, f"split these modules (over {MAX_LINES} lines): {too_long}"
