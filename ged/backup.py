"""Backup and restore: a consistent copy of the database and the blobs, taken while
the server runs, that a second run into the same place only tops up.

Layout of a backup directory::

    blobs/ab/cd/<sha256>        every blob, copied once (content-addressed)
    snapshots/<UTC time>/       one per `ged backup`
        database.sqlite3        SQLite's online backup (or database.pgdump: pg_dump -Fc)
        manifest.json           engine, schema version, checksums of the database
                                file, the secret key and every blob the snapshot names
        secret_key              the data dir's generated SECRET_KEY, when there is one
    LATEST                      the name of the newest snapshot

Consistency: the database is copied first, in one snapshot (SQLite's backup API
reads one transaction; PostgreSQL exports a snapshot that pg_dump then uses and
in which the blob list is read). Blobs are written to the store before any row
names them, so every blob the snapshot names is already there; blobs added
afterwards belong to the next backup. Each blob is hashed while it is copied.

The search index is not backed up: ``restore`` marks every document for
indexing and rebuilds it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from . import blobs, runtime
from .blobs import sha256_of
from .db import db, is_sqlite
from .models import utcnow

FORMAT = 1


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why."""


# --- helpers ------------------------------------------------------------------------------


def blob_path(root: Path, sha256: str) -> Path:
    return blobs.blob_path(Path(root) / "blobs", sha256)


def copy_verified(src, dest: Path, sha256: str, tmp_dir: Path) -> int:
    """Copy an open binary file to ``dest`` through a fsynced temporary file,
    checking that the bytes hash to ``sha256``; returns the size."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="copy-", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            found = sha256_of(src, copy_to=out)
            out.flush()
            os.fsync(out.fileno())
        if found.sha256 != sha256:
            raise BackupError(f"blob {sha256} is corrupt in the source (its bytes hash to "
                              f"{found.sha256})")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return found.size


def _pg_dsn(url: str) -> str:
    """DATABASE_URL as libpq takes it (ged's own pool options removed)."""
    parsed = urlparse(url)
    query = [(k, v) for k, v in parse_qsl(parsed.query) if k != "max_connections"]
    return urlunparse(parsed._replace(scheme="postgresql", query=urlencode(query)))


def _sqlite_path() -> str:
    return db.obj.database


def database_is_empty() -> bool:
    """True when the configured database holds no table at all."""
    if is_sqlite():
        path = _sqlite_path()
        if not os.path.exists(path):
            return True
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'"
                                ).fetchone()[0] == 0
    with db.connection_context():
        return db.execute_sql("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
                              ).fetchone()[0] == 0


def snapshots(root: Path) -> list[str]:
    folder = Path(root) / "snapshots"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def latest(root: Path) -> str | None:
    marker = Path(root) / "LATEST"
    if marker.exists():
        name = marker.read_text().strip()
        if (Path(root) / "snapshots" / name / "manifest.json").exists():
            return name
    names = snapshots(root)
    return names[-1] if names else None


# --- backup -------------------------------------------------------------------------------


def backup(dest: Path, *, keep: int | None = None, progress=None) -> dict:
    """Take a backup into ``dest``; returns its manifest (with ``problems`` listing
    blobs that could not be copied: missing or corrupt in the source)."""
    from .schema import current_version

    cfg = runtime.config()
    dest = Path(dest).resolve()
    name = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
    partial = dest / "snapshots" / f".{name}.partial"
    partial.mkdir(parents=True, exist_ok=True)
    try:
        if is_sqlite():
            db_file, blobs = _snapshot_sqlite(partial)
            engine = "sqlite"
        else:
            db_file, blobs = _snapshot_postgres(partial, cfg.database_url)
            engine = "postgresql"
        with db.connection_context():
            version = current_version()
        problems, copied, copied_bytes = _copy_blobs(dest, blobs, progress)
        secret = None
        key_file = Path(cfg.data_dir) / "secret_key"
        if key_file.exists():
            shutil.copy2(key_file, partial / "secret_key")
            os.chmod(partial / "secret_key", 0o600)
            secret = sha256_of(partial / "secret_key").sha256
        manifest = {
            "format": FORMAT,
            "name": name,
            "created_at": utcnow().isoformat(),
            "engine": engine,
            "schema_version": version,
            "database": {"file": db_file.name, "sha256": sha256_of(db_file).sha256,
                         "size": db_file.stat().st_size},
            "secret_key_sha256": secret,
            "blob_count": len(blobs),
            "blob_bytes": sum(size for _sha, size in blobs),
            "blobs_copied": copied,
            "bytes_copied": copied_bytes,
            "problems": problems,
            "blobs": [[sha, size] for sha, size in blobs],
        }
        (partial / "manifest.json").write_text(json.dumps(manifest, indent=1))
        final = dest / "snapshots" / name
        os.replace(partial, final)
        _write_atomic(dest / "LATEST", name + "\n")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if keep:
        manifest["pruned"] = prune(dest, keep)
    return manifest


