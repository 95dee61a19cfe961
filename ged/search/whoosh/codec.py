"""How the Whoosh engine stores postings: the fields of a firm index, their formats,
and a codec whose posting blocks of 1,024 hold raw bytes (delta ids, one byte of
term frequency, positions as uint32 arrays) instead of pickled tuples of Python
objects and zlib. Positions are decoded only by phrase queries, for the candidate
documents only."""

from __future__ import annotations

from array import array
from itertools import accumulate, repeat
from operator import sub

from whoosh import fields, formats
from whoosh.codec.whoosh3 import W3Codec, W3LeafMatcher, W3PostingsWriter
from whoosh.reading import TermNotFound

from .analysis import FrenchAnalyzer, term_slots

GAP = 100  # positions between the sections of a field (name / path / content)


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


def block_ids(raw: bytes) -> array:
    ids = array(chr(raw[0]))
    ids.frombytes(raw[1:])
    return array("I", accumulate(ids))


def block_weights(raw: bytes) -> array:
    weights = array("B")
    weights.frombytes(raw)
    return weights


def block_values(raw) -> tuple[array, bytes] | None:
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
        found = block_values(self._data[2])
        if found is None:
            self._values = (None,) * self._blocklength
        else:
            offsets, blob = found
            self._values = tuple(blob[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1))

    def _read_ids(self):
        if self._data is None:
            self._read_data()
        self._ids = block_ids(self._data[0])

    def _read_weights(self):
        if self._data is None:
            self._read_data()
        self._weights = block_weights(self._data[1])


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
            ids.extend(block_ids(data[0]))
            weights.frombytes(data[1])
            if values:
                found = block_values(data[2])
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
