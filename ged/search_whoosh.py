"""The Whoosh search backend: one index per firm under ``<data dir>/index/<firm id>``.

Whoosh keeps what it is good at: segment files, the term dictionary, stored
fields, deletions, atomic commits (a TOC per generation) and segment merging.
What it does per posting in Python is replaced, because the targets (100,000
documents of 300 words: two-word query with 20 snippets under 50 ms, phrase
under 150 ms, bulk indexing at 1,000 documents per second, on 2 cores) are
10 to 50 times beyond its stock path:

- Analysis (``term_slots``): ``search.fold_bytes`` (the folding rule both
  backends share: accents, ligatures, apostrophes and other separators) cuts
  the words at C speed, and a dict-cached light French stemmer (plurals,
  feminine forms, common endings; Savoy's "light" stemmer as in Lucene) maps
  each word through ``map(cache.__getitem__, ...)``. Stop words and elisions
  ("l’", "qu’") are dropped but keep their positions.
- Storage (``FastCodec``): posting blocks of 1,024 hold raw bytes (delta ids,
  one byte of term frequency, positions as uint32 arrays), not pickled tuples of
  Python objects and zlib. Positions are decoded only by phrase queries, for
  the candidate documents only.
- Writing (``FastWriter``): postings go into per-term arrays as documents are
  added and are written a block at a time, instead of Whoosh's sorted pool of
  one tuple per posting; merges read whole blocks the same way.
- Querying (``search``): per segment, posting lists are decoded once into
  arrays (cached, bounded) and combined with C-level set operations: the AND of
  the words, the permission and filter sets (cached per segment, which never
  changes once written), deletions; the exact total is the size of that set;
  BM25 (with live-document statistics, so an index with pending deletions ranks
  like a rebuilt one) is computed for the candidates only; phrases are checked
  against positions for the candidates, or, for thousands of them, by
  intersecting (document, position) keys built with C-level iterators.
- Nothing but the document id is stored. Names, paths and the text come from
  the database (the source of truth); snippets are cut by a regex highlighter
  from a bounded excerpt of the text.
- Full rebuilds write a new generation directory (one builder process per core
  for large firms, each writing its own segments) and switch the ``current``
  link atomically, so searches never see a half-built index. Files are read
  without mmap, so a damaged file raises an error (503) instead of SIGBUS.
"""

from __future__ import annotations

import bisect
import html
import logging
import math
import os
import re
import shutil
import threading
import time
from array import array
from collections import OrderedDict
from heapq import nlargest
from itertools import accumulate, chain, repeat
from operator import add, itemgetter, lshift, mul, rshift, sub
from pathlib import Path

from whoosh import fields, formats, index
from whoosh import query as wq
from whoosh.analysis import Token, Tokenizer
from whoosh.codec.whoosh3 import W3Codec, W3LeafMatcher, W3PostingsWriter
from whoosh.filedb.filestore import FileStorage
from whoosh.reading import TermNotFound
from whoosh.searching import Searcher
from whoosh.writing import SegmentWriter

from .errors import GedError, Invalid
from .search import (ANALYSIS_VERSION, ELISIONS, WORD_START, accent_insensitive, fold_bytes,
                     scannable)

log = logging.getLogger(__name__)

# --- French analysis -------------------------------------------------------------------


# The most frequent French (and a few English) function words, accents folded.
STOP_WORDS = frozenset("""
au aux avec ce ces cet cette dans de des du elle elles en et eux il ils je la le les leur
leurs lui ma mais me meme mes moi mon ne nos notre nous on ou par pour qu que qui sa se ses
son sur ta te tes toi ton tu un une vos votre vous est sont ete etre avoir ont
the of and to in is for on
""".split()) | ELISIONS
GAP = 100  # positions between the sections of a field (name / path / content)


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


# --- storage: fields, format, codec ----------------------------------------------------------


class Sections(list):
    """A document's text analyzed once: a list of term slot lists (name, folder names,
    invoice fields, content; b'' for a dropped word), shared by the ``text`` field and
    the small ones."""

    @classmethod
    def of(cls, *texts: str) -> "Sections":
        return cls(term_slots(t) if t else [] for t in texts)


class Counts(formats.Frequency):
    """Term frequency kept in the posting weight only (no per-posting value bytes)."""

    posting_size = 0


class PositionBytes(formats.Positions):
    """Positions as a raw uint32 array per posting (one ``frombytes`` to read)."""

    def encode(self, poslist):
        return array("I", poslist).tobytes()

    def decode_positions(self, valuestring):
        positions = array("I")
        positions.frombytes(valuestring)
        return list(positions)


class CountText(fields.TEXT):
    """French text indexed as term counts (the small name, folder and invoice fields)."""

    def __init__(self, **kwargs):
        super().__init__(analyzer=FrenchAnalyzer(), phrase=False, **kwargs)
        self.format = Counts()

    def postings(self, value) -> tuple[list, int]:
        """([(term, frequency, value bytes)], field length) of one document."""
        sections = value if isinstance(value, Sections) else Sections.of(value)
        counts: dict[bytes, int] = {}
        get = counts.get
        for found in sections:
            for text in found:
                counts[text] = get(text, 0) + 1
        counts.pop(b"", None)  # dropped words
        return [(text, n, b"") for text, n in counts.items()], sum(counts.values())

    def add_to(self, finv: dict, docnum: int, value) -> int:
        """Append one document's postings to the writer's per-term arrays
        (ids, one-byte counts); returns the field length."""
        items, length = self.postings(value)
        get = finv.get
        for text, n, _v in items:
            entry = get(text)
            if entry is None:
                entry = finv[text] = (array("I"), array("B"), None)
            entry[0].append(docnum)
            entry[1].append(n if n < 256 else 255)
        return length

    def index(self, value, **kwargs):
        return [(t, n, float(n), v) for t, n, v in self.postings(value)[0]]


