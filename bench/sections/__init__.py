"""One module per figure of the benchmark. Each module has ``NUMBER``, ``KEY``,
``TITLE``, ``run(harness) -> Section`` and, when its feature may be missing,
``unavailable() -> str | None`` (the reason it cannot be measured yet).

``ORDER`` is the order they run in: the raw RQ figures first (forwarding is
compared with them), memory last (it gathers what the others saw). The report
prints them by number. A module with ``ON_REQUEST = True`` (the million-document
section) runs in a full run only when asked (``--scale`` or ``--only``); the report
then carries over its figures from the previous BENCHMARKS.md."""

from __future__ import annotations

import importlib
import importlib.util

ORDER = ["rq_raw", "deposit", "switch_cost", "delivery", "forwarding", "ocr", "search",
         "export", "filing", "client_work", "pg_scale", "memory"]


def missing_module(name: str, *attributes: str) -> str | None:
    """Why ged's module ``name`` cannot be benchmarked yet, or None when it can."""
    try:
        if importlib.util.find_spec(name) is None:
            return f"`{name.replace('.', '/')}.py` does not exist yet"
        module = importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - a module being written may not import
        return f"`{name}` does not import yet ({exc.__class__.__name__}: {exc})"
    absent = [a for a in attributes if not hasattr(module, a)]
    if absent:
        return f"`{name}` has no {', '.join(absent)} yet"
    return None


