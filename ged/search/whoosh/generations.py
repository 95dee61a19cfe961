"""Index directories: ``<data dir>/index/<firm id>`` holds generation directories
and a ``current`` link switched atomically, so searches never see a half-built
index. Files are read without mmap, so a damaged file raises an error (503)
instead of SIGBUS."""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
from pathlib import Path

from whoosh import index
from whoosh.filedb.filestore import FileStorage

from ... import runtime
from ...errors import GedError
from ..folding import ANALYSIS_VERSION
from .codec import make_schema

log = logging.getLogger(__name__)


class IndexUnavailable(GedError):
    """The firm's index is missing or damaged: 503 until it is rebuilt."""

    status = 503
    code = "search_unavailable"

    def __init__(self, message: str | None = None):
        super().__init__(message or "The search index is missing or damaged; it is being rebuilt "
                                    "(an administrator can run `ged reindex`). Try again shortly.")


class NeedsRebuild(Exception):
    """The index is missing or unreadable: the caller rebuilds it from the database."""


def index_root() -> Path:
    return runtime.config().data_dir / "index"


def firm_dir(firm_id: str) -> Path:
    """``<data dir>/index/<firm id>``: generation directories and the ``current`` link."""
    if not re.fullmatch(r"[0-9a-z]{1,40}", firm_id or ""):
        raise ValueError(f"bad firm id {firm_id!r}")
    return index_root() / firm_id


def current_dir(firm_id: str) -> Path | None:
    """The generation directory in use, or None when the firm has no index."""
    link = firm_dir(firm_id) / "current"
    try:
        target = os.readlink(link)
    except OSError:
        return None
    path = link.parent / target
    return path if path.is_dir() else None


def exists(firm_id: str) -> bool:
    """Whether the firm has an index (it may still be damaged)."""
    return current_dir(firm_id) is not None


def healthy(firm_id: str) -> bool:
    """Whether the firm's index exists and its segments open."""
    try:
        open_index(firm_id).reader().close()
        return True
    except Exception:  # noqa: BLE001 - IndexUnavailable, or a damaged segment
        return False


ANALYSIS_FILE = "ANALYSIS"  # in a generation directory: the analysis version it was built with
_versions: dict[str, int] = {}  # generation directory -> its analysis version


def forget() -> None:
    """Forget the analysis versions read from generation directories."""
    _versions.clear()


def new_generation(firm_id: str) -> Path:
    base = firm_dir(firm_id)
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"gen-{time.time_ns():x}"
    path.mkdir()
    index.create_in(str(path), make_schema())
    (path / ANALYSIS_FILE).write_text(f"{ANALYSIS_VERSION}\n")
    return path


def stale(firm_id: str) -> bool:
    """Whether the firm's index was built by an older analysis (``search.ANALYSIS_VERSION``):
    it still answers, but must be rebuilt. A generation never changes version."""
    path = current_dir(firm_id)
    if path is None:
        return False
    version = _versions.get(str(path))
    if version is None:
        try:
            version = int((path / ANALYSIS_FILE).read_text().strip() or 0)
        except (OSError, ValueError):
            version = 1  # built before versions were recorded
        if len(_versions) > 1000:
            _versions.clear()
        _versions[str(path)] = version
    return version != ANALYSIS_VERSION


def switch_to(firm_id: str, generation: Path) -> None:
    """Point ``current`` at ``generation`` atomically, then drop older generations
    (readers still open on them keep their files until they close)."""
    base = firm_dir(firm_id)
    tmp = base / f".current-{os.getpid()}-{threading.get_ident()}"
    tmp.unlink(missing_ok=True)
    os.symlink(generation.name, tmp)
    os.replace(tmp, base / "current")
    for old in base.glob("gen-*"):
        if old.name != generation.name:
            shutil.rmtree(old, ignore_errors=True)


def open_index(firm_id: str, path: Path | None = None):
    path = path or current_dir(firm_id)
    if path is None:
        raise IndexUnavailable()
    try:
        # No mmap: a file truncated under a reader (a disk or a person damaging the
        # index) must raise an error here, not kill the process with SIGBUS.
        return FileStorage(str(path), supports_mmap=False).open_index()
    except Exception as exc:  # noqa: BLE001 - a damaged TOC can raise anything on unpickling
        log.error("search index of firm %s unreadable: %r", firm_id, exc)
        raise IndexUnavailable() from exc


def init() -> None:
    """Prepare the index root (``ged init``)."""
    index_root().mkdir(parents=True, exist_ok=True)
