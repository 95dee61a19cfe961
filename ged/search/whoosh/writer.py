"""Writing a Whoosh index: a segment writer that gathers postings into per-term
arrays as documents are added and writes them a block at a time (instead of
Whoosh's sorted pool of one tuple per posting), merges that read whole blocks the
same way, and the one-commit write of the index job."""

from __future__ import annotations

from array import array
from itertools import accumulate, repeat
from operator import mul

from whoosh import fields
from whoosh.writing import SegmentWriter

from ..scope import KIND_OF
from .codec import CODEC, MAX_POSITIONS, CountText, PositionText, Sections, read_postings
from .generations import IndexUnavailable, NeedsRebuild, open_index

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


INVOICE_KEYS = ("number", "seller_name", "seller_siren", "seller_vat", "buyer_name",
                "issue_date", "due_date", "total_without_tax", "tax_total", "total_with_tax",
                "currency")


def doc_fields(doc) -> dict:
    """The Whoosh fields of one ``search.IndexDoc`` (its text analyzed once)."""
    facturx = doc.facturx or {}
    invoice = " ".join(str(facturx[k]) for k in INVOICE_KEYS if facturx.get(k))
    folder = doc.folder_path.replace("/", " ")
    kinds = [KIND_OF.get(doc.content_type, "office")]
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
    The caller holds the firm's writer lock (``search.indexing``)."""
    try:
        ix = open_index(firm_id)
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
