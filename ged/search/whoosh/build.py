"""Full rebuilds of a Whoosh index: a new generation directory written in segments
of BULK_BATCH documents (one builder process per core for large firms, each
writing its own segments, adopted under one table of contents), then switched to
atomically."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from whoosh import index
from whoosh.filedb.filestore import FileStorage

from ... import runtime
from ...db import init_db
from .codec import make_schema
from .generations import new_generation, switch_to
from .writer import FastWriter, doc_fields

BULK_BATCH = 50_000  # documents per segment in a rebuild (memory: about 60 MB of arrays)


PARALLEL_FROM = 20_000  # documents from which a rebuild uses one process per core


def rebuild(firm_id: str, docs, progress=None) -> int:
    """Build a fresh index of ``docs`` (IndexDocs: an iterable, or a ``search.DocStream``
    that child processes can load slices of) in a new generation directory, then
    switch to it atomically; searches use the old one until then. Large rebuilds
    run one builder process per core, each writing its own segments.
    The caller holds the firm's writer lock."""
    generation = new_generation(firm_id)
    try:
        ids = docs.ids() if hasattr(docs, "load") else None
        processes = min(os.cpu_count() or 1, len(ids) // (PARALLEL_FROM // 2)) if ids else 1
        if processes > 1:
            count = _build_in_parallel(generation, docs, ids, processes, progress)
        else:
            count = _build_part(generation, iter(docs) if ids is None else docs.load(ids),
                                progress)
        switch_to(firm_id, generation)
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
