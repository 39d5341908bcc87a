import json
import math

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol import Encoding, ErrorCode, RequestError, decode, encode
from strategies_protocol import (
    contains,
    frame_with_depth,
    is_valid_frame,
    is_wire_tree,
    json_frames,
    msgpack_frames,
    valid_id_of,
    wire_trees,
)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def bad_frame(frame) -> RequestError:
    with pytest.raises(RequestError) as info:
        decode(frame)
    assert info.value.code is ErrorCode.BAD_FRAME
    return info.value


def check_decoded(result, enc):
    """What decode() returns is a valid frame that re-encodes to itself (in
    MessagePack too, unless it holds JSON integers MessagePack cannot carry)."""
    obj, got_enc = result
    assert got_enc is enc
    assert is_valid_frame(obj, check_ints=False)
    assert decode(encode(obj, Encoding.JSON)) == (obj, Encoding.JSON)
    if is_wire_tree(obj, check_ints=True):
        assert decode(encode(obj, Encoding.MSGPACK)) == (obj, Encoding.MSGPACK)
    else:
        assert enc is Encoding.JSON


def decode_or_error(frame):
    try:
        return decode(frame)
    except RequestError as err:
        assert err.code is ErrorCode.BAD_FRAME
        assert err.id is None or type(err.id) is int
        return err


# ------------------------------------------------------------ specific cases


def test_json_and_msgpack_basic():
    assert decode('{"t":"ping","ct":5}') == ({"t": "ping", "ct": 5}, Encoding.JSON)
    packed = msgpack.packb({"t": "ping", "ct": 5.5})
    assert decode(packed) == ({"t": "ping", "ct": 5.5}, Encoding.MSGPACK)
    assert decode(bytearray(packed))[1] is Encoding.MSGPACK


@pytest.mark.parametrize(
    "frame",
    [
        "NaN",
        '{"t":"x","a":NaN}',
        '{"t":"x","a":Infinity}',
        '{"t":"x","a":-Infinity}',
        '{"t":"x","a":[1,NaN]}',
        '{"t":"x","a":1e400}',  # overflows to inf without being a constant
        '{"t":"x","a":-1e999}',
    ],
)
def test_json_non_finite_is_bad_frame(frame):
    bad_frame(frame)


@pytest.mark.parametrize(
    "frame",
    [
        "",
        " ",
        "[]",
        '[{"t":"x"}]',
        '"t"',
        "1",
        "null",
        "{",
        '{"t":"x"} {"t":"y"}',
        '{"t":"x"}x',
        '\ufeff{"t":"x"}',
        "{'t':'x'}",
        '{"a":1}',
        '{"t":5}',
        '{"t":null}',
        '{"t":true}',
        '{"t":["x"]}',
        '{"t":""}',
        '{"t":"' + "a" * 33 + '"}',
        '{"t":"x","a":"\\ud800"}',  # lone surrogate escape
        '{"t":"x","\\udfff":1}',
        "\ud800",
        '{"t":"\ud800"}',
    ],
)
def test_json_bad_frames(frame):
    bad_frame(frame)


def test_json_array_frame_is_bad_frame():
    bad_frame('[{"t":"answer","id":1}]')


def test_t_not_a_string_is_bad_frame():
    err = bad_frame('{"t": 5}')
    assert err.id is None


def test_bad_t_keeps_a_valid_id():
    assert bad_frame('{"t":5,"id":3}').id == 3
    assert bad_frame('{"t":5,"id":true}').id is None
    assert bad_frame('{"t":5,"id":0}').id is None


def test_bad_content_of_a_decoded_map_keeps_a_valid_id():
    assert bad_frame('{"t":"ping","id":4,"ct":1e400}').id == 4
    assert bad_frame(json.dumps(frame_with_depth(17) | {"id": 5})).id == 5
    assert bad_frame(msgpack.packb({"t": "x", "id": 6, "b": b"raw"}, use_bin_type=True)).id == 6
    assert bad_frame(msgpack.packb({"t": "x", "id": 7, "f": math.nan})).id == 7
    # undecodable: no map, no id
    assert bad_frame('{"t":"ping","id":4,"ct":NaN}').id is None
    assert bad_frame(msgpack.packb({"t": "x", "id": 6, "e": msgpack.ExtType(1, b"")})).id is None


