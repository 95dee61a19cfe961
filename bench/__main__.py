"""`python -m bench [--quick] [--scale] [--out FILE] [--only KEY,...] [--keep]`

Runs every benchmark section, prints each table as it completes, and writes the
report (by default BENCHMARKS.md at the project root for a full run; a quick run
writes only when --out is given, so it never overwrites the real figures). A full run
measures the million-document PostgreSQL section only with --scale (it takes longer
than the rest together); sections a run does not measure keep the figures of the
BENCHMARKS.md they replace, marked as carried over.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.util
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from .harness import ROOT, Harness
from .report import Section, machine, markdown, previous_sections, print_section
from .sections import ORDER


def _terminate(signum, _frame):
    # Turn SIGTERM into an exception so `finally` stops every process we started.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (about a minute); figures are not meaningful")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the report (default: BENCHMARKS.md for a full run)")
    parser.add_argument("--only", default="",
                        help="comma-separated section keys: " + ", ".join(ORDER))
    parser.add_argument("--scale", action="store_true",
                        help="also measure PostgreSQL at 1,000,000 documents (about half an hour)")
    parser.add_argument("--keep", action="store_true", help="keep the run's temporary directory")
    args = parser.parse_args(argv)
    only = {k.strip() for k in args.only.split(",") if k.strip()}
    out = args.out or (None if args.quick else ROOT / "BENCHMARKS.md")

    signal.signal(signal.SIGTERM, _terminate)
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    info = machine()
    print(f"ged benchmark ({'quick' if args.quick else 'full'}) on {info['cores']} cores, "
          f"{info['cpu']}; load average {info['loadavg'][0]:.2f}", flush=True)
    harness = Harness(quick=args.quick, keep=args.keep)
    print(f"run directory: {harness.tmp}", flush=True)
    sections: list[Section] = []
    try:
        harness.start_redis()
        for name in ORDER:
            if importlib.util.find_spec(f"bench.sections.{name}") is None:
                continue  # a section not written yet
            module = importlib.import_module(f"bench.sections.{name}")
            if only and module.KEY not in only and name not in only:
                continue
            if (getattr(module, "ON_REQUEST", False) and not args.quick and not args.scale
                    and not only):
                print(f"\n… {module.NUMBER}. {module.TITLE}: measured only with --scale; "
                      "the report keeps the previous figures", flush=True)
                continue
            sections.append(_run_section(harness, module))
            print_section(sections[-1])
            sys.stdout.flush()
    finally:
        harness.close()
    if args.keep:
        print(f"\nrun directory kept: {harness.tmp}")
    seconds = time.monotonic() - t0
    sections.sort(key=lambda s: s.number)
    command = "python -m bench" + (" --quick" if args.quick else "") + \
        (" --scale" if args.scale else "") + \
        (f" --only {args.only}" if args.only else "")
    if out:
        carried = {}
        if not args.quick and out.exists():
            carried = previous_sections(out.read_text())
        text = markdown(sections, quick=args.quick, command=command, started=started,
                        seconds=seconds, info=info, load_after=os.getloadavg(), carried=carried)
        out.write_text(text)
        print(f"\nreport written to {out}")
    print(f"total {seconds / 60:.1f} min")
    return 0


def _run_section(harness: Harness, module) -> Section:
    """Run one section; a missing feature or a failure becomes "not measured"."""
    print(f"\n… {module.NUMBER}. {module.TITLE}", flush=True)
    started = time.monotonic()
    before = list(harness.procs)
    reason = module.unavailable() if hasattr(module, "unavailable") else None
    if reason:
        section = Section(module.NUMBER, module.KEY, module.TITLE, not_measured=reason)
    else:
        try:
            section = module.run(harness)
        except Exception as exc:  # noqa: BLE001 - one failed figure must not stop the others
            traceback.print_exc()
            section = Section(module.NUMBER, module.KEY, module.TITLE,
                              not_measured=f"the run failed ({exc.__class__.__name__}: "
                                           f"{str(exc).splitlines()[0] if str(exc) else ''})")
        finally:
            for proc in list(harness.procs):
                if proc not in before:
                    harness.stop(proc)
            try:
                harness.empty_queues("bench", "bench-raw")
            except Exception:  # noqa: BLE001
                pass
    section.seconds = time.monotonic() - started
    return section


if __name__ == "__main__":
    sys.exit(main())
