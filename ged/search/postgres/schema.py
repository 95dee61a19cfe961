"""The PostgreSQL engine's schema: the ``ged_french`` text configuration, the
``search_entry`` table (one row per live document) with its text index (RUM where the
server has the extension, GIN otherwise), and ``search_version`` (the analysis each
firm's rows were built with); what this process remembers of them."""

from __future__ import annotations

import logging
import threading

from ... import runtime
from ...db import db, transaction
from ...errors import GedError
from ..folding import ANALYSIS_VERSION

log = logging.getLogger(__name__)

CONFIG = "ged_french"


class IndexUnavailable(GedError):
    """The search table is missing (``ged init`` not run): 503 until it is built."""

    status = 503
    code = "search_unavailable"

    def __init__(self, message: str | None = None):
        super().__init__(message or "The search index is being rebuilt; try again in a moment "
                                    "(an administrator can run `ged init` then `ged reindex`).")


class NeedsRebuild(Exception):
    """The search table is missing: the caller rebuilds it from the database."""


# Per database (tests bind several in one process): the text index kind, once known.
_kinds: dict[str, str] = {}
_state: dict = {"rum_schema": None}
_lock = threading.Lock()


def scalar(sql: str, params=()):
    row = db.execute_sql(sql, params).fetchone()
    return row[0] if row else None


def extension_schema(name: str) -> str | None:
    return scalar("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = %s",
                  (name,))


def _create_extension(name: str) -> str | None:
    """Create an extension (in ``public`` when there is one, so that dropping an
    application schema never drops it) and return its schema; None when the server
    lacks it or we may not create it."""
    found = extension_schema(name)
    if found:
        return found
    target = "public" if scalar("SELECT 1 FROM pg_namespace WHERE nspname = 'public'") else None
    target = target or scalar("SELECT current_schema()")
    try:
        with db.atomic():  # a savepoint: a refusal leaves the transaction usable
            db.execute_sql(f'CREATE EXTENSION IF NOT EXISTS {name} SCHEMA "{target}"')
    except Exception as exc:  # noqa: BLE001 - missing package or privilege: reported
        log.warning("PostgreSQL extension %s unavailable: %s", name, exc)
        return None
    return extension_schema(name)


def init() -> None:
    """Create what the backend needs (idempotent; ``ged init``): the ``unaccent``
    extension, the ``ged_french`` configuration, the table and its indexes, with a
    RUM text index where the ``rum`` extension can be created, GIN otherwise."""
    with transaction():
        # One initialiser at a time across hosts (CREATE EXTENSION is not race-safe); the
        # lock keeps its name from the module's former place, so older hosts share it.
        db.execute_sql("SELECT pg_advisory_xact_lock(hashtext('ged.search_postgres.init'))")
        unaccent = _create_extension("unaccent")
        if unaccent is None:
            raise RuntimeError("the PostgreSQL search backend needs the unaccent extension "
                               "(CREATE EXTENSION unaccent, as a privileged user)")
        if not scalar("SELECT 1 FROM pg_ts_config WHERE cfgname = %s "
                      "AND cfgnamespace = current_schema()::regnamespace", (CONFIG,)):
            db.execute_sql(f"CREATE TEXT SEARCH CONFIGURATION {CONFIG} (COPY = pg_catalog.french)")
            db.execute_sql(f'ALTER TEXT SEARCH CONFIGURATION {CONFIG} ALTER MAPPING FOR hword, '
                           f'hword_part, word WITH "{unaccent}".unaccent, french_stem')
        db.execute_sql("""
            CREATE TABLE IF NOT EXISTS search_entry (
                document_id varchar(26) PRIMARY KEY,
                firm_id varchar(26) NOT NULL,
                company_id varchar(26) NOT NULL,
                folder_path varchar(4000) NOT NULL,
                kind varchar(8) NOT NULL,
                invoice boolean NOT NULL DEFAULT false,
                deposited_at timestamp NOT NULL,
                tsv tsvector NOT NULL
            )""")
        db.execute_sql("CREATE INDEX IF NOT EXISTS search_entry_company "
                       "ON search_entry (company_id, deposited_at, document_id)")
        db.execute_sql("CREATE INDEX IF NOT EXISTS search_entry_firm "
                       "ON search_entry (firm_id, deposited_at, document_id)")
        db.execute_sql("""
            CREATE TABLE IF NOT EXISTS search_version (
                firm_id varchar(26) PRIMARY KEY,
                analysis integer NOT NULL
            )""")
        if text_index() is None:
            rum = _create_extension("rum")
            if rum is not None:
                db.execute_sql(
                    f'CREATE INDEX search_entry_tsv_rum ON search_entry USING rum '
                    f'(tsv "{rum}".rum_tsvector_addon_ops, deposited_at) '
                    f"WITH (attach = 'deposited_at', to = 'tsv')")
            else:
                db.execute_sql("CREATE INDEX search_entry_tsv_gin ON search_entry USING gin (tsv)")
    forget()


def text_index() -> str | None:
    """'rum' or 'gin': the kind of text index in this schema, None if there is none."""
    names = [r[0] for r in db.execute_sql(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = 'search_entry'").fetchall()]
    if "search_entry_tsv_rum" in names:
        return "rum"
    if "search_entry_tsv_gin" in names:
        return "gin"
    return None


def database_key() -> str:
    return runtime.config().database_url


def kind() -> str | None:
    """The text index kind of this database, remembered once the table exists."""
    key = database_key()
    found = _kinds.get(key)
    if found is None:
        with _lock:
            found = _kinds.get(key) or text_index()
            if found is not None:
                _kinds[key] = found
    return found


def forget() -> None:
    """Forget what is remembered about the table (after it was dropped or rebuilt)."""
    key = database_key()
    _kinds.pop(key, None)
    _current.difference_update({k for k in _current if k[0] == key})


def missing_table(exc: Exception) -> bool:
    """True for "the table (or text configuration) is not there" errors."""
    code = getattr(getattr(exc, "orig", None) or exc, "pgcode", None)
    return code in ("42P01", "42704")  # undefined_table, undefined_object


def rum_schema() -> str:
    """Where the rum extension's operators live (they are schema-qualified)."""
    if _state.get("rum_schema") is None:
        _state["rum_schema"] = '"%s"' % (extension_schema("rum") or "public")
    return _state["rum_schema"]


def healthy(firm_id: str) -> bool:
    """Whether the table and its text index are there now (asked afresh, not cached)."""
    if text_index() is None:
        forget()
        return False
    return True


def exists(firm_id: str) -> bool:
    """True when the search table is there (one table serves every firm)."""
    return kind() is not None


_current: set[tuple[str, str]] = set()  # (database, firm) whose rows are of this analysis


def stale(firm_id: str) -> bool:
    """Whether the firm's rows were built by an older analysis (``search.ANALYSIS_VERSION``),
    or before versions were recorded: they still answer, but must be rebuilt."""
    key = (database_key(), firm_id)
    if key in _current:
        return False
    if scalar("SELECT to_regclass('search_version')") is None:
        return True
    version = scalar("SELECT analysis FROM search_version WHERE firm_id = %s", (firm_id,))
    if version == ANALYSIS_VERSION:
        _current.add(key)
        return False
    return True

