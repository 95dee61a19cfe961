"""What PostgreSQL is given to analyse: text folded by ``search.fold`` (the rule every
engine shares), so that its parser and the ``ged_french`` configuration (French
Snowball stemmer, stop words dropped keeping their positions) find the same words as
the Whoosh engine."""

from __future__ import annotations

import re

from ..folding import ELISIONS, fold
from .schema import CONFIG

# The elisions the French stop list lacks ("jusqu’au") become one it has, so that
# they are dropped (keeping their position) as the Whoosh backend drops them.
STOPPED_ELISIONS = frozenset("c d j l m n s t qu".split())  # in PostgreSQL's french.stop
_ELIDED = re.compile(r"\b(?:%s)\b" % "|".join(sorted(ELISIONS - STOPPED_ELISIONS)))


def analysed(text: str) -> str:
    """``text`` as PostgreSQL must see it: folded by the rule both backends share
    (``search.fold``), every separator a space, so its parser finds the same words."""
    folded = fold(text)
    return _ELIDED.sub("qu", folded) if "qu " in folded else folded


def tsvector_sql(column: str) -> str:
    """The SQL tsvector of a column of ``analysed`` text (or, approximately, of raw
    text: PostgreSQL's parser and ``unaccent`` then fold it)."""
    return f"to_tsvector('{CONFIG}', {column})"

