"""Snippets of the PostgreSQL engine: ``ts_headline`` (the same analysis as the match)
marks the hits in a bounded window (WINDOW_CHARS) around the first likely hit within
the first EXCERPT_CHARS characters. It reads the window folded by ``search.fold``
(``fold_aligned``), so it finds exactly the words the index holds, and the marks are
carried back onto the original text; about SNIPPET_CHARS of it are kept,
HTML-escaped, each hit wrapped in <mark>, like the Whoosh engine."""

from __future__ import annotations

import html
import re
import threading

from ...db import db
from ..folding import ELISIONS, WORD_START, accent_insensitive, fold, fold_aligned, scannable
from .query import build_tsquery
from .schema import CONFIG

EXCERPT_CHARS = 50_000  # snippets come from the first 50,000 characters

_START, _STOP = "\x02", "\x03"
_HEADLINE = f"StartSel={_START}, StopSel={_STOP}, HighlightAll=true"
_MARKS = re.compile(f"([{_START}{_STOP}])")
SNIPPET_CHARS = 220
WINDOW_CHARS = 800  # ts_headline reads this much text around the first likely hit
_snippet_state = threading.local()


def _surface(word: str) -> str:
    """A regex for the words that may stem like the folded ``word``: its first letters
    (all but the last two, at least three), accents optional."""
    return accent_insensitive(word[: max(3, len(word) - 2)])


def _prepared(parsed) -> tuple[str | None, re.Pattern | None]:
    """The headline tsquery and hit-finding regex of ``parsed``, remembered for the
    hits of one search (make_snippet is called once per hit)."""
    key = repr(parsed)
    cached = getattr(_snippet_state, "entry", None)
    if cached is None or cached[0] != key:
        words = [w for group in parsed.groups for c in group for w in fold(c.text).split()]
        words = [w for w in words if len(w) > 1 and w not in ELISIONS] or words
        alternatives = "|".join(sorted({_surface(w) for w in words}))
        pattern = re.compile(f"{WORD_START}(?:{alternatives})", re.IGNORECASE) if words else None
        cached = (key, build_tsquery(parsed, for_headline=True), pattern)
        _snippet_state.entry = cached
    return cached[1], cached[2]


def _window(text: str, pattern: re.Pattern | None) -> str:
    """At most WINDOW_CHARS of ``text``, starting a little before the first likely hit."""
    if len(text) <= WINDOW_CHARS:
        return text
    found = pattern.search(scannable(text)) if pattern is not None else None
    start = max(0, found.start() - WINDOW_CHARS // 4) if found else 0
    if start:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 40 else start
    return text[start:start + WINDOW_CHARS]


def make_snippet(text: str | None, parsed, *, fallback: str = "") -> str:
    """An HTML snippet of a hit: ``ts_headline`` (the same analysis as the match) over a
    bounded window of the text around the first likely hit, escaped, each hit wrapped
    in <mark>."""
    text = (text or "")[:EXCERPT_CHARS]
    if not text.strip():
        text = fallback
    text = text.replace(_START, " ").replace(_STOP, " ")
    query, pattern = _prepared(parsed)
    if not text or query is None:
        return html.escape(" ".join(text[:220].split()), quote=False)
    window = _window(text, pattern)
    # ts_headline reads the window folded as the index was ("FA-2026-0042" and
    # "lʼimpayé" are words apart, "Ångström" is "angstrom"), never PostgreSQL's own
    # accent rules; its marks are then carried back onto the original text.
    folded, origin = fold_aligned(window)
    marked = db.execute_sql(f"SELECT ts_headline('{CONFIG}', %s, %s::tsquery, %s)",
                            (folded, query, _HEADLINE)).fetchone()[0] or ""
    out, pos = [], 0
    for start, end in _hits(marked, folded, origin, len(window)):
        out += [html.escape(window[pos:start], quote=False), _START,
                html.escape(window[start:end], quote=False), _STOP]
        pos = end
    out.append(html.escape(window[pos:], quote=False))
    return _cut(" ".join("".join(out).split())).replace(_START, "<mark>").replace(_STOP, "</mark>")


def _hits(marked: str, folded: str, origin: list[int] | None,
          size: int) -> list[tuple[int, int]]:
    """The (start, end) of each hit ts_headline marked in ``folded``, as offsets in the
    original window of ``size`` characters (``origin``: see ``fold_aligned``), in
    order and never overlapping; none when the headline is not the folded text with
    marks added (a word longer than PostgreSQL's parser keeps cannot be in a window,
    so never seen)."""
    spans, pos, start = [], 0, 0
    for piece in _MARKS.split(marked):
        if piece == _START:
            start = pos
        elif piece == _STOP:
            if pos > start:
                spans.append((start, pos))
        elif folded[pos:pos + len(piece)] != piece:
            return []  # not our text after all: no marks rather than wrong ones
        else:
            pos += len(piece)
    if origin is not None:
        # A hit ends where the next folded character begins: the accents combined
        # with its last letter (folded to nothing) stay inside the mark.
        after = origin + [size]
        spans = [(origin[a], max(origin[b - 1] + 1, after[b])) for a, b in spans]
    hits: list[tuple[int, int]] = []
    for a, b in spans:
        if hits and a < hits[-1][1]:  # two words of one character ("½" is "1 2")
            hits[-1] = (hits[-1][0], max(b, hits[-1][1]))
        else:
            hits.append((a, b))
    return hits


def _cut(marked: str) -> str:
    """About SNIPPET_CHARS of the marked window, from a little before its first hit,
    cut at spaces (never inside an entity) and with every mark closed."""
    if len(marked) <= SNIPPET_CHARS:
        return marked
    first = marked.find(_START)
    begin = max(0, first - 60) if first > 0 else 0
    if begin:
        space = marked.find(" ", begin)
        begin = space + 1 if 0 <= space < (first if first > 0 else len(marked)) else begin
    end = min(len(marked), begin + SNIPPET_CHARS)
    space = marked.find(" ", end)
    end = space if 0 <= space < end + 30 else (len(marked) if end + 30 >= len(marked) else end)
    piece = marked[begin:end]
    if piece.rfind(_START) > piece.rfind(_STOP):
        piece += _STOP
    if piece.find(_STOP) != -1 and (piece.find(_START) == -1 or piece.find(_STOP) < piece.find(_START)):
        piece = _START + piece
    return ("…" if begin else "") + piece + ("…" if end < len(marked) else "")
