"""What an extraction found (``Extracted``) and how it is recorded: on the blob in one
transaction, mirrored on every document of the blob, with the attempts counted and
probable duplicate invoices flagged."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .. import audit, runtime
from ..blobs import copy_to, staging_dir
from ..db import transaction
from ..models import Blob, Document
from .invoices import invoice_key

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 5_000_000  # text kept per blob (a 2,000-page PDF of dense text)


@dataclass
class Extracted:
    """What one extraction found."""

    status: str  # done | partial | failed | encrypted | unsupported
    text: str | None = None
    pages: int | None = None
    facturx: dict | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def join_pages(texts: list[str]) -> str:
    """The text of a document from its pages' texts (empty pages left out)."""
    return "\n\n".join(t.strip() for t in texts if t and t.strip())


# --- the record -----------------------------------------------------------------------------


def record(sha256: str, result: Extracted) -> None:
    """Record the result on the blob and its documents in one transaction."""
    text = result.text[:MAX_TEXT_CHARS] if result.text else result.text
    error = result.error or ("; ".join(result.notes) if result.notes else None)
    with transaction():
        updated = (Blob.update(text=text, text_status=result.status, text_error=error,
                               pages=result.pages, facturx=result.facturx)
                   .where((Blob.sha256 == sha256) & (Blob.text_status == "pending")).execute())
        if not updated:
            return  # another worker finished first
        key = invoice_key(result.facturx)
        Document.update(text_status=result.status, invoice_key=key, index_dirty=True).where(
            Document.blob == sha256).execute()
        if key:
            for company_id in {d.company_id for d in Document.select(Document.company).where(
                    Document.blob == sha256)}:
                flag_duplicates(company_id, key)


def mirror(blob: Blob) -> None:
    """Documents deposited while the blob was being extracted get its final status."""
    key = invoice_key(blob.facturx)
    stale = Document.select(Document.id).where((Document.blob == blob.sha256)
                                               & (Document.text_status != blob.text_status))
    if stale.exists():
        with transaction():
            Document.update(text_status=blob.text_status, invoice_key=key, index_dirty=True).where(
                Document.blob == blob.sha256).execute()


def flag_duplicates(company_id: str, key: str) -> list[str]:
    """Within a company, every document with the same invoice key (seller + number)
    as an earlier one is a probable duplicate of the earliest; returns the ids flagged.
    Identical bytes were already flagged at deposit."""
    docs = list(Document.select(Document.id, Document.firm, Document.company,
                                Document.duplicate_of, Document.deposited_at)
                .where((Document.company == company_id) & (Document.invoice_key == key)
                       & Document.trashed_at.is_null())
                .order_by(Document.deposited_at, Document.id))
    flagged = []
    for doc in docs[1:]:
        if doc.duplicate_of is None:
            Document.update(duplicate_of=docs[0].id).where(Document.id == doc.id).execute()
            audit.record("système", "document.duplicate_flagged", doc, firm=doc.firm_id,
                         firm_only=True, details={"duplicate_of": docs[0].id, "invoice_key": key})
            flagged.append(doc.id)
    return flagged


# --- attempts -------------------------------------------------------------------------------


def begin_attempt(blob: Blob, what: str) -> bool:
    """Count an extraction attempt before it starts (a killed worker cannot count its
    own); False, with the blob marked failed, once the attempts are used up."""
    limit = runtime.config().extract_max_attempts
    if blob.extract_attempts >= limit:
        last = blob.text_error or "the worker stopped during it"
        finish_failed(blob.sha256, f"{what} was tried {blob.extract_attempts} times without "
                                   f"finishing; the last error: {last}")
        return False
    Blob.update(extract_attempts=Blob.extract_attempts + 1).where(
        (Blob.sha256 == blob.sha256) & (Blob.text_status == "pending")).execute()
    return True


def attempt_failed(sha256: str, exc: BaseException) -> None:
    """Keep an unexpected error of an attempt (the blob stays pending, to be tried again)."""
    log.warning("extraction of %s failed: %r", sha256, exc)
    # Users may read it: the kind of error, never a path or an address of the server.
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else None
    with contextlib.suppress(Exception):
        Blob.update(text_error=f"{type(exc).__name__}: {reason}" if reason
                    else type(exc).__name__).where(
            (Blob.sha256 == sha256) & (Blob.text_status == "pending")).execute()


def attempt_returned(sha256: str) -> None:
    """A worker that stops (not a fault of this file) gives its attempt back."""
    with contextlib.suppress(Exception):
        Blob.update(extract_attempts=Blob.extract_attempts - 1).where(
            (Blob.sha256 == sha256) & (Blob.extract_attempts > 0)).execute()


def finish_failed(sha256: str, error: str) -> None:
    with transaction():
        record(sha256, Extracted("failed", error=error))
        Blob.update(ocr_state=None).where(Blob.sha256 == sha256).execute()


# --- the file -------------------------------------------------------------------------------


@contextlib.contextmanager
def local_copy(sha256: str):
    """A filesystem path to the blob: in place on disk, or a temporary copy (S3)."""
    blob_store = runtime.store()
    path = blob_store.local_path(sha256)
    if path is not None and Path(path).exists():
        yield Path(path)
        return
    if path is not None and not blob_store.exists(sha256):
        raise FileNotFoundError(sha256)
    fd, name = tempfile.mkstemp(prefix="extract-", dir=staging_dir(runtime.config().data_dir))
    try:
        with os.fdopen(fd, "wb") as out:
            copy_to(blob_store, sha256, out)
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)

