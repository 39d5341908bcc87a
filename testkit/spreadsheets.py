"""How a spreadsheet reads a CSV cell: where a formula could begin (the tests of CSV injection)."""

from __future__ import annotations

import unicodedata

#: What starts a formula in some spreadsheet (OWASP's list; NUL for the odd reader).
FORMULA_STARTS = ("=", "+", "-", "@", "\0")


def formula_lead(piece: str) -> str:
    """What a spreadsheet sees first in ``piece``: blanks and invisible format characters skipped, NFKC-folded."""
    folded = unicodedata.normalize("NFKC", piece)
    i = 0
    while i < len(folded) and (folded[i].isspace() or unicodedata.category(folded[i]) == "Cf"):
        i += 1
    return folded[i : i + 1]
