"""Server -> client messages: wire shapes (docs/protocol.md field names) and round trips."""

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    Ack,
    Batch,
    Encoding,
    Notice,
    Pong,
    ProctorWelcome,
    ResultMsg,
    Snapshot,
    StateChange,
    Time,
    Update,
    Welcome,
    decode,
    encode,
)
from strategies_protocol import finite_floats, wire_trees

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ms = st.integers(0, 2**48)
ids = st.integers(1, 2**53 - 1)
qids = st.text(min_size=1, max_size=20)
states = st.sampled_from(["ready", "active", "paused", "submitted", "expired", "terminated"])
numbers = st.integers(0, 1000) | finite_floats
answer_values = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | finite_floats | st.text(max_size=20) | st.lists(st.text(max_size=5), max_size=4)
exams = st.fixed_dictionaries(
    {
        "id": qids,
        "title": st.text(max_size=30),
        "duration_ms": ms,
        "total": st.integers(0, 500),
        "navigation": st.sampled_from(["free", "linear"]),
    }
)
questions = st.lists(
    st.fixed_dictionaries(
        {
            "index": st.integers(0, 1000),
            "id": qids,
            "type": st.sampled_from(["single", "multiple", "true_false", "numeric", "text"]),
            "prompt": st.text(max_size=50),
            "options": st.lists(st.fixed_dictionaries({"id": qids, "text": st.text(max_size=20)}), max_size=4),
            "points": numbers,
        }
    ),
    max_size=5,
)
proctor_rows = st.lists(
    st.fixed_dictionaries(
        {
            "attempt": qids, "user": qids, "name": st.text(max_size=20), "state": states,
            "connected": st.booleans(), "answered": st.integers(0, 100), "total": st.integers(0, 100),
            "flagged": st.integers(0, 100), "index": st.integers(0, 100), "deadline": st.none() | ms,
            "remaining_ms": ms,
            "events": st.lists(st.fixed_dictionaries({"kind": st.just("blur"), "detail": wire_trees, "at": ms}), max_size=2),
        }
    ),
    max_size=3,
)

server_messages = st.one_of(
    st.builds(
        Welcome, qids, exams, states, ms, st.none() | ms, ms, st.integers(0, 2**53 - 1),
        st.dictionaries(qids, answer_values, max_size=4), st.lists(qids, max_size=4), st.integers(0, 1000),
        st.none() | st.text(min_size=1, max_size=512), st.booleans(),
    ),
    st.builds(Ack, ids),
    st.builds(Ack, ids, st.just({"dup": True}) | st.fixed_dictionaries({"deadline": ms})),
    st.builds(Batch, st.integers(0, 1000), questions, st.integers(0, 1000)),
    st.builds(Time, ms, st.none() | ms, ms, states, st.none() | st.text(min_size=1, max_size=512)),
    st.builds(StateChange, states, st.none() | st.text(max_size=30)),
    st.builds(Notice, st.text(max_size=100), st.text(max_size=20)),
    st.builds(ResultMsg, numbers, numbers, numbers, st.booleans()),
    st.builds(Pong, st.integers(-(2**63), 2**64 - 1) | finite_floats, ms),
    st.builds(ProctorWelcome, exams, ms),
    st.builds(Snapshot, proctor_rows),
    st.builds(
        Update, qids,
        st.dictionaries(st.sampled_from(["state", "connected", "answered", "index", "deadline", "event"]), wire_trees, max_size=4),
    ),
)


@FAST
@given(server_messages)
def test_server_messages_round_trip_in_both_encodings(msg):
    wire = msg.to_wire()
    assert type(wire) is dict
    assert list(wire)[0] == "t" and wire["t"] == type(msg).t
    for enc in Encoding:
        frame = encode(wire, enc)
        assert isinstance(frame, str if enc is Encoding.JSON else bytes)
        decoded, got = decode(frame)
        assert got is enc
        assert decoded == wire
        assert list(decoded) == list(wire)  # key order kept, "t" first
        assert all(type(a) is type(b) for a, b in zip(decoded.values(), wire.values()))


