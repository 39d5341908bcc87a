"""The one rule for each kind of id, used by every door (HTTP, WebSocket, command line, tasks).

* An exam id is 1 to 64 characters of ``A-Z a-z 0-9 _ . -``, and not ``.`` or
  ``..``: safe in a URL path (no dot segment a client would resolve away), a
  file name (exports) and a Redis hash tag (no braces). The whole value is
  checked, character by character: nothing may follow the last valid
  character (no trailing newline, as a regular expression's ``$`` would let
  through).
* An attempt id is 32 lowercase hex digits (``storage.attempts.attempt_id``).
"""

from __future__ import annotations

from typing import Any

EXAM_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
EXAM_ID_MAX = 64
#: What a valid exam id looks like, in the words error messages use.
EXAM_ID_RULE = "1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-', not '.' or '..'"
#: Made of valid characters, yet no exam id: the dot segments of a URL path and a file system.
_DOT_SEGMENTS = frozenset({".", ".."})

_HEX = frozenset("0123456789abcdef")
ATTEMPT_ID_LEN = 32


def is_exam_id(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= EXAM_ID_MAX
        and EXAM_ID_CHARS.issuperset(value)
        and value not in _DOT_SEGMENTS
    )


def is_attempt_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) == ATTEMPT_ID_LEN and _HEX.issuperset(value)
