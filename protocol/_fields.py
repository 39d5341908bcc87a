"""Field validators shared by the message families (private).

Every validator raises :class:`RequestError` only. Error messages name the
field and the rule; they never echo client-supplied values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from .codec import INT_MAX, INT_MIN, MAX_DEPTH, MAX_ID, json_encode, check_tree, valid_id
from .errors import ErrorCode, RequestError

BAD_REQUEST = ErrorCode.BAD_REQUEST
_MISSING = object()


def req_id(m: dict) -> int:
    v = m.get("id", _MISSING)
    if type(v) is int and 1 <= v <= MAX_ID:
        return v
    if v is _MISSING:
        raise RequestError(BAD_REQUEST, "missing field 'id'")
    raise RequestError(BAD_REQUEST, "field 'id' must be an integer 1..2^53-1")


def req_str(m: dict, name: str, lo: int, hi: int, rid: int | None) -> str:
    v = m.get(name, _MISSING)
    if type(v) is str and lo <= len(v) <= hi:
        return v
    if v is _MISSING:
        raise RequestError(BAD_REQUEST, f"missing field '{name}'", rid)
    raise RequestError(BAD_REQUEST, f"field '{name}' must be a string of {lo}..{hi} characters", rid)


def req_int(m: dict, name: str, lo: int, hi: int, rid: int | None) -> int:
    v = m.get(name, _MISSING)
    if type(v) is int and lo <= v <= hi:
        return v
    if v is _MISSING:
        raise RequestError(BAD_REQUEST, f"missing field '{name}'", rid)
    raise RequestError(BAD_REQUEST, f"field '{name}' must be an integer {lo}..{hi}", rid)


def req_bool(m: dict, name: str, rid: int | None) -> bool:
    v = m.get(name, _MISSING)
    if type(v) is bool:
        return v
    if v is _MISSING:
        raise RequestError(BAD_REQUEST, f"missing field '{name}'", rid)
    raise RequestError(BAD_REQUEST, f"field '{name}' must be a boolean", rid)


def req_number(m: dict, name: str, rid: int | None) -> int | float:
    v = m.get(name, _MISSING)
    tv = type(v)
    if tv is int:
        if INT_MIN <= v <= INT_MAX:  # type: ignore[operator]
            return v  # type: ignore[return-value]
    elif tv is float:
        if math.isfinite(v):  # type: ignore[arg-type]
            return v  # type: ignore[return-value]
    elif v is _MISSING:
        raise RequestError(BAD_REQUEST, f"missing field '{name}'", rid)
    raise RequestError(BAD_REQUEST, f"field '{name}' must be a finite number", rid)


def opt_json(m: dict, name: str, max_bytes: int, rid: int | None) -> object:
    """An optional free-form value: a plain wire tree of at most ``max_bytes``
    bytes as compact JSON (absent -> ``None``)."""
    v = m.get(name)
    if v is None:
        return None
    # The value sits one level below the top-level map of its frame.
    if check_tree(v, MAX_DEPTH - 1, True, True) is None:
        try:
            size = len(json_encode(v).encode("utf-8"))
        except Exception:
            size = max_bytes + 1
        if size <= max_bytes:
            return v
    raise RequestError(
        BAD_REQUEST, f"field '{name}' must be a JSON value of at most {max_bytes} bytes", rid
    )


Parser = Callable[[dict], object]


def dispatch(m: dict, parsers: Mapping[str, Parser]) -> object:
    if not isinstance(m, dict):
        raise RequestError(ErrorCode.BAD_FRAME, "message must be a map")
    t = m.get("t")
    if type(t) is not str:
        raise RequestError(ErrorCode.BAD_FRAME, "'t' must be a string", valid_id(m))
    parser = parsers.get(t)
    if parser is None:
        raise RequestError(ErrorCode.UNKNOWN_TYPE, "unknown message type", valid_id(m))
    return parser(m)
