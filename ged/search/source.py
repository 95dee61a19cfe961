"""What is indexed: documents read from the database (the source of truth) as
``IndexDoc`` rows, the only thing the engines are given to index."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..models import Blob, Document, Folder

LOAD_CHUNK = 1000


@dataclass
class IndexDoc:
    """One document as the engines index it, read from the database."""

    id: str
    company_id: str
    folder_ids: list[str]
    folder_path: str
    name: str
    content_type: str
    deposited_at: dt.datetime
    text: str | None
    facturx: dict | None


def folder_names(paths: list[str]) -> dict[str, str]:
    """Folder id -> name, for every folder named in these materialised paths."""
    ids = {part for p in paths for part in p.split("/") if part}
    names = {}
    ids = list(ids)
    for i in range(0, len(ids), 500):
        names.update(Folder.select(Folder.id, Folder.name).where(Folder.id.in_(ids[i:i + 500]))
                     .tuples())
    return names


def _rows(where, limit: int | None = None) -> list[tuple]:
    """(doc id, company, name, content type, deposited at, trashed at, folder path,
    text, facturx) of the documents matching ``where``, by id."""
    query = (Document.select(Document.id, Document.company, Document.name,
                             Document.content_type, Document.deposited_at,
                             Document.trashed_at, Folder.path, Blob.text, Blob.facturx)
             .join(Folder, on=(Document.folder == Folder.id))
             .switch(Document).join(Blob, on=(Document.blob == Blob.sha256))
             .where(where).order_by(Document.id))
    if limit:
        query = query.limit(limit)
    return list(query.tuples())


def _index_docs(rows) -> list[IndexDoc]:
    names = folder_names([r[6] for r in rows])
    docs = []
    for doc_id, company_id, name, ctype, deposited, _trashed, path, text, facturx in rows:
        ids = [part for part in path.split("/") if part]
        docs.append(IndexDoc(
            id=doc_id, company_id=company_id, folder_ids=ids,
            folder_path="/" + "/".join(names.get(i, "") for i in ids[1:]),
            name=name, content_type=ctype,
            deposited_at=deposited, text=text, facturx=facturx))
    return docs


def stream(firm_id: str, ids: list[str] | None = None):
    """IndexDocs of the firm's live documents (or of ``ids``), read in chunks."""
    if ids is not None:
        for i in range(0, len(ids), LOAD_CHUNK):
            chunk = ids[i:i + LOAD_CHUNK]
            rows = [r for r in _rows(Document.id.in_(chunk)) if r[5] is None]
            yield from _index_docs(rows)
        return
    last = ""
    while True:
        rows = _rows((Document.firm == firm_id) & Document.trashed_at.is_null()
                     & (Document.id > last), limit=LOAD_CHUNK)
        if not rows:
            return
        yield from _index_docs(rows)
        last = rows[-1][0]


class DocStream:
    """All live documents of a firm for a rebuild: iterate it, or (for an engine that
    builds in several processes) take ``ids()`` and ``load()`` a slice of them."""

    def __init__(self, firm_id: str):
        self.firm_id = firm_id

    def __iter__(self):
        return stream(self.firm_id)

    def ids(self) -> list[str]:
        """The live documents' ids, in id order."""
        return [r[0] for r in Document.select(Document.id).where(
            (Document.firm == self.firm_id) & Document.trashed_at.is_null())
            .order_by(Document.id).tuples()]

    def load(self, ids: list[str]):
        """IndexDocs of ``ids`` (those still live), in chunks."""
        return stream(self.firm_id, ids)
