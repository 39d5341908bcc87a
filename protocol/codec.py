"""Frame codec: JSON text frames and MessagePack binary frames.

:func:`decode` is the boundary: whatever a client sends, it either returns a
plain tree (``dict``/``list``/``str``/``int``/``float``/``bool``/``None``,
string keys, finite floats, nesting at most :data:`MAX_DEPTH`) whose top level
is a map with a string ``t`` of 1..32 characters, or raises
``RequestError(BAD_FRAME)``. It never raises anything else.

Integers are not range-checked here: JSON may carry any size (up to Python's
4300-digit limit), so that e.g. ``answer`` with ``value: 2**80`` is refused by
the request parser as ``bad_value`` *with its id*. The parsers bound every
number they keep to what MessagePack carries ([INT_MIN, INT_MAX]), so any
parsed request can be encoded in either encoding.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any
from enum import Enum

import msgpack

from .errors import ErrorCode, RequestError

__all__ = [
    "Encoding",
    "decode",
    "encode",
    "valid_id",
    "MAX_DEPTH",
    "MAX_ID",
    "MAX_TYPE_LEN",
    "INT_MIN",
    "INT_MAX",
]

#: Deepest allowed nesting of containers; the top-level map is depth 1.
MAX_DEPTH = 16
#: Largest request ``id`` (the largest integer a JavaScript number holds exactly).
MAX_ID = 2**53 - 1
#: Longest ``t``.
MAX_TYPE_LEN = 32
#: The integers MessagePack carries (int64 / uint64); request parsers keep no other.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1

_MAX_STR = 1 << 20
_MAX_BIN = 1 << 20
_MAX_ARRAY = 10_000
_MAX_MAP = 10_000

_isfinite = math.isfinite


class Encoding(Enum):
    """How a connection's frames are encoded (the frame type of its ``hello``)."""

    JSON = "json"  # text frames
    MSGPACK = "msgpack"  # binary frames


class _Rejected(Exception):
    pass


def _reject_constant(name: str) -> object:
    raise _Rejected(name)


def _reject_ext(code: int, data: bytes) -> object:
    raise _Rejected(code)


_json_decode = json.JSONDecoder(parse_constant=_reject_constant).decode
json_encode = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
).encode

# An escaped UTF-16 surrogate: a lone one would decode to a str that cannot be
# encoded again (neither as UTF-8 text nor in MessagePack).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _bad(message: str, id: int | None = None) -> RequestError:
    return RequestError(ErrorCode.BAD_FRAME, message, id)


def check_tree(obj: object, max_depth: int, check_text: bool, check_ints: bool) -> str | None:
    """Return why ``obj`` is not a plain wire tree, or ``None`` if it is.

    Iterative (no recursion), checks exact types: ``dict`` with ``str`` keys,
    ``list``, ``str``, ``int``, finite ``float``, ``bool``, ``None``;
    containers nest at most ``max_depth`` deep (``obj`` itself, if a
    container, is depth 1). With ``check_text``, strings must be encodable as
    UTF-8 (no lone surrogates); with ``check_ints``, integers must lie in
    [INT_MIN, INT_MAX].
    """
    stack: list[tuple[object, int]] = [(obj, 1)]
    pop = stack.pop
    push = stack.append
    while stack:
        node, depth = pop()
        tn = type(node)
        if tn is dict:
            if check_text:
                for k in node:  # type: ignore[union-attr]
                    if type(k) is not str:
                        return "map keys must be strings"
                    if not k.isascii():
                        try:
                            k.encode("utf-8")
                        except UnicodeEncodeError:
                            return "invalid text"
            else:
                for k in node:  # type: ignore[union-attr]
                    if type(k) is not str:
                        return "map keys must be strings"
            children = node.values()  # type: ignore[union-attr]
        elif tn is list:
            children = node  # type: ignore[assignment]
        else:
            children = (node,)
            depth -= 1  # a scalar root is not a container
        for v in children:
            tv = type(v)
            if tv is str:
                if check_text and not v.isascii():
                    try:
                        v.encode("utf-8")
                    except UnicodeEncodeError:
                        return "invalid text"
            elif tv is int:
                if check_ints and not INT_MIN <= v <= INT_MAX:
                    return "integer out of range"
            elif tv is float:
                if not _isfinite(v):
                    return "non-finite number"
            elif v is None or tv is bool:
                pass
            elif tv is dict or tv is list:
                if depth >= max_depth:
                    return "nested too deeply"
                push((v, depth + 1))
            else:
                return "unsupported value type"
    return None


def valid_id(m: Mapping[str, Any]) -> int | None:
    """The message's request id if it is a valid one (1..MAX_ID), else None: what an error reply may echo."""
    v = m.get("id")
    if type(v) is int and 1 <= v <= MAX_ID:
        return v
    return None


def decode(frame: str | bytes) -> tuple[dict, Encoding]:
    """Decode one frame: ``str`` as JSON, ``bytes`` as MessagePack.

    Returns the map and the encoding it came in. Raises only
    ``RequestError(BAD_FRAME)``; when the frame did decode to a map with a
    valid ``id`` (but something else in it is wrong) the error carries that
    ``id``.
    """
    try:
        if isinstance(frame, str):
            enc = Encoding.JSON
            check_text = False
            if not frame.isascii():
                try:
                    frame.encode("utf-8")
                except UnicodeEncodeError:
                    raise _bad("frame is not valid text") from None
            if "\\u" in frame and _SURROGATE_ESCAPE.search(frame) is not None:
                check_text = True
            try:
                obj = _json_decode(frame)
            except Exception:
                raise _bad("frame is not valid JSON") from None
        elif isinstance(frame, (bytes, bytearray, memoryview)):
            enc = Encoding.MSGPACK
            check_text = False  # raw=False decodes strict UTF-8: no surrogates
            try:
                obj = msgpack.unpackb(
                    frame,
                    raw=False,
                    strict_map_key=True,
                    use_list=True,
                    ext_hook=_reject_ext,
                    max_str_len=_MAX_STR,
                    max_bin_len=_MAX_BIN,
                    max_array_len=_MAX_ARRAY,
                    max_map_len=_MAX_MAP,
                    max_ext_len=0,
                )
            except Exception:
                raise _bad("frame is not valid MessagePack") from None
        else:
            raise _bad("frame must be text or binary")

        if type(obj) is not dict:
            raise _bad("frame must be a map")
        problem = check_tree(obj, MAX_DEPTH, check_text, False)
        if problem is not None:
            raise _bad(problem, valid_id(obj))
        t = obj.get("t")
        if type(t) is not str or not 1 <= len(t) <= MAX_TYPE_LEN:
            raise _bad("'t' must be a string of 1..32 characters", valid_id(obj))
        return obj, enc
    except RequestError:
        raise
    except Exception:  # RecursionError, MemoryError, anything unforeseen
        raise _bad("frame could not be decoded") from None


def encode(msg: Mapping, enc: Encoding) -> str | bytes:
    """Encode a server message: compact JSON text, or MessagePack bytes."""
    if type(msg) is not dict:
        msg = dict(msg)
    if enc is Encoding.JSON:
        return json_encode(msg)
    if enc is Encoding.MSGPACK:
        return msgpack.packb(msg, use_bin_type=True)
    raise TypeError(f"not an Encoding: {enc!r}")
