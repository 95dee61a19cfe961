"""Searching the PostgreSQL engine: the parsed query as a tsquery (fields as weights),
the scope as SQL conditions, and a bounded candidate set ranked (see the package
docstring: the CANDIDATES newest matches, found by the cheaper of two access paths)."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

import peewee as pw

from ...db import db, transaction
from ...errors import Invalid
from ..folding import ELISIONS
from . import schema
from .analysis import analysed
from .schema import CONFIG, IndexUnavailable

CANDIDATES = 1000  # matches ranked per query, the newest first
TOTAL_CAP = 10_000
WEIGHT_OF = {None: "", "content": "", "name": "A", "folder": "B", "invoice": "C"}


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
    kind = schema.kind()
    if kind is None:
        raise IndexUnavailable()
    try:
        return _search(kind, parsed, scope, offset, limit)
    except pw.DatabaseError as exc:
        if not schema.missing_table(exc):
            raise
        schema.forget()  # dropped under us: the index job rebuilds it (search.results)
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
        plan = json.loads(plan)
    return float(plan[0]["Plan"]["Plan Rows"])


def _rows_in_table() -> float:
    """pg_class's row count of search_entry, refreshed every five minutes."""
    key = schema.database_key()
    if _table_rows["key"] != key or time.monotonic() - _table_rows["at"] > 300:
        rows = schema.scalar("SELECT reltuples FROM pg_class WHERE oid = 'search_entry'::regclass")
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


