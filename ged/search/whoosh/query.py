"""Searching a Whoosh index: per segment, posting lists are decoded once into arrays
(cached, bounded) and combined with C-level set operations: the AND of the words,
the permission and filter sets (cached per segment, which never changes once
written), deletions; the exact total is the size of that set. BM25 (with
live-document statistics, so an index with pending deletions ranks like a rebuilt
one) is computed for the candidates only; phrases are checked against positions for
the candidates, or, for thousands of them, by intersecting (document, position)
keys built with C-level iterators."""

from __future__ import annotations

import bisect
import logging
import math
import threading
from array import array
from collections import OrderedDict
from heapq import nlargest
from itertools import chain, repeat
from operator import add, itemgetter, lshift, rshift, sub
from pathlib import Path

from whoosh import query as wq
from whoosh.reading import TermNotFound
from whoosh.searching import Searcher

from ...errors import Invalid
from . import generations
from .analysis import PREFIX_MIN, phrase_terms, prefix_term
from .codec import FastLeafMatcher, block_ids, block_values, read_postings
from .generations import IndexUnavailable, current_dir, open_index

log = logging.getLogger(__name__)


K1, B = 1.2, 0.75  # BM25
NAME_BOOST = 1.0  # a word also found in the document's name counts this much more (x idf)
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
        ix = open_index(firm_id, path)
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
    generations.forget()
    for lru in (_postings, _sets, _lengths):
        with lru.lock:
            lru.items.clear()
            lru.used = 0


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
            ids = block_ids(m._data[0])
            offsets, blob = block_values(m._data[2])
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
        ids = block_ids(m._data[0])
        offsets, blob = block_values(m._data[2])
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
