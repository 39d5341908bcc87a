import dataclasses
import json
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    MAX_ID,
    Answer,
    Encoding,
    ErrorCode,
    Event,
    Extend,
    Fetch,
    Flag,
    Goto,
    Hello,
    Message,
    Pause,
    Ping,
    ProctorHello,
    RequestError,
    Resume,
    Start,
    Submit,
    Terminate,
    decode,
    encode,
    parse_proctor_request,
    parse_request,
)
from strategies_protocol import (
    CANDIDATE_TYPES,
    FIELD_NAMES,
    GOOD_FIELDS,
    PROCTOR_TYPES,
    finite_floats,
    request_like,
    valid_id_of,
    wire_ints,
    wire_trees,
)

FUZZ = settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CANDIDATE_CLASSES = {
    "hello": Hello, "start": Start, "answer": Answer, "flag": Flag, "goto": Goto,
    "fetch": Fetch, "event": Event, "submit": Submit, "ping": Ping,
}
PROCTOR_CLASSES = {
    "hello": Hello, "extend": Extend, "pause": Pause, "resume": Resume,
    "terminate": Terminate, "message": Message, "ping": Ping,
}


def refused(parse, m) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse(m)
    return info.value


# ------------------------------------------------------ documented constraints


def is_int(v, lo, hi):
    return type(v) is int and lo <= v <= hi


def is_str(v, lo, hi):
    return type(v) is str and lo <= len(v) <= hi


def valid_answer_value(v):
    return (
        v is None
        or type(v) is bool
        or is_int(v, -(2**53), 2**53)
        or (type(v) is float and math.isfinite(v))
        or is_str(v, 0, 10_000)
        or (type(v) is list and len(v) <= 100 and all(is_str(s, 0, 200) for s in v))
    )


def json_size(v):
    return len(json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())


def satisfies_constraints(r) -> bool:
    if hasattr(r, "id") and not is_int(r.id, 1, MAX_ID):
        return False
    match r:
        case Hello(token, v, client, acked, ticket):
            return (
                (token is None or is_str(token, 1, 16384))
                and type(v) is int
                and (client is None or is_str(client, 0, 200))
                and (acked is None or is_int(acked, 0, MAX_ID))
                and (ticket is None or is_str(ticket, 1, 512))
            )
        case Start() | Submit() | Pause() | Resume():  # attempt None: "all: true"
            return not hasattr(r, "attempt") or r.attempt is None or is_str(r.attempt, 1, 128)
        case Answer(_, q, value):
            return is_str(q, 1, 128) and valid_answer_value(value)
        case Flag(_, q, on):
            return is_str(q, 1, 128) and type(on) is bool
        case Goto(_, index):
            return is_int(index, 0, 100_000)
        case Fetch(_, start, count):
            return is_int(start, 0, 100_000) and is_int(count, 1, 100)
        case Event(_, kind, detail):
            return (
                is_str(kind, 1, 32)
                and re.fullmatch(r"[a-z0-9_]+", kind, re.ASCII) is not None
                and json_size(detail) <= 1024
            )
        case Ping(ct):
            return (type(ct) is int) or (type(ct) is float and math.isfinite(ct))
        case Extend(_, attempt, seconds):
            return (attempt is None or is_str(attempt, 1, 128)) and is_int(seconds, 1, 86_400)
        case Terminate(_, attempt, reason):
            return is_str(attempt, 1, 128) and is_str(reason, 1, 200)
        case Message(_, attempt, text):
            return is_str(attempt, 1, 128) and is_str(text, 1, 2000)
    return False