MAX_POSITIONS = 65535  # positions kept per word and document (counts are uint16)


class PositionText(fields.TEXT):
    """The main text field: term frequencies (ranking) and word positions (phrases).
    Dropped words keep their position, so "montant total" never matches "montant de
    total". Sections are separated by a gap so a phrase never spans the name and the
    content."""

    def __init__(self, **kwargs):
        super().__init__(analyzer=FrenchAnalyzer(), phrase=True, **kwargs)
        self.format = PositionBytes()

    def positions(self, value) -> tuple[dict, int]:
        """({term: [positions]}, field length) of one document."""
        sections = value if isinstance(value, Sections) else Sections.of(value)
        poses: dict[bytes, list[int]] = {}
        add = poses.setdefault
        start = length = 0
        for found in sections:
            for pos, text in enumerate(found, start):
                if text:
                    add(text, []).append(pos)
            length += len(found) - found.count(b"")
            start += len(found) + GAP
        return poses, length

    def add_to(self, finv: dict, docnum: int, value) -> int:
        """Append one document's postings to the writer's per-term arrays: ids, uint16
        counts and one bytearray of positions per term (no object per posting)."""
        poses, length = self.positions(value)
        get = finv.get
        one = _ONE_POSITION
        for text, p in poses.items():
            entry = get(text)
            if entry is None:
                entry = finv[text] = (array("I"), array("H"), bytearray())
            entry[0].append(docnum)
            n = len(p)
            if n == 1 and p[0] < 4096:
                entry[1].append(1)
                entry[2].extend(one[p[0]])
            else:
                if n > MAX_POSITIONS:
                    p, n = p[:MAX_POSITIONS], MAX_POSITIONS
                entry[1].append(n)
                entry[2].extend(array("I", p).tobytes())
        return length

    def index(self, value, **kwargs):
        poses, _length = self.positions(value)
        return [(t, len(p), float(len(p)), array("I", p).tobytes()) for t, p in poses.items()]


BLOCK = 1024
_ONE_POSITION = [array("I", [i]).tobytes() for i in range(4096)]


class FastPostingsWriter(W3PostingsWriter):
    """Blocks of raw bytes: delta-encoded ids ('H' when they fit, else 'I') and
    one-byte weights. (Pickle protocol 2 turns an array into a list of ints:
    bytes pickle ten times faster.)"""

    def _mini_ids(self):
        ids = self._ids
        if self._byteids:
            return tuple(ids)
        deltas = array("I", ids)
        if len(deltas) > 1:
            deltas[1:] = array("I", map(int.__sub__, ids[1:], ids[:-1]))
        if max(deltas) < 65536:
            return b"H" + array("H", deltas).tobytes()
        return b"I" + deltas.tobytes()

    def _mini_weights(self):
        weights = self._weights
        if not (isinstance(weights, array) and weights.typecode == "B"):
            weights = array("B", (min(255, int(w)) for w in weights))
        return weights.tobytes()

    def _mini_values(self):
        """Variable-size values (positions) as one blob and an offsets array, so a block
        unpickles as three bytes objects, not 1,024 of them."""
        blob = getattr(self, "_values_blob", None)
        if blob is not None:
            return blob
        if self._format.fixed_value_size() == 0 or not self._values:
            return None
        offsets = array("I", accumulate(map(len, self._values), initial=0))
        return (offsets.tobytes(), b"".join(self._values))

    def add_arrays(self, ids, weights, blob=None, ends=None) -> None:
        """Buffer a whole posting list a block at a time (the last block is written
        by ``finish_postings``). Values, if any, are ``blob`` cut at ``ends``."""
        n = len(ids)
        for start in range(0, n, BLOCK):
            stop = min(n, start + BLOCK)
            self._ids = ids[start:stop]
            self._weights = weights[start:stop]
            self._values = []
            if blob is not None:
                begin = ends[start - 1] if start else 0
                offsets = array("I", [0])
                offsets.extend(map(sub, ends[start:stop], repeat(begin)))
                self._values_blob = (offsets.tobytes(), bytes(blob[begin:ends[stop - 1]]))
            else:
                self._values_blob = None
            self._maxweight = max(self._weights)
            self._minlength = 1
            self._maxlength = 1
            if stop < n:
                self._write_block()  # and starts a new block


def _block_ids(raw: bytes) -> array:
    ids = array(chr(raw[0]))
    ids.frombytes(raw[1:])
    return array("I", accumulate(ids))


def _block_weights(raw: bytes) -> array:
    weights = array("B")
    weights.frombytes(raw)
    return weights


def _block_values(raw) -> tuple[array, bytes] | None:
    """(offsets, blob) of a block's values; posting i is blob[offsets[i]:offsets[i+1]]."""
    if not raw:
        return None
    offsets = array("I")
    offsets.frombytes(raw[0])
    return offsets, raw[1]


class FastLeafMatcher(W3LeafMatcher):
    """Reads the blocks written by ``FastPostingsWriter``."""

    def _read_values(self):
        if self._data is None:
            self._read_data()
        found = _block_values(self._data[2])
        if found is None:
            self._values = (None,) * self._blocklength
        else:
            offsets, blob = found
            self._values = tuple(blob[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1))

    def _read_ids(self):
        if self._data is None:
            self._read_data()
        self._ids = _block_ids(self._data[0])

    def _read_weights(self):
        if self._data is None:
            self._read_data()
        self._weights = _block_weights(self._data[1])


