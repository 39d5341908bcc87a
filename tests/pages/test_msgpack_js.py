"""``handlers/pages/lib/msgpack.js`` (the pages' MessagePack codec) against Python's ``msgpack``.

Node runs a tiny ES-module script that imports the file (from a copy of the
pages' scripts that node 18 reads as ES modules: ``node_support.module_tree``): Python-packed bytes
are decoded by the JS codec and JS-encoded bytes are unpacked by Python. For
every value without integral floats the JS encoder must produce exactly the
bytes ``msgpack.packb(value, use_bin_type=True)`` does (both pick the smallest
format). Skipped when ``node`` is missing, except with ``CI=true``.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import msgpack

from tests.pages.node_support import PAGES, module_tree, node

MODULE = PAGES / "lib" / "msgpack.js"

SCRIPT = """
import { encode, decode, MsgpackError } from %(module)s;
import { readFileSync } from 'node:fs';
const hex = (b) => Buffer.from(b).toString('hex');
const fromHex = (s) => new Uint8Array(Buffer.from(s, 'hex'));
// JSON cannot carry bigint, bytes or -0: tag them
const tag = (v) => {
  if (typeof v === 'bigint') return { $big: v.toString() };
  if (v instanceof Uint8Array) return { $bin: hex(v) };
  if (Object.is(v, -0)) return { $negzero: true };
  if (typeof v === 'number' && !Number.isFinite(v)) return { $float: String(v) };
  if (Array.isArray(v)) return v.map(tag);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, tag(x)]));
  return v;
};
const untag = (v) => {
  if (Array.isArray(v)) return v.map(untag);
  if (v && typeof v === 'object') {
    if ('$big' in v) return BigInt(v.$big);
    if ('$bin' in v) return fromHex(v.$bin);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, untag(x)]));
  }
  return v;
};
const job = JSON.parse(readFileSync(0, 'utf8'));
const out = { decoded: [], encoded: [], errors: [], refused: [] };
for (const h of job.decode) out.decoded.push(tag(decode(fromHex(h))));
for (const v of job.encode) out.encoded.push(hex(encode(untag(v))));
for (const h of job.bad) {
  try { decode(fromHex(h)); out.errors.push(null); }
  catch (e) { out.errors.push(e instanceof MsgpackError ? 'MsgpackError' : String(e)); }
}
for (const make of [() => () => 1, () => Symbol('x'), () => new Date(), () => { const a = []; a.push(a); return a; }]) {
  try { encode(make()); out.refused.push(false); } catch (e) { out.refused.push(e instanceof MsgpackError); }
}
// the exam page's own shape: a welcome and an answer survive a round trip
const msg = { t: 'answer', id: 2 ** 53 - 1, q: 'q\\u00e9', value: [1.5, -7, true, null, 'x'] };
out.roundtrip = tag(decode(encode(msg)));
process.stdout.write(JSON.stringify(out));
"""

INT_EDGES = [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**40 + 7, 2**53 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**40) - 7, -(2**53 - 1),
]
STRINGS = ["", "a", "héllo wörld", "日本語のテキスト", "emoji 😀🎉", "x" * 31, "x" * 32, "y" * 255, "y" * 256,
           "z" * 65535, "z" * 65536, "é" * 40000]
FLOATS = [0.5, -0.25, 3.14, 1e-300, 1.7976931348623157e308, -2.5e14 - 0.5, 1e20, 123456789.123]

#: values whose Python encoding the JS encoder must reproduce byte for byte
CANONICAL: list[Any] = [
    None, True, False, *INT_EDGES, *STRINGS, *FLOATS,
    [], [1, 2, 3], list(range(15)), list(range(16)), list(range(70000)),
    {}, {"a": 1}, {f"k{i}": i for i in range(15)}, {f"k{i}": i for i in range(16)},
    {f"k{i}": i for i in range(70000)},
    {"t": "welcome", "attempt": "bb68d2ab", "exam": {"id": "net-101", "title": "Réseaux ✓", "duration_ms": 60000,
     "total": 5, "navigation": "free", "version": 1, "show_result": True}, "state": "ready",
     "server_time": 1795317550584, "deadline": None, "remaining_ms": 60000, "last_id": 0,
     "answers": {"q1": "b", "q2": ["a", "c"], "q3": True, "q4": 3.14, "q5": "Paris"}, "flags": ["q2"], "index": 0},
    [[[[["deep"]]]], {"n": {"m": [None, {"o": -1}]}}],
]


def _run(job: dict[str, Any], root: Path) -> dict[str, Any]:
    copy = module_tree(root) / MODULE.relative_to(PAGES.parents[1])
    script = SCRIPT % {"module": json.dumps(copy.as_uri())}
    proc = subprocess.run(
        [node(), "--input-type=module", "-e", script],
        input=json.dumps(job), capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, f"node failed ({proc.returncode}):\n{proc.stderr}"
    return json.loads(proc.stdout)


def _untag(v: Any) -> Any:
    if isinstance(v, list):
        return [_untag(x) for x in v]
    if isinstance(v, dict):
        if "$big" in v:
            return int(v["$big"])
        if "$bin" in v:
            return bytes.fromhex(v["$bin"])
        if "$negzero" in v:
            return -0.0
        if "$float" in v:
            return float({"NaN": "nan", "Infinity": "inf", "-Infinity": "-inf"}[v["$float"]])
        return {k: _untag(x) for k, x in v.items()}
    return v


def _same(a: Any, b: Any) -> bool:
    """Equal, with float vs int compared by value and NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float))
                                              and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def test_msgpack_js_matches_python(tmp_path: Path) -> None:
    special = [
        msgpack.packb(1.5, use_single_float=True),  # float32
        msgpack.packb(2**63),  # uint64 beyond 2^53: BigInt
        msgpack.packb(-(2**63)),  # int64 beyond -2^53: BigInt
        msgpack.packb(b"\x00\x01\xff", use_bin_type=True),  # bin8
        msgpack.packb(b"\xab" * 300, use_bin_type=True),  # bin16
        msgpack.packb(float("nan")),
        msgpack.packb(float("-inf")),
        msgpack.packb({1: "int key"}),  # int map key: a string key in JS
    ]
    bad = [
        "",  # nothing
        "92 01",  # array of 2, one element
        "a5 6162",  # str of 5, two bytes
        "01 02",  # trailing byte
        "c1",  # never used
        "d4 01 00",  # fixext 1
        "a2 c3 28",  # invalid UTF-8
        "dd ffffffff",  # array32 claiming 4 G elements
        "91" * 150 + "c0",  # nested too deeply
    ]
    job = {
        "decode": [msgpack.packb(v, use_bin_type=True).hex() for v in CANONICAL] + [b.hex() for b in special],
        "encode": CANONICAL + [[1.0, 2.5], {"$big": str(2**60)}, {"$big": str(-(2**60))}, {"$bin": "00ff10"}],
        "bad": [b.replace(" ", "") for b in bad],
    }
    out = _run(job, tmp_path)

    # Python -> JS: every canonical value decodes to itself
    decoded = [_untag(v) for v in out["decoded"]]
    for value, got in zip(CANONICAL, decoded):
        assert _same(value, got), (str(value)[:200], str(got)[:200])
    f32, big_u, big_i, bin8, bin16, nan, ninf, intkey = decoded[len(CANONICAL):]
    assert f32 == 1.5
    assert big_u == 2**63 and big_i == -(2**63)
    assert bin8 == b"\x00\x01\xff" and bin16 == b"\xab" * 300
    assert math.isnan(nan) and ninf == float("-inf")
    assert intkey == {"1": "int key"}

    # JS -> Python: the exact bytes of msgpack.packb, and the values
    encoded = [bytes.fromhex(h) for h in out["encoded"]]
    for value, raw in zip(CANONICAL, encoded):
        assert raw == msgpack.packb(value, use_bin_type=True), str(value)[:200]
        assert _same(msgpack.unpackb(raw, raw=False, strict_map_key=False), value)
    integral, big60, negbig60, binary = encoded[len(CANONICAL):]
    assert msgpack.unpackb(integral) == [1, 2.5]  # an integral JS number goes out as an int
    assert msgpack.unpackb(big60) == 2**60 and msgpack.unpackb(negbig60) == -(2**60)
    assert msgpack.unpackb(binary) == b"\x00\xff\x10"

    # malformed input is refused with MsgpackError, never decoded or crashed on
    assert out["errors"] == ["MsgpackError"] * len(bad), out["errors"]
    # functions, symbols, class instances and cycles cannot be encoded
    assert out["refused"] == [True, True, True, True], out["refused"]
    assert out["roundtrip"] == {"t": "answer", "id": 2**53 - 1, "q": "qé", "value": [1.5, -7, True, None, "x"]}