def check_outcome(parse, classes, m, allowed_codes):
    try:
        r = parse(m)
    except RequestError as err:
        assert err.code in allowed_codes, err
        if err.code is ErrorCode.BAD_FRAME:
            assert type(m.get("t")) is not str
        if err.code is ErrorCode.UNKNOWN_TYPE:
            assert m["t"] not in classes
        if err.code is ErrorCode.BAD_VALUE:
            assert m["t"] == "answer"
        # the error carries the message's id exactly when that id is valid
        assert err.id == valid_id_of(m)
        return None
    assert type(m["t"]) is str and type(r) is classes[m["t"]]
    assert type(r).t == m["t"]
    if isinstance(r, (Extend, Pause, Resume)):  # exactly one of attempt / all: true
        assert (r.attempt is None) == (m.get("all") is True) and ("attempt" in m) != ("all" in m)
    assert dataclasses.is_dataclass(r)
    assert satisfies_constraints(r), r
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(r, dataclasses.fields(r)[0].name, None)
    # forward: the parsed request re-encodes to a wire map that parses identically
    wire = r.to_wire()
    assert list(wire)[0] == "t"
    assert parse(wire) == r
    for enc in Encoding:
        assert parse(decode(encode(wire, enc))[0]) == r
    return r


# ---------------------------------------------------------------------- fuzz


@FUZZ
@given(request_like(CANDIDATE_TYPES))
def test_fuzz_parse_request(m):
    check_outcome(
        parse_request,
        CANDIDATE_CLASSES,
        m,
        {ErrorCode.BAD_FRAME, ErrorCode.UNKNOWN_TYPE, ErrorCode.BAD_REQUEST, ErrorCode.BAD_VALUE},
    )


@FUZZ
@given(request_like(PROCTOR_TYPES))
def test_fuzz_parse_proctor_request(m):
    check_outcome(
        parse_proctor_request,
        PROCTOR_CLASSES,
        m,
        {ErrorCode.BAD_FRAME, ErrorCode.UNKNOWN_TYPE, ErrorCode.BAD_REQUEST},
    )


@settings(FAST, max_examples=200)
@given(
    st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), wire_trees, max_size=5),
    st.sampled_from(CANDIDATE_TYPES),
)
def test_fuzz_parse_request_arbitrary_fields(m, t):
    m["t"] = t
    check_outcome(
        parse_request,
        CANDIDATE_CLASSES,
        m,
        {ErrorCode.UNKNOWN_TYPE, ErrorCode.BAD_REQUEST, ErrorCode.BAD_VALUE},
    )


@FAST
@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers()), wire_trees))
def test_fuzz_non_maps_are_bad_frame(m):
    for parse in (parse_request, parse_proctor_request):
        if not isinstance(m, dict):
            assert refused(parse, m).code is ErrorCode.BAD_FRAME


valid_candidate_requests = st.one_of(
    st.builds(Hello, st.none() | GOOD_FIELDS["token"], wire_ints, st.none() | st.text(max_size=200),
              st.none() | GOOD_FIELDS["acked"], st.none() | GOOD_FIELDS["ticket"]),
    st.builds(Start, GOOD_FIELDS["id"]),
    st.builds(Answer, GOOD_FIELDS["id"], GOOD_FIELDS["q"], GOOD_FIELDS["value"]),
    st.builds(Flag, GOOD_FIELDS["id"], GOOD_FIELDS["q"], st.booleans()),
    st.builds(Goto, GOOD_FIELDS["id"], GOOD_FIELDS["index"]),
    st.builds(Fetch, GOOD_FIELDS["id"], GOOD_FIELDS["from"], GOOD_FIELDS["count"]),
    st.builds(Event, GOOD_FIELDS["id"], GOOD_FIELDS["kind"], st.none() | st.integers(0, 9) | st.text(max_size=20) | st.dictionaries(st.text(max_size=5), wire_ints, max_size=5)),
    st.builds(Submit, GOOD_FIELDS["id"]),
    st.builds(Ping, wire_ints | finite_floats),
)
valid_proctor_requests = st.one_of(
    st.builds(Hello, GOOD_FIELDS["token"], st.just(1), st.none()),
    st.builds(Extend, GOOD_FIELDS["id"], GOOD_FIELDS["attempt"], GOOD_FIELDS["seconds"]),
    st.builds(Pause, GOOD_FIELDS["id"], GOOD_FIELDS["attempt"]),
    st.builds(Resume, GOOD_FIELDS["id"], GOOD_FIELDS["attempt"]),
    st.builds(Terminate, GOOD_FIELDS["id"], GOOD_FIELDS["attempt"], GOOD_FIELDS["reason"]),
    st.builds(Message, GOOD_FIELDS["id"], GOOD_FIELDS["attempt"], st.text(min_size=1, max_size=2000)),
)