def _snapshot_sqlite(folder: Path) -> tuple[Path, list[tuple[str, int]]]:
    target = folder / "database.sqlite3"
    src = sqlite3.connect(_sqlite_path(), timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # one step: a single read transaction, so one consistent state
        blobs = dst.execute("SELECT sha256, size FROM blob ORDER BY sha256").fetchall()
        dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
    finally:
        dst.close()
        src.close()
    return target, [(sha, int(size)) for sha, size in blobs]


def _snapshot_postgres(folder: Path, url: str) -> tuple[Path, list[tuple[str, int]]]:
    import psycopg2
    import psycopg2.extensions

    target = folder / "database.pgdump"
    dsn = _pg_dsn(url)
    conn = psycopg2.connect(dsn)
    try:
        conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ,
                         readonly=True)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot(), current_schema()")
            snapshot_id, schema = cur.fetchone()
            cur.execute("SELECT sha256, size FROM blob ORDER BY sha256")
            blobs = [(sha, int(size)) for sha, size in cur.fetchall()]
            # pg_dump reads the very snapshot the blob list was read in.
            result = subprocess.run(
                ["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
                 f"--snapshot={snapshot_id}", f"--schema={schema}", f"--file={target}",
                 f"--dbname={dsn}"], capture_output=True, text=True)
            if result.returncode != 0:
                raise BackupError("pg_dump failed: " + result.stderr.strip())
        conn.rollback()
    finally:
        conn.close()
    return target, blobs


def _copy_blobs(dest: Path, blobs, progress) -> tuple[list[str], int, int]:
    store = runtime.store()
    problems, copied, copied_bytes = [], 0, 0
    tmp_dir = dest / "blobs" / ".tmp"
    for sha, size in blobs:
        target = blob_path(dest, sha)
        if target.exists() and target.stat().st_size == size:
            if progress:
                progress(size)
            continue
        try:
            with store.open(sha) as fh:
                copied_bytes += copy_verified(fh, target, sha, tmp_dir)
            copied += 1
        except FileNotFoundError:
            problems.append(f"blob {sha} is named by the database but missing from the store")
        except BackupError as exc:
            problems.append(str(exc))
        if progress:
            progress(size)
    return problems, copied, copied_bytes


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def prune(dest: Path, keep: int) -> list[str]:
    """Keep the ``keep`` newest snapshots; remove older ones and the blobs that no
    kept snapshot names any more. Returns the removed snapshot names."""
    names = snapshots(dest)
    removed = names[:-keep] if keep < len(names) else []
    for name in removed:
        shutil.rmtree(Path(dest) / "snapshots" / name)
    if removed:
        named = set()
        for name in snapshots(dest):
            manifest = json.loads((Path(dest) / "snapshots" / name / "manifest.json").read_text())
            named.update(sha for sha, _size in manifest["blobs"])
        for path in (Path(dest) / "blobs").glob("??/??/*"):
            if len(path.name) == 64 and path.name not in named:
                path.unlink()
    return removed


# --- verify -------------------------------------------------------------------------------


def load_manifest(root: Path, snapshot: str | None = None) -> tuple[str, dict]:
    root = Path(root)
    name = snapshot or latest(root)
    if not name:
        raise BackupError(f"no backup in {root}")
    path = root / "snapshots" / name / "manifest.json"
    if not path.exists():
        raise BackupError(f"no snapshot {name!r} in {root}")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    return name, manifest


def verify(root: Path, snapshot: str | None = None, *, quick: bool = False,
           progress=None) -> tuple[str, dict, list[str]]:
    """Check a snapshot: the database file's checksum, the secret key's, and every
    blob it names (present, right size, and unless ``quick`` the right SHA-256)."""
    root = Path(root)
    name, manifest = load_manifest(root, snapshot)
    folder = root / "snapshots" / name
    problems = list(manifest.get("problems", []))
    db_file = folder / manifest["database"]["file"]
    if not db_file.exists():
        problems.append(f"database file {db_file.name} is missing")
    elif sha256_of(db_file).sha256 != manifest["database"]["sha256"]:
        problems.append(f"database file {db_file.name} does not match its checksum")
    if manifest.get("secret_key_sha256"):
        key = folder / "secret_key"
        if not key.exists() or sha256_of(key).sha256 != manifest["secret_key_sha256"]:
            problems.append("the secret key file is missing or altered")
    for sha, size in manifest["blobs"]:
        path = blob_path(root, sha)
        if not path.exists():
            problems.append(f"blob {sha} is missing")
        elif path.stat().st_size != size:
            problems.append(f"blob {sha} has the wrong size")
        elif not quick and sha256_of(path).sha256 != sha:
            problems.append(f"blob {sha} is corrupt")
        if progress:
            progress(size)
    return name, manifest, problems


