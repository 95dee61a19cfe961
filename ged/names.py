"""What a name (of a user, firm, company, folder or document) may not hold.

One rule for every name check: no control character of any kind. C0 and C1
controls (U+0085 NEXT LINE included), the line and paragraph separators U+2028
and U+2029, and lone surrogates break e-mail headers, CSV and log lines, and
text the next program reads as two lines.
"""

from __future__ import annotations

import unicodedata

# Cc: C0/C1 controls and DEL; Zl/Zp: U+2028/U+2029; Cs: lone surrogates.
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})


def control_character(value: str) -> str | None:
    """The first character of ``value`` that no name may hold, or None."""
    for ch in value:
        if unicodedata.category(ch) in FORBIDDEN_CATEGORIES:
            return ch
    return None