class FastCodec(W3Codec):
    """Whoosh's file layout with array blocks of 1,024 postings and no zlib."""

    def __init__(self, blocklimit=BLOCK, compression=0, inlinelimit=1):
        super().__init__(blocklimit=blocklimit, compression=compression, inlinelimit=inlinelimit)

    def postings_writer(self, dbfile, byteids=False):
        return FastPostingsWriter(dbfile, blocklimit=self._blocklimit, byteids=byteids,
                                  compression=self._compression, inlinelimit=self._inlinelimit)

    def postings_reader(self, dbfile, terminfo, format_, term=None, scorer=None):
        if terminfo.is_inlined():
            return super().postings_reader(dbfile, terminfo, format_, term=term, scorer=scorer)
        offset, length = terminfo.extent()
        return FastLeafMatcher(dbfile, offset, length, format_, term=term, scorer=scorer)


CODEC = FastCodec()


def make_schema() -> fields.Schema:
    """The fields of a firm index. Only ``document_id`` is stored."""
    return fields.Schema(
        document_id=fields.ID(stored=True, unique=True),
        company_id=fields.ID(),
        folder_ids=fields.KEYWORD(),  # the folder and its ancestors: subtree filters
        type=fields.KEYWORD(),  # pdf image text xml office invoice
        deposited=fields.NUMERIC(int, bits=32, signed=False, shift_step=8),  # YYYYMMDD
        text=PositionText(),  # name + folder names + invoice fields + content
        name=CountText(),
        folder=CountText(),
        invoice=CountText(),
    )


def read_postings(segreader, fieldname: str, btext: bytes, *, values: bool = False):
    """(ids, weights[, values]) of one term in one segment, decoded a block at a time."""
    try:
        m = segreader._terms.matcher(fieldname, btext, segreader.schema[fieldname].format)
    except (TermNotFound, KeyError):
        return (array("I"), array("B"), []) if values else (array("I"), array("B"))
    ids, weights, vals = array("I"), array("B"), []
    if isinstance(m, FastLeafMatcher):
        while True:
            m._read_data()
            data = m._data
            ids.extend(_block_ids(data[0]))
            weights.frombytes(data[1])
            if values:
                found = _block_values(data[2])
                if found is None:
                    vals.extend([b""] * m._blocklength)
                else:
                    offsets, blob = found
                    vals.extend(blob[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1))
            if m._lastblock:
                break
            m._goto(m._nextoffset)
    else:  # an inlined posting list, or a block format of another codec
        while m.is_active():
            ids.append(m.id())
            weights.append(min(255, int(m.weight())))
            if values:
                vals.append(m.value() or b"")
            m.next()
    return (ids, weights, vals) if values else (ids, weights)


