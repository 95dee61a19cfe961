"""The engines behind the seam, and what each one provides.

GED_SEARCH_BACKEND names one: ``whoosh`` (an index directory per firm,
``ged.search.whoosh``) or ``postgres`` (a table in the shared database,
``ged.search.postgres``). Both are written against ``Engine``.
"""

from __future__ import annotations

from typing import Iterable, Protocol

from .. import runtime
from . import postgres, whoosh
from .parsing import ParsedQuery
from .scope import Scope
from .source import IndexDoc


class Engine(Protocol):
    """A search engine: it indexes ``IndexDoc`` rows and answers a ``ParsedQuery``
    within a ``Scope``. The seam holds the firm's writer lock around every write."""

    EXCERPT_CHARS: int  # snippets are cut from this many first characters of the text
    IndexUnavailable: type[Exception]  # a search cannot be answered now (503)
    NeedsRebuild: type[Exception]  # a write found no usable index: rebuild it

    def init(self) -> None:
        """Prepare what the engine needs (``ged init``); idempotent."""

    def exists(self, firm_id: str) -> bool:
        """Whether the firm has an index (it may still be damaged)."""

    def healthy(self, firm_id: str) -> bool:
        """Whether the firm's index is there and readable now."""

    def stale(self, firm_id: str) -> bool:
        """Whether the index was built by an older analysis (``ANALYSIS_VERSION``)."""

    def write(self, firm_id: str, docs: Iterable[IndexDoc], remove_ids: list[str]) -> None:
        """Add or replace ``docs`` and remove ``remove_ids`` in one commit."""

    def rebuild(self, firm_id: str, docs, progress=None) -> int:
        """Replace the firm's whole index by ``docs`` (a ``DocStream``), atomically."""

    def forget(self) -> None:
        """Forget what this process remembers of the indexes (tests, after a fork)."""

    def search(self, firm_id: str, parsed: ParsedQuery, scope: Scope, *, offset: int,
               limit: int) -> tuple[int, list[tuple[str, float]]]:
        """(total, [(document id, score)...]) of the hits offset..offset+limit."""

    def make_snippet(self, text: str | None, parsed: ParsedQuery, *, fallback: str = "") -> str:
        """An HTML snippet of a hit's text: escaped, each hit wrapped in <mark>."""


ENGINES: dict[str, Engine] = {"whoosh": whoosh, "postgres": postgres}


def backend() -> Engine:
    """The engine named by GED_SEARCH_BACKEND."""
    name = runtime.config().search_backend
    if name not in ENGINES:
        raise RuntimeError(f"unknown GED_SEARCH_BACKEND {name!r} (whoosh or postgres)")
    return ENGINES[name]


def init_backend() -> None:
    """Prepare the engine (``ged init``): directories, extensions, indexes."""
    backend().init()
