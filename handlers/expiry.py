"""Ending attempts whose time is over, whether or not anyone is connected.

Every engine node sweeps the deadline sorted set (score = deadline + grace).
Several nodes may pick the same entry: the compare-and-set commit lets one of
them end the attempt and the others find it final. An entry is removed only
if its score is still the one the sweeper saw, so a concurrent extension or
resume that rescheduled it is never lost. Keyspace notifications are not
used: they are not delivered reliably.
"""

from __future__ import annotations

import asyncio
import logging

import engine
from engine import Refused, State
from storage import keys
from storage.attempts import Commit, Snapshot
from storage.health import connection_lost

from .context import Context

log = logging.getLogger("examwire.expiry")

SWEEP_BATCH = 200


async def expire(ctx: Context, attempt_id: str, snap: Snapshot | None = None) -> Snapshot | None:
    """End ``attempt_id`` as expired if it is active and past deadline + grace.

    Idempotent. ``snap``, when given, is a snapshot the caller just loaded
    (it saves a read; a stale one costs a retry). Returns the snapshot
    written, or None when nothing was due. Whoever owns the attempt is
    notified through the control channel.
    """
    grace = ctx.settings.answer_grace_ms
    for _ in range(8):
        if snap is None:
            snap = await ctx.attempts.load(attempt_id)
        if snap is None or snap.attempt.state is not State.ACTIVE:
            return None
        exam = await ctx.exams.get(snap.attempt.exam_id, snap.attempt.exam_version)
        if exam is None:
            log.error('{"event":"expire_failed","attempt":"%s","error":"exam version missing"}', attempt_id)
            return None
        now = ctx.clock()
        try:
            out = engine.apply(snap.attempt, exam, engine.Expire(), now=now, grace_ms=grace)
        except Refused:
            return None
        result = out.attempt.result.to_wire() if out.attempt.result is not None else None
        live = engine.progress(out.attempt, exam.total, now, result)
        committed = await ctx.attempts.commit(snap, out.attempt, notify=True, result=result, live=live)
        if isinstance(committed, Snapshot):
            ctx.event("expired", attempt=attempt_id, exam=snap.attempt.exam_id, user=snap.attempt.user)
            return committed
        if committed is Commit.MISSING:
            return None
        snap = None  # changed meanwhile: reload
    return None


async def _settle(ctx: Context, attempt_id: str, due: float) -> None:
    snap = await ctx.attempts.load(attempt_id)
    if snap is not None and snap.attempt.state is State.ACTIVE:
        now = ctx.clock()
        actual = snap.attempt.deadline(now) + ctx.settings.answer_grace_ms  # type: ignore[operator]
        if actual > now:
            if actual != due:
                await ctx.redis.zadd(keys.DEADLINES, {attempt_id: actual})
            return
        await expire(ctx, attempt_id, snap)
    await ctx.scripts.unschedule(keys=[keys.DEADLINES], args=[attempt_id, repr(due)])


async def sweep_once(ctx: Context) -> int:
    """Settle up to ``SWEEP_BATCH`` due entries concurrently; return how many were due."""
    due = await ctx.redis.zrangebyscore(keys.DEADLINES, "-inf", ctx.clock(), start=0, num=SWEEP_BATCH, withscores=True)
    if due:
        results = await asyncio.gather(*(_settle(ctx, aid, score) for aid, score in due), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                log.error('{"event":"sweep_error","error":"%s"}', type(r).__name__)
    return len(due)


async def sweeper(ctx: Context) -> None:
    """Sweep forever (until cancelled), every ``sweep_interval_ms`` or at once when behind."""
    interval = ctx.settings.sweep_interval_ms / 1000
    while True:
        try:
            n = await sweep_once(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep trying; an unreachable Redis is reported once by the node's Redis watch
            if not connection_lost(exc):
                log.warning('{"event":"sweep_failed","error":"%s"}', type(exc).__name__)
            n = 0
        if n < SWEEP_BATCH:
            await asyncio.sleep(interval)