class FastWriter(SegmentWriter):
    """A segment writer that gathers postings into per-term arrays as documents are
    added, and writes them a block at a time (Whoosh's pool handles one Python
    tuple per posting, about 30 µs each here)."""

    def __init__(self, ix, **kwargs):
        kwargs.setdefault("codec", CODEC)
        super().__init__(ix, **kwargs)
        self._inv: dict[str, dict[bytes, tuple]] = {}

    def add_document(self, **fields_):
        self._check_state()
        pdw = self.perdocwriter
        schema = self.schema
        docnum = self.docnum
        inv = self._inv
        names = sorted(name for name in fields_ if not name.startswith("_"))
        self._check_fields(schema, names)
        pdw.start_doc(docnum)
        try:
            for fieldname in names:
                value = fields_[fieldname]
                if value is None:
                    continue
                field = schema[fieldname]
                length = 0
                if field.indexed:
                    finv = inv.get(fieldname)
                    if finv is None:
                        finv = inv[fieldname] = {}
                    if isinstance(field, (CountText, PositionText)):
                        length = field.add_to(finv, docnum, value)
                    else:
                        length = self._add_plain(field, finv, docnum, value)
                stored = value if field.stored else None
                pdw.add_field(fieldname, field, stored, length if field.scorable else 0)
                if field.column_type:
                    pdw.add_column_value(fieldname, field.column_type, field.to_column_value(value))
        except BaseException:
            pdw.cancel_doc()
            raise
        pdw.finish_doc()
        self._added = True
        self.docnum += 1

    @staticmethod
    def _add_plain(field, finv: dict, docnum: int, value) -> int:
        """IDs, keywords (our schema's are space-separated, as they are) and numbers
        (Whoosh's own trie terms)."""
        if isinstance(field, fields.ID):
            items = [(value.encode("utf-8"), 1)]
        elif isinstance(field, fields.KEYWORD):
            items = [(word.encode("utf-8"), 1) for word in dict.fromkeys(value.split())]
        else:
            items = [(t, int(n)) for t, n, _w, _v in field.index(value)]
        for btext, n in items:
            entry = finv.get(btext)
            if entry is None:
                entry = finv[btext] = (array("I"), array("B"), None)
            entry[0].append(docnum)
            entry[1].append(n if n < 256 else 255)
        return sum(n for _t, n in items)

    def add_postings_to_pool(self, reader, startdoc, docmap):
        """Merging a segment: copy its posting lists a block at a time."""
        inv = self._inv
        for fieldname in sorted(reader.indexed_field_names()):
            if fieldname not in self.schema:
                continue
            keep_values = isinstance(self.schema[fieldname], PositionText)  # only positions
            finv = inv.setdefault(fieldname, {})
            for btext in reader.lexicon(fieldname):
                got = read_postings(reader, fieldname, btext, values=keep_values)
                ids, weights = got[0], got[1]
                vals = got[2] if keep_values else None
                if docmap is None:
                    new_ids = array("I", (startdoc + d for d in ids))
                    keep = None
                else:
                    keep = [i for i, d in enumerate(ids) if d in docmap]
                    if not keep:
                        continue
                    new_ids = array("I", (docmap[ids[i]] for i in keep))
                    weights = array("B", (weights[i] for i in keep))
                    if vals is not None:
                        vals = [vals[i] for i in keep]
                entry = finv.get(btext)
                if entry is None:
                    entry = finv[btext] = ((array("I"), array("H"), bytearray()) if keep_values
                                           else (array("I"), array("B"), None))
                entry[0].extend(new_ids)
                if keep_values:
                    for value in vals:
                        entry[1].append(min(len(value) // 4, MAX_POSITIONS))
                        entry[2].extend(value[:4 * MAX_POSITIONS])
                else:
                    entry[1].extend(weights)

    def _flush_segment(self):
        self.perdocwriter.close()
        writer = self.fieldwriter
        for fieldname in sorted(self._inv):
            terms_ = self._inv[fieldname]
            if not terms_:
                continue
            writer.start_field(fieldname, self.schema[fieldname])
            postwriter = writer._postwriter
            for btext in sorted(terms_):
                ids, counts, blob = terms_[btext]
                writer.start_term(btext)
                if blob is None:
                    postwriter.add_arrays(ids, counts)
                else:
                    # Positions are 4 bytes each: a posting's slice ends at 4 x the
                    # running count; the one-byte weight is the count, capped.
                    ends = array("I", accumulate(map(mul, counts, repeat(4))))
                    weights = array("B", map(min, counts, repeat(255)))
                    postwriter.add_arrays(ids, weights, blob, ends)
                writer.finish_term()
            writer.finish_field()
        self._inv = {}
        writer.close()


# --- index directories ---------------------------------------------------------------------


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
    from . import runtime

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
        _open(firm_id).reader().close()
        return True
    except Exception:  # noqa: BLE001 - IndexUnavailable, or a damaged segment
        return False


ANALYSIS_FILE = "ANALYSIS"  # in a generation directory: the analysis version it was built with
_versions: dict[str, int] = {}  # generation directory -> its analysis version


def _new_generation(firm_id: str) -> Path:
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


def _switch_to(firm_id: str, generation: Path) -> None:
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


def _open(firm_id: str, path: Path | None = None):
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


def drop(firm_id: str) -> None:
    """Delete the firm's whole index (the firm is gone)."""
    shutil.rmtree(firm_dir(firm_id), ignore_errors=True)


# --- writing -------------------------------------------------------------------------------

TYPE_OF = {
    "application/pdf": "pdf",
    "image/jpeg": "image", "image/png": "image", "image/tiff": "image", "image/heic": "image",
    "text/plain": "text", "text/csv": "text",
    "application/xml": "xml",
}
INVOICE_KEYS = ("number", "seller_name", "seller_siren", "seller_vat", "buyer_name",
                "issue_date", "due_date", "total_without_tax", "tax_total", "total_with_tax",
                "currency")


def doc_fields(doc) -> dict:
    """The Whoosh fields of one ``search.IndexDoc`` (its text analyzed once)."""
    facturx = doc.facturx or {}
    invoice = " ".join(str(facturx[k]) for k in INVOICE_KEYS if facturx.get(k))
    folder = doc.folder_path.replace("/", " ")
    kinds = [TYPE_OF.get(doc.content_type, "office")]
    if facturx:
        kinds.append("invoice")
    sections = Sections.of(doc.name, folder, invoice, doc.text or "")
    return {
        "document_id": doc.id,
        "company_id": doc.company_id,
        "folder_ids": " ".join(doc.folder_ids),
        "type": " ".join(kinds),
        "deposited": int(doc.deposited_at.strftime("%Y%m%d")),
        "text": sections,
        "name": Sections([sections[0]]),
        "folder": Sections([sections[1]]),
        "invoice": Sections([sections[2]]),
    }


def write(firm_id: str, docs, remove_ids: list[str]) -> None:
    """Add or replace ``docs`` and remove ``remove_ids`` in ONE writer commit.
    The caller holds the firm's writer lock (``search.writer_lock``)."""
    try:
        ix = _open(firm_id)
    except IndexUnavailable:
        raise NeedsRebuild() from None
    writer = FastWriter(ix, timeout=60, limitmb=64)
    try:
        for doc_id in remove_ids:
            writer.delete_by_term("document_id", doc_id)
        for doc in docs:
            writer.update_document(**doc_fields(doc))
    except BaseException:
        writer.cancel()
        raise
    writer.commit()


BULK_BATCH = 50_000  # documents per segment in a rebuild (memory: about 60 MB of arrays)


PARALLEL_FROM = 20_000  # documents from which a rebuild uses one process per core


def rebuild(firm_id: str, docs, progress=None) -> int:
    """Build a fresh index of ``docs`` (IndexDocs: an iterable, or a ``search.DocStream``
    that child processes can load slices of) in a new generation directory, then
    switch to it atomically; searches use the old one until then. Large rebuilds
    run one builder process per core, each writing its own segments.
    The caller holds the firm's writer lock."""
    generation = _new_generation(firm_id)
    try:
        ids = docs.ids() if hasattr(docs, "load") else None
        processes = min(os.cpu_count() or 1, len(ids) // (PARALLEL_FROM // 2)) if ids else 1
        if processes > 1:
            count = _build_in_parallel(generation, docs, ids, processes, progress)
        else:
            count = _build_part(generation, iter(docs) if ids is None else docs.load(ids),
                                progress)
        _switch_to(firm_id, generation)
        generation = None
        return count
    finally:
        if generation is not None:
            shutil.rmtree(generation, ignore_errors=True)


def _build_part(directory: Path, docs, progress=None) -> int:
    """Index ``docs`` into the index at ``directory``, in segments of BULK_BATCH."""
    ix = FileStorage(str(directory), supports_mmap=False).open_index()
    count = 0
    writer = FastWriter(ix, limitmb=64)
    for doc in docs:
        writer.add_document(**doc_fields(doc))
        count += 1
        if progress:
            progress(1)
        if count % BULK_BATCH == 0:
            writer.commit(merge=False)  # big segments stay as they are: no merge cost
            writer = FastWriter(ix, limitmb=64)
    writer.commit(merge=False)
    return count


def _build_in_parallel(generation: Path, docs, ids: list[str], processes: int, progress) -> int:
    """Builder processes index contiguous slices of ``ids`` into their own index
    directories; their segments are then moved into ``generation`` under one TOC."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")  # children start with everything loaded
    done = ctx.Value("q", 0)
    results = ctx.SimpleQueue()
    size = -(-len(ids) // processes)
    parts = []
    for i in range(processes):
        part = generation / f"part-{i}"
        part.mkdir()
        index.create_in(str(part), make_schema())
        child = ctx.Process(target=_build_child, daemon=True,
                            args=(part, docs, ids[i * size:(i + 1) * size], done, results))
        parts.append((part, child))
    for _part, child in parts:
        child.start()
    reported = 0
    try:
        while any(child.is_alive() for _p, child in parts):
            time.sleep(0.2)
            if progress and done.value > reported:
                progress(done.value - reported)
                reported = done.value
        outcomes = [results.get() for _ in parts if not results.empty()]
        failed = [child.exitcode for _p, child in parts if child.exitcode != 0]
        errors = [error for _n, error in outcomes if error]
        if failed or errors or len(outcomes) != len(parts):
            raise RuntimeError(f"an index builder failed: {errors or failed}")
    finally:
        for _part, child in parts:
            if child.is_alive():
                child.kill()  # a builder we started; the rebuild is abandoned
            child.join()
    if progress and done.value > reported:
        progress(done.value - reported)
    _adopt_parts(generation, [part for part, _c in parts])
    return sum(n for n, _e in outcomes)


def _build_child(part: Path, docs, ids: list[str], done, results) -> None:
    """In a builder process: its own database connection, its slice of documents."""
    from . import runtime
    from .db import init_db

    try:
        init_db(runtime.config().database_url)
        count = [0]

        def tick(_n):
            count[0] += 1
            if count[0] % 500 == 0:
                with done.get_lock():
                    done.value += 500

        total = _build_part(part, docs.load(ids), tick)
        with done.get_lock():
            done.value += total % 500
        results.put((total, None))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the rebuild
        results.put((0, repr(exc)[:500]))
        raise


def _adopt_parts(generation: Path, parts: list[Path]) -> None:
    """Move the builders' segment files into ``generation`` and list them all in a new
    table of contents (segments keep their ids: their files move as they are)."""
    from whoosh.index import TOC

    storage = FileStorage(str(generation), supports_mmap=False)
    ix = storage.open_index()
    segments = []
    for part in parts:
        part_ix = FileStorage(str(part), supports_mmap=False).open_index()
        for segment in part_ix._segments():
            segments.append(segment)
        for path in part.iterdir():
            if path.name.startswith("MAIN_") and path.name != "MAIN_WRITELOCK":
                os.replace(path, generation / path.name)
        shutil.rmtree(part)
    TOC(ix.schema, segments, ix.latest_generation() + 1).write(storage, "MAIN")


# --- searching -------------------------------------------------------------------------------

K1, B = 1.2, 0.75  # BM25
NAME_BOOST = 1.0  # a word also found in the document's name counts this much more (x idf)
PREFIX_MIN = 2
PREFIX_MAX_TERMS = 300
POSTINGS_BUDGET = 8_000_000  # decoded postings kept per process (5 bytes each)
OPEN_READERS = 16  # firm indexes kept open per thread
FIELD_OF = {None: "text", "content": "text", "name": "name", "folder": "folder",
            "invoice": "invoice"}


class _Lru:
    """A thread-safe LRU of decoded segment data; segments never change once
    written, so entries keyed by segment id stay valid until evicted."""

    def __init__(self, budget: int, size=len):
        self.items: OrderedDict = OrderedDict()
        self.budget = budget
        self.used = 0
        self.size = size
        self.lock = threading.Lock()

    def get(self, key, make):
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
                return found
        value = make()
        with self.lock:
            if key not in self.items:
                self.items[key] = value
                self.used += self.size(value)
                while self.used > self.budget and len(self.items) > 1:
                    _key, old = self.items.popitem(last=False)
                    self.used -= self.size(old)
        return value


_postings = _Lru(POSTINGS_BUDGET, size=lambda v: len(v[0]) + 1)
_sets = _Lru(4_000_000, size=lambda v: len(v) + 1)
_lengths = _Lru(4_000_000, size=lambda v: len(v) + 1)
_BYTE_TO_LENGTH = None


def _segment_id(segreader) -> str:
    return segreader.segment().segment_id()


def _terms_of(segreader, segid, fieldname: str, text: str):
    return _postings.get((segid, fieldname, text),
                         lambda: read_postings(segreader, fieldname, text.encode("utf-8")))


def _doc_lengths(segreader, segid) -> list[int]:
    """The ``text`` field length of every document of a segment (for BM25)."""
    global _BYTE_TO_LENGTH
    if _BYTE_TO_LENGTH is None:
        from whoosh.util.numeric import byte_to_length

        _BYTE_TO_LENGTH = [byte_to_length(b) for b in range(256)]

    def load():
        from whoosh.codec.whoosh3 import LENGTHS_COLUMN, _lenfield

        reader = segreader._perdoc._cached_reader(_lenfield("text"), LENGTHS_COLUMN)
        if reader is None:
            return [1] * segreader.doc_count_all()
        return list(map(_BYTE_TO_LENGTH.__getitem__, reader.load()))

    return _lengths.get((segid, "lengths"), load)


def _live_stats(leaves) -> tuple[int, float]:
    """(live documents, their mean ``text`` length) over the segments."""
    live = total = 0
    for segreader, _base in leaves:
        segid = _segment_id(segreader)
        deleted = _deleted(segreader, segid)

        def count(segreader=segreader, segid=segid, deleted=deleted):
            lengths = _doc_lengths(segreader, segid)
            gone = sum(lengths[d] for d in deleted)
            return [len(lengths) - len(deleted), sum(lengths) - gone]

        n, length = _sets.get((segid, "live", len(deleted)), count)
        live += n
        total += length
    return max(1, live), max(1.0, total / max(1, live))


def _deleted(segreader, segid) -> set:
    segment = segreader.segment()
    if not segment.has_deletions():
        return set()
    return _sets.get((segid, "deleted", segment.deleted_count()),
                     lambda: set(segment.deleted_docs()))


class _Views(threading.local):
    """An open reader per firm and per thread (Whoosh readers are not thread-safe),
    reopened when a commit or a rebuild changed the index."""

    def __init__(self):
        self.open: OrderedDict[str, tuple] = OrderedDict()

    def reader(self, firm_id: str):
        # A rebuild may switch generations (and delete the old one) between reading
        # ``current`` and opening it: that is no damage, so look again.
        for _attempt in range(3):
            path = current_dir(firm_id)
            try:
                return self._reader(firm_id, path)
            except IndexUnavailable:
                if path is None or current_dir(firm_id) == path:
                    raise
        return self._reader(firm_id, current_dir(firm_id))

    def _reader(self, firm_id: str, path: Path | None):
        if path is None:
            self.close(firm_id)
            raise IndexUnavailable()
        entry = self.open.get(firm_id)
        if entry is not None and entry[0] == path:
            try:
                if entry[1].latest_generation() == entry[2].generation():
                    self.open.move_to_end(firm_id)
                    return entry[2]
            except (OSError, ValueError):
                pass
        self.close(firm_id)
        while len(self.open) >= OPEN_READERS:  # bounded file descriptors per thread
            self.close(next(iter(self.open)))
        ix = _open(firm_id, path)
        try:
            reader = ix.reader()
        except Exception as exc:  # noqa: BLE001 - a damaged segment: report, not crash
            log.error("search index of firm %s unreadable: %r", firm_id, exc)
            raise IndexUnavailable() from exc
        self.open[firm_id] = (path, ix, reader)
        return reader

    def close(self, firm_id: str) -> None:
        entry = self.open.pop(firm_id, None)
        if entry is not None:
            try:
                entry[2].close()
            except Exception:  # noqa: BLE001
                pass


_views = _Views()


def forget() -> None:
    """Drop this process's open readers and decoded caches (tests; after a fork)."""
    global _views
    _views = _Views()
    _versions.clear()
    for lru in (_postings, _sets, _lengths):
        with lru.lock:
            lru.items.clear()
            lru.used = 0


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


class _Plan:
    """A parsed query turned into terms: ``groups`` is an AND of ORs of
    (kind, field, terms, offsets); ``negated`` the same without the AND. A phrase's
    offsets are its terms' positions relative to the first."""

    def __init__(self, parsed):
        self.groups = []
        for group in parsed.groups:
            compiled = [c for c in (self._clause(c) for c in group) if c is not None]
            if compiled:
                self.groups.append(compiled)
        self.negated = [c for c in (self._clause(c) for c in parsed.negated) if c is not None]

    @staticmethod
    def _clause(clause):
        fieldname = FIELD_OF[clause.field]
        if clause.kind == "prefix":
            prefix = prefix_term(clause.text)
            if prefix is None:
                return None
            if len(prefix) < PREFIX_MIN:
                raise Invalid("A prefix search (mot*) needs at least two letters.",
                              "prefix_too_short")
            return ("prefix", fieldname, [prefix], [0])
        found, offsets = phrase_terms(clause.text)
        if not found:
            return None
        if len(found) == 1:
            return ("word", fieldname, found, offsets)
        # An exact phrase, or one typed word that is several terms ("FA-2026-001").
        return ("phrase", fieldname, found, offsets)


def search(firm_id: str, parsed, scope, *, offset: int, limit: int) -> tuple[int, list]:
    """(total, [(document_id, score)...]) of the hits offset..offset+limit, best first,
    within ``scope`` (applied as docnum sets, never through the query text)."""
    plan = _Plan(parsed)
    if not plan.groups:
        return 0, []
    for attempt in (0, 1):
        reader = _views.reader(firm_id)
        try:
            return _search(reader, plan, scope, offset + limit, offset)
        except Exception as exc:  # noqa: BLE001 - see below
            # A rebuild switched generations under this query, or the files are damaged:
            # once more with a fresh reader, then report the index unavailable.
            _views.close(firm_id)
            if attempt:
                log.exception("search in the index of firm %s failed", firm_id)
                raise IndexUnavailable() from exc
    raise AssertionError("unreachable")


def _search(reader, plan, scope, k, offset):
    leaves = reader.leaf_readers()
    live, avgdl = _live_stats(leaves)
    idfs: dict[str, float] = {}

    def idf(text):
        # Document frequency among live documents only, so that an index with deletions
        # not yet merged away ranks exactly like one rebuilt from the database.
        value = idfs.get(text)
        if value is None:
            df = 0
            for segreader, _base in leaves:
                segid = _segment_id(segreader)
                ids = _terms_of(segreader, segid, "text", text)[0]
                deleted = _deleted(segreader, segid)
                df += len(ids) - (len(deleted.intersection(ids)) if deleted else 0)
            value = idfs[text] = math.log(1 + (live - df + 0.5) / (df + 0.5))
        return value

    total = 0
    best = []
    for segreader, base in leaves:
        count, top = _search_segment(segreader, plan, scope, k, idf, avgdl)
        total += count
        best.extend((score, base + local, segreader, local) for local, score in top)
    if not best:
        return total, []
    best.sort(key=itemgetter(0), reverse=True)
    # Equal scores are ordered by document id, so a rebuilt index lists them alike.
    keyed = [(-round(score, 6), segreader.stored_fields(local)["document_id"], score)
             for score, _g, segreader, local in best[:k + 50]]
    keyed.sort()
    page = keyed[offset:k]
    return total, [(doc_id, score) for _neg, doc_id, score in page]


def _scope_sets(segreader, segid, scope):
    """(allow, deny) docnum sets of a scope in one segment; allow None = everyone."""

    def union(fieldname, values):
        def make():
            out = set()
            for value in values:
                out.update(_terms_of(segreader, segid, fieldname, value)[0])
            return out
        return _sets.get((segid, fieldname) + tuple(sorted(values)), make)

    allow = None
    parts = []
    if scope.company_ids is not None:
        parts.append(union("company_id", scope.company_ids))
    if scope.folder_id:
        parts.append(union("folder_ids", [scope.folder_id]))
    if scope.type:
        parts.append(union("type", [scope.type]))
    if scope.date_from or scope.date_to:
        lo = int(scope.date_from.strftime("%Y%m%d")) if scope.date_from else None
        hi = int(scope.date_to.strftime("%Y%m%d")) if scope.date_to else None
        parts.append(_sets.get((segid, "dates", lo, hi), lambda: set(
            wq.NumericRange("deposited", lo, hi).docs(Searcher(segreader)))))
    for part in sorted(parts, key=len):
        allow = set(part) if allow is None else allow & part
    deny = union("folder_ids", scope.hidden_folder_ids) if scope.hidden_folder_ids else set()
    return allow, deny


def _clause_docs(segreader, segid, clause):
    """Docnums of one clause in a segment (phrases not yet checked) and the terms
    that score it."""
    kind, fieldname, found, _offsets = clause
    if kind == "prefix":
        expanded = []
        for btext in segreader.expand_prefix(fieldname, found[0]):
            expanded.append(btext.decode("utf-8") if isinstance(btext, bytes) else btext)
            if len(expanded) >= 20 * PREFIX_MAX_TERMS:
                break
        if len(expanded) > PREFIX_MAX_TERMS:
            # The most frequent ones: a broad prefix stays fast and still finds most.
            expanded.sort(key=lambda t: -segreader.doc_frequency(fieldname, t))
            expanded = expanded[:PREFIX_MAX_TERMS]
        docs = set()
        for text in expanded:
            docs.update(_terms_of(segreader, segid, fieldname, text)[0])
        return docs, expanded
    lists = [_terms_of(segreader, segid, fieldname, t)[0] for t in found]
    if len(lists) == 1:
        return lists[0], found
    lists.sort(key=len)
    docs = set(lists[0])
    for ids in lists[1:]:
        docs.intersection_update(ids)
    return docs, found


def _search_segment(segreader, plan, scope, k, idf, avgdl):
    segid = _segment_id(segreader)
    groups = []
    for group in plan.groups:
        alternatives = [(_clause_docs(segreader, segid, c), c) for c in group]
        if len(alternatives) == 1:
            docs = alternatives[0][0][0]
        else:
            docs = set()
            for (clause_docs, _t), _c in alternatives:
                docs.update(clause_docs)
        groups.append((docs, alternatives))
    groups.sort(key=lambda g: len(g[0]))
    if not groups or not len(groups[0][0]):
        return 0, []
    candidates = set(groups[0][0])
    for docs, _alts in groups[1:]:
        candidates.intersection_update(docs)
        if not candidates:
            return 0, []
    allow, deny = _scope_sets(segreader, segid, scope)
    if allow is not None:
        candidates &= allow
    if deny:
        candidates -= deny
    deleted = _deleted(segreader, segid)
    if deleted:
        candidates -= deleted
    for clause in plan.negated:
        if candidates:
            candidates.difference_update(_clause_docs(segreader, segid, clause)[0])
    # Phrases: check word positions, for the remaining candidates only.
    for docs, alternatives in groups:
        if not candidates:
            break
        if not any(c[0] == "phrase" for _d, c in alternatives):
            continue
        satisfied = set()
        for (clause_docs, _t), clause in alternatives:
            pool = candidates - satisfied
            pool = pool & clause_docs if isinstance(clause_docs, set) else pool.intersection(clause_docs)
            if clause[0] == "phrase":
                pool = _phrase_docs(segreader, clause[2], clause[3], pool)
            satisfied |= pool
        candidates = satisfied
    if not candidates:
        return 0, []
    return len(candidates), _rank(segreader, segid, groups, candidates, k, idf, avgdl)


def _raw_positions(segreader, text: str, docs: list[int]) -> dict[int, bytes]:
    """The positions of ``text`` (raw uint32 bytes) in those of ``docs`` (sorted) that
    contain it, decoding only the blocks that hold one of them."""
    found: dict[int, bytes] = {}
    try:
        m = segreader._terms.matcher("text", text.encode("utf-8"), segreader.schema["text"].format)
    except (TermNotFound, KeyError):
        return found
    if not isinstance(m, FastLeafMatcher):
        for doc in docs:
            if m.is_active():
                m.skip_to(doc)
                if m.is_active() and m.id() == doc:
                    found[doc] = m.value()
        return found
    i, n = 0, len(docs)
    bisect_left = bisect.bisect_left
    while i < n:
        maxid = m._maxid
        if docs[i] <= maxid:
            m._read_data()
            ids = _block_ids(m._data[0])
            offsets, blob = _block_values(m._data[2])
            size = len(ids)
            while i < n and docs[i] <= maxid:
                doc = docs[i]
                j = bisect_left(ids, doc)
                if j < size and ids[j] == doc:
                    found[doc] = blob[offsets[j]:offsets[j + 1]]
                i += 1
        if m._lastblock:
            break
        m._goto(m._nextoffset)
    return found


PHRASE_KEYS_FROM = 3000  # candidates from which phrases are matched by set operations


def _phrase_keys(segreader, text: str, shift: int, within: set | None = None) -> set[int]:
    """Every (document, position - shift) of ``text`` as one integer (those also in
    ``within`` when given), computed with C-level iterators only: the keys of
    consecutive words meet in set intersections instead of a Python loop per document."""
    keys: set[int] = set()
    try:
        m = segreader._terms.matcher("text", text.encode("utf-8"), segreader.schema["text"].format)
    except (TermNotFound, KeyError):
        return keys
    if not isinstance(m, FastLeafMatcher):
        while m.is_active():
            positions = array("I")
            positions.frombytes(m.value())
            keys.update((m.id() << 32) + p - shift for p in positions)
            m.next()
        return keys & within if within is not None else keys
    while True:
        m._read_data()
        ids = _block_ids(m._data[0])
        offsets, blob = _block_values(m._data[2])
        positions = array("I")
        positions.frombytes(blob)
        counts = map(rshift, map(sub, offsets[1:], offsets[:-1]), repeat(2))
        docs = chain.from_iterable(map(repeat, ids, counts))
        block = map(add, map(lshift, docs, repeat(32)), map(sub, positions, repeat(shift)))
        keys.update(block if within is None else within.intersection(block))
        if m._lastblock:
            break
        m._goto(m._nextoffset)
    return keys


def _phrase_docs(segreader, found: list[str], offsets: list[int], pool: set) -> set:
    """The documents of ``pool`` where each of ``found`` is at its offset from the
    first (consecutive words, but for the dropped ones between them)."""
    if len(pool) >= PHRASE_KEYS_FROM:
        # Start from the rarest word: the smallest set of keys.
        order = sorted(range(len(found)),
                       key=lambda i: segreader.doc_frequency("text", found[i]))
        keys = None
        for i in order:
            keys = _phrase_keys(segreader, found[i], offsets[i], keys)
            if not keys:
                return set()
        return pool.intersection(map(rshift, keys, repeat(32)))
    alive = sorted(pool)
    raws = []
    for text in found:
        raw = _raw_positions(segreader, text, alive)
        raws.append(raw)
        alive = [d for d in alive if d in raw]
        if not alive:
            return set()
    matched = set()
    from_bytes = int.from_bytes
    if len(raws) == 2:
        # Two words, the common case, each usually once per document: compare the
        # two positions as integers, without building any set.
        first_of, second_of = raws
        gap = offsets[1]
        rest = []
        for doc, a, b in zip(alive, map(first_of.__getitem__, alive),
                             map(second_of.__getitem__, alive)):
            if len(a) == 4 and len(b) == 4:
                if from_bytes(b, "little") == from_bytes(a, "little") + gap:
                    matched.add(doc)
            else:
                rest.append(doc)
        alive = rest
    for doc in alive:
        values = [raw[doc] for raw in raws]
        if all(len(v) == 4 for v in values):
            # The common case: each word once in the document.
            first = from_bytes(values[0], "little")
            if all(from_bytes(v, "little") == first + k for k, v in zip(offsets, values)):
                matched.add(doc)
            continue
        starts = None
        for k, v in zip(offsets, values):
            positions = array("I")
            positions.frombytes(v)
            shifted = {p - k for p in positions}
            starts = shifted if starts is None else starts & shifted
            if not starts:
                break
        if starts:
            matched.add(doc)
    return matched


def _rank(segreader, segid, groups, candidates, k, idf, avgdl):
    """The ``k`` best candidates by BM25 over the ``text`` field, with a bonus for
    words found in the document's name."""
    lengths = _doc_lengths(segreader, segid)
    norm = {d: K1 * (1 - B + B * lengths[d] / avgdl) for d in candidates}
    scores = dict.fromkeys(candidates, 0.0)
    scored = set()
    for _docs, alternatives in groups:
        for (_clause_docs_, found), clause in alternatives:
            for text in found:
                if text in scored:
                    continue
                scored.add(text)
                weight = idf(text) * (K1 + 1)
                ids, tfs = _terms_of(segreader, segid, "text", text)
                _accumulate(scores, norm, ids, tfs, weight, candidates)
                if clause[0] != "prefix":
                    name_ids, _tf = _terms_of(segreader, segid, "name", text)
                    bonus = idf(text) * NAME_BOOST
                    for d in candidates.intersection(name_ids) if name_ids else ():
                        scores[d] += bonus
    return nlargest(k, scores.items(), key=itemgetter(1))


def _accumulate(scores, norm, ids, tfs, weight, candidates):
    if len(candidates) * 12 < len(ids):
        n = len(ids)
        for d in candidates:
            i = bisect.bisect_left(ids, d)
            if i < n and ids[i] == d:
                tf = tfs[i]
                scores[d] += weight * tf / (tf + norm[d])
    else:
        for d, tf in zip(ids, tfs):
            nd = norm.get(d)
            if nd is not None:
                scores[d] += weight * tf / (tf + nd)


# --- snippets ------------------------------------------------------------------------------

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


