"""The query language, the same for every engine: words (all required), ``"exact
phrases"``, ``prefix*``, ``-excluded``, ``a OU b`` / ``a OR b``, and the fields
``nom:``, ``dossier:``, ``facture:`` (name, folder names, invoice data). Anything
else, ``company_id:*`` included, is just words: permissions are never part of the
query text (see ``search.scope``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import Invalid

MAX_QUERY_CHARS = 500
MAX_CLAUSES = 32

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
