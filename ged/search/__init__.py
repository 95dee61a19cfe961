"""Full-text search: THE seam between ged and a search engine.

The rest of ged calls only the names below: ``index_dirty`` (jobs on the ``index``
queue), ``remove_document``, ``query`` (API and web page), ``reindex`` and
``rebuild_firm`` (the command, restores) and ``init_backend`` (``ged init``). The
engine is chosen by GED_SEARCH_BACKEND (``search.engine``: ``whoosh`` or
``postgres``) and receives only engine-neutral things: ``IndexDoc`` rows read from
the database (the source of truth), a ``ParsedQuery`` and a ``Scope``.

- ``folding``: what a word is, the one folding table of every engine (``fold``).
- ``parsing``: the query language, parsed into clauses.
- ``scope``: what the searcher may see, as filters apart from the query text.
- ``source``: documents read from the database as the engines index them.
- ``indexing``: the one writer per firm, dirty flags, rebuilds.
- ``results``: a search answered, every hit checked against the database again.
- ``engine``: the ``Engine`` contract and the engine in use; ``whoosh``, ``postgres``.

Both engines read text and queries through ``fold``: case, accents and ligatures
ignored, every apostrophe and punctuation mark a separator ("l’échéance" is found
by "échéance", "FA-2026-0042" by its parts), and a phrase keeps the place of the
stop words it drops.
"""

from __future__ import annotations

from .engine import Engine, backend, init_backend
from .folding import ANALYSIS_VERSION, fold, fold_bytes
from .indexing import index_dirty, rebuild_firm, reindex, remove_document
from .parsing import Clause, ParsedQuery, parse
from .results import query
from .scope import TYPES, Scope, scope_for
from .source import DocStream, IndexDoc

__all__ = ["ANALYSIS_VERSION", "Clause", "DocStream", "Engine", "IndexDoc", "ParsedQuery",
           "Scope", "TYPES", "backend", "fold", "fold_bytes", "index_dirty", "init_backend",
           "parse", "query", "rebuild_firm", "reindex", "remove_document", "scope_for"]
