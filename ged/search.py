"""Full-text search: THE seam between ged and a search engine.

The rest of ged calls only this module: ``index_dirty`` (jobs on the ``index``
queue), ``remove_document``, ``query`` (API and web page), ``reindex`` (the
command) and ``init_backend``. The engine is chosen by GED_SEARCH_BACKEND
(``whoosh``: ``ged.search_whoosh``; ``postgres``: ``ged.search_postgres``), and
receives only engine-neutral things: ``IndexDoc`` rows read from the database
(the source of truth), a ``ParsedQuery`` and a ``Scope``.

Permissions are never part of the query text: ``scope_for`` computes, from
``ged.permissions``, which companies and folder subtrees the caller may see, and
the engine applies that as separate filters. The hits are then checked again
against the database, so a stale index can never show what the caller may not see.

Query syntax (the same for every engine): words (all required), ``"exact
phrases"``, ``prefix*``, ``-excluded``, ``a OU b`` / ``a OR b``, and the fields
``nom:``, ``dossier:``, ``facture:`` (name, folder names, invoice data).
Anything else, ``company_id:*`` included, is just words. Both engines read text and
queries through ``fold``: case, accents and ligatures ignored, every apostrophe and
punctuation mark a separator ("l’échéance" is found by "échéance", "FA-2026-0042"
by its parts), and a phrase keeps the place of the stop words it drops.
"""

from __future__ import annotations

import codecs
import datetime as dt
import importlib
import logging
import re
import unicodedata
from dataclasses import dataclass, field

import click
import peewee as pw

from . import permissions, runtime
from .db import db
from .errors import Invalid
from .models import Blob, Document, Firm, Folder, User

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 500
MAX_CLAUSES = 32
MAX_OFFSET = 10_000
INDEX_JOB_WAIT = 60  # seconds an index job waits for another writer before retrying later
LOAD_CHUNK = 1000

# --- what a word is: the one analysis rule of every engine ----------------------------
#
# Both engines see text only through ``fold`` (PostgreSQL: the folded string goes to
# to_tsvector and to_tsquery, never the raw one) or ``fold_bytes`` (Whoosh: the same
# folding, as ASCII bytes), so they agree on accents, ligatures and separators by
# construction. Each engine then stems and drops its stop words (ELISIONS among them)
# keeping their positions, so a phrase never skips a dropped word. Bump
# ANALYSIS_VERSION whenever this changes what an index holds: indexes built before
# are then rebuilt from the database (see ``_index_dirty`` and ``query``).

ANALYSIS_VERSION = 2
# French elided words: "l’échéance" is the words l + échéance, and l is dropped like a
# stop word, so the word after the apostrophe is found on its own.
ELISIONS = frozenset("l d j m n s t c qu jusqu lorsqu puisqu quoiqu".split())
# Apostrophes Unicode counts as letters (ʼ ʻ ʹ): separators like ' and ’.
_LETTER_APOSTROPHES = "\u02bc\u02bb\u02b9"
# Latin letters that NFKD leaves as they are: spelled in ASCII like unaccent does.
_LIGATURES = {"œ": "oe", "æ": "ae", "ß": "ss", "þ": "th", "ð": "d", "ĸ": "q", "ŋ": "n",
              "ĳ": "ij", "ƕ": "hv", "ƣ": "oi", "ȸ": "db", "ȹ": "qp"}
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
_NON_WORD = re.compile(r"[^\w\x00-\x7f]+")  # symbols and punctuation beyond ASCII
_SEPARATORS = re.compile(r"[\W_]+")
_ASCII_WORDS = bytes(c if (48 <= c <= 57 or 97 <= c <= 122) else 32 for c in range(256))


def _latin_spellings() -> dict[str, str]:
    """Lowercase Latin letters that NFKD does not reduce to ASCII ("ø", "ł", "đ"),
    with their ASCII spelling: the letter their Unicode name is built on."""
    out = dict(_LIGATURES)
    ranges = (range(0xC0, 0x250), range(0x1E00, 0x1F00), range(0x2C60, 0x2C80),
              range(0xA720, 0xA800))
    named = re.compile(r"LATIN SMALL LETTER (?:DOTLESS )?([A-Z])(?: WITH .*)?$")
    for code in (c for r in ranges for c in r):
        ch = chr(code)
        if ch in out or ch != ch.lower() or not ch.isalpha():
            continue
        decomposed = _COMBINING.sub("", unicodedata.normalize("NFKD", ch))
        if decomposed.isascii():
            continue
        m = named.match(unicodedata.name(ch, ""))
        if m:
            out[ch] = m.group(1).lower()
    for ch in _LETTER_APOSTROPHES:
        out[ch] = " "
    return out


