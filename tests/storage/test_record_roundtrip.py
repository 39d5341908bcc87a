"""The persisted record of a final attempt gives back the attempt as it was in Redis.

A candidate or proctor who comes back after the attempt's Redis keys expired
is served from the record (``from_record``). A final attempt never changes, so
nothing the live attempt showed may differ when it is read back: not
``last_id`` (a welcome's exactly-once counter), not ``index``, not the
``events`` count, although the record's event list keeps only the newest 200.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

import engine
from storage.attempts import _json, final_record, from_record
from storage.outbox import parse_entry
from testkit import SAMPLE_EXAM, SAMPLE_RIGHT_ANSWERS

EXAM = engine.parse_exam({**SAMPLE_EXAM, "id": "roundtrip", "navigation": "linear"})
QIDS = list(SAMPLE_RIGHT_ANSWERS)
T0 = 1_700_000_000_000


def _stored(done: engine.Attempt, events: int) -> dict:
    """The record as the worker stores it: the outbox entry (newest 200 events, as commit.lua keeps them) parsed."""
    kept = [{"kind": "blur", "detail": None, "at": T0 + i} for i in reversed(range(max(0, events - 200), events))]
    record = final_record(done, done.result.to_wire())
    fields = {"attempt": done.id, "record": _json(record), "events": json.dumps(kept), "actions": "[]"}
    return json.loads(json.dumps(parse_entry(fields)))  # through JSON, as a store keeps it


STEP = st.one_of(
    st.tuples(st.just("answer"), st.sampled_from(QIDS)),
    st.tuples(st.just("flag"), st.sampled_from(QIDS)),
    st.tuples(st.just("goto"), st.integers(0, len(QIDS) - 1)),
    st.tuples(st.just("event"), st.integers(1, 40)),
)


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(STEP, max_size=25), end=st.sampled_from(["submit", "terminate", "expire"]),
       fetches=st.integers(0, 3))
def test_from_record_is_the_final_attempt(steps, end, fetches):
    seed = engine.derive_seed(b"secret", EXAM.id, "ann")
    a = engine.new_attempt(id="a" * 32, exam=EXAM, user="ann", name="Ann", seed=seed, now=T0)
    req, now = 1, T0
    a = engine.apply(a, EXAM, engine.Start(req), now=now, grace_ms=0).attempt
    req += 1
    for kind, arg in steps:
        cmds = {
            "answer": lambda: [engine.Answer(req, arg, SAMPLE_RIGHT_ANSWERS[arg])],
            "flag": lambda: [engine.Flag(req, arg, True)],
            "goto": lambda: [engine.Goto(req, arg)],
            "event": lambda: [engine.Event(req + i, "blur") for i in range(arg * 5)],
        }[kind]()
        for cmd in cmds:
            req = cmd.req + 1
            now += 1
            try:
                a = engine.apply(a, EXAM, cmd, now=now, grace_ms=0).attempt
            except engine.Refused:
                pass
    if end == "submit":
        done = engine.apply(a, EXAM, engine.Submit(req), now=now + 1, grace_ms=0).attempt
    elif end == "terminate":
        done = engine.apply(a, EXAM, engine.Terminate("left", "p"), now=now + 1, grace_ms=0).attempt
    else:
        done = engine.apply(a, EXAM, engine.Expire(), now=T0 + EXAM.duration_ms, grace_ms=0).attempt
    for i in range(fetches):  # review after the end changes nothing
        assert engine.apply(done, EXAM, engine.Fetch(req + 10 + i), now=now + 2, grace_ms=0).attempt is done

    back = from_record(_stored(done, done.events)).attempt
    assert back == engine.Attempt(**{**{f: getattr(done, f) for f in engine.Attempt.__dataclass_fields__}, "result": None})


def test_an_old_record_without_the_event_count_counts_its_event_list():
    seed = engine.derive_seed(b"secret", EXAM.id, "bob")
    a = engine.new_attempt(id="b" * 32, exam=EXAM, user="bob", name="Bob", seed=seed, now=T0)
    a = engine.apply(a, EXAM, engine.Start(1), now=T0, grace_ms=0).attempt
    a = engine.apply(a, EXAM, engine.Event(2, "blur"), now=T0, grace_ms=0).attempt
    done = engine.apply(a, EXAM, engine.Submit(3), now=T0 + 1, grace_ms=0).attempt
    record = _stored(done, 1)
    del record["event_count"]
    assert from_record(record).attempt.events == 1
