"""Hypothesis strategies and reference checks shared by the protocol tests.

Named with a ``_protocol`` suffix: tests/ has no __init__.py files, so module
basenames must be unique across the whole tests/ tree.
"""

from __future__ import annotations

import json
import math
import re

import msgpack
from hypothesis import strategies as st

from protocol import INT_MAX, INT_MIN, MAX_DEPTH, MAX_ID

# ---------------------------------------------------------------- plain trees

text = st.text(max_size=40)
keys = st.text(max_size=12)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
wire_ints = st.integers(min_value=INT_MIN, max_value=INT_MAX)

wire_scalars = st.none() | st.booleans() | wire_ints | finite_floats | text

#: Trees every encoding can carry (what decode() may return).
wire_trees = st.recursive(
    wire_scalars,
    lambda c: st.lists(c, max_size=5) | st.dictionaries(keys, c, max_size=5),
    max_leaves=12,
)

# Values that break the rules somewhere.
any_floats = st.floats()  # NaN, +-inf included
huge_ints = st.integers(min_value=-(2**200), max_value=2**200)


def nested(depth: int, leaf: object = 1, kind: str = "list") -> object:
    """A container nested ``depth`` deep (``depth`` >= 1) around ``leaf``."""
    v: object = leaf
    for i in range(depth):
        v = [v] if (kind == "list" or (kind == "mixed" and i % 2)) else {"k": v}
    return v


def frame_with_depth(depth: int, kind: str = "list") -> dict:
    """A valid-looking frame whose total container depth is ``depth`` (>= 1)."""
    if depth == 1:
        return {"t": "x"}
    return {"t": "x", "a": nested(depth - 1, 1, kind)}


# --------------------------------------------------- reference of decode()


def tree_depth(obj: object) -> int:
    if isinstance(obj, dict):
        return 1 + max((tree_depth(v) for v in obj.values()), default=0)
    if isinstance(obj, list):
        return 1 + max((tree_depth(v) for v in obj), default=0)
    return 0


def is_wire_tree(obj: object, check_ints: bool = True) -> bool:
    """Reference (recursive, deliberately naive) of what decode() accepts
    (``check_ints=False``) and of what both encodings carry (``True``)."""

    def ok(o: object) -> bool:
        if o is None or type(o) is bool or type(o) is str:
            return type(o) is not str or _utf8(o)
        if type(o) is int:
            return not check_ints or INT_MIN <= o <= INT_MAX
        if type(o) is float:
            return math.isfinite(o)
        if type(o) is list:
            return all(ok(v) for v in o)
        if type(o) is dict:
            return all(type(k) is str and _utf8(k) and ok(v) for k, v in o.items())
        return False

    return ok(obj) and tree_depth(obj) <= MAX_DEPTH


def _utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_valid_frame(obj: object, check_ints: bool = True) -> bool:
    return (
        type(obj) is dict
        and is_wire_tree(obj, check_ints)
        and type(obj.get("t")) is str
        and 1 <= len(obj["t"]) <= 32
    )


def contains(obj: object, pred) -> bool:
    """Whether ``pred`` holds for any node (or map key) of ``obj``."""
    if pred(obj):
        return True
    if isinstance(obj, dict):
        return any(contains(k, pred) or contains(v, pred) for k, v in obj.items())
    if isinstance(obj, list):
        return any(contains(v, pred) for v in obj)
    return False


def valid_id_of(m: dict) -> int | None:
    v = m.get("id")
    return v if type(v) is int and 1 <= v <= MAX_ID else None


# --------------------------------------------------- hostile structures

msgpack_scalars = (
    st.none()
    | st.booleans()
    | wire_ints
    | any_floats
    | text
    | st.binary(max_size=8)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=4))
    | st.builds(msgpack.Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 999_999_999))
)
msgpack_keys = keys | st.binary(max_size=4) | st.integers(-3, 3)


def _containers(c, key_strategy):
    return st.lists(c, max_size=4) | st.dictionaries(key_strategy, c, max_size=4)


msgpack_trees = st.recursive(
    msgpack_scalars, lambda c: _containers(c, keys | msgpack_keys), max_leaves=16
)
json_scalars = st.none() | st.booleans() | huge_ints | any_floats | text
json_trees = st.recursive(json_scalars, lambda c: _containers(c, keys), max_leaves=16)

type_names = st.sampled_from(["t", "x", "answer", "", "a" * 32, "a" * 33]) | text


@st.composite
def frame_like(draw, trees, deep=True):
    """A map that often looks like a frame, sometimes deeply nested."""
    d = draw(st.dictionaries(keys, trees, max_size=4))
    choice = draw(st.integers(0, 9))
    if choice < 7:
        d["t"] = draw(type_names)
    elif choice == 7:
        d["t"] = draw(trees)
    if draw(st.booleans()):
        d["id"] = draw(st.integers(-2, 2**53 + 2) | trees)
    if deep and draw(st.integers(0, 3)) == 0:
        d["deep"] = nested(draw(st.integers(1, 40)), draw(trees), draw(st.sampled_from(["list", "dict", "mixed"])))
    return d


def msgpack_frames():
    """Packed hostile structures (maps and non-maps)."""
    return (frame_like(msgpack_trees) | msgpack_trees).map(_packb_or_none).filter(
        lambda b: b is not None
    )


