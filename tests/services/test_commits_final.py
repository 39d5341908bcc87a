"""``commits.apply`` writes nothing for a command that changes nothing.

An attempt served from the results store (its Redis keys expired) has nothing
in Redis to commit to: review (``Fetch``) must be answered, and every other
request refused, without a single Redis call. Redis and the stores are stubs
here that fail the test on any use.
"""

from __future__ import annotations

import asyncio
import types

import pytest

import engine
from services.metrics import Metrics
from services import commits
from storage.attempts import final_record, from_record
from testkit import SAMPLE_EXAM

EXAM = engine.parse_exam({**SAMPLE_EXAM, "id": "commits-final"})
T0 = 1_700_000_000_000


class _NoIO:
    def __getattr__(self, name: str):
        raise AssertionError(f"Redis or a store was used ({name}) for a command that changes nothing")


def _core() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        settings=types.SimpleNamespace(answer_grace_ms=2000), clock=lambda: T0 + 10_000,
        attempts=_NoIO(), redis=_NoIO(), exams=_NoIO(), results=_NoIO(), metrics=Metrics(),
    )


def _archived(end: str):
    seed = engine.derive_seed(b"secret", EXAM.id, "ann")
    a = engine.new_attempt(id="c" * 32, exam=EXAM, user="ann", name="Ann", seed=seed, now=T0)
    a = engine.apply(a, EXAM, engine.Start(1), now=T0, grace_ms=0).attempt
    if end == "expired":
        done = engine.apply(a, EXAM, engine.Expire(), now=T0 + EXAM.duration_ms, grace_ms=0).attempt
    else:
        done = engine.apply(a, EXAM, engine.Submit(2), now=T0 + 1, grace_ms=0).attempt
    return from_record({**final_record(done, done.result.to_wire()), "events": []})


@pytest.mark.parametrize("end", ["submitted", "expired"])
def test_an_archived_attempt_is_answered_without_redis(end):
    snap = _archived(end)

    async def go():
        for req in (snap.attempt.last_id + 1, snap.attempt.last_id + 7, 1):
            done = await commits.apply(_core(), engine.Fetch(req), snap=snap, exam=EXAM, owner="conn-1")
            assert done.snap is snap and done.outcome.attempt is snap.attempt
            assert done.outcome.duplicate == (req <= snap.attempt.last_id)
        q = EXAM.questions[0]
        for cmd in (engine.Answer(9, q.id, None), engine.Flag(9, q.id, True), engine.Goto(9, 1), engine.Start(9),
                    engine.Event(9, "blur"), engine.Submit(9)):
            with pytest.raises(engine.Refused) as refused:
                await commits.apply(_core(), cmd, snap=snap, exam=EXAM, owner="conn-1")
            assert refused.value.code in {"not_active", "time_up"}

    asyncio.run(go())
