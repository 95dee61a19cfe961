"""Where the time goes: a short cProfile of ged's own code path, summarised in one
line for the report ("what limits it"), so a missed target names its hot spots
from the same run rather than from a guess."""

from __future__ import annotations

import cProfile
import os
import pstats
from typing import Callable

from .harness import ROOT

GED = str(ROOT / "ged") + os.sep


def _label(key: tuple) -> str:
    filename, line, name = key
    if filename.startswith(GED):
        return f"`ged/{filename[len(GED):]}:{name}`"
    if filename == "~":  # a builtin, e.g. {method 'load_verify_locations' of ...}
        return f"`{name.strip('<>{}')}`"
    parts = filename.replace("\\", "/").split("/")
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1:]
    else:
        parts = parts[-1:]
    return f"`{'/'.join(parts)}:{name}`"


def hotspots(run: Callable[[], object], top: int = 3) -> str:
    """Profile ``run()`` and say which of ged's functions (cumulative) and which leaf
    functions (own time) take the largest shares of it."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        run()
    finally:
        profile.disable()
    stats = pstats.Stats(profile).stats  # key -> (cc, nc, tottime, cumtime, callers)
    total = sum(v[2] for v in stats.values()) or 1e-9
    ged = {k: v[3] for k, v in stats.items() if k[0].startswith(GED)}
    # Skip wrappers: a ged function most of whose time is one ged callee's time.
    wrappers = set()
    for callee, cum in ged.items():
        for caller in stats[callee][4]:
            if caller in ged and caller != callee and cum >= 0.8 * ged[caller]:
                wrappers.add(caller)
    # ... and the entry point itself (the whole run).
    inner = sorted(((cum, k) for k, cum in ged.items()
                    if k not in wrappers and cum < 0.95 * total), reverse=True)[:top]
    leaves = sorted(((v[2], k) for k, v in stats.items()), reverse=True)[:top]
    ged_text = ", ".join(f"{_label(k)} {cum / total:.0%}" for cum, k in inner)
    leaf_text = ", ".join(f"{_label(k)} {own / total:.0%}" for own, k in leaves)
    return (f"profile of this path in the same run: in ged's code {ged_text or '—'}; "
            f"own time {leaf_text}")
