"""What a word is: the one folding rule every engine reads text and queries through.

Case, accents and ligatures are ignored, other Latin letters are spelled in ASCII
("ł" -> "l", "œ" -> "oe"), and every apostrophe and punctuation mark separates
words ("l’échéance" -> "l echeance", "FA-2026-0042" -> "fa 2026 0042"). This table
is the only one: the Whoosh engine indexes ``fold_bytes``, PostgreSQL receives
``fold`` (to_tsvector, to_tsquery) and marks its snippets' hits in ``fold_aligned``
text, and both engines' highlighting regexes come from ``accent_insensitive``.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from itertools import repeat

# --- what a word is: the one analysis rule of every engine ----------------------------
#
# Both engines see text only through ``fold`` (PostgreSQL: the folded string goes to
# to_tsvector and to_tsquery, never the raw one) or ``fold_bytes`` (Whoosh: the same
# folding, as ASCII bytes), so they agree on accents, ligatures and separators by
# construction. Each engine then stems and drops its stop words (ELISIONS among them)
# keeping their positions, so a phrase never skips a dropped word. Bump
# ANALYSIS_VERSION whenever this changes what an index holds: indexes built before
# are then rebuilt from the database (see ``search.indexing`` and ``search.results``).

ANALYSIS_VERSION = 2
# French elided words: "l’échéance" is the words l + échéance, and l is dropped like a
# stop word, so the word after the apostrophe is found on its own.
ELISIONS = frozenset("l d j m n s t c qu jusqu lorsqu puisqu quoiqu".split())
# Apostrophes Unicode counts as letters (ʼ ʻ ʹ): separators like ' and ’.
_LETTER_APOSTROPHES = "\u02bc\u02bb\u02b9"
# Latin letters that NFKD leaves as they are: spelled in ASCII like unaccent does.
_LIGATURES = {"œ": "oe", "æ": "ae", "ß": "ss", "þ": "th", "ð": "d", "ĸ": "q", "ŋ": "n",
              "ĳ": "ij", "ƕ": "hv", "ƣ": "oi", "ȸ": "db", "ȹ": "qp"}
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
_NON_WORD = re.compile(r"[^\w\x00-\x7f]+")  # symbols and punctuation beyond ASCII
_SEPARATORS = re.compile(r"[\W_]+")
_ASCII_WORDS = bytes(c if (48 <= c <= 57 or 97 <= c <= 122) else 32 for c in range(256))


def _latin_spellings() -> dict[str, str]:
    """Lowercase Latin letters that NFKD does not reduce to ASCII ("ø", "ł", "đ"),
    with their ASCII spelling: the letter their Unicode name is built on."""
    out = dict(_LIGATURES)
    ranges = (range(0xC0, 0x250), range(0x1E00, 0x1F00), range(0x2C60, 0x2C80),
              range(0xA720, 0xA800))
    named = re.compile(r"LATIN SMALL LETTER (?:DOTLESS )?([A-Z])(?: WITH .*)?$")
    for code in (c for r in ranges for c in r):
        ch = chr(code)
        if ch in out or ch != ch.lower() or not ch.isalpha():
            continue
        decomposed = _COMBINING.sub("", unicodedata.normalize("NFKD", ch))
        if decomposed.isascii():
            continue
        m = named.match(unicodedata.name(ch, ""))
        if m:
            out[ch] = m.group(1).lower()
    for ch in _LETTER_APOSTROPHES:
        out[ch] = " "
    return out


_SPELLED = _latin_spellings()
_SPELL = re.compile("[%s]" % "".join(sorted(_SPELLED)))


def _fold(text: str) -> str:
    """Lowercase, accents dropped, other Latin letters and ligatures spelled in ASCII,
    non-ASCII symbols and apostrophes turned into spaces; ASCII punctuation and the
    letters of other scripts are left for the caller."""
    if text.isascii():
        return text.lower()
    text = _COMBINING.sub("", unicodedata.normalize("NFKD", text).lower())
    if text.isascii():
        return text
    if _SPELL.search(text):
        text = _SPELL.sub(lambda m: _SPELLED[m.group()], text)
    return _NON_WORD.sub(" ", text)


def _slow_fold(text: str) -> str:
    """``fold`` for any text (the definition the byte table below is computed from)."""
    return _SEPARATORS.sub(" ", _fold(text))


def _spell_other_scripts(exc):
    """Codec error handler: spell other scripts' letters as ASCII ("x43c"), so that an
    ASCII index keeps them searchable; anything else separates words."""
    out = [f"x{ord(ch):x}" if ch.isalnum() else " " for ch in exc.object[exc.start:exc.end]]
    return "".join(out), exc.end


codecs.register_error("ged_fold", _spell_other_scripts)

# The same rule as one byte table over Windows-1252 (the characters of Western European
# text), computed from ``_slow_fold`` character by character, so that most texts fold
# at C speed: a byte becomes its folded letter or digit, or a space. The few
# characters spelled with several letters (œ, ß, ½) are marked and spelled first;
# those folding beyond ASCII (µ) send the text down the general path.
_SPELL_FIRST, _BEYOND = 1, 2


def _cp1252_table() -> tuple[bytes, dict[str, str]]:
    table, spell_first = bytearray(range(256)), {}
    for b in range(256):
        try:
            ch = bytes([b]).decode("cp1252")
        except UnicodeDecodeError:
            table[b] = 32
            continue
        spelled = _slow_fold(ch)
        folded = spelled.strip()
        if not folded:
            table[b] = 32
        elif not folded.replace(" ", "").isascii():
            table[b] = _BEYOND
        elif len(folded) == 1:
            table[b] = ord(folded)
        else:
            table[b] = _SPELL_FIRST
            spell_first[ch] = spelled
    return bytes(table), spell_first


_CP1252, _CP1252_SPELLED = _cp1252_table()
_CP1252_SPELL = re.compile("[%s]" % "".join(sorted(_CP1252_SPELLED)))


def _fast_fold(text: str) -> bytes | None:
    """``fold`` as ASCII bytes for text within Windows-1252, None for any other."""
    if text.isascii():
        return text.encode("ascii").translate(_CP1252)
    try:
        raw = text.encode("cp1252").translate(_CP1252)
    except UnicodeEncodeError:
        return None
    if _SPELL_FIRST in raw:
        text = _CP1252_SPELL.sub(lambda m: _CP1252_SPELLED[m.group()], text)
        raw = text.encode("cp1252").translate(_CP1252)
    return None if _BEYOND in raw else raw


def fold(text: str) -> str:
    """The words of ``text`` folded ("L’Échéance n°3" -> "l echeance n 3"): every
    character that is not a letter or a digit separates words."""
    raw = _fast_fold(text)
    return raw.decode("ascii") if raw is not None else _slow_fold(text)


def fold_bytes(text: str) -> bytes:
    """``fold`` as ASCII bytes, at C speed ("Relevé" -> b"releve"): the same words,
    those of other scripts spelled in ASCII ("x43c"); split() them."""
    raw = _fast_fold(text)
    if raw is None:
        raw = _fold(text).encode("ascii", "ged_fold").translate(_ASCII_WORDS)
    return raw


class _Pieces(dict):
    """Character code -> its ``fold``, computed once, so that ``str.translate`` folds a
    text character by character at C speed; notes the characters that fold to more or
    fewer than one ("œ" -> "oe", a combining accent -> "")."""

    def __missing__(self, code: int) -> str:
        piece = fold(chr(code))
        if len(self) < 100_000:  # other scripts' letters would grow it forever
            self[code] = piece
        if len(piece) != 1 and chr(code) not in _uneven:
            _uneven.add(chr(code))
            _state["uneven"] = None
        return piece


_pieces = _Pieces()
_uneven: set[str] = set()
_state: dict = {"uneven": None}


def _uneven_pattern() -> re.Pattern | None:
    if _state["uneven"] is None and _uneven:
        _state["uneven"] = re.compile("[%s]" % "".join(map(re.escape, sorted(_uneven))))
    return _state["uneven"]


def fold_aligned(text: str) -> tuple[str, list[int] | None]:
    """``text`` folded character by character, so that a word found in the folded text
    can be located in the original: (folded, origin), ``origin[i]`` being the index in
    ``text`` of the character ``folded[i]`` comes from (None when every character
    folds to exactly one, the common case: the indexes are then the same)."""
    raw = _fast_fold(text)  # Western text at C speed, when nothing is spelled longer
    if raw is not None and len(raw) == len(text):
        return raw.decode("ascii"), None
    folded = text.translate(_pieces)
    pattern = _uneven_pattern()
    if pattern is None or pattern.search(text) is None:
        return folded, None
    origin: list[int] = []
    done = 0
    for m in pattern.finditer(text):
        i = m.start()
        origin.extend(range(done, i))
        origin.extend(repeat(i, len(_pieces[ord(m.group())])))
        done = i + 1
    origin.extend(range(done, len(text)))
    return folded, origin


def _accent_classes() -> tuple[dict[str, str], dict[str, str]]:
    """(ASCII letter -> the Latin-1 characters that fold to it, two-letter spelling ->
    the letters spelled so), from ``fold`` itself. Highlighting regexes are built from
    them: classes beyond Latin-1 would cost a millisecond to compile per query, so
    rarer letters (ł, ő) are found by the search but not located by these regexes."""
    single: dict[str, set] = {}
    double: dict[str, set] = {}
    for code in range(0xC0, 0x250):
        ch = chr(code)
        folded = fold(ch).strip()
        if not folded.isascii() or not folded.isalpha():
            continue
        if ch != ch.lower():
            continue  # the regexes ignore case
        if len(folded) == 1 and code <= 0xFF:
            single.setdefault(folded, {folded}).add(ch)
        elif len(folded) == 2:
            double.setdefault(folded, set()).add(ch)
    return ({k: "".join(sorted(v)) for k, v in single.items()},
            {k: "|".join(sorted(v)) for k, v in double.items()})


ACCENTED, _SPELLED_AS = _accent_classes()
WORD_START = r"(?<!\w)"  # highlighting regexes run over ``scannable`` text


def scannable(text: str) -> str:
    """``text`` for the highlighting regexes, of the same length (their offsets are
    the original's): apostrophes Unicode counts as letters (ʼ) made typographic (’),
    so that the word after one starts a word."""
    for ch in _LETTER_APOSTROPHES:
        if ch in text:
            text = text.replace(ch, "\u2019")
    return text


def accent_insensitive(ascii_text: str) -> str:
    """A regex (to compile with re.IGNORECASE) matching the folded ``ascii_text`` in
    original text: with or without accents, and ligatures for their spelling
    ("oeuvre" also matches "Œuvre")."""
    out, i = [], 0
    while i < len(ascii_text):
        pair = ascii_text[i:i + 2]
        if pair in _SPELLED_AS:
            one, two = (f"[{ACCENTED[c]}]" if c in ACCENTED else c for c in pair)
            out.append(f"(?:{one}{two}|{_SPELLED_AS[pair]})")
            i += 2
            continue
        ch = ascii_text[i]
        out.append(f"[{re.escape(ACCENTED[ch])}]" if ch in ACCENTED else re.escape(ch))
        i += 1
    return "".join(out)