_SPELLED = _latin_spellings()
_SPELL = re.compile("[%s]" % "".join(sorted(_SPELLED)))


def _fold(text: str) -> str:
    """Lowercase, accents dropped, other Latin letters and ligatures spelled in ASCII,
    non-ASCII symbols and apostrophes turned into spaces; ASCII punctuation and the
    letters of other scripts are left for the caller."""
    if text.isascii():
        return text.lower()
    text = _COMBINING.sub("", unicodedata.normalize("NFKD", text).lower())
    if text.isascii():
        return text
    if _SPELL.search(text):
        text = _SPELL.sub(lambda m: _SPELLED[m.group()], text)
    return _NON_WORD.sub(" ", text)


def _slow_fold(text: str) -> str:
    """``fold`` for any text (the definition the byte table below is computed from)."""
    return _SEPARATORS.sub(" ", _fold(text))


def _spell_other_scripts(exc):
    """Codec error handler: spell other scripts' letters as ASCII ("x43c"), so that an
    ASCII index keeps them searchable; anything else separates words."""
    out = [f"x{ord(ch):x}" if ch.isalnum() else " " for ch in exc.object[exc.start:exc.end]]
    return "".join(out), exc.end


codecs.register_error("ged_fold", _spell_other_scripts)

# The same rule as one byte table over Windows-1252 (the characters of Western European
# text), computed from ``_slow_fold`` character by character, so that most texts fold
# at C speed: a byte becomes its folded letter or digit, or a space. The few
# characters spelled with several letters (œ, ß, ½) are marked and spelled first;
# those folding beyond ASCII (µ) send the text down the general path.
_SPELL_FIRST, _BEYOND = 1, 2


def _cp1252_table() -> tuple[bytes, dict[str, str]]:
    table, spell_first = bytearray(range(256)), {}
    for b in range(256):
        try:
            ch = bytes([b]).decode("cp1252")
        except UnicodeDecodeError:
            table[b] = 32
            continue
        spelled = _slow_fold(ch)
        folded = spelled.strip()
        if not folded:
            table[b] = 32
        elif not folded.replace(" ", "").isascii():
            table[b] = _BEYOND
        elif len(folded) == 1:
            table[b] = ord(folded)
        else:
            table[b] = _SPELL_FIRST
            spell_first[ch] = spelled
    return bytes(table), spell_first


_CP1252, _CP1252_SPELLED = _cp1252_table()
_CP1252_SPELL = re.compile("[%s]" % "".join(sorted(_CP1252_SPELLED)))


def _fast_fold(text: str) -> bytes | None:
    """``fold`` as ASCII bytes for text within Windows-1252, None for any other."""
    if text.isascii():
        return text.encode("ascii").translate(_CP1252)
    try:
        raw = text.encode("cp1252").translate(_CP1252)
    except UnicodeEncodeError:
        return None
    if _SPELL_FIRST in raw:
        text = _CP1252_SPELL.sub(lambda m: _CP1252_SPELLED[m.group()], text)
        raw = text.encode("cp1252").translate(_CP1252)
    return None if _BEYOND in raw else raw


def fold(text: str) -> str:
    """The words of ``text`` folded ("L’Échéance n°3" -> "l echeance n 3"): every
    character that is not a letter or a digit separates words."""
    raw = _fast_fold(text)
    return raw.decode("ascii") if raw is not None else _slow_fold(text)


def fold_bytes(text: str) -> bytes:
    """``fold`` as ASCII bytes, at C speed ("Relevé" -> b"releve"): the same words,
    those of other scripts spelled in ASCII ("x43c"); split() them."""
    raw = _fast_fold(text)
    if raw is None:
        raw = _fold(text).encode("ascii", "ged_fold").translate(_ASCII_WORDS)
    return raw


