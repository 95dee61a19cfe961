"""The Whoosh engine (GED_SEARCH_BACKEND=whoosh): one index per firm under
``<data dir>/index/<firm id>``.

Whoosh keeps what it is good at: segment files, the term dictionary, stored
fields, deletions, atomic commits (a TOC per generation) and segment merging.
What it does per posting in Python is replaced, because the targets (100,000
documents of 300 words: two-word query with 20 snippets under 50 ms, phrase
under 150 ms, bulk indexing at 1,000 documents per second, on 2 cores) are
10 to 50 times beyond its stock path:

- ``analysis``: ``search.fold_bytes`` cuts the words at C speed and a dict-cached
  light French stemmer maps them; stop words and elisions keep their positions.
- ``codec``: posting blocks of 1,024 hold raw bytes (delta ids, one byte of term
  frequency, positions as uint32 arrays), not pickled tuples and zlib.
- ``writer``: postings go into per-term arrays as documents are added and are
  written a block at a time; merges read whole blocks the same way.
- ``generations``: the index directories; ``build``: full rebuilds into a new
  generation (one builder process per core for large firms), switched atomically.
- ``query``: posting lists decoded once per segment and combined with C-level set
  operations, BM25 for the candidates only, phrases checked against positions.
- ``snippets``: a regex highlighter over a bounded excerpt of the text.

Nothing but the document id is stored: names, paths and the text come from the
database (the source of truth).
"""

from __future__ import annotations

from .build import rebuild
from .generations import IndexUnavailable, NeedsRebuild, exists, healthy, init, stale
from .query import forget, search
from .snippets import EXCERPT_CHARS, make_snippet
from .writer import write

__all__ = ["EXCERPT_CHARS", "IndexUnavailable", "NeedsRebuild", "exists", "forget",
           "healthy", "init", "make_snippet", "rebuild", "search", "stale", "write"]
