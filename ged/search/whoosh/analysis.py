"""French analysis for the Whoosh engine: ``search.fold_bytes`` (the folding rule
every engine shares: accents, ligatures, apostrophes and other separators) cuts the
words at C speed, and a dict-cached light French stemmer (plurals, feminine forms,
common endings; Savoy's "light" stemmer as in Lucene) maps each word through
``map(cache.__getitem__, ...)``. Stop words and elisions ("l’", "qu’") are dropped
but keep their positions."""

from __future__ import annotations

from whoosh.analysis import Token, Tokenizer

from ..folding import ELISIONS, fold_bytes


# The most frequent French (and a few English) function words, accents folded.
STOP_WORDS = frozenset("""
au aux avec ce ces cet cette dans de des du elle elles en et eux il ils je la le les leur
leurs lui ma mais me meme mes moi mon ne nos notre nous on ou par pour qu que qui sa se ses
son sur ta te tes toi ton tu un une vos votre vous est sont ete etre avoir ont
the of and to in is for on
""".split()) | ELISIONS


def _norm(w: str) -> str:
    """Final clean-up of the light stemmer: a trailing -ie, -r, -e(e) and doubled letter."""
    if len(w) > 4:
        if w.endswith("ie"):
            w = w[:-2]
        if len(w) > 4 and w[-1] == "r":
            w = w[:-1]
        if len(w) > 4 and w[-1] == "e":
            w = w[:-1]
        if len(w) > 4 and w[-1] == "e":
            w = w[:-1]
        if len(w) > 4 and w[-1] == w[-2] and w[-1].isalpha():
            w = w[:-1]
    return w


# (minimum length, suffix, replacement) tried in order; the first match ends the stemming.
_ENDINGS = (
    (9, "issement", "ir"), (8, "issant", "ir"),
)
_ENDINGS_AFTER = (
    (11, "ficatrice", "fier"), (10, "ficateur", "fier"), (9, "catrice", "quer"),
    (8, "cateur", "quer"), (8, "atrice", "er"), (7, "ateur", "er"),
)
_ENDINGS_LATE = (
    (5, "ieme", ""), (7, "teuse", "ter"), (6, "teur", "ter"), (5, "euse", "eu"),
    (8, "ere", "er"), (7, "ive", "if"), (9, "nnelle", "n"), (9, "nnel", "n"),
)
_ENDINGS_LAST = (
    (8, "esse", "e"), (7, "inage", "in"), (9, "isateur", ""), (8, "ation", ""), (8, "ition", ""),
)


def stem(w: str) -> str:
    """Savoy's light French stemmer (as in Lucene's FrenchLightStemmer) on an
    accent-folded lowercase word: plurals, feminine forms and common endings."""
    if len(w) > 5 and w[-1] == "x":
        w = w[:-2] + "l" if w[-3] == "a" and w[-2] == "u" and w[-4] != "e" else w[:-1]
    elif len(w) > 3 and w[-1] == "x":
        w = w[:-1]
    if len(w) > 3 and w[-1] == "s":
        w = w[:-1]
    n = len(w)
    for minimum, suffix, repl in _ENDINGS:
        if n > minimum and w.endswith(suffix):
            return _norm(w[: -len(suffix)] + repl)
    if n > 6 and w.endswith("ement"):
        w = w[:-4]
        if len(w) > 3 and w.endswith("ive"):
            w = w[:-2] + "f"  # activement -> actif
        return _norm(w)
    for minimum, suffix, repl in _ENDINGS_AFTER:
        if n > minimum and w.endswith(suffix):
            return _norm(w[: -len(suffix)] + repl)
    if n > 6 and w.endswith("trice"):
        w = w[:-5] + "teur"
        n = len(w)
    for minimum, suffix, repl in _ENDINGS_LATE:
        if n > minimum and w.endswith(suffix):
            return _norm(w[: -len(suffix)] + repl)
    if n > 8 and w.endswith("ique"):
        w = w[:-4]
        n = len(w)
    if n > 9 and w.endswith("isation"):
        w = w[:-7]
        if len(w) > 5 and w.endswith("ual"):
            w = w[:-2] + "el"
        return _norm(w)
    for minimum, suffix, repl in _ENDINGS_LAST:
        if n > minimum and w.endswith(suffix):
            return _norm(w[: -len(suffix)] + repl)
    return _norm(w)


def _term(word: bytes) -> bytes:
    """The index term of one folded word; b'' for a stop word."""
    text = word.decode("ascii")
    if text in STOP_WORDS:
        return b""
    if len(text) == 1:
        return word if text.isdigit() else b""
    if not text.isalpha():
        return word  # numbers, references: kept as they are
    return stem(text).encode("ascii")


class _TermCache(dict):
    """word -> term, computed once: ``map(cache.__getitem__, words)`` runs at C speed."""

    def __missing__(self, word):
        value = self[word] = _term(word)
        return value


_cache = _TermCache()
_CACHE_MAX = 400_000


def words(text: str) -> list[bytes]:
    """The folded words of a text, in order."""
    return fold_bytes(text).split()


def term_slots(text: str) -> list[bytes]:
    """The index term of each word of a text, in order, b'' for a dropped word (stop
    word, elision, single letter): a word's index in this list is its position."""
    if len(_cache) > _CACHE_MAX:  # numbers and references would grow it forever
        _cache.clear()
    return list(map(_cache.__getitem__, fold_bytes(text).split()))


def term_bytes(text: str) -> list[bytes]:
    """The index terms of a text as bytes, in order (stop words dropped)."""
    return [t for t in term_slots(text) if t]


def terms(text: str) -> list[str]:
    """The index terms of a text, in order (stop words dropped)."""
    return [t.decode("ascii") for t in term_bytes(text)]


def phrase_terms(text: str) -> tuple[list[str], list[int]]:
    """(terms, offsets) of a phrase: each term's position relative to the first, the
    dropped words counted ("montant de total": montant at 0, total at 2)."""
    found, offsets = [], []
    for pos, term in enumerate(term_slots(text)):
        if term:
            found.append(term.decode("ascii"))
            offsets.append(pos)
    return found, [p - offsets[0] for p in offsets] if offsets else []


class FrenchAnalyzer(Tokenizer):
    """Whoosh's view of ``terms`` (for tools that analyze through the schema)."""

    def __eq__(self, other):
        return other.__class__ is self.__class__

    def __call__(self, value, positions=False, chars=False, keeporiginal=False,
                 removestops=True, start_pos=0, start_char=0, tokenize=True, mode="", **kwargs):
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        for pos, term in enumerate(term_slots(value), start_pos):
            if not term:
                continue
            text = term.decode("ascii")
            token.text = text
            token.boost = 1.0
            token.stopped = False
            if positions:
                token.pos = pos
            yield token


PREFIX_MIN = 2


def prefix_term(text: str) -> str | None:
    """The indexed prefix for a user's ``mot*``: folded, and stemmed when the stem is
    a prefix of the word ("factures*" looks for "factur…")."""
    found = words(text)
    if not found:
        return None
    # The first word kept by the analysis: "l'éch*" looks for "ech…".
    word = next((w for w in found if _cache[w]), found[-1])
    stemmed = _cache[word]
    if stemmed and len(stemmed) >= PREFIX_MIN and word.startswith(stemmed):
        word = stemmed
    return word.decode("ascii")