def _accent_classes() -> tuple[dict[str, str], dict[str, str]]:
    """(ASCII letter -> the Latin-1 characters that fold to it, two-letter spelling ->
    the letters spelled so), from ``fold`` itself. Highlighting regexes are built from
    them: classes beyond Latin-1 would cost a millisecond to compile per query, so
    rarer letters (ł, ő) are found by the search but not located by these regexes."""
    single: dict[str, set] = {}
    double: dict[str, set] = {}
    for code in range(0xC0, 0x250):
        ch = chr(code)
        folded = fold(ch).strip()
        if not folded.isascii() or not folded.isalpha():
            continue
        if ch != ch.lower():
            continue  # the regexes ignore case
        if len(folded) == 1 and code <= 0xFF:
            single.setdefault(folded, {folded}).add(ch)
        elif len(folded) == 2:
            double.setdefault(folded, set()).add(ch)
    return ({k: "".join(sorted(v)) for k, v in single.items()},
            {k: "|".join(sorted(v)) for k, v in double.items()})


ACCENTED, _SPELLED_AS = _accent_classes()
WORD_START = r"(?<!\w)"  # highlighting regexes run over ``scannable`` text


def scannable(text: str) -> str:
    """``text`` for the highlighting regexes, of the same length (their offsets are
    the original's): apostrophes Unicode counts as letters (ʼ) made typographic (’),
    so that the word after one starts a word."""
    for ch in _LETTER_APOSTROPHES:
        if ch in text:
            text = text.replace(ch, "\u2019")
    return text


def accent_insensitive(ascii_text: str) -> str:
    """A regex (to compile with re.IGNORECASE) matching the folded ``ascii_text`` in
    original text: with or without accents, and ligatures for their spelling
    ("oeuvre" also matches "Œuvre")."""
    out, i = [], 0
    while i < len(ascii_text):
        pair = ascii_text[i:i + 2]
        if pair in _SPELLED_AS:
            one, two = (f"[{ACCENTED[c]}]" if c in ACCENTED else c for c in pair)
            out.append(f"(?:{one}{two}|{_SPELLED_AS[pair]})")
            i += 2
            continue
        ch = ascii_text[i]
        out.append(f"[{re.escape(ACCENTED[ch])}]" if ch in ACCENTED else re.escape(ch))
        i += 1
    return "".join(out)


# --- the query language ----------------------------------------------------------------

FIELD_ALIASES = {"nom": "name", "name": "name", "dossier": "folder", "folder": "folder",
                 "facture": "invoice", "invoice": "invoice", "contenu": "content",
                 "content": "content", "texte": "content", "text": "content"}
OR_WORDS = {"OU", "OR"}
_TOKEN = re.compile(r'(-?)(?:(\w+):)?(?:"([^"]*)"?|(\S+))')


@dataclass(frozen=True)
class Clause:
    """One part of a user query: a word, an exact phrase or a prefix, in one field
    (None: every text field)."""

    kind: str  # word | phrase | prefix
    text: str
    field: str | None = None


@dataclass
class ParsedQuery:
    """AND of ``groups`` (each an OR of clauses), minus any ``negated`` clause."""

    groups: list[list[Clause]] = field(default_factory=list)
    negated: list[Clause] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.groups


def parse(q: str) -> ParsedQuery:
    """Parse the user's query string; never raises on odd input, only on abuse."""
    q = (q or "").strip()
    if len(q) > MAX_QUERY_CHARS:
        raise Invalid(f"The query is longer than {MAX_QUERY_CHARS} characters.", "query_too_long")
    parsed = ParsedQuery()
    pending_or = False
    count = 0
    for m in _TOKEN.finditer(q.replace("(", " ").replace(")", " ")):
        negated, fname, phrase, word = m.group(1), m.group(2), m.group(3), m.group(4)
        if word in OR_WORDS and not fname and not negated:
            pending_or = bool(parsed.groups)
            continue
        fieldname = FIELD_ALIASES.get(fname.lower()) if fname else None
        if fname and fieldname is None:
            # Not one of ours (company_id:*, type:...): the text is just words.
            word = f"{fname} {word or phrase or ''}"
            phrase = None
        clauses = []
        if phrase is not None:
            if phrase.strip():
                clauses.append(Clause("phrase", phrase.strip(), fieldname))
        else:
            for piece in (word or "").split():
                # Only a trailing * is a prefix; other wildcard characters separate words.
                is_prefix = piece.endswith("*") and len(piece.rstrip("*")) > 0
                for part in filter(None, re.split(r"[*?]+", piece)):
                    clauses.append(Clause("word", part, fieldname))
                if is_prefix and clauses:
                    clauses[-1] = Clause("prefix", clauses[-1].text, fieldname)
        for clause in clauses:
            count += 1
            if count > MAX_CLAUSES:
                raise Invalid(f"At most {MAX_CLAUSES} words per query.", "query_too_long")
            if negated:
                parsed.negated.append(clause)
            elif pending_or and parsed.groups:
                parsed.groups[-1].append(clause)
            else:
                parsed.groups.append([clause])
            pending_or = False
    return parsed