# --- restore ------------------------------------------------------------------------------


def restore(src: Path, snapshot: str | None = None, progress=None) -> dict:
    """Restore a snapshot into the configured data dir and database, which must be
    empty (nothing is overwritten). Blobs first, checked while copied, then the
    database; on failure the blobs written are removed again. Then the schema is
    brought up to date and the search index rebuilt."""
    from . import schema

    cfg = runtime.config()
    src = Path(src).resolve()
    name, manifest, problems = verify(src, snapshot, quick=True)
    if problems:
        raise BackupError("the backup is damaged: " + "; ".join(problems[:5]))
    engine = "sqlite" if is_sqlite() else "postgresql"
    if manifest["engine"] != engine:
        raise BackupError(f"this backup is of a {manifest['engine']} database; the target "
                          f"DATABASE_URL is {engine}")
    store = runtime.store()
    if not database_is_empty():
        raise BackupError("the target database is not empty; restore only into an empty one")
    if next(iter(store.keys()), None) is not None:
        raise BackupError("the target blob store is not empty; restore only into an empty "
                          "data dir")
    folder = src / "snapshots" / name
    written: list[str] = []
    tmp_dir = Path(cfg.data_dir) / "tmp"
    try:
        for sha, size in manifest["blobs"]:
            staged = tmp_dir / f"restore-{sha}"
            with open(blob_path(src, sha), "rb") as fh:
                copy_verified(fh, staged, sha, tmp_dir)
            try:
                store.put(sha, staged)
            finally:
                staged.unlink(missing_ok=True)
            written.append(sha)
            if progress:
                progress(size)
        db_file = folder / manifest["database"]["file"]
        if engine == "sqlite":
            _restore_sqlite(db_file)
        else:
            _restore_postgres(db_file, cfg.database_url)
    except BaseException:
        for sha in written:
            store.delete(sha)
        raise
    key = folder / "secret_key"
    if key.exists() and not os.environ.get("SECRET_KEY"):
        shutil.copy2(key, Path(cfg.data_dir) / "secret_key")
        os.chmod(Path(cfg.data_dir) / "secret_key", 0o600)
    version = schema.migrate()
    search = rebuild_search()
    return {"snapshot": name, "blobs": len(written), "schema_version": version,
            "search": search}


def _restore_sqlite(db_file: Path) -> None:
    target = _sqlite_path()
    if not db.is_closed():
        db.close()
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(db_file)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _restore_postgres(dump: Path, url: str) -> None:
    dsn = _pg_dsn(url)
    with db.connection_context():
        schema = db.execute_sql("SELECT current_schema()").fetchone()[0]
    listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True,
                             text=True)
    if listing.returncode != 0:
        raise BackupError("pg_restore cannot read the dump: " + listing.stderr.strip())
    # TOC lines read "<id>; <oid> <oid> TABLE <schema> <name> <owner>" (or "TABLE DATA ...").
    dumped_schemas = set()
    for parts in (line.split() for line in listing.stdout.splitlines() if not line.startswith(";")):
        if len(parts) > 6 and parts[3:5] == ["TABLE", "DATA"]:
            dumped_schemas.add(parts[5])
        elif len(parts) > 5 and parts[3] == "TABLE":
            dumped_schemas.add(parts[4])
    if dumped_schemas and dumped_schemas != {schema}:
        raise BackupError(f"the dump's tables live in schema {', '.join(sorted(dumped_schemas))};"
                          f" the target's search_path is {schema}")
    # The (empty) schema exists already: leave its CREATE SCHEMA and COMMENT ON SCHEMA
    # (which only its owner may set, e.g. for "public") out of the restore.
    toc = [line for line in listing.stdout.splitlines()
           if " SCHEMA - " not in line and " COMMENT - SCHEMA " not in line]
    with tempfile.NamedTemporaryFile("w", suffix=".toc", delete=False) as fh:
        fh.write("\n".join(toc) + "\n")
    try:
        result = subprocess.run(
            ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
             "--single-transaction", f"--use-list={fh.name}", f"--dbname={dsn}", str(dump)],
            capture_output=True, text=True)
    finally:
        os.unlink(fh.name)
    if result.returncode != 0:
        raise BackupError("pg_restore failed: " + result.stderr.strip())


def rebuild_search() -> str:
    """Mark every document for indexing and rebuild the search index (the index is
    never part of a backup)."""
    from . import search
    from .models import Document

    with db.connection_context():
        Document.update(index_dirty=True).execute()
    try:
        with db.connection_context():
            counts = search.reindex()
    except Exception as exc:  # noqa: BLE001 - e.g. no Redis for the writer lock yet
        return (f"search index not rebuilt now ({exc}); every document is marked, the "
                "workers index them")
    return f"search index rebuilt ({sum(counts.values())} document(s))"
