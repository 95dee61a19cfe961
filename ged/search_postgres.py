"""The PostgreSQL search backend (GED_SEARCH_BACKEND=postgres): full-text search
in the database every host already shares, behind the same seam as Whoosh
(``ged.search`` parses the query, computes the scope and re-checks every hit).

- Analysis: text and queries reach PostgreSQL folded by ``search.fold`` (the
  rule the Whoosh backend applies too: accents, ligatures, apostrophes and every
  other separator), then the text configuration ``ged_french`` (created by
  ``init``, i.e. ``ged init``) stems them with the French Snowball stemmer and
  drops its stop words, keeping their positions. Its ``unaccent`` step serves
  ``ts_headline``, which reads the original text. The analysis version each
  firm's rows were built with is kept in ``search_version``: rows of an older
  one are rebuilt (see ``search.ANALYSIS_VERSION``).
- One row per live document in ``search_entry``: firm, company, the folder's
  materialised path of ids (subtree and hidden-folder filters), kind, deposit
  time, and a weighted tsvector (A: name, B: folder names, C: invoice fields,
  D: the first INDEX_CHARS characters of the text). ``nom:``, ``dossier:`` and
  ``facture:`` become weight restrictions of the tsquery.
- Indexes: the text index (RUM, ``rum_tsvector_addon_ops`` with the deposit time
  attached, where the server has the ``rum`` extension; GIN otherwise) and btree
  indexes on (company, deposit time) and (firm, deposit time).
- Broad queries: ranking every match of words found in most of a firm's
  documents costs seconds at a million documents, so only a bounded candidate
  set is ranked: the CANDIDATES newest matches. Results are those candidates,
  best-ranked first, then any older matches newest first; with fewer matches
  than CANDIDATES this is plain ranking. The newest matches are found by one of
  two paths, chosen per query from the planner's estimates and costs measured
  at that size (``_access_path``): walking the scope's documents newest first
  and checking each (common words: the candidates come at once), or reading the
  words' postings in the text index and sorting the matches by date (rare
  words). ``total`` is exact up to CANDIDATES matches (and up to TOTAL_CAP on
  the bitmap path); beyond, it is the planner's estimate.
- Snippets: ``ts_headline`` (the same analysis as the match) marks the hits in a
  bounded window (WINDOW_CHARS) around the first likely hit within the first
  EXCERPT_CHARS characters; about SNIPPET_CHARS of it are kept, HTML-escaped,
  each hit wrapped in <mark>, like the Whoosh backend.

Writes are plain transactions: searches see the old rows until a write or a
rebuild commits. The caller (``ged.search``) holds the firm's writer lock.
"""

from __future__ import annotations

import html
import logging
import re
import threading

import peewee as pw

from .db import db, transaction
from .errors import GedError, Invalid
from .search import (ANALYSIS_VERSION, ELISIONS, WORD_START, accent_insensitive, fold,
                     scannable)

log = logging.getLogger(__name__)

CONFIG = "ged_french"
INDEX_CHARS = 400_000  # text indexed per document (a tsvector holds at most 1 MB)
EXCERPT_CHARS = 50_000  # snippets come from the first 50,000 characters
CANDIDATES = 1000  # matches ranked per query, the newest first
TOTAL_CAP = 10_000
BATCH = 200
WEIGHT_OF = {None: "", "content": "", "name": "A", "folder": "B", "invoice": "C"}
# The same kinds as the Whoosh backend's ``type`` filter.
TYPE_OF = {
    "application/pdf": "pdf",
    "image/jpeg": "image", "image/png": "image", "image/tiff": "image", "image/heic": "image",
    "text/plain": "text", "text/csv": "text",
    "application/xml": "xml",
}


class IndexUnavailable(GedError):
    """The search table is missing (``ged init`` not run): 503 until it is built."""

    status = 503
    code = "search_unavailable"

    def __init__(self, message: str | None = None):
        super().__init__(message or "The search index is being rebuilt; try again in a moment "
                                    "(an administrator can run `ged init` then `ged reindex`).")


class NeedsRebuild(Exception):
    """The search table is missing: the caller rebuilds it from the database."""


# --- schema ---------------------------------------------------------------------------------

