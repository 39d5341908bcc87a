"""``commits.apply`` writes nothing for a command that changes nothing.

An attempt served from the results store (its Redis keys expired) has nothing
in Redis to commit to: review (``Fetch``) must be answered, and every other
request refused, without a single Redis call. The ``Core`` here is a real
one whose Redis is a port where nothing listens (and no retry), and whose
results store was never opened: any use of either fails the test.
"""

from __future__ import annotations

import asyncio
import pytest

import engine
from examwire.settings import Settings
from services import commits
from services.core import build_core
from storage.attempts import final_record, from_record
from testkit import SAMPLE_EXAM, free_port

EXAM = engine.parse_exam({**SAMPLE_EXAM, "id": "commits-final"})
T0 = 1_700_000_000_000


def _core(tmp_path):
    settings = Settings.from_env(
        {"EXAMWIRE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "EXAMWIRE_REDIS_RETRY_MS": "0",
         "EXAMWIRE_JWT_SECRET": "j" * 32, "EXAMWIRE_SECRET": "s" * 32, "EXAMWIRE_ANSWER_GRACE_MS": "2000"},
        data_dir=tmp_path,
    )  # fmt: skip
    return build_core(settings, clock=lambda: T0 + 10_000)


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
def test_an_archived_attempt_is_answered_without_redis(end, tmp_path):
    snap = _archived(end)

    async def go():
        core = _core(tmp_path)
        for req in (snap.attempt.last_id + 1, snap.attempt.last_id + 7, 1):
            done = await commits.apply(core, engine.Fetch(req), snap=snap, exam=EXAM, owner="conn-1")
            assert done.snap is snap and done.outcome.attempt is snap.attempt
            assert done.outcome.duplicate == (req <= snap.attempt.last_id)
        q = EXAM.questions[0]
        for cmd in (engine.Answer(9, q.id, None), engine.Flag(9, q.id, True), engine.Goto(9, 1), engine.Start(9),
                    engine.Event(9, "blur"), engine.Submit(9)):
            with pytest.raises(engine.Refused) as refused:
                await commits.apply(core, cmd, snap=snap, exam=EXAM, owner="conn-1")
            assert refused.value.code in {"not_active", "time_up"}
        await core.redis.aclose()

    asyncio.run(go())