# --- who may see what ------------------------------------------------------------------


@dataclass
class Scope:
    """What one search may return, as filters: companies (None: the whole firm),
    folder subtrees hidden from the caller, and the caller's own filters."""

    firm_id: str
    company_ids: list[str] | None
    hidden_folder_ids: list[str]
    hidden_prefixes: list[str]
    folder_id: str | None = None
    folder_prefix: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    type: str | None = None


TYPES = ("pdf", "image", "text", "xml", "office", "invoice")


def scope_for(user: User, *, company_id=None, folder_id=None, date_from=None, date_to=None,
              type=None) -> Scope:
    """The scope of a search by ``user`` with the given filters (NotFound for a company
    or folder the user may not see, Invalid for a bad filter)."""
    if type is not None and type not in TYPES:
        raise Invalid(f"type must be one of: {', '.join(TYPES)}.", "invalid_type")
    if date_from and date_to and date_from > date_to:
        raise Invalid("from must not be after to.", "invalid_dates")
    folder = None
    if folder_id:
        folder = permissions.folder_for(user, folder_id)
        company_ids = [folder.company_id]
        if company_id and str(company_id) != folder.company_id:
            company_ids = []  # a folder of another company: nothing matches both
    elif company_id:
        company_ids = [permissions.company_for(user, company_id).id]
    elif user.role == "admin":
        company_ids = None
    else:
        company_ids = permissions.visible_company_ids(user)
    prefixes = permissions.hidden_prefixes_in(user, company_ids) if company_ids != [] else []
    return Scope(
        firm_id=user.firm_id,
        company_ids=company_ids,
        hidden_folder_ids=[p.rstrip("/").rsplit("/", 1)[-1] for p in prefixes],
        hidden_prefixes=prefixes,
        folder_id=folder.id if folder else None,
        folder_prefix=folder.path if folder else None,
        date_from=date_from,
        date_to=date_to,
        type=type,
    )


# --- what is indexed -------------------------------------------------------------------


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


def _folder_names(paths: list[str]) -> dict[str, str]:
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
    names = _folder_names([r[6] for r in rows])
    docs = []
    for doc_id, company_id, name, ctype, deposited, _trashed, path, text, facturx in rows:
        ids = [part for part in path.split("/") if part]
        docs.append(IndexDoc(
            id=doc_id, company_id=company_id, folder_ids=ids,
            folder_path="/" + "/".join(names.get(i, "") for i in ids[1:]),
            name=name, content_type=ctype,
            deposited_at=deposited, text=text, facturx=facturx))
    return docs


def _stream(firm_id: str, ids: list[str] | None = None):
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
        return _stream(self.firm_id)

    def ids(self) -> list[str]:
        """The live documents' ids, in id order."""
        return [r[0] for r in Document.select(Document.id).where(
            (Document.firm == self.firm_id) & Document.trashed_at.is_null())
            .order_by(Document.id).tuples()]

    def load(self, ids: list[str]):
        """IndexDocs of ``ids`` (those still live), in chunks."""
        return _stream(self.firm_id, ids)


# --- the engine ------------------------------------------------------------------------

BACKENDS = {"whoosh": "ged.search_whoosh", "postgres": "ged.search_postgres"}


