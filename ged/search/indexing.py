"""Writing the search index: one writer per firm across the fleet (a Redis lock),
documents taken by their ``index_dirty`` flag in the database and written in one
commit, and rebuilds from the database, which is always the source of truth."""

from __future__ import annotations

import logging

from .. import fleet, queue
from ..models import Document, Firm
from .engine import backend
from .source import DocStream, stream

log = logging.getLogger(__name__)

INDEX_JOB_WAIT = 60  # seconds an index job waits for another writer before retrying later
BUSY_RETRY = 30  # seconds after which an index job that found a rebuild running comes back


def writer_lock(firm_id: str, wait: float = 1800):
    """One writer per firm index across every worker and host (a Redis lock with expiry)."""
    return fleet.lock(fleet.search_writer_key(firm_id), timeout=1800, wait=wait)


class Busy(Exception):
    """Another process is writing this firm's index (a rebuild, most likely)."""


class _Locked:
    """Hold the firm's writer lock; give back documents a crashed writer had claimed."""

    def __init__(self, firm_id: str, wait: float = 1800):
        self.firm_id = firm_id
        self.lock = writer_lock(firm_id, wait)

    def __enter__(self):
        if not self.lock.acquire():
            raise Busy(f"the search index of firm {self.firm_id} is being written")
        conn = fleet.connection()
        orphans = [m.decode() for m in conn.smembers(fleet.search_claimed_key(self.firm_id))]
        if orphans:
            _mark_dirty(orphans)
            conn.delete(fleet.search_claimed_key(self.firm_id))
        return self

    def __exit__(self, *exc):
        try:
            self.lock.release()
        except Exception:  # noqa: BLE001 - expired: the next writer simply goes ahead
            pass


def _mark_dirty(ids: list[str]) -> None:
    for i in range(0, len(ids), 500):
        Document.update(index_dirty=True).where(Document.id.in_(ids[i:i + 500])).execute()


def _claim(firm_id: str, ids: list[str]) -> None:
    """Clear the dirty flags we are about to index, remembering them in Redis until the
    commit: a change made meanwhile sets the flag again, and a crash gives them back."""
    if not ids:
        return
    conn = fleet.connection()
    for i in range(0, len(ids), 5000):
        conn.sadd(fleet.search_claimed_key(firm_id), *ids[i:i + 5000])
    conn.expire(fleet.search_claimed_key(firm_id), 7 * 86400)
    for i in range(0, len(ids), 500):
        Document.update(index_dirty=False).where(Document.id.in_(ids[i:i + 500])).execute()


def _release(firm_id: str) -> None:
    fleet.connection().delete(fleet.search_claimed_key(firm_id))


def all_claimed(firm_id: str, ids: list[str]) -> bool:
    """Whether a writer has taken every one of ``ids`` to index them (their dirty flags
    cleared until its commit)."""
    return all(fleet.connection().smismember(fleet.search_claimed_key(firm_id), ids))


def index_dirty(firm_id: str) -> int:
    """Index every document of the firm marked dirty, in ONE writer commit (trashed ones
    are removed). Rebuilds the whole index when it is missing or unreadable."""
    try:
        with _Locked(firm_id, wait=INDEX_JOB_WAIT):
            return _index_dirty(firm_id, backend())
    except Busy:
        # A rebuild holds the index: the flags stay set; come back after it.
        queue.schedule_index_later(firm_id, BUSY_RETRY)
        return 0


def _index_dirty(firm_id: str, engine) -> int:
    ids = [r[0] for r in Document.select(Document.id)
           .where((Document.firm == firm_id) & (Document.index_dirty == True))  # noqa: E712
           .tuples()]
    if not ids and engine.healthy(firm_id) and not engine.stale(firm_id):
        return 0
    _claim(firm_id, ids)
    try:
        trashed = [r[0] for r in Document.select(Document.id).where(
            Document.id.in_(ids) & Document.trashed_at.is_null(False)).tuples()] if ids else []
        if not engine.exists(firm_id):
            raise engine.NeedsRebuild("missing")
        if engine.stale(firm_id):
            raise engine.NeedsRebuild("stale")
        engine.write(firm_id, stream(firm_id, ids), trashed)
    except engine.NeedsRebuild as exc:
        reason = {"missing": "not there", "stale": "built by an older analysis"}.get(
            str(exc), "unreadable")
        (log.warning if reason == "unreadable" else log.info)(
            "search index of firm %s %s: building it from the database", firm_id, reason)
        _claim(firm_id, _all_ids(firm_id, dirty_only=True))
        count = engine.rebuild(firm_id, DocStream(firm_id))
        _release(firm_id)
        return count
    except BaseException:
        _mark_dirty(ids)
        _release(firm_id)
        raise
    _release(firm_id)
    return len(ids)


def _all_ids(firm_id: str, dirty_only: bool = False) -> list[str]:
    where = Document.firm == firm_id
    if dirty_only:
        where &= Document.index_dirty == True  # noqa: E712
    return [r[0] for r in Document.select(Document.id).where(where).tuples()]


def remove_document(firm_id: str, document_id: str) -> None:
    """Take one document out of the index (it was deleted for good)."""
    engine = backend()
    with _Locked(firm_id):
        if engine.exists(firm_id):
            try:
                engine.write(firm_id, [], [document_id])
            except engine.NeedsRebuild:
                pass  # a rebuild reads the database, where the document no longer is


def rebuild_firm(firm_id: str, progress=None) -> int:
    """Rebuild one firm's index from the database."""
    engine = backend()
    with _Locked(firm_id):
        _claim(firm_id, _all_ids(firm_id, dirty_only=True))
        try:
            count = engine.rebuild(firm_id, DocStream(firm_id), progress=progress)
        except BaseException:
            claimed = [m.decode() for m in
                       fleet.connection().smembers(fleet.search_claimed_key(firm_id))]
            _mark_dirty(claimed)
            _release(firm_id)
            raise
        _release(firm_id)
        return count


def reindex(firm_id: str | None = None, progress: bool = True) -> dict[str, int]:
    """Rebuild the index of one firm (or of every firm) from the database, with a
    progress bar; searches keep using the old index until the new one is complete."""
    from tqdm import tqdm

    firms = [firm_id] if firm_id else [f.id for f in Firm.select(Firm.id).order_by(Firm.id)]
    done = {}
    for fid in firms:
        total = Document.select().where((Document.firm == fid)
                                        & Document.trashed_at.is_null()).count()
        with tqdm(total=total, unit="doc", desc=f"index {fid}", disable=not progress) as bar:
            done[fid] = rebuild_firm(fid, progress=bar.update)
    return done
