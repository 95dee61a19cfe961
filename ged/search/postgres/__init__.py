"""The PostgreSQL engine (GED_SEARCH_BACKEND=postgres): full-text search in the
database every host already shares, behind the same seam as Whoosh (``ged.search``
parses the query, computes the scope and re-checks every hit).

- Analysis (``analysis``): text and queries reach PostgreSQL folded by
  ``search.fold`` (the rule the Whoosh engine applies too: accents, ligatures,
  apostrophes and every other separator), then the text configuration
  ``ged_french`` (created by ``init``, i.e. ``ged init``) stems them with the French
  Snowball stemmer and drops its stop words, keeping their positions. The analysis
  version each firm's rows were built with is kept in ``search_version``: rows of
  an older one are rebuilt (see ``search.ANALYSIS_VERSION``).
- One row per live document in ``search_entry`` (``schema``, ``writer``): firm,
  company, the folder's materialised path of ids (subtree and hidden-folder
  filters), kind, deposit time, and a weighted tsvector (A: name, B: folder names,
  C: invoice fields, D: the first INDEX_CHARS characters of the text). ``nom:``,
  ``dossier:`` and ``facture:`` become weight restrictions of the tsquery.
- Indexes: the text index (RUM, ``rum_tsvector_addon_ops`` with the deposit time
  attached, where the server has the ``rum`` extension; GIN otherwise) and btree
  indexes on (company, deposit time) and (firm, deposit time).
- Broad queries (``query``): ranking every match of words found in most of a
  firm's documents costs seconds at a million documents, so only a bounded
  candidate set is ranked: the CANDIDATES newest matches. Results are those
  candidates, best-ranked first, then any older matches newest first; with fewer
  matches than CANDIDATES this is plain ranking. The newest matches are found by
  one of two paths, chosen per query from the planner's estimates and costs
  measured at that size (``_access_path``): walking the scope's documents newest
  first and checking each (common words: the candidates come at once), or reading
  the words' postings in the text index and sorting the matches by date (rare
  words). ``total`` is exact up to CANDIDATES matches (and up to TOTAL_CAP on the
  bitmap path); beyond, it is the planner's estimate.
- Snippets (``snippets``): ``ts_headline`` (the same analysis as the match) marks
  the hits, in the folded text of a bounded window around the first likely hit;
  the marks are carried back onto the original text, HTML-escaped, like the
  Whoosh engine's.

Writes are plain transactions: searches see the old rows until a write or a
rebuild commits. The caller (``ged.search``) holds the firm's writer lock.
"""

from __future__ import annotations

from .query import search
from .schema import IndexUnavailable, NeedsRebuild, exists, forget, healthy, init, stale
from .snippets import EXCERPT_CHARS, make_snippet
from .writer import rebuild, write

__all__ = ["EXCERPT_CHARS", "IndexUnavailable", "NeedsRebuild", "exists", "forget", "healthy",
           "init", "make_snippet", "rebuild", "search", "stale", "write"]