def backend():
    """The engine module named by GED_SEARCH_BACKEND."""
    name = runtime.config().search_backend
    if name not in BACKENDS:
        raise RuntimeError(f"unknown GED_SEARCH_BACKEND {name!r} (whoosh or postgres)")
    return importlib.import_module(BACKENDS[name])


def init_backend() -> None:
    """Prepare the engine (``ged init``): directories, extensions, indexes."""
    backend().init()


def writer_lock(firm_id: str, wait: float = 1800):
    """One writer per firm index across every worker and host (a Redis lock with expiry)."""
    from . import queue

    return queue.connection().lock(f"ged:search:writer:{firm_id}", timeout=1800,
                                   blocking_timeout=wait, thread_local=False)


class Busy(Exception):
    """Another process is writing this firm's index (a rebuild, most likely)."""


def _claimed_key(firm_id: str) -> str:
    return f"ged:search:claimed:{firm_id}"


class _Locked:
    """Hold the firm's writer lock; give back documents a crashed writer had claimed."""

    def __init__(self, firm_id: str, wait: float = 1800):
        self.firm_id = firm_id
        self.lock = writer_lock(firm_id, wait)

    def __enter__(self):
        from . import queue

        if not self.lock.acquire():
            raise Busy(f"the search index of firm {self.firm_id} is being written")
        conn = queue.connection()
        orphans = [m.decode() for m in conn.smembers(_claimed_key(self.firm_id))]
        if orphans:
            _mark_dirty(orphans)
            conn.delete(_claimed_key(self.firm_id))
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
    from . import queue

    if not ids:
        return
    conn = queue.connection()
    for i in range(0, len(ids), 5000):
        conn.sadd(_claimed_key(firm_id), *ids[i:i + 5000])
    conn.expire(_claimed_key(firm_id), 7 * 86400)
    for i in range(0, len(ids), 500):
        Document.update(index_dirty=False).where(Document.id.in_(ids[i:i + 500])).execute()


def _release(firm_id: str) -> None:
    from . import queue

    queue.connection().delete(_claimed_key(firm_id))


def index_dirty(firm_id: str) -> int:
    """Index every document of the firm marked dirty, in ONE writer commit (trashed ones
    are removed). Rebuilds the whole index when it is missing or unreadable."""
    try:
        with _Locked(firm_id, wait=INDEX_JOB_WAIT):
            return _index_dirty(firm_id, backend())
    except Busy:
        # A rebuild holds the index: the flags stay set; come back after it.
        from . import queue

        queue.enqueue_in(30, "index", "ged.tasks.index_firm", firm_id)
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
        engine.write(firm_id, _stream(firm_id, ids), trashed)
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
            from . import queue

            claimed = [m.decode() for m in queue.connection().smembers(_claimed_key(firm_id))]
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


# --- querying ----------------------------------------------------------------------------


def _parse_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit() or int(cursor) > MAX_OFFSET:
        raise Invalid("cursor is not valid.", "invalid_cursor")
    return int(cursor)


def query(user: User, q: str, *, company_id=None, folder_id=None, date_from=None, date_to=None,
          type=None, limit: int = 20, cursor: str | None = None) -> dict:
    """Search what ``user`` may see: ``{"total", "items": [{document_id, name, company_id,
    folder_id, folder_path, snippet (HTML: escaped text and <mark> hits), score, ...}],
    "next_cursor"}``, best first."""
    parsed = parse(q)
    if parsed.empty and not (q or "").strip():
        raise Invalid("Type at least one word to search for.", "empty_query")
    limit = max(1, min(int(limit), 100))
    offset = _parse_cursor(cursor)
    scope = scope_for(user, company_id=company_id, folder_id=folder_id, date_from=date_from,
                      date_to=date_to, type=type)
    if parsed.empty or scope.company_ids == []:
        return {"total": 0, "items": [], "next_cursor": None}
    engine = backend()
    try:
        total, hits = engine.search(user.firm_id, parsed, scope, offset=offset, limit=limit)
    except engine.IndexUnavailable:
        # A firm whose documents were never indexed yet (its first deposits, the index
        # job still to run) has nothing to find: an empty answer, not an error. An index
        # lost or damaged once documents were in it is reported (503) and rebuilt.
        never_indexed = not engine.exists(user.firm_id) and not Document.select().where(
            (Document.firm == user.firm_id) & (Document.index_dirty == False)).exists()  # noqa: E712
        if never_indexed:
            _heal(user.firm_id)
            return {"total": 0, "items": [], "next_cursor": None}
        _heal(user.firm_id)
        raise
    if engine.stale(user.firm_id):
        _heal_stale(user.firm_id)  # meanwhile the old index answers
    items = _items(user, scope, parsed, hits)
    more = offset + limit < total and offset + limit <= MAX_OFFSET
    return {"total": total, "items": items, "next_cursor": str(offset + limit) if more else None}


