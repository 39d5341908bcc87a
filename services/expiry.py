"""Ending attempts whose time is over, whether or not anyone is connected.

Every engine node sweeps the deadline sorted set (score = deadline + grace),
and the worker's ``examwire.sweep`` task sweeps behind them. Several sweepers
may pick the same entry: the compare-and-set commit lets one of them end the
attempt and the others find it final. An entry is removed only if its score
is still the one the sweeper saw, so a concurrent extension or resume that
rescheduled it is never lost. Keyspace notifications are not used: they are
not delivered reliably.
"""

from __future__ import annotations

import asyncio
import logging

import engine
from engine import Refused, State
from storage import keys
from storage.attempts import Snapshot
from storage.health import connection_lost

from . import commits
from .core import Core

log = logging.getLogger("examwire.expiry")

#: Due entries read by one sweep.
SWEEP_BATCH = 200
#: Of those, how many are settled at the same time: each holds a pooled Redis
#: connection while it loads and commits, and an exam's end (hundreds due at
#: once) must leave the pool to the candidates still answering.
SWEEP_CONCURRENCY = 32


class _NotActive(Exception):
    pass


def _active(snap: Snapshot) -> None:
    if snap.attempt.state is not State.ACTIVE:
        raise _NotActive


async def expire(core: Core, attempt_id: str, snap: Snapshot | None = None) -> Snapshot | None:
    """End ``attempt_id`` as expired if it is active and past deadline + grace.

    Idempotent. ``snap``, when given, is a snapshot the caller just loaded
    (it saves a read; a stale one costs a retry). Returns the snapshot
    written, or None when nothing was due. Whoever owns the attempt is
    notified through the control channel.
    """
    try:
        done = await commits.apply(core, engine.Expire(), snap=snap, attempt_id=attempt_id, check=_active, notify=True)
    except (_NotActive, Refused, commits.Gone, commits.Busy):
        return None
    except commits.ExamGone:
        log.error('{"event":"expire_failed","attempt":"%s","error":"exam version missing"}', attempt_id)
        return None
    a = done.snap.attempt
    core.event("expired", attempt=attempt_id, exam=a.exam_id, user=a.user)
    return done.snap


async def _settle(core: Core, attempt_id: str, due: float) -> None:
    snap = await core.attempts.load(attempt_id)
    if snap is not None and snap.attempt.state is State.ACTIVE:
        now = core.clock()
        actual = snap.attempt.deadline(now) + core.settings.answer_grace_ms  # type: ignore[operator]
        if actual > now:
            if actual != due:
                await core.redis.zadd(keys.DEADLINES, {attempt_id: actual})
            return
        if await expire(core, attempt_id, snap) is not None:
            core.metrics.expired((core.clock() - due) / 1000)  # due: deadline + grace
    await core.scripts.unschedule(keys=[keys.DEADLINES], args=[attempt_id, repr(due)])


async def sweep_once(core: Core) -> int:
    """Settle up to ``SWEEP_BATCH`` due entries, ``SWEEP_CONCURRENCY`` at a time; return how many were due."""
    due = await core.redis.zrangebyscore(keys.DEADLINES, "-inf", core.clock(), start=0, num=SWEEP_BATCH, withscores=True)
    if due:
        gate = asyncio.Semaphore(SWEEP_CONCURRENCY)

        async def settle(aid: str, score: float) -> None:
            async with gate:
                await _settle(core, aid, score)

        results = await asyncio.gather(*(settle(aid, score) for aid, score in due), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
                log.error('{"event":"sweep_error","error":"%s"}', type(r).__name__)
    return len(due)


async def sweep(core: Core, *, rounds: int = 50) -> int:
    """Sweep until nothing is due (at most ``rounds`` batches); return how many were due."""
    total = 0
    for _ in range(rounds):
        n = await sweep_once(core)
        total += n
        if n < SWEEP_BATCH:
            break
    return total


async def sweeper(core: Core) -> None:
    """Sweep forever (until cancelled), every ``sweep_interval_ms`` or at once when behind."""
    interval = core.settings.sweep_interval_ms / 1000
    while True:
        try:
            n = await sweep_once(core)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep trying; an unreachable Redis is reported once by the node's Redis watch
            if not connection_lost(exc):
                log.warning('{"event":"sweep_failed","error":"%s"}', type(exc).__name__)
            n = 0
        if n < SWEEP_BATCH:
            await asyncio.sleep(interval)
