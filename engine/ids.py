"""The one rule for each kind of id, used by every door (HTTP, WebSocket, command line, tasks).

* An exam id is 1 to 64 characters of ``A-Z a-z 0-9 _ . -``: safe in a URL
  path, a file name (exports) and a Redis hash tag (no braces).
* An attempt id is 32 lowercase hex digits (``storage.attempts.attempt_id``).
"""

from __future__ import annotations

from typing import Any

EXAM_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
EXAM_ID_MAX = 64
#: What a valid exam id looks like, in the words error messages use.
EXAM_ID_RULE = "1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'"

_HEX = frozenset("0123456789abcdef")
ATTEMPT_ID_LEN = 32


def is_exam_id(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= EXAM_ID_MAX and EXAM_ID_CHARS.issuperset(value)


def is_attempt_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) == ATTEMPT_ID_LEN and _HEX.issuperset(value)