def test_t_length_bounds():
    assert decode('{"t":"' + "a" * 32 + '"}')[0]["t"] == "a" * 32
    assert decode('{"t":"a"}')[0]["t"] == "a"


def test_json_valid_surrogate_pair_is_fine():
    assert decode('{"t":"x","e":"\\ud83d\\ude00"}')[0]["e"] == "\U0001f600"


def test_json_duplicate_keys_do_not_matter():
    obj, _ = decode('{"t":"x","a":1,"a":2}')
    assert obj["t"] == "x"


def test_json_huge_ints():
    bad_frame('{"t":"x","n":' + "9" * 5000 + "}")  # beyond Python's int digits limit
    # Beyond what MessagePack carries, but decodable: the request parser refuses
    # them field by field, with the request's id.
    assert decode('{"t":"x","n":' + str(2**80) + "}")[0]["n"] == 2**80
    assert decode('{"t":"x","n":' + str(-(2**63) - 1) + "}")[0]["n"] == -(2**63) - 1
    assert decode('{"t":"x","n":' + str(2**64 - 1) + "}")[0]["n"] == 2**64 - 1


def test_msgpack_trailing_bytes_is_bad_frame():
    bad_frame(msgpack.packb({"t": "x"}) + b"\x00")
    bad_frame(msgpack.packb({"t": "x"}) * 2)


@pytest.mark.parametrize(
    "obj",
    [
        {"t": "x", "b": b"bytes"},
        {"t": b"x"},
        {"t": "x", "l": [1, b"\x00"]},
        {"t": "x", "m": {"k": bytearray(b"z")}},
        {"t": "x", "e": msgpack.ExtType(5, b"abc")},
        {"t": "x", "ts": msgpack.Timestamp(0, 0)},
        {"t": "x", "f": float("nan")},
        {"t": "x", "f": float("inf")},
        {"t": "x", "f": float("-inf")},
        {"t": "x", 1: 2},
        {"t": "x", b"k": 2},
        {"t": "x", "d": {(1, 2): 3}},
        [{"t": "x"}],
        "t",
        5,
        None,
        {"t": 5},
        {"t": ""},
        {"t": "x" * 33},
    ],
)
def test_msgpack_bad_frames(obj):
    bad_frame(msgpack.packb(obj, use_bin_type=True))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xc1",  # never used
        b"\x81",  # map header, no body
        b"\xdf\xff\xff\xff\xff",  # map of 4G entries, no body
        b"\xdd\xff\xff\xff\xff",  # array of 4G entries, no body
        b"\xdb\xff\xff\xff\xff",  # str of 4G bytes, no body
        b"\x81\xa1t\xa2\xff\xfe",  # invalid UTF-8 in a str
        b"\x81\xa1t\xa3\xed\xa0\x80",  # encoded surrogate
        b"\x91" * 100_000,  # very deep arrays
        b"\x81\xa1a" * 50_000,  # very deep maps
        b"\x81\xa1t\xd6\xff\x00\x00\x00\x00",  # timestamp ext (-1)
    ],
)
def test_msgpack_hostile_bytes(raw):
    bad_frame(raw)


@pytest.mark.parametrize("frame", ["[" * 100_000, '{"a":' * 100_000, "[" * 17 + "]" * 17])
def test_json_very_deep_is_bad_frame(frame):
    bad_frame(frame)


@pytest.mark.parametrize("kind", ["list", "dict", "mixed"])
def test_depth_16_ok_17_bad(kind):
    ok, too_deep = frame_with_depth(16, kind), frame_with_depth(17, kind)
    for enc in Encoding:
        assert decode(encode(ok, enc))[0] == ok
        bad_frame(encode(too_deep, enc))