@FAST
@given(valid_candidate_requests, st.dictionaries(st.sampled_from(["x", "extra", "_v2", "zz"]), wire_trees, max_size=2))
def test_valid_candidate_requests_are_accepted(r, extra):
    wire = {**extra, **r.to_wire()}  # unknown extra fields are ignored
    assert parse_request(wire) == r
    for enc in Encoding:
        assert parse_request(decode(encode(wire, enc))[0]) == r


@FAST
@given(valid_proctor_requests, st.dictionaries(st.sampled_from(["x", "extra"]), wire_trees, max_size=2))
def test_valid_proctor_requests_are_accepted(r, extra):
    wire = {**extra, **r.to_wire()}
    assert parse_proctor_request(wire) == r
    for enc in Encoding:
        assert parse_proctor_request(decode(encode(wire, enc))[0]) == r


# ------------------------------------------------------------ specific cases


def test_unknown_type_carries_id():
    err = refused(parse_request, {"t": "nope", "id": 3})
    assert (err.code, err.id) == (ErrorCode.UNKNOWN_TYPE, 3)
    err = refused(parse_request, {"t": "nope", "id": "3"})
    assert (err.code, err.id) == (ErrorCode.UNKNOWN_TYPE, None)
    err = refused(parse_request, {"t": "nope"})
    assert (err.code, err.id) == (ErrorCode.UNKNOWN_TYPE, None)


def test_unknown_type_end_to_end_through_decode():
    m, _ = decode('{"t":"nope","id":3}')
    err = refused(parse_request, m)
    assert (err.code, err.id) == (ErrorCode.UNKNOWN_TYPE, 3)


def test_proctor_types_are_unknown_to_candidates_and_vice_versa():
    assert refused(parse_request, {"t": "pause", "id": 1, "attempt": "a"}).code is ErrorCode.UNKNOWN_TYPE
    assert refused(parse_proctor_request, {"t": "answer", "id": 1, "q": "a", "value": 1}).code is (
        ErrorCode.UNKNOWN_TYPE
    )


@pytest.mark.parametrize("bad_id", [True, False, 0, -1, 2**53, 1.0, "1", None, [1], {"id": 1}])
def test_bad_id_is_bad_request_without_id(bad_id):
    err = refused(parse_request, {"t": "answer", "id": bad_id, "q": "q1", "value": "a"})
    assert (err.code, err.id) == (ErrorCode.BAD_REQUEST, None)


def test_answer_with_bool_id_is_bad_request():
    m, _ = decode('{"t":"answer","id":true,"q":"q1","value":"a"}')
    assert refused(parse_request, m).code is ErrorCode.BAD_REQUEST


def test_id_bounds():
    assert parse_request({"t": "start", "id": 1}) == Start(1)
    assert parse_request({"t": "start", "id": 2**53 - 1}) == Start(2**53 - 1)
    assert refused(parse_request, {"t": "start"}).code is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(
    "value",
    [{}, {"a": 1}, [1], ["a", 1], [["a"]], ["a"] * 101, ["x" * 201], "x" * 10_001, 2**53 + 1,
     -(2**53) - 1, float("nan"), float("inf"), b"a", (1,)],
)
def test_answer_bad_value_carries_id(value):
    err = refused(parse_request, {"t": "answer", "id": 9, "q": "q1", "value": value})
    assert (err.code, err.id) == (ErrorCode.BAD_VALUE, 9)


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -(2**53), 2**53, 3.14, -0.0, "", "b", "x" * 10_000, [], ["a", "c"],
     ["a"] * 100, ["x" * 200]],
)
def test_answer_good_values(value):
    r = parse_request({"t": "answer", "id": 9, "q": "q1", "value": value})
    assert r == Answer(9, "q1", value) and type(r.value) is type(value)


