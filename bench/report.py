"""What a benchmark section measured, and how it is printed and written to BENCHMARKS.md.

A ``Section`` holds ``Row``s: one figure of ged beside its raw limit measured in
the same run, the ratio between them (the headline), and the target it is held
to. A section whose feature is missing or whose run failed carries
``not_measured`` instead, with the reason.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from dataclasses import dataclass, field


@dataclass
class Row:
    """One figure: ged's value, the raw limit's value, and the target."""

    measure: str
    value: float | None
    unit: str
    raw: float | None = None
    target: str = ""
    met: bool | None = None  # None: no target for this row

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.raw:
            return None
        return self.value / self.raw


@dataclass
class Section:
    """One numbered figure of the benchmark (deposit, switch cost, ...)."""

    number: int
    key: str
    title: str
    raw_label: str = ""  # what the raw limit is, in one line
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)  # why a missed target is missed
    not_measured: str | None = None
    seconds: float = 0.0

    def add(self, measure: str, value, unit: str, raw=None, target: str = "",
            met: bool | None = None) -> Row:
        row = Row(measure, value, unit, raw, target, met)
        self.rows.append(row)
        return row

    @property
    def missed(self) -> list[Row]:
        return [r for r in self.rows if r.met is False]


def fmt(value: float | None, unit: str = "") -> str:
    """A number with as many digits as it deserves."""
    if value is None:
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}".replace(",", " ")
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


def fmt_ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"×{ratio:.2f}"


def met_text(row: Row) -> str:
    if row.met is None:
        return ""
    return "yes" if row.met else "**no**"


HEADER = ["measure", "ged", "raw limit", "ged / raw", "target", "met?"]


def _cells(row: Row) -> list[str]:
    return [row.measure, fmt(row.value, row.unit), fmt(row.raw, row.unit if row.raw is not None else ""),
            fmt_ratio(row.ratio), row.target, met_text(row).replace("**", "")]


def print_section(section: Section) -> None:
    """The section as a plain-text table on stdout."""
    print(f"\n== {section.number}. {section.title} ({section.seconds:.0f} s)")
    if section.not_measured:
        print(f"   not measured: {section.not_measured}")
        return
    if section.raw_label:
        print(f"   raw limit: {section.raw_label}")
    table = [HEADER] + [_cells(r) for r in section.rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    for line in table:
        print("   " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
    for note in section.notes:
        print(f"   - {note}")


def machine() -> dict:
    """Cores, memory and CPU model of this machine, and its load when the run starts."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram_gb = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    ram_gb = int(line.split()[1]) / 1024 / 1024
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tesseract": _first_line(["tesseract", "--version"]),
        "loadavg": os.getloadavg(),
    }


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unavailable"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, cwd=os.path.dirname(os.path.dirname(__file__)))
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def previous_sections(text: str) -> dict[int, dict]:
    """The sections of an earlier BENCHMARKS.md, by number: their summary rows and their
    body, so that a run which did not measure a section can carry its figures over."""
    import re

    found: dict[int, dict] = {}
    date = re.search(r"^- \*\*Date\*\*: (.+?) \(", text, re.M)
    commit = re.search(r"\(commit (\w+)\)", text)
    stamp = f"{date.group(1) if date else 'an earlier run'}, commit {commit.group(1) if commit else '?'}"
    for match in re.finditer(r"^## (\d+)\. .*?(?=^## \d+\. |\Z)", text, re.S | re.M):
        number = int(match.group(1))
        body = match.group(0).rstrip()
        if "\n| " not in body:
            continue  # not measured then either: nothing worth carrying
        rows = [line for line in text.splitlines() if line.startswith(f"| {number} | ")]
        if "_Carried over from" not in body:
            body += f"\n\n_Carried over from the run of {stamp}: not measured in this run._"
        found[number] = {"rows": rows, "body": body}
    return found


def markdown(sections: list[Section], *, quick: bool, command: str, started: dt.datetime,
             seconds: float, info: dict, load_after: tuple,
             carried: dict[int, dict] | None = None) -> str:
    """BENCHMARKS.md: machine, date, command, then every section and every missed target.
    ``carried`` holds sections of an earlier report that this run did not measure."""
    carried = {n: c for n, c in (carried or {}).items()
               if n not in {s.number for s in sections}}
    out = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`) from the measurements of one run; do not "
        "edit by hand. Each figure of ged sits beside its raw limit measured in the same run "
        "on the same machine; the ratio ged / raw is the headline (for a rate, 1.0 means "
        "as fast as the raw limit; for a time or a size, 1.0 means as small).",
        "",
        f"- **Date**: {started.strftime('%Y-%m-%d %H:%M UTC')} ({seconds / 60:.1f} min"
        f"{', quick mode: small sizes, figures not meaningful' if quick else ''})",
        f"- **Machine**: {info['cores']} cores, "
        f"{info['ram_gb']:.0f} GB RAM, {info['cpu']}; Linux {info['kernel']}; "
        f"Python {info['python']}; {info['tesseract']}",
        f"- **Load average** at start {info['loadavg'][0]:.2f}, at the end {load_after[0]:.2f} "
        "(the machine is shared: other work running at the same time slows every figure, "
        "ged's and the raw limit's alike)",
        f"- **Command**: `{command}` (commit {_git_commit()})",
        "",
        "## Summary",
        "",
        "| # | figure | measure | ged | raw limit | ged / raw | target | met? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in _with_carried(sections, carried):
        if isinstance(s, dict):
            out += s["rows"]
            continue
        if s.not_measured:
            out.append(f"| {s.number} | {s.title} | not measured: {_md(s.not_measured)} "
                       "| | | | | |")
            continue
        for r in s.rows:
            if r.target or r is s.rows[0]:  # every target, and each section's headline
                c = _cells(r)
                out.append(f"| {s.number} | {s.title} | {_md(c[0])} | {c[1]} | {c[2]} | {c[3]} "
                           f"| {_md(c[4])} | {met_text(r)} |")
    for s in _with_carried(sections, carried):
        if isinstance(s, dict):
            out += ["", s["body"]]
            continue
        out += ["", f"## {s.number}. {s.title}", ""]
        if s.not_measured:
            out.append(f"not measured: {s.not_measured}")
            continue
        if s.raw_label:
            out += [f"Raw limit: {s.raw_label}", ""]
        out.append("| " + " | ".join(HEADER) + " |")
        out.append("|" + "---|" * len(HEADER))
        for r in s.rows:
            c = _cells(r)
            c[5] = met_text(r)
            out.append("| " + " | ".join(_md(x) for x in c) + " |")
        if s.notes:
            out.append("")
            out += [f"- {n}" for n in s.notes]
        if s.missed:
            out += ["", "**Missed targets and what limits them:**", ""]
            names = ", ".join(r.measure for r in s.missed)
            out.append(f"- Missed: {names}.")
            out += [f"- {text}" for text in s.limits] or [
                "- (no analysis recorded for this miss)"]
        out.append(f"\n_{s.seconds:.0f} s for this section._")
    out.append("")
    return "\n".join(out)


def _with_carried(sections: list[Section], carried: dict[int, dict]) -> list:
    """This run's sections and the carried ones (dicts), in number order."""
    items = [(s.number, s) for s in sections] + [(n, c) for n, c in carried.items()]
    return [item for _n, item in sorted(items, key=lambda pair: pair[0])]


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")