def test_depth_counts_empty_containers():
    assert decode(json.dumps({"t": "x", "a": frame_with_depth(15)["a"]}))
    bad_frame(json.dumps({"t": "x", "a": [[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]}))  # 1 + 16


@pytest.mark.parametrize("frame", [None, 5, 1.0, ["t"], {"t": "x"}, object()])
def test_non_frame_types_are_bad_frame(frame):
    bad_frame(frame)


def test_bools_stay_bools():
    obj, _ = decode('{"t":"x","a":true,"b":1}')
    assert obj["a"] is True and type(obj["b"]) is int
    obj, _ = decode(msgpack.packb({"t": "x", "a": False, "b": 0}))
    assert obj["a"] is False and type(obj["b"]) is int


# ------------------------------------------------------------------- encode


def test_encode_json_is_compact_and_utf8():
    assert encode({"t": "notice", "text": "héllo €", "n": [1, 2]}, Encoding.JSON) == (
        '{"t":"notice","text":"héllo €","n":[1,2]}'
    )


def test_encode_msgpack_uses_bin_type():
    out = encode({"t": "x", "b": b"\x00"}, Encoding.MSGPACK)
    assert isinstance(out, bytes)
    assert msgpack.unpackb(out, raw=False) == {"t": "x", "b": b"\x00"}


def test_encode_accepts_any_mapping():
    from types import MappingProxyType

    m = MappingProxyType({"t": "x", "a": 1})
    assert encode(m, Encoding.JSON) == '{"t":"x","a":1}'
    assert decode(encode(m, Encoding.MSGPACK))[0] == {"t": "x", "a": 1}


def test_encode_refuses_nan_in_json():
    with pytest.raises(ValueError):
        encode({"t": "x", "f": math.nan}, Encoding.JSON)


def test_encode_unknown_encoding():
    with pytest.raises(TypeError):
        encode({"t": "x"}, "json")


# ---------------------------------------------------------------------- fuzz


@FUZZ
@given(st.binary(max_size=200))
@example(b"\x81\xa1t\xa1x")
@example(b"\xc7\x00\x05")
def test_fuzz_arbitrary_bytes(raw):
    result = decode_or_error(raw)
    if not isinstance(result, RequestError):
        check_decoded(result, Encoding.MSGPACK)


@FUZZ
@given(st.text(max_size=200))
@example('{"t":"x"}')
def test_fuzz_arbitrary_text(frame):
    result = decode_or_error(frame)
    if not isinstance(result, RequestError):
        check_decoded(result, Encoding.JSON)


@FUZZ
@given(
    st.text(alphabet='{}[]":,tx0123456789.eE-+ nulrfasNIy\\ud8', max_size=80).map(
        lambda s: '{"t":"x","v":' + s
    )
)
def test_fuzz_json_grammar_soup(frame):
    result = decode_or_error(frame)
    if not isinstance(result, RequestError):
        check_decoded(result, Encoding.JSON)


@FUZZ
@given(msgpack_frames())
def test_fuzz_msgpack_structures(raw):
    result = decode_or_error(raw)
    expected = msgpack.unpackb(raw, raw=False, strict_map_key=False, timestamp=0)
    if isinstance(result, RequestError):
        assert not is_valid_frame(expected)
        undecodable = contains(
            expected,
            lambda o: isinstance(o, (msgpack.ExtType, msgpack.Timestamp))
            or (isinstance(o, dict) and any(not isinstance(k, (str, bytes)) for k in o)),
        )
        if isinstance(expected, dict) and not undecodable:  # it decoded to a map
            assert result.id == valid_id_of(expected)
        else:
            assert result.id is None
    else:
        assert is_valid_frame(expected)
        assert result[0] == expected
        check_decoded(result, Encoding.MSGPACK)


@FUZZ
@given(json_frames())
def test_fuzz_json_structures(frame):
    result = decode_or_error(frame)
    try:
        expected = json.loads(frame)
    except ValueError:  # beyond the int digits limit
        assert isinstance(result, RequestError)
        return
    if isinstance(result, RequestError):
        assert not is_valid_frame(expected, check_ints=False)
        # json.dumps writes non-finite floats as NaN/Infinity: undecodable
        undecodable = contains(expected, lambda o: isinstance(o, float) and not math.isfinite(o))
        if isinstance(expected, dict) and not undecodable:
            assert result.id == valid_id_of(expected)
        else:
            assert result.id is None
    else:
        assert is_valid_frame(expected, check_ints=False)
        assert result[0] == expected
        check_decoded(result, Encoding.JSON)


@settings(FUZZ, max_examples=300)
@given(st.dictionaries(st.text(max_size=10), wire_trees, max_size=4), st.text(min_size=1, max_size=32))
def test_fuzz_valid_frames_round_trip(body, t):
    frame = {**body, "t": t}
    if not is_wire_tree(frame):  # too deep with the extra level
        return
    for enc in Encoding:
        assert decode(encode(frame, enc)) == (frame, enc)
