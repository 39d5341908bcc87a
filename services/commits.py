"""Change an attempt: the engine decides, one compare-and-set commit writes, a lost race retries.

This is the one loop behind every change of a live attempt: a candidate's
request (``handlers/candidate.py``), a proctor's action or message
(``handlers/proctor.py``) and expiry (``services/expiry.py``). Each try loads
(or reuses) the attempt, applies the command with ``engine.apply``, keeps the
deadline set in step, and commits what changed with ``storage.attempts``'s
compare-and-set: the write lands only if the attempt is still at the version
the command saw. When another writer got there first, the loop reloads and
recomputes, up to ``COMMIT_TRIES`` times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

import engine
from engine import Exam, State
from storage import keys
from storage.attempts import Commit, Snapshot

from .core import Core
from .metrics import Metrics

#: Tries of one change before it gives up with ``Busy`` (each lost only to a concurrent writer).
COMMIT_TRIES = 8


class Gone(LookupError):
    """The attempt is not in Redis (never was, or it left after being persisted)."""


class ExamGone(LookupError):
    """The exam version the attempt was started on is in neither Redis nor the results store."""


class Superseded(Exception):
    """Another connection owns the attempt now; this one may not write."""


class Busy(Exception):
    """Every try lost the race to another writer; nothing changed. The caller may retry."""


@dataclass(frozen=True, slots=True)
class Applied:
    """A change that was written, or a request that needed no write (a repeat, or a read of a final attempt)."""

    snap: Snapshot  #: the attempt as written (as found, when nothing was written)
    outcome: engine.Outcome | None  #: None for a record-only change (``cmd=None``)
    now: int


async def apply(
    core: Core,
    cmd: object | None,
    *,
    snap: Snapshot | None = None,
    attempt_id: str | None = None,
    exam: Exam | None = None,
    check: Callable[[Snapshot], None] | None = None,
    reload: Callable[[Snapshot], Awaitable[Snapshot]] | None = None,
    owner: str = "",
    notify: bool = False,
    event: Mapping[str, Any] | None = None,
    action: Mapping[str, Any] | None = None,
    control: Mapping[str, Any] | None = None,
) -> Applied:
    """Apply the engine command ``cmd`` to one attempt and commit the result.

    The attempt is ``snap`` (as the caller last saw it) or else loaded by
    ``attempt_id``; ``exam`` saves looking up its version. ``check`` may
    refuse the attempt as loaded by raising (it runs on every try).
    ``cmd=None`` changes nothing in the attempt and commits only ``action``
    and ``control`` (a proctor's message). On a lost race the attempt is
    reloaded, by ``reload`` when given (a candidate session tells its client
    what changed), else by id.

    ``owner`` makes the write conditional on that connection owning the
    attempt; ``notify`` publishes ``changed`` on the control channel (it is
    published anyway when the time or the state changed). ``action`` gets the
    time it was applied (``at``).

    Raises ``engine.Refused`` (the engine said no; nothing changed), ``Gone``,
    ``ExamGone``, ``Superseded`` and ``Busy``; and the session store's
    errors: ``redis.RedisError`` once the client's retries are spent, or
    ``storage.scripts.NotReplicated`` (a ``RedisError``) when too few
    replicas confirmed the write, or a repeat's, in time: nothing may be
    acknowledged then.
    """
    grace = core.settings.answer_grace_ms
    metrics = core.metrics
    for _ in range(COMMIT_TRIES):
        if snap is None:
            snap = await core.attempts.load(attempt_id or "")
            if snap is None:
                raise Gone(attempt_id)
        if check is not None:
            check(snap)
        a = snap.attempt
        now = core.clock()
        stamped = {**action, "at": now} if action is not None else None
        if cmd is None:
            out = None
            committed = await core.attempts.commit(snap, a, owner=owner, notify=notify, action=stamped, control=control)
        else:
            if exam is None or exam.version != a.exam_version or exam.id != a.exam_id:
                exam = await core.exams.get(a.exam_id, a.exam_version)
                if exam is None:
                    raise ExamGone(a.exam_id)
                now = core.clock()
            out = engine.apply(a, exam, cmd, now=now, grace_ms=grace)
            if out.duplicate or out.attempt is a:
                # nothing to write (a repeat, or a read of a final attempt): no commit, so an
                # archived attempt (no longer in Redis) is answered as well as a live one
                if out.duplicate and "persisted" not in snap.fields:
                    # a repeat is acknowledged like the first time: only once its write is on the replicas
                    # (EXAMWIRE_REDIS_MIN_REPLICAS; its first ack may have failed for want of them)
                    await core.attempts.confirm()
                return Applied(snap, out, now)
            new = out.attempt
            if out.time_changed and new.state is State.ACTIVE:
                # before the commit: a crash in between leaves an extra entry, never a missing one
                await core.redis.zadd(keys.DEADLINES, {new.id: new.deadline(now) + grace})
            result = new.result.to_wire() if out.ended and new.result is not None else None
            committed = await core.attempts.commit(
                snap,
                new,
                owner=owner,
                notify=notify or out.time_changed or out.ended,
                result=result,
                event=event,
                live=engine.progress(new, exam.total, now, result),
                action=stamped,
                control=control,
                answered=out.answered,
            )
        if metrics.enabled:
            _record(metrics, a, committed, out)
        if isinstance(committed, Snapshot):
            if out is not None and out.ended:
                await core.redis.zrem(keys.DEADLINES, a.id)
            return Applied(committed, out, now)
        if committed is Commit.SUPERSEDED:
            raise Superseded(a.id)
        if committed is Commit.MISSING:
            raise Gone(a.id)
        snap = await reload(snap) if reload is not None else None
        attempt_id = a.id
    raise Busy(attempt_id)


def _record(metrics: Metrics, before: engine.Attempt, committed: object, out: engine.Outcome | None) -> None:
    """One commit's metrics: a start, an end or a lost race (its latency is the script's: ``storage.scripts``)."""
    if not isinstance(committed, Snapshot):
        if committed is Commit.CONFLICT:
            metrics.commit_conflict()
        return
    if out is None:
        return
    after = out.attempt.state
    if out.ended:
        metrics.attempt_ended(after.value)
    elif before.state is State.READY and after is State.ACTIVE:
        metrics.attempt_started()
