"""The deadline sweeper against a real Redis, with the clock as an input."""

from __future__ import annotations

import asyncio

import engine
from engine import State
from services.core import build_core
from examwire.settings import Settings
from services.expiry import expire, sweep_once
from storage import keys
from storage.attempts import attempt_id
from testkit import SAMPLE_EXAM, SAMPLE_RIGHT_ANSWERS

GRACE = 500


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _settings(redis_url: str, secrets, data_dir) -> Settings:
    return Settings.from_env(
        {
            "EXAMWIRE_REDIS_URL": redis_url,
            "EXAMWIRE_JWT_SECRET": secrets.jwt_secret,
            "EXAMWIRE_SECRET": secrets.secret,
            "EXAMWIRE_ANSWER_GRACE_MS": str(GRACE),
        },
        data_dir=data_dir,
    )


async def _started(ctx, exam, user: str, *, answers: dict | None = None):
    """An active attempt scheduled in the deadline set, as the candidate connection leaves it."""
    aid = attempt_id(ctx.secret, exam.id, user)
    a = engine.new_attempt(id=aid, exam=exam, user=user, name=user, seed=engine.derive_seed(ctx.secret, exam.id, user), now=ctx.clock())
    await ctx.attempts.create(a)
    snap = await ctx.attempts.load(aid)
    new = engine.apply(snap.attempt, exam, engine.Start(1), now=ctx.clock(), grace_ms=GRACE).attempt
    for i, (q, v) in enumerate((answers or {}).items(), start=2):
        new = engine.apply(new, exam, engine.Answer(i, q, v), now=ctx.clock(), grace_ms=GRACE).attempt
    await ctx.redis.zadd(keys.DEADLINES, {aid: new.deadline(ctx.clock()) + GRACE})
    return await ctx.attempts.commit(snap, new)


def test_sweep_expires_due_attempts_and_scores_saved_answers(redis_url, secrets, tmp_path):
    async def go():
        clock = Clock(1_000_000)
        ctx = build_core(_settings(redis_url, secrets, tmp_path), clock=clock)
        await ctx.results.open()
        exam, _ = await ctx.exams.put(SAMPLE_EXAM)
        snap = await _started(ctx, exam, "alice", answers=SAMPLE_RIGHT_ANSWERS)
        await _started(ctx, exam, "bob")
        assert await sweep_once(ctx) == 0
        clock.now = snap.attempt.deadline(clock.now) + GRACE - 1  # not yet: the grace still runs
        assert await sweep_once(ctx) == 0
        clock.now += 1
        assert await sweep_once(ctx) == 2
        alice = await ctx.attempts.load(snap.attempt.id)
        assert alice.attempt.state is State.EXPIRED and alice.attempt.end_reason == "time_up"
        assert alice.result["score"] == alice.result["max_score"]
        assert alice.attempt.ended_at == snap.attempt.deadline(0)
        assert await ctx.redis.zcard(keys.DEADLINES) == 0
        await ctx.redis.aclose()

    asyncio.run(go())


def test_an_extended_attempt_is_rescheduled_not_expired(redis_url, secrets, tmp_path):
    async def go():
        clock = Clock(1_000_000)
        ctx = build_core(_settings(redis_url, secrets, tmp_path), clock=clock)
        await ctx.results.open()
        exam, _ = await ctx.exams.put(SAMPLE_EXAM)
        snap = await _started(ctx, exam, "carol")
        due = snap.attempt.deadline(clock.now) + GRACE
        extended = engine.apply(snap.attempt, exam, engine.Extend(60_000, "proctor"), now=clock.now, grace_ms=GRACE).attempt
        snap = await ctx.attempts.commit(snap, extended)  # the deadline set still has the old due time
        clock.now = due
        assert await sweep_once(ctx) == 1
        assert (await ctx.attempts.load(snap.attempt.id)).attempt.state is State.ACTIVE
        assert await ctx.redis.zscore(keys.DEADLINES, snap.attempt.id) == due + 60_000
        await ctx.redis.aclose()

    asyncio.run(go())


def test_final_or_missing_attempts_leave_the_deadline_set(redis_url, secrets, tmp_path):
    async def go():
        clock = Clock(1_000_000)
        ctx = build_core(_settings(redis_url, secrets, tmp_path), clock=clock)
        await ctx.results.open()
        exam, _ = await ctx.exams.put(SAMPLE_EXAM)
        snap = await _started(ctx, exam, "dave")
        submitted = engine.apply(snap.attempt, exam, engine.Submit(9), now=clock.now, grace_ms=GRACE).attempt
        await ctx.attempts.commit(snap, submitted)
        await ctx.redis.zadd(keys.DEADLINES, {"f" * 32: 1})
        clock.now += 10 * 3_600_000
        assert await sweep_once(ctx) == 2
        assert await ctx.redis.zcard(keys.DEADLINES) == 0
        assert (await ctx.attempts.load(snap.attempt.id)).attempt.state is State.SUBMITTED
        await ctx.redis.aclose()

    asyncio.run(go())


def test_concurrent_sweepers_end_each_attempt_exactly_once(redis_url, secrets, tmp_path):
    async def go():
        clock = Clock(1_000_000)
        ctxs = [build_core(_settings(redis_url, secrets, tmp_path), clock=clock) for _ in range(3)]
        for c in ctxs:
            await c.results.open()
        exam, _ = await ctxs[0].exams.put(SAMPLE_EXAM)
        snaps = [await _started(ctxs[0], exam, f"user{i}") for i in range(50)]
        clock.now = snaps[0].attempt.deadline(clock.now) + GRACE + 1
        results = await asyncio.gather(*(expire(c, s.attempt.id) for c in ctxs for s in snaps))
        assert sum(r is not None for r in results) == 50
        for s in snaps:
            final = await ctxs[0].attempts.load(s.attempt.id)
            assert final.attempt.state is State.EXPIRED
            assert final.ver == s.ver + 1  # written once
        # ... and queued for persistence once each
        entries = await ctxs[0].redis.xrange(keys.OUTBOX)
        assert sorted(f["attempt"] for _, f in entries) == sorted(s.attempt.id for s in snaps)
        for c in ctxs:
            await c.redis.aclose()

    asyncio.run(go())


def test_an_exams_end_leaves_the_redis_pool_to_the_candidates(redis_url, secrets, tmp_path):
    """Two hundred attempts due at once are settled ``SWEEP_CONCURRENCY`` at a time, not on 200 pooled connections."""
    from redis.asyncio import Redis

    from services.expiry import SWEEP_CONCURRENCY

    async def go():
        clock = Clock(1_000_000)
        ctx = build_core(_settings(redis_url, secrets, tmp_path), clock=clock)
        await ctx.results.open()
        exam, _ = await ctx.exams.put(SAMPLE_EXAM)
        snaps = await asyncio.gather(*(_started(ctx, exam, f"u{i}") for i in range(200)))
        probe = Redis.from_url(redis_url, decode_responses=True)
        await ctx.redis.connection_pool.disconnect()  # the set-up's connections are gone: the pool starts empty
        before = len(await probe.client_list())
        clock.now = snaps[0].attempt.deadline(clock.now) + GRACE
        assert await sweep_once(ctx) == 200
        opened = len(await probe.client_list()) - before  # the pool keeps what it opened: its peak
        assert opened <= SWEEP_CONCURRENCY + 4, f"one sweep held {opened} Redis connections at once"
        states = {s.attempt.state for s in (await ctx.attempts.load_many([s.attempt.id for s in snaps])).values()}
        assert states == {State.EXPIRED}
        await probe.aclose()
        await ctx.aclose()

    asyncio.run(go())