@settings(FAST, max_examples=50)
@given(server_messages)
def test_server_messages_are_frozen_with_slots(msg):
    assert dataclasses.is_dataclass(msg)
    assert not hasattr(msg, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(msg, dataclasses.fields(msg)[0].name, None)


EXAM = {"id": "net-101", "title": "Networking", "duration_ms": 1_800_000, "total": 5, "navigation": "free"}


def test_welcome_shape():
    w = Welcome("att-1", EXAM, "ready", 1000, None, 1_800_000, 0, {"q1": "b"}, ["q2"], 0).to_wire()
    assert list(w) == [
        "t", "attempt", "exam", "state", "server_time", "deadline", "remaining_ms",
        "last_id", "answers", "flags", "index",
    ]
    assert w["t"] == "welcome" and w["deadline"] is None and w["exam"] == EXAM
    assert '"deadline":null' in encode(w, Encoding.JSON)


def test_welcome_and_time_carry_the_optional_ticket_and_loss_only_when_set():
    """Clients that know neither field see exactly the maps they saw before."""
    base = ("att-1", EXAM, "active", 1000, 5000, 4000, 3, {}, [], 0)
    assert "ticket" not in Welcome(*base).to_wire() and "lost" not in Welcome(*base).to_wire()
    w = Welcome(*base, ticket="t1.abc", lost=True).to_wire()
    assert list(w)[-2:] == ["ticket", "lost"] and (w["ticket"], w["lost"]) == ("t1.abc", True)
    assert "lost" not in Welcome(*base, ticket="t1.abc").to_wire()
    assert Time(1, 2, 3, "active", "t1.abc").to_wire()["ticket"] == "t1.abc"
    assert "ticket" not in Time(1, 2, 3, "active").to_wire()


def test_ack_shapes():
    assert Ack(5).to_wire() == {"t": "ack", "id": 5}
    assert Ack(5, {"dup": True}).to_wire() == {"t": "ack", "id": 5, "dup": True}
    assert list(Ack(5, {"deadline": 99}).to_wire()) == ["t", "id", "deadline"]
    assert Ack(5) == Ack(5, {})
    with pytest.raises(ValueError):
        Ack(5, {"id": 6})
    with pytest.raises(ValueError):
        Ack(5, {"t": "error"})


def test_batch_uses_from():
    q = {"index": 0, "id": "q1", "type": "single", "prompt": "?", "options": [{"id": "a", "text": "A"}], "points": 1}
    b = Batch(0, [q], 5).to_wire()
    assert b == {"t": "batch", "from": 0, "questions": [q], "total": 5}
    assert list(b) == ["t", "from", "questions", "total"]


def test_time_state_notice_result_pong_shapes():
    assert Time(1, 2, 3, "active").to_wire() == {
        "t": "time", "server_time": 1, "deadline": 2, "remaining_ms": 3, "state": "active",
    }
    assert StateChange("paused", "proctor").to_wire() == {"t": "state", "state": "paused", "reason": "proctor"}
    assert StateChange("active").to_wire() == {"t": "state", "state": "active", "reason": None}
    assert Notice("hello", "Proctor Jane").to_wire() == {"t": "notice", "text": "hello", "from": "Proctor Jane"}
    assert ResultMsg(7.5, 10, 75.0, True).to_wire() == {
        "t": "result", "score": 7.5, "max_score": 10, "percent": 75.0, "passed": True,
    }
    assert Pong(123, 456).to_wire() == {"t": "pong", "ct": 123, "st": 456}


def test_proctor_server_shapes():
    assert ProctorWelcome(EXAM, 7).to_wire() == {"t": "welcome", "exam": EXAM, "server_time": 7}
    assert Snapshot([]).to_wire() == {"t": "snapshot", "attempts": []}
    u = Update("att-1", {"state": "paused", "event": {"kind": "blur", "detail": None, "at": 5}}).to_wire()
    assert u == {"t": "update", "attempt": "att-1", "state": "paused", "event": {"kind": "blur", "detail": None, "at": 5}}
    assert list(u)[:2] == ["t", "attempt"]
    with pytest.raises(ValueError):
        Update("a", {"attempt": "b"})


def test_to_wire_returns_fresh_dicts():
    a = Ack(1, {"dup": True})
    a.to_wire()["x"] = 1
    assert a.to_wire() == {"t": "ack", "id": 1, "dup": True}
