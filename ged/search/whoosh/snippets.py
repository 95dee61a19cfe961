"""Snippets of the Whoosh engine: cut by a regex highlighter from a bounded excerpt of
the text (names, paths and the text come from the database; only the document id is
stored in the index)."""

from __future__ import annotations

import html
import re

from ..folding import WORD_START, accent_insensitive, scannable
from .analysis import prefix_term, term_bytes, terms


SNIPPET_CHARS = 220
EXCERPT_CHARS = 200_000  # snippets are cut from the first 200,000 characters of the text


def highlight_terms(parsed) -> tuple[frozenset, tuple]:
    """(terms, prefixes) to mark in a snippet for a parsed query."""
    found, prefixes = set(), []
    for group in parsed.groups:
        for clause in group:
            if clause.kind == "prefix":
                prefix = prefix_term(clause.text)
                if prefix:
                    prefixes.append(prefix)
            else:
                found.update(terms(clause.text))
    return frozenset(found), tuple(prefixes)


_patterns: dict = {}


def _surface_pattern(found, prefixes) -> re.Pattern | None:
    """A regex over the original text finding the words that may be a wanted term.
    A term is nearly always a prefix of its surface forms ("factur" -> "Factures");
    where the stemmer rewrote an ending (chevaux -> cheval) the first letters match."""
    key = (found, prefixes)
    pattern = _patterns.get(key)
    if pattern is None:
        stems = sorted(set(found) | set(prefixes), key=len, reverse=True)
        if not stems:
            return None
        alts = "|".join(accent_insensitive(s[: max(3, len(s) - 2)] if s.isalpha() else s)
                        for s in stems)
        pattern = re.compile(r"%s(?:%s)\w*" % (WORD_START, alts), re.IGNORECASE)
        if len(_patterns) > 512:
            _patterns.clear()
        _patterns[key] = pattern
    return pattern


def make_snippet(text: str | None, parsed, *, fallback: str = "") -> str:
    """An HTML snippet around the densest group of hits: the text HTML-escaped and
    each hit wrapped in <mark>. Cut from a bounded excerpt of the text, so it costs
    a regex scan, not a re-analysis of the document."""
    text = (text or "")[:EXCERPT_CHARS]
    if not text.strip():
        text = fallback
    found, prefixes = highlight_terms(parsed)
    pattern = _surface_pattern(found, prefixes)
    spans = []
    if pattern is not None and text:
        for m in pattern.finditer(scannable(text)):  # same offsets as text
            word = m.group()
            candidates = [t.decode("ascii") for t in term_bytes(word)]
            if any(t in found or t.startswith(prefixes) for t in candidates):
                spans.append((m.start(), m.end(), candidates[0]))
                if len(spans) >= 60:
                    break
    if not spans:
        cut = text[:SNIPPET_CHARS]
        return html.escape(" ".join(cut.split())) + ("…" if len(text) > SNIPPET_CHARS else "")
    begin = max(0, _best_window(spans) - 60)
    if begin > 0:  # start on a word boundary
        space = text.rfind(" ", max(0, begin - 20), begin + 1)
        begin = space + 1 if space >= 0 else begin
    end = min(len(text), begin + SNIPPET_CHARS)
    if end < len(text):
        space = text.find(" ", end, end + 20)
        end = space if space >= 0 else end
    out, pos = [], begin
    for s, e, _t in spans:
        if s < begin or e > end:
            continue
        out.append(html.escape(text[pos:s]))
        out.append("<mark>" + html.escape(text[s:e]) + "</mark>")
        pos = e
    out.append(html.escape(text[pos:end]))
    snippet = " ".join("".join(out).split())
    return ("…" if begin > 0 else "") + snippet + ("…" if end < len(text) else "")


def _best_window(spans) -> int:
    """Start offset of the window holding the most distinct terms among the hits."""
    best, best_score = spans[0][0], 0
    for i, (start, _e, _t) in enumerate(spans):
        distinct = {t for s2, _e2, t in spans[i:] if s2 - start < SNIPPET_CHARS - 80}
        if len(distinct) > best_score:
            best, best_score = start, len(distinct)
    return best