def _heal(firm_id: str) -> None:
    """A missing or damaged index: have the index job rebuild it from the database."""
    from . import tasks

    tasks.schedule_index(firm_id)


_stale_asked: dict[str, float] = {}
STALE_RETRY = 60.0  # seconds between two requests to rebuild the same stale index


def _heal_stale(firm_id: str) -> None:
    """An index built by an older analysis: have the index job rebuild it (it sees
    ``engine.stale``), asking at most once a minute per process."""
    import time

    from . import queue

    now = time.monotonic()
    if now - _stale_asked.get(firm_id, -STALE_RETRY) < STALE_RETRY:
        return
    _stale_asked[firm_id] = now
    try:
        if not queue.job_pending(f"index-{firm_id}"):
            _heal(firm_id)
    except Exception:  # noqa: BLE001 - Redis away: the next deposit's job rebuilds it
        log.exception("could not ask for a rebuild of the stale index of firm %s", firm_id)


def _items(user: User, scope: Scope, parsed: ParsedQuery, hits: list[tuple[str, float]]) -> list:
    """The API items of the hits, read from the database and checked against it again."""
    if not hits:
        return []
    engine = backend()
    ids = [doc_id for doc_id, _score in hits]
    rows = {r[0]: r for r in Document.select(
        Document.id, Document.name, Document.company, Document.folder, Document.content_type,
        Document.deposited_at, Document.trashed_at, Document.firm, Folder.path,
        pw.fn.SUBSTR(Blob.text, 1, engine.EXCERPT_CHARS), Blob.facturx)
        .join(Folder, on=(Document.folder == Folder.id))
        .switch(Document).join(Blob, on=(Document.blob == Blob.sha256))
        .where(Document.id.in_(ids)).tuples()}
    names = _folder_names([r[8] for r in rows.values()])
    allowed = set(scope.company_ids) if scope.company_ids is not None else None
    items = []
    for doc_id, score in hits:
        row = rows.get(doc_id)
        if row is None:
            continue
        (_id, name, company, folder, ctype, deposited, trashed, firm, path, text, _fx) = row
        if (firm != user.firm_id or trashed is not None
                or (allowed is not None and company not in allowed)
                or any(path.startswith(p) for p in scope.hidden_prefixes)
                or (scope.folder_prefix and not path.startswith(scope.folder_prefix))):
            continue  # the index was behind the database: never show it
        ids_in_path = [part for part in path.split("/") if part]
        items.append({
            "document_id": doc_id,
            "name": name,
            "company_id": company,
            "folder_id": folder,
            "folder_path": "/" + "/".join(names.get(i, "") for i in ids_in_path[1:]),
            "content_type": ctype,
            "deposited_at": deposited.isoformat(),
            "snippet": engine.make_snippet(text, parsed, fallback=name),
            "score": round(float(score), 4),
        })
    return items


# --- command ------------------------------------------------------------------------------


@click.command("reindex")
@click.option("--firm", "firm_id", default=None, help="firm id (default: every firm)")
def reindex_command(firm_id):
    """Rebuild the search index from the database (the source of truth)."""
    from .cli import _setup

    _setup()
    with db.connection_context():
        if firm_id and not Firm.select().where(Firm.id == firm_id).exists():
            raise click.ClickException(f"no firm {firm_id}")
        init_backend()
        done = reindex(firm_id, progress=True)
    for fid, count in done.items():
        click.echo(f"firm {fid}: {count} document(s) indexed")


COMMANDS = [reindex_command]

__all__ = ["Clause", "ParsedQuery", "Scope", "IndexDoc", "parse", "scope_for", "index_dirty",
           "remove_document", "query", "reindex", "init_backend", "COMMANDS"]
