import pickle

import pytest

from protocol import (
    MAX_CLOSE_REASON_BYTES,
    CloseCode,
    Disconnect,
    Encoding,
    ErrorCode,
    RequestError,
    decode,
    encode,
    error_message,
)


def test_error_code_values():
    assert {c.name: c.value for c in ErrorCode} == {
        "BAD_FRAME": "bad_frame",
        "UNKNOWN_TYPE": "unknown_type",
        "BAD_REQUEST": "bad_request",
        "NOT_STARTED": "not_started",
        "NOT_ACTIVE": "not_active",
        "TIME_UP": "time_up",
        "UNKNOWN_QUESTION": "unknown_question",
        "BAD_VALUE": "bad_value",
        "NAVIGATION": "navigation",
        "RATE_LIMITED": "rate_limited",
        "FORBIDDEN": "forbidden",
        "INTERNAL": "internal",
        "NOT_FOUND": "not_found",
    }
    assert ErrorCode.BAD_FRAME == "bad_frame"


def test_close_code_values():
    assert {c.name: int(c) for c in CloseCode} == {
        "NORMAL": 1000,
        "GOING_AWAY": 1001,
        "POLICY": 1008,
        "TOO_BIG": 1009,
        "INTERNAL": 1011,
        "TRY_AGAIN": 1013,
        "UNSUPPORTED_VERSION": 4400,
        "BAD_TOKEN": 4401,
        "FORBIDDEN": 4403,
        "NO_EXAM": 4404,
        "HELLO_TIMEOUT": 4408,
        "SUPERSEDED": 4409,
    }


def test_request_error_attributes():
    err = RequestError(ErrorCode.TIME_UP, "too late", 7)
    assert isinstance(err, Exception)
    assert (err.code, err.message, err.id) == (ErrorCode.TIME_UP, "too late", 7)
    assert RequestError("bad_value", "x").code is ErrorCode.BAD_VALUE
    assert RequestError(ErrorCode.NAVIGATION, "closed").id is None
    assert "time_up" in str(err)
    with pytest.raises(ValueError):
        RequestError("no_such_code", "x")


def test_request_error_pickles():
    err = pickle.loads(pickle.dumps(RequestError(ErrorCode.FORBIDDEN, "no", 3)))
    assert (err.code, err.message, err.id) == (ErrorCode.FORBIDDEN, "no", 3)


def test_error_message_shape():
    assert error_message(RequestError(ErrorCode.TIME_UP, "too late", 7)) == {
        "t": "error",
        "code": "time_up",
        "message": "too late",
        "id": 7,
    }
    wire = error_message(RequestError(ErrorCode.BAD_FRAME, "nope"))
    assert wire == {"t": "error", "code": "bad_frame", "message": "nope"}
    assert list(wire)[0] == "t"
    assert type(wire["code"]) is str  # a plain str, not the enum


def test_error_message_encodes_in_both_encodings():
    wire = error_message(RequestError(ErrorCode.UNKNOWN_QUESTION, "no such question", 12))
    for enc in Encoding:
        assert decode(encode(wire, enc)) == (wire, enc)


def test_internal_error_message_is_passed_through():
    wire = error_message(RequestError(ErrorCode.INTERNAL, "session store unavailable; retry", 9))
    assert wire == {"t": "error", "code": "internal", "message": "session store unavailable; retry", "id": 9}


def test_error_message_is_bounded():
    wire = error_message(RequestError(ErrorCode.BAD_REQUEST, "x" * 5000))
    assert len(wire["message"]) <= 200


def test_disconnect():
    d = Disconnect(CloseCode.SUPERSEDED, "newer connection")
    assert isinstance(d, Exception)
    assert d.code is CloseCode.SUPERSEDED and d.reason == "newer connection"
    assert Disconnect(4401).code is CloseCode.BAD_TOKEN
    assert Disconnect(1008).reason == ""


@pytest.mark.parametrize("reason", ["x" * 500, "é" * 100, "€" * 61, "a😀" * 40, "\ud800" * 10])
def test_disconnect_reason_is_cut_to_120_bytes_on_a_char_boundary(reason):
    d = Disconnect(CloseCode.POLICY, reason)
    data = d.reason.encode("utf-8")  # encodable: no lone surrogates survive
    assert len(data) <= MAX_CLOSE_REASON_BYTES
    if len(reason.encode("utf-8", "replace")) > MAX_CLOSE_REASON_BYTES:
        assert len(data) > MAX_CLOSE_REASON_BYTES - 4  # cut as late as possible


def test_disconnect_short_reason_is_kept():
    assert Disconnect(CloseCode.GOING_AWAY, "bye é").reason == "bye é"