def test_json_huge_int_value_is_bad_value_with_its_id():
    m, _ = decode('{"t":"answer","id":2,"q":"q4","value":' + str(2**80) + "}")
    err = refused(parse_request, m)
    assert (err.code, err.id) == (ErrorCode.BAD_VALUE, 2)
    for frame in (
        '{"t":"goto","id":3,"index":' + str(2**80) + "}",
        '{"t":"ping","id":3,"ct":' + str(2**64) + "}",
        '{"t":"hello","id":3,"v":' + str(2**64) + "}",
        '{"t":"event","id":3,"kind":"k","detail":[' + str(2**64) + "]}",
    ):
        err = refused(parse_request, decode(frame)[0])
        assert (err.code, err.id) == (ErrorCode.BAD_REQUEST, 3), frame


def test_answer_value_must_be_present_but_null_is_allowed():
    err = refused(parse_request, {"t": "answer", "id": 9, "q": "q1"})
    assert (err.code, err.id) == (ErrorCode.BAD_REQUEST, 9)
    assert parse_request({"t": "answer", "id": 9, "q": "q1", "value": None}).value is None


@pytest.mark.parametrize("q", ["", "x" * 129, 5, None, True, ["q1"]])
def test_answer_bad_q(q):
    err = refused(parse_request, {"t": "answer", "id": 2, "q": q, "value": 1})
    assert (err.code, err.id) == (ErrorCode.BAD_REQUEST, 2)


@pytest.mark.parametrize(
    "m",
    [
        {"t": "flag", "id": 1, "q": "q1", "on": 1},
        {"t": "flag", "id": 1, "q": "q1", "on": "true"},
        {"t": "flag", "id": 1, "q": "q1"},
        {"t": "goto", "id": 1, "index": True},
        {"t": "goto", "id": 1, "index": -1},
        {"t": "goto", "id": 1, "index": 100_001},
        {"t": "goto", "id": 1, "index": 1.0},
        {"t": "fetch", "id": 1, "from": True, "count": 1},
        {"t": "fetch", "id": 1, "from": 0, "count": True},
        {"t": "fetch", "id": 1, "from": 0, "count": 0},
        {"t": "fetch", "id": 1, "from": 0, "count": 101},
        {"t": "fetch", "id": 1, "from": -1, "count": 1},
        {"t": "fetch", "id": 1, "from": 100_001, "count": 1},
        {"t": "fetch", "id": 1, "start": 0, "count": 1},
        {"t": "event", "id": 1, "kind": ""},
        {"t": "event", "id": 1, "kind": "Blur"},
        {"t": "event", "id": 1, "kind": "blur\n"},
        {"t": "event", "id": 1, "kind": "a" * 33},
        {"t": "event", "id": 1, "kind": "ok", "detail": "x" * 1023},
        {"t": "event", "id": 1, "kind": "ok", "detail": {"a": float("nan")}},
        {"t": "event", "id": 1, "kind": "ok", "detail": b"x"},
        {"t": "event", "id": 1, "kind": "ok", "detail": {"k": set()}},
        {"t": "event", "id": 1, "kind": "ok", "detail": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]},  # frame depth 17
        {"t": "event", "id": 1},
    ],
)
def test_ill_typed_fields_are_bad_request_with_id(m):
    err = refused(parse_request, m)
    assert (err.code, err.id) == (ErrorCode.BAD_REQUEST, 1)


def test_bools_are_not_ints_anywhere():
    cases = [
        (parse_request, {"t": "start", "id": True}),
        (parse_request, {"t": "goto", "id": 1, "index": False}),
        (parse_request, {"t": "fetch", "id": 1, "from": False, "count": True}),
        (parse_request, {"t": "ping", "ct": True}),
        (parse_request, {"t": "hello", "token": "x", "v": True}),
        (parse_proctor_request, {"t": "extend", "id": 1, "attempt": "a", "seconds": True}),
        (parse_proctor_request, {"t": "pause", "id": True, "attempt": "a"}),
    ]
    for parse, m in cases:
        assert refused(parse, m).code is ErrorCode.BAD_REQUEST, m
    # and a bool answer value stays a bool, an int stays an int
    assert parse_request({"t": "answer", "id": 1, "q": "q", "value": True}).value is True
    assert type(parse_request({"t": "answer", "id": 1, "q": "q", "value": 1}).value) is int


