"""The database: declared once, bound late from DATABASE_URL.

SQLite (the embedded mode) runs in WAL mode with a busy timeout and takes its
write lock at the start of a transaction, so concurrent writers queue instead of
failing with "database is locked". PostgreSQL uses a connection pool per process.
"""

from __future__ import annotations

import os
import secrets
import time
from contextlib import contextmanager
from urllib.parse import parse_qs, unquote, urlparse

import peewee
from playhouse.pool import PooledPostgresqlDatabase

db = peewee.DatabaseProxy()

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """An opaque, unguessable, time-ordered id (a ULID): ordering by id orders by creation."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(secrets.token_bytes(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars)).lower()


def make_database(url: str) -> peewee.Database:
    """A peewee database for a DATABASE_URL (sqlite:///path or postgresql://...)."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if url.startswith("sqlite:////"):
            path = "/" + path.lstrip("/")
        elif url.startswith("sqlite:///"):
            path = path[1:] if not path.startswith("//") else path
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        return peewee.SqliteDatabase(
            path,
            pragmas={
                "journal_mode": "wal",
                "busy_timeout": 30000,
                "foreign_keys": 1,
                "synchronous": "normal",
                "cache_size": -16000,
            },
            timeout=30,
        )
    if parsed.scheme in {"postgres", "postgresql"}:
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        return PooledPostgresqlDatabase(
            unquote(parsed.path.lstrip("/")),
            user=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            host=parsed.hostname or None,
            port=parsed.port or 5432,
            max_connections=int(query.pop("max_connections", 20)),
            stale_timeout=300,
            # A request that finds every pooled connection busy waits for one rather
            # than failing at once (MaxConnectionsExceeded would be a 500 under a burst).
            timeout=float(query.pop("pool_timeout", 10)),
            **query,
        )
    raise ValueError(f"unsupported DATABASE_URL scheme: {parsed.scheme!r}")


def init_db(url: str) -> peewee.Database:
    """Bind the proxy to the database named by ``url`` and return it."""
    database = make_database(url)
    db.initialize(database)
    return database


def is_sqlite() -> bool:
    return isinstance(db.obj, peewee.SqliteDatabase)


def is_postgres() -> bool:
    return isinstance(db.obj, peewee.PostgresqlDatabase)


@contextmanager
def transaction():
    """One write transaction. On SQLite the write lock is taken up front (BEGIN
    IMMEDIATE) so two writers never deadlock on a lock upgrade."""
    if is_sqlite() and not db.in_transaction():
        with db.atomic("IMMEDIATE") as txn:
            yield txn
    else:
        with db.atomic() as txn:
            yield txn