def _packb_or_none(obj):
    try:
        return msgpack.packb(obj, use_bin_type=True, strict_types=False)
    except (OverflowError, ValueError, TypeError):
        return None


def json_frames():
    return (frame_like(json_trees) | json_trees).map(json.dumps)


# ---------------------------------------------------- request fuzzing

CANDIDATE_TYPES = ["hello", "start", "answer", "flag", "goto", "fetch", "event", "submit", "ping"]
PROCTOR_TYPES = ["hello", "extend", "pause", "resume", "terminate", "message", "ping"]
FIELD_NAMES = [
    "id", "q", "value", "on", "index", "from", "count", "kind", "detail", "ct",
    "token", "v", "client", "attempt", "seconds", "reason", "text", "all", "extra",
]

edge_ints = st.sampled_from(
    [0, 1, 2, -1, 32, 33, 100, 101, 128, 129, 200, 201, 2000, 2001, 10_000,
     100_000, 100_001, 86_400, 86_401, 2**53 - 1, 2**53, 2**53 + 1, 2**63, 2**64, -(2**53)]
)


def _strs(*lengths):
    return st.sampled_from(lengths).flatmap(
        lambda n: st.text(alphabet=st.characters(codec="utf-8"), min_size=n, max_size=n)
        if n < 300 else st.just("x" * n)
    )


edge_strs = _strs(0, 1, 2, 31, 32, 33, 127, 128, 129, 199, 200, 201, 2000, 2001, 10_000, 10_001)
kinds = st.from_regex(re.compile(r"[a-z0-9_]{1,33}"), fullmatch=True) | st.sampled_from(
    ["blur", "Blur", "a-b", "", "fullscreen_exit", "é", "x\n"]
)
str_lists = st.lists(st.text(max_size=3) | _strs(200, 201) | wire_ints, max_size=3) | st.builds(
    lambda n: ["a"] * n, st.sampled_from([99, 100, 101])
)

field_values = (
    st.none()
    | st.booleans()
    | edge_ints
    | st.integers()
    | any_floats
    | text
    | edge_strs
    | kinds
    | str_lists
    | st.binary(max_size=4)
    | wire_trees
    | st.builds(lambda n: "x" * n, st.sampled_from([1000, 1020, 1100]))
    | st.builds(lambda n: nested(n), st.integers(1, 30))
)


good_answer_values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | finite_floats
    | st.text(max_size=30)
    | st.lists(st.text(max_size=10), max_size=5)
)

GOOD_FIELDS = {
    "id": st.integers(1, MAX_ID),
    "q": st.text(min_size=1, max_size=128),
    "value": good_answer_values,
    "on": st.booleans(),
    "index": st.integers(0, 100_000),
    "from": st.integers(0, 100_000),
    "count": st.integers(1, 100),
    "kind": st.from_regex(re.compile(r"[a-z0-9_]{1,32}"), fullmatch=True),
    "detail": wire_trees,
    "ct": wire_ints | finite_floats,
    "token": st.text(min_size=1, max_size=50),
    "v": st.integers(-3, 3) | wire_ints,
    "client": st.text(max_size=50),
    "acked": st.integers(0, MAX_ID),
    "ticket": st.text(min_size=1, max_size=512),
    "attempt": st.text(min_size=1, max_size=128),
    "seconds": st.integers(1, 86_400),
    "all": st.booleans(),
    "reason": st.text(min_size=1, max_size=200),
    "text": st.text(min_size=1, max_size=200),
    "extra": wire_trees,
}

FIELDS_OF = {
    "hello": ["token", "v", "client", "acked", "ticket"],
    "start": ["id"],
    "answer": ["id", "q", "value"],
    "flag": ["id", "q", "on"],
    "goto": ["id", "index"],
    "fetch": ["id", "from", "count"],
    "event": ["id", "kind", "detail"],
    "submit": ["id"],
    "ping": ["ct"],
    "extend": ["id", "attempt", "seconds"],
    "pause": ["id", "attempt"],
    "resume": ["id", "attempt"],
    "terminate": ["id", "attempt", "reason"],
    "message": ["id", "attempt", "text"],
}


@st.composite
def request_like(draw, types):
    """Maps shaped like requests: usually a known ``t`` with its fields, each
    field usually well-formed and sometimes anything at all."""
    m = {}
    t_choice = draw(st.integers(0, 9))
    if t_choice < 8:
        m["t"] = draw(st.sampled_from(types))
    elif t_choice == 8:
        m["t"] = draw(st.sampled_from(CANDIDATE_TYPES + PROCTOR_TYPES) | text)
    else:
        m["t"] = draw(field_values)
    names = list(FIELDS_OF.get(m["t"], [])) if type(m["t"]) is str else []
    names += draw(st.lists(st.sampled_from(FIELD_NAMES), unique=True, max_size=3))
    for name in names:
        roll = draw(st.integers(0, 19))  # hypothesis favours the bounds: 7 is "rare"
        if roll == 7:
            m.pop(name, None)  # missing
        elif roll < 15:
            m[name] = draw(GOOD_FIELDS[name])
        else:
            m[name] = draw(field_values)
    return m