def test_fetch_uses_wire_field_from():
    r = parse_request({"t": "fetch", "id": 4, "from": 10, "count": 5})
    assert r == Fetch(4, 10, 5) and r.start == 10
    assert r.to_wire() == {"t": "fetch", "id": 4, "from": 10, "count": 5}


def test_event_detail():
    assert parse_request({"t": "event", "id": 1, "kind": "blur"}) == Event(1, "blur", None)
    detail = {"ms": 1200, "where": ["q1", "q2"], "ok": True, "x": None, "f": 1.5}
    assert parse_request({"t": "event", "id": 1, "kind": "fullscreen_exit", "detail": detail}).detail == detail
    exactly = "x" * 1022  # 1024 bytes with its quotes
    assert parse_request({"t": "event", "id": 1, "kind": "k", "detail": exactly}).detail == exactly
    multibyte = "é" * 511  # 1022 + 2 bytes
    assert parse_request({"t": "event", "id": 1, "kind": "k", "detail": multibyte}).detail == multibyte
    err = refused(parse_request, {"t": "event", "id": 1, "kind": "k", "detail": "é" * 512})
    assert err.code is ErrorCode.BAD_REQUEST
    deepest = [[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]  # 15 deep: the frame is 16 deep
    m = {"t": "event", "id": 1, "kind": "k", "detail": deepest}
    assert parse_request(m).detail == deepest
    assert decode(encode(m, Encoding.MSGPACK))[0] == m


def test_hello():
    assert parse_request({"t": "hello", "token": "abc", "v": 1}) == Hello("abc", 1, None)
    assert parse_request({"t": "hello"}) == Hello(None, 1, None)  # token in the header; v defaults to 1
    assert parse_request({"t": "hello", "token": None, "v": 2}) == Hello(None, 2, None)  # handler decides
    assert parse_request({"t": "hello", "v": 1, "client": "web/1.2"}).client == "web/1.2"
    # a bad client is ignored, not refused
    assert parse_request({"t": "hello", "client": "x" * 201}).client is None
    assert parse_request({"t": "hello", "client": 5}).client is None
    for bad in ({"t": "hello", "token": ""}, {"t": "hello", "token": "x" * 16385},
                {"t": "hello", "token": 5}, {"t": "hello", "v": "1"}, {"t": "hello", "v": 1.0},
                {"t": "hello", "v": None}):
        assert refused(parse_request, bad).code is ErrorCode.BAD_REQUEST
    assert parse_request({"t": "hello", "token": "x" * 16384}).token == "x" * 16384


def test_hello_acked_and_ticket_are_optional_and_validated():
    """A resuming client's evidence (docs/protocol.md, "Loss is detected, never silent"): absent for other clients."""
    assert parse_request({"t": "hello", "token": "abc", "v": 1}) == Hello("abc", 1, None, None, None)
    h = parse_request({"t": "hello", "token": "abc", "acked": 7, "ticket": "t1.x"})
    assert (h.acked, h.ticket) == (7, "t1.x") and h.to_wire() == {"t": "hello", "v": 1, "token": "abc", "acked": 7, "ticket": "t1.x"}
    assert parse_request({"t": "hello", "acked": 0}).acked == 0
    assert parse_request({"t": "hello", "acked": MAX_ID}).acked == MAX_ID
    assert parse_request({"t": "hello", "acked": None, "ticket": None}) == Hello(None, 1, None)
    assert parse_request({"t": "hello", "ticket": "x" * 512}).ticket == "x" * 512
    for bad in ({"acked": -1}, {"acked": MAX_ID + 1}, {"acked": True}, {"acked": 1.0}, {"acked": "3"},
                {"ticket": ""}, {"ticket": "x" * 513}, {"ticket": 5}, {"ticket": ["t1"]}):
        err = refused(parse_request, {"t": "hello", "token": "abc", **bad})
        assert err.code is ErrorCode.BAD_REQUEST and list(bad)[0] in err.message, (bad, err)
    assert ProctorHello is Hello
    assert parse_proctor_request({"t": "hello", "token": "t"}) == Hello("t", 1, None)


def test_ping():
    assert parse_request({"t": "ping", "ct": 1700000000000}) == Ping(1700000000000)
    assert parse_request({"t": "ping", "ct": 1.5}) == Ping(1.5)
    for ct in (True, None, "1", float("nan"), float("inf"), [1]):
        assert refused(parse_request, {"t": "ping", "ct": ct}).code is ErrorCode.BAD_REQUEST
    assert refused(parse_request, {"t": "ping"}).code is ErrorCode.BAD_REQUEST


def test_proctor_requests():
    assert parse_proctor_request({"t": "extend", "id": 1, "attempt": "a1", "seconds": 300}) == Extend(1, "a1", 300)
    assert parse_proctor_request({"t": "pause", "id": 2, "attempt": "a1"}) == Pause(2, "a1")
    assert parse_proctor_request({"t": "resume", "id": 3, "attempt": "a1"}) == Resume(3, "a1")
    assert parse_proctor_request({"t": "terminate", "id": 4, "attempt": "a1", "reason": "cheating"}) == (
        Terminate(4, "a1", "cheating")
    )
    assert parse_proctor_request({"t": "message", "id": 5, "attempt": "a1", "text": "5 min left"}) == (
        Message(5, "a1", "5 min left")
    )
    for m in (
        {"t": "extend", "id": 1, "attempt": "a1", "seconds": 0},
        {"t": "extend", "id": 1, "attempt": "a1", "seconds": 86_401},
        {"t": "extend", "id": 1, "attempt": "", "seconds": 1},
        {"t": "extend", "id": 1, "attempt": "x" * 129, "seconds": 1},
        {"t": "pause", "id": 1},
        {"t": "terminate", "id": 1, "attempt": "a1", "reason": ""},
        {"t": "terminate", "id": 1, "attempt": "a1", "reason": "x" * 201},
        {"t": "message", "id": 1, "attempt": "a1", "text": ""},
        {"t": "message", "id": 1, "attempt": "a1", "text": "x" * 2001},
    ):
        err = refused(parse_proctor_request, m)
        assert (err.code, err.id) == (ErrorCode.BAD_REQUEST, 1), m
    err = refused(parse_proctor_request, {"t": "kick", "id": 8})
    assert (err.code, err.id) == (ErrorCode.UNKNOWN_TYPE, 8)


def test_request_wire_shapes():
    assert Hello("tok", 1, "web").to_wire() == {"t": "hello", "v": 1, "token": "tok", "client": "web"}
    assert Hello(None, 1, None).to_wire() == {"t": "hello", "v": 1}
    assert Answer(1, "q", ["a"]).to_wire() == {"t": "answer", "id": 1, "q": "q", "value": ["a"]}
    assert Answer(1, "q", None).to_wire() == {"t": "answer", "id": 1, "q": "q", "value": None}
    assert Flag(1, "q", True).to_wire() == {"t": "flag", "id": 1, "q": "q", "on": True}
    assert Goto(1, 3).to_wire() == {"t": "goto", "id": 1, "index": 3}
    assert Event(1, "blur", None).to_wire() == {"t": "event", "id": 1, "kind": "blur"}
    assert Submit(1).to_wire() == {"t": "submit", "id": 1}
    assert Ping(5).to_wire() == {"t": "ping", "ct": 5}
    assert Extend(1, "a", 60).to_wire() == {"t": "extend", "id": 1, "attempt": "a", "seconds": 60}
    assert Terminate(1, "a", "r").to_wire() == {"t": "terminate", "id": 1, "attempt": "a", "reason": "r"}
    assert Message(1, "a", "m").to_wire() == {"t": "message", "id": 1, "attempt": "a", "text": "m"}


def test_requests_are_frozen_with_slots():
    for r in (Start(1), Answer(1, "q", 1), Hello(None, 1, None), Extend(1, "a", 1)):
        assert not hasattr(r, "__dict__")
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(r, dataclasses.fields(r)[0].name, 2)