# Per database (tests bind several in one process): the text index kind, once known.
_kinds: dict[str, str] = {}
_state: dict = {"rum_schema": None}
_lock = threading.Lock()


def _scalar(sql: str, params=()):
    row = db.execute_sql(sql, params).fetchone()
    return row[0] if row else None


def _extension_schema(name: str) -> str | None:
    return _scalar("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = %s",
                   (name,))


def _create_extension(name: str) -> str | None:
    """Create an extension (in ``public`` when there is one, so that dropping an
    application schema never drops it) and return its schema; None when the server
    lacks it or we may not create it."""
    found = _extension_schema(name)
    if found:
        return found
    target = "public" if _scalar("SELECT 1 FROM pg_namespace WHERE nspname = 'public'") else None
    target = target or _scalar("SELECT current_schema()")
    try:
        with db.atomic():  # a savepoint: a refusal leaves the transaction usable
            db.execute_sql(f'CREATE EXTENSION IF NOT EXISTS {name} SCHEMA "{target}"')
    except Exception as exc:  # noqa: BLE001 - missing package or privilege: reported
        log.warning("PostgreSQL extension %s unavailable: %s", name, exc)
        return None
    return _extension_schema(name)


def init() -> None:
    """Create what the backend needs (idempotent; ``ged init``): the ``unaccent``
    extension, the ``ged_french`` configuration, the table and its indexes, with a
    RUM text index where the ``rum`` extension can be created, GIN otherwise."""
    with transaction():
        # One initialiser at a time across hosts (CREATE EXTENSION is not race-safe).
        db.execute_sql("SELECT pg_advisory_xact_lock(hashtext('ged.search_postgres.init'))")
        unaccent = _create_extension("unaccent")
        if unaccent is None:
            raise RuntimeError("the PostgreSQL search backend needs the unaccent extension "
                               "(CREATE EXTENSION unaccent, as a privileged user)")
        if not _scalar("SELECT 1 FROM pg_ts_config WHERE cfgname = %s "
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
        if _text_index() is None:
            rum = _create_extension("rum")
            if rum is not None:
                db.execute_sql(
                    f'CREATE INDEX search_entry_tsv_rum ON search_entry USING rum '
                    f'(tsv "{rum}".rum_tsvector_addon_ops, deposited_at) '
                    f"WITH (attach = 'deposited_at', to = 'tsv')")
            else:
                db.execute_sql("CREATE INDEX search_entry_tsv_gin ON search_entry USING gin (tsv)")
    forget()


def _text_index() -> str | None:
    """'rum' or 'gin': the kind of text index in this schema, None if there is none."""
    names = [r[0] for r in db.execute_sql(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = 'search_entry'").fetchall()]
    if "search_entry_tsv_rum" in names:
        return "rum"
    if "search_entry_tsv_gin" in names:
        return "gin"
    return None


def _database_key() -> str:
    from . import runtime

    return runtime.config().database_url


def _kind() -> str | None:
    """The text index kind of this database, remembered once the table exists."""
    key = _database_key()
    kind = _kinds.get(key)
    if kind is None:
        with _lock:
            kind = _kinds.get(key) or _text_index()
            if kind is not None:
                _kinds[key] = kind
    return kind


def forget() -> None:
    """Forget what is remembered about the table (after it was dropped or rebuilt)."""
    key = _database_key()
    _kinds.pop(key, None)
    _current.difference_update({k for k in _current if k[0] == key})


def _missing_table(exc: Exception) -> bool:
    """True for "the table (or text configuration) is not there" errors."""
    code = getattr(getattr(exc, "orig", None) or exc, "pgcode", None)
    return code in ("42P01", "42704")  # undefined_table, undefined_object


def _rum_schema() -> str:
    """Where the rum extension's operators live (they are schema-qualified)."""
    if _state.get("rum_schema") is None:
        _state["rum_schema"] = '"%s"' % (_extension_schema("rum") or "public")
    return _state["rum_schema"]


def healthy(firm_id: str) -> bool:
    """Whether the table and its text index are there now (asked afresh, not cached)."""
    if _text_index() is None:
        forget()
        return False
    return True


def exists(firm_id: str) -> bool:
    """True when the search table is there (one table serves every firm)."""
    return _kind() is not None


_current: set[tuple[str, str]] = set()  # (database, firm) whose rows are of this analysis


def stale(firm_id: str) -> bool:
    """Whether the firm's rows were built by an older analysis (``search.ANALYSIS_VERSION``),
    or before versions were recorded: they still answer, but must be rebuilt."""
    key = (_database_key(), firm_id)
    if key in _current:
        return False
    if _scalar("SELECT to_regclass('search_version')") is None:
        return True
    version = _scalar("SELECT analysis FROM search_version WHERE firm_id = %s", (firm_id,))
    if version == ANALYSIS_VERSION:
        _current.add(key)
        return False
    return True


# --- writing --------------------------------------------------------------------------------


def _invoice_text(facturx: dict | None) -> str:
    return " ".join(str(v) for k, v in sorted((facturx or {}).items())
                    if v and k not in ("source", "schema_valid"))


def _row(firm_id: str, doc) -> tuple:
    deposited = doc.deposited_at
    if deposited.tzinfo is not None:  # stored as naive UTC, like every ged timestamp
        import datetime as dt

        deposited = deposited.astimezone(dt.timezone.utc).replace(tzinfo=None)
    path = "/" + "".join(f"{i}/" for i in doc.folder_ids)
    return (doc.id, firm_id, doc.company_id, path, TYPE_OF.get(doc.content_type, "office"),
            bool(doc.facturx), deposited, analysed(doc.name), analysed(doc.folder_path),
            analysed(_invoice_text(doc.facturx)), analysed((doc.text or "")[:INDEX_CHARS]))


# The elisions the French stop list lacks ("jusqu’au") become one it has, so that
# they are dropped (keeping their position) as the Whoosh backend drops them.
STOPPED_ELISIONS = frozenset("c d j l m n s t qu".split())  # in PostgreSQL's french.stop
_ELIDED = re.compile(r"\b(?:%s)\b" % "|".join(sorted(ELISIONS - STOPPED_ELISIONS)))


def analysed(text: str) -> str:
    """``text`` as PostgreSQL must see it: folded by the rule both backends share
    (``search.fold``), every separator a space, so its parser finds the same words."""
    folded = fold(text)
    return _ELIDED.sub("qu", folded) if "qu " in folded else folded


def _words(column: str) -> str:
    """The SQL tsvector of a column of ``analysed`` text (or, approximately, of raw
    text: PostgreSQL's parser and ``unaccent`` then fold it)."""
    return f"to_tsvector('{CONFIG}', {column})"


_UPSERT = f"""
INSERT INTO search_entry (document_id, firm_id, company_id, folder_path, kind, invoice,
                          deposited_at, tsv)
SELECT v.id, v.firm, v.company, v.path, v.kind, v.invoice, v.deposited::timestamp,
       setweight({_words("v.name")}, 'A') || setweight({_words("v.folders")}, 'B')
       || setweight({_words("v.invoice_text")}, 'C') || setweight({_words("v.body")}, 'D')
FROM (VALUES %s) AS v(id, firm, company, path, kind, invoice, deposited, name, folders,
                      invoice_text, body)
ON CONFLICT (document_id) DO UPDATE SET
    company_id = EXCLUDED.company_id, folder_path = EXCLUDED.folder_path,
    kind = EXCLUDED.kind, invoice = EXCLUDED.invoice, deposited_at = EXCLUDED.deposited_at,
    tsv = EXCLUDED.tsv
"""


def _insert(firm_id: str, docs, progress=None) -> int:
    from psycopg2.extras import execute_values

    count = 0
    batch: list[tuple] = []
    cursor = db.cursor()

    def flush():
        execute_values(cursor, _UPSERT, batch, page_size=len(batch))

    for doc in docs:
        batch.append(_row(firm_id, doc))
        if len(batch) >= BATCH:
            flush()
            count += len(batch)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        flush()
        count += len(batch)
        if progress:
            progress(len(batch))
    return count


def write(firm_id: str, docs, remove_ids: list[str]) -> None:
    """Add or replace ``docs`` and remove ``remove_ids``, in one transaction."""
    if not exists(firm_id):
        raise NeedsRebuild()
    try:
        with transaction():
            for i in range(0, len(remove_ids), 1000):
                db.execute_sql("DELETE FROM search_entry WHERE firm_id = %s "
                               "AND document_id = ANY(%s)", (firm_id, list(remove_ids[i:i + 1000])))
            _insert(firm_id, docs)
    except pw.DatabaseError as exc:
        if not _missing_table(exc):
            raise
        forget()
        raise NeedsRebuild() from exc


def rebuild(firm_id: str, docs, progress=None) -> int:
    """Replace the firm's rows by ``docs`` in one transaction: searches see the old
    rows until the new ones are all there."""
    if _kind() is None or _scalar("SELECT to_regclass('search_version')") is None:
        init()
    with transaction():
        db.execute_sql("DELETE FROM search_entry WHERE firm_id = %s", (firm_id,))
        count = _insert(firm_id, docs, progress)
        db.execute_sql("INSERT INTO search_version (firm_id, analysis) VALUES (%s, %s) "
                       "ON CONFLICT (firm_id) DO UPDATE SET analysis = EXCLUDED.analysis",
                       (firm_id, ANALYSIS_VERSION))
    if count > 10_000:  # fresh statistics, so the planner knows how common words are
        db.execute_sql("ANALYZE search_entry")
    return count


def drop(firm_id: str) -> None:
    """Delete the firm's rows (the firm is gone)."""
    if exists(firm_id):
        db.execute_sql("DELETE FROM search_entry WHERE firm_id = %s", (firm_id,))
        if _scalar("SELECT to_regclass('search_version')") is not None:
            db.execute_sql("DELETE FROM search_version WHERE firm_id = %s", (firm_id,))
    _current.discard((_database_key(), firm_id))


# --- queries --------------------------------------------------------------------------------

_OPERAND = re.compile(r"'((?:[^']|'')*)'(:\*)?")


def _quote(text: str) -> str:
    """``text`` as one quoted tsquery operand (to_tsquery analyses it, and turns
    several words into a phrase)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _operand(clause) -> str | None:
    """The to_tsquery input of one parsed clause (see ``search.Clause``), None when it
    holds no word at all."""
    words = analysed(clause.text).split()
    if not words:
        return None  # punctuation only ("\\*"): nothing to look for
    if clause.kind == "prefix":
        while len(words) > 1 and words[0] in ELISIONS:
            words.pop(0)  # "l'éch*" looks for "ech…", as the Whoosh backend does
        if len(words[0]) < 2:
            raise Invalid("A prefix search (mot*) needs at least two letters.", "prefix_too_short")
        return _quote(" ".join(words)) + ":*"
    return _quote(" ".join(words))


def _normalise(clauses: list) -> list[str]:
    """The normalised tsquery text of each clause ('' for stop words only), in one
    round trip; field restrictions become weights (nom: A, dossier: B, facture: C)."""
    operands = [_operand(c) for c in clauses]
    wanted = [op for op in operands if op is not None]
    if not wanted:
        return [""] * len(clauses)
    selects = ", ".join(f"to_tsquery('{CONFIG}', %s)::text" for _ in wanted)
    found = iter(db.execute_sql(f"SELECT {selects}", wanted).fetchone())
    row = [next(found) if op is not None else "" for op in operands]
    out = []
    for clause, text in zip(clauses, row):
        weight = WEIGHT_OF.get(clause.field, "")
        if text and weight:
            text = _OPERAND.sub(lambda m: f"'{m.group(1)}':{'*' if m.group(2) else ''}{weight}",
                                text)
        out.append(text or "")
    return out


def build_tsquery(parsed, *, for_headline: bool = False) -> str | None:
    """The tsquery text of a parsed query: AND of the groups (each an OR of clauses),
    minus the negated clauses; None when nothing but stop words remains. For a
    headline: any positive clause, without field weights."""
    clauses = [c for group in parsed.groups for c in group]
    negated = [] if for_headline else list(parsed.negated)
    if for_headline:
        clauses = [type(c)(c.kind, c.text, None) for c in clauses]
    texts = iter(_normalise(clauses + negated))
    groups = []
    for group in parsed.groups:
        alts = [t for t in (next(texts) for _ in group) if t]
        if alts:
            groups.append("(" + " | ".join(f"({a})" for a in alts) + ")")
    negs = [t for t in (next(texts) for _ in negated) if t]
    if not groups:
        return None
    if for_headline:
        return " | ".join(groups)
    query = " & ".join(groups)
    if negs:
        query = f"({query}) & !(" + " | ".join(f"({n})" for n in negs) + ")"
    return query


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filters(scope) -> tuple[str, list]:
    """SQL conditions and parameters of a scope (permissions and the caller's filters)."""
    import datetime as dt

    where, params = ["e.firm_id = %s"], [scope.firm_id]
    if scope.company_ids is not None:
        where.append("e.company_id = ANY(%s)")
        params.append(list(scope.company_ids))
    if scope.folder_prefix:
        where.append("e.folder_path LIKE %s")
        params.append(_escape_like(scope.folder_prefix) + "%")
    if scope.hidden_prefixes:
        where.append("NOT (e.folder_path LIKE ANY(%s))")
        params.append([_escape_like(p) + "%" for p in scope.hidden_prefixes])
    if scope.date_from:
        where.append("e.deposited_at >= %s")
        params.append(dt.datetime.combine(scope.date_from, dt.time()))
    if scope.date_to:
        where.append("e.deposited_at < %s")
        params.append(dt.datetime.combine(scope.date_to + dt.timedelta(days=1), dt.time()))
    if scope.type == "invoice":
        where.append("e.invoice")
    elif scope.type:
        where.append("e.kind = %s")
        params.append(scope.type)
    return " AND ".join(where), params


def search(firm_id: str, parsed, scope, *, offset: int, limit: int) -> tuple[int, list[tuple[str, float]]]:
    """(total, [(document_id, score)...]) of the hits offset..offset+limit within
    ``scope``: the newest CANDIDATES matches ranked best first, older ones after
    them newest first (see the module docstring)."""
    for clause in [c for group in parsed.groups for c in group] + list(parsed.negated):
        _operand(clause)  # a bad query is the user's 400 before any 503 of ours
    kind = _kind()
    if kind is None:
        raise IndexUnavailable()
    try:
        return _search(kind, parsed, scope, offset, limit)
    except pw.DatabaseError as exc:
        if not _missing_table(exc):
            raise
        forget()  # dropped under us: the index job rebuilds it (search._heal)
        raise IndexUnavailable() from exc


def _search(kind: str, parsed, scope, offset: int, limit: int):
    tsquery = build_tsquery(parsed)
    if tsquery is None:
        return 0, []
    where, params = _filters(scope)
    window = max(CANDIDATES, offset + limit)
    path, estimate = _access_path(tsquery, where, params, window)
    sql = f"""
        WITH matched AS MATERIALIZED (
            SELECT e.document_id, e.deposited_at, e.tsv
            FROM search_entry e
            WHERE e.tsv @@ %s::tsquery AND {where}
            ORDER BY e.deposited_at DESC, e.document_id DESC
            LIMIT %s),
        numbered AS (
            SELECT document_id, deposited_at, ts_rank(tsv, %s::tsquery) AS score,
                   row_number() OVER (ORDER BY deposited_at DESC, document_id DESC) AS age
            FROM matched)
        SELECT document_id, score, (SELECT count(*) FROM matched)
        FROM numbered
        ORDER BY CASE WHEN age <= %s THEN 0 ELSE 1 END,
                 CASE WHEN age <= %s THEN score ELSE 0 END DESC,
                 deposited_at DESC, document_id DESC
        OFFSET %s LIMIT %s"""
    with transaction():
        # The access path chosen below, whatever the planner's cost of detoasting a
        # tsvector per row (it underestimates it by an order of magnitude).
        for setting in _PATH_SETTINGS[path]:
            db.execute_sql(f"SET LOCAL {setting}")
        rows = db.execute_sql(sql, [tsquery, *params, window, tsquery, CANDIDATES, CANDIDATES,
                                    offset, limit]).fetchall()
        matched = rows[0][2] if rows else None
        if matched is not None and matched < window:
            total = matched
        elif path == "date" or estimate >= TOTAL_CAP:
            total = max(window, int(estimate))  # counting them would cost more than the search
        else:
            total = _count(tsquery, where, params)
            if total >= TOTAL_CAP:
                total = max(TOTAL_CAP, int(estimate))
    return total, [(doc_id, float(score)) for doc_id, score, _n in rows]


# Measured at 1,000,000 documents of 300 words (see bench/pg_scale.py), in
# microseconds: checking one row against the query while walking the date index
# (the tsvector is read and decompressed), reading one posting of the text index,
# and fetching one matching row after a bitmap scan.
COST_ROW_IN_DATE_ORDER = 15.0
COST_POSTING = 0.3
COST_BITMAP_MATCH = 7.0
SMALL_TABLE = 50_000  # below this, every query takes the bitmap path with exact totals
_PATH_SETTINGS = {
    "date": ("enable_bitmapscan = off", "enable_seqscan = off"),
    "bitmap": ("enable_indexscan = off", "enable_seqscan = off"),
}
_table_rows = {"at": 0.0, "rows": 0.0, "key": None}


def _estimate(sql: str, params: list) -> float:
    """The planner's estimate of the rows ``sql`` returns (statistics, no execution)."""
    plan = db.execute_sql("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()[0]
    if isinstance(plan, str):
        import json

        plan = json.loads(plan)
    return float(plan[0]["Plan"]["Plan Rows"])


def _rows_in_table() -> float:
    """pg_class's row count of search_entry, refreshed every five minutes."""
    import time

    key = _database_key()
    if _table_rows["key"] != key or time.monotonic() - _table_rows["at"] > 300:
        rows = _scalar("SELECT reltuples FROM pg_class WHERE oid = 'search_entry'::regclass")
        _table_rows.update(at=time.monotonic(), rows=max(float(rows or 0), 0.0), key=key)
    return _table_rows["rows"]


def _access_path(tsquery: str, where: str, params: list, window: int) -> tuple[str, float]:
    """("date" | "bitmap", estimated matches in scope). "date" walks the scope's
    documents newest first and checks each against the query: cheap when the words
    are common (the newest matches come quickly). "bitmap" reads the words' postings
    in the text index and sorts the matches by date: cheap when they are rare. The
    planner's estimates of both sizes feed a cost model measured on this workload."""
    table = _rows_in_table()
    if table < SMALL_TABLE:
        return "bitmap", 0.0
    matches = _estimate(f"SELECT 1 FROM search_entry e WHERE e.tsv @@ %s::tsquery AND {where}",
                        [tsquery, *params])
    scope = max(_estimate(f"SELECT 1 FROM search_entry e WHERE {where}", params), 1.0)
    share = min(matches / scope, 1.0)
    if share <= 0:
        return "bitmap", matches
    date_cost = min(scope, window / share) * COST_ROW_IN_DATE_ORDER
    bitmap_cost = share * table * COST_POSTING + matches * COST_BITMAP_MATCH
    return ("date" if date_cost < bitmap_cost else "bitmap"), matches


def _count(tsquery: str, where: str, params: list) -> int:
    """The number of matches, counted up to TOTAL_CAP."""
    sql = f"""SELECT count(*) FROM (SELECT 1 FROM search_entry e
              WHERE e.tsv @@ %s::tsquery AND {where} LIMIT {TOTAL_CAP}) s"""
    return int(db.execute_sql(sql, [tsquery, *params]).fetchone()[0])


# --- snippets ---------------------------------------------------------------------------------

_START, _STOP = "\x02", "\x03"
_HEADLINE = f"StartSel={_START}, StopSel={_STOP}, HighlightAll=true"
SNIPPET_CHARS = 220
WINDOW_CHARS = 800  # ts_headline reads this much text around the first likely hit
_snippet_state = threading.local()
# ts_headline parses the original text, where PostgreSQL's parser would keep
# "facture-lefevre.pdf", "FA-2026-0042" or "lʼimpayé" as tokens of their own; the
# index holds their words (``analysed``). Those characters go to ts_headline as
# private-use characters (read as blanks) and come back after it: same words, same
# hits, the text shown as it is. (&, < and > are HTML-escaped instead.)
_JOINERS = "".join(sorted(set("!\"#$%'()*+,-./:;=?@[\\]^_`{|}~\u02b9\u02bb\u02bc")))
_PRIVATE = "".join(chr(0xE000 + i) for i in range(len(_JOINERS)))
_TO_PRIVATE = str.maketrans(_JOINERS, _PRIVATE)
_FROM_PRIVATE = str.maketrans(_PRIVATE, _JOINERS)
_ANY_PRIVATE = re.compile("[%s]" % _PRIVATE)


def _surface(word: str) -> str:
    """A regex for the words that may stem like the folded ``word``: its first letters
    (all but the last two, at least three), accents optional."""
    return accent_insensitive(word[: max(3, len(word) - 2)])


def _prepared(parsed) -> tuple[str | None, re.Pattern | None]:
    """The headline tsquery and hit-finding regex of ``parsed``, remembered for the
    hits of one search (make_snippet is called once per hit)."""
    key = repr(parsed)
    cached = getattr(_snippet_state, "entry", None)
    if cached is None or cached[0] != key:
        words = [w for group in parsed.groups for c in group for w in fold(c.text).split()]
        words = [w for w in words if len(w) > 1 and w not in ELISIONS] or words
        alternatives = "|".join(sorted({_surface(w) for w in words}))
        pattern = re.compile(f"{WORD_START}(?:{alternatives})", re.IGNORECASE) if words else None
        cached = (key, build_tsquery(parsed, for_headline=True), pattern)
        _snippet_state.entry = cached
    return cached[1], cached[2]


def _window(text: str, pattern: re.Pattern | None) -> str:
    """At most WINDOW_CHARS of ``text``, starting a little before the first likely hit."""
    if len(text) <= WINDOW_CHARS:
        return text
    found = pattern.search(scannable(text)) if pattern is not None else None
    start = max(0, found.start() - WINDOW_CHARS // 4) if found else 0
    if start:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 40 else start
    return text[start:start + WINDOW_CHARS]


def make_snippet(text: str | None, parsed, *, fallback: str = "") -> str:
    """An HTML snippet of a hit: ``ts_headline`` (the same analysis as the match) over a
    bounded window of the text around the first likely hit, escaped, each hit wrapped
    in <mark>."""
    text = (text or "")[:EXCERPT_CHARS]
    if not text.strip():
        text = fallback
    text = text.replace(_START, " ").replace(_STOP, " ")
    query, pattern = _prepared(parsed)
    if not text or query is None:
        return html.escape(" ".join(text[:220].split()), quote=False)
    # Escaped BEFORE ts_headline: its parser would drop anything that looks like a
    # tag ("<urgent>"); it keeps entities (&lt;) whole, so the result is safe HTML
    # once the sentinels become <mark>.
    window = _window(text, pattern)
    private = _ANY_PRIVATE.search(window) is None  # else shown as is, words and all
    if private:
        window = window.translate(_TO_PRIVATE)
    window = html.escape(window, quote=False)
    marked = db.execute_sql(f"SELECT ts_headline('{CONFIG}', %s, %s::tsquery, %s)",
                            (window, query, _HEADLINE)).fetchone()[0] or ""
    if private:
        marked = marked.translate(_FROM_PRIVATE)
    return _cut(" ".join(marked.split())).replace(_START, "<mark>").replace(_STOP, "</mark>")


def _cut(marked: str) -> str:
    """About SNIPPET_CHARS of the marked window, from a little before its first hit,
    cut at spaces (never inside an entity) and with every mark closed."""
    if len(marked) <= SNIPPET_CHARS:
        return marked
    first = marked.find(_START)
    begin = max(0, first - 60) if first > 0 else 0
    if begin:
        space = marked.find(" ", begin)
        begin = space + 1 if 0 <= space < (first if first > 0 else len(marked)) else begin
    end = min(len(marked), begin + SNIPPET_CHARS)
    space = marked.find(" ", end)
    end = space if 0 <= space < end + 30 else (len(marked) if end + 30 >= len(marked) else end)
    piece = marked[begin:end]
    if piece.rfind(_START) > piece.rfind(_STOP):
        piece += _STOP
    if piece.find(_STOP) != -1 and (piece.find(_START) == -1 or piece.find(_STOP) < piece.find(_START)):
        piece = _START + piece
    return ("…" if begin else "") + piece + ("…" if end < len(marked) else "")
