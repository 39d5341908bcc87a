"""Loss is detected, never silent: an attempt whose acknowledged work the live store no longer has.

Redis is the authority for a running attempt, and it can lose data: a
restart without persistence, a failover to a replica that missed the last
writes. A client that resumes says what it had (``hello.acked``, the highest
request id it saw acknowledged, and ``hello.ticket``, the attempt's clock as
the server signed it: ``engine.recovery``). When that is more than the store
has, the loss is

* **logged** as an error (``attempt_lost``: attempt, exam, user, what was found),
* **counted** (``storage.health.count_loss``: ``attempts_lost`` in ``/readyz``
  and ``examwire status``),
* **told to the proctors**: an event ``attempt_lost`` (``by: "server"``) on the
  attempt, kept with it and published on the exam's live feed,

and the attempt is never handed out afresh with its full time: a missing one
is put back with the clock of its ticket, or held (paused until a proctor
acts) without one (``engine.restore``); ``engine.Lost`` marks the ids the
client saw acknowledged as used. The client then sends what it kept again,
as new requests under the normal rules (docs/protocol.md).

A finished attempt that left Redis is served from the results store: that is
not a loss, and the caller looks there first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import engine
from engine import Clock, Exam, Refused, State
from storage import health, keys
from storage.attempts import Snapshot, claims_base

from . import commits
from .core import Core

#: The kind of the event the proctors see, and of the error log line.
EVENT = "attempt_lost"


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a resuming client says it had: ``hello.acked`` and the clock of its ticket (verified)."""

    acked: int
    clock: Clock | None
    ticket: str  # "valid", "invalid" (does not verify, or is another attempt's) or "absent"

    @property
    def highest(self) -> int:
        """The highest request id known to have been acknowledged (the client's word, or the ticket's)."""
        return max(self.acked, self.clock.last_id if self.clock is not None else 0)


def evidence(secret: bytes, attempt_id: str, acked: int | None, ticket: str | None) -> Evidence:
    if ticket is None:
        return Evidence(acked or 0, None, "absent")
    clock = engine.unseal(secret, ticket)
    if clock is None or clock.attempt != attempt_id:
        return Evidence(acked or 0, None, "invalid")
    return Evidence(acked or 0, clock, "valid")


@dataclass(frozen=True, slots=True)
class Restored:
    """A missing attempt put back: as written, its exam version, and how its clock was set."""

    snap: Snapshot | None  # None: another connection put it back first (load it)
    exam: Exam
    clock: str  # "ticket" (the ticket's clock) or "held" (paused until a proctor acts)


async def restore(core: Core, *, attempt_id: str, exam_id: str, user: str, name: str, ev: Evidence) -> Restored | None:
    """Put back a missing attempt (``engine.restore``); None when the exam is gone too."""
    exam = await core.exams.get(exam_id, ev.clock.exam_version) if ev.clock is not None else None
    if exam is None:
        exam = await core.exams.current(exam_id)
        if exam is None:
            return None
    now = core.clock()
    seed = engine.derive_seed(core.secret, exam_id, user)
    a = engine.restore(id=attempt_id, exam=exam, user=user, name=name, seed=seed, now=now, clock=ev.clock)
    how = "ticket" if ev.clock is not None and ev.clock.exam_version == exam.version else "held"
    if a.state is State.ACTIVE:
        # before the create, as for a start: a crash in between leaves an extra entry, never a missing one
        await core.redis.zadd(keys.DEADLINES, {a.id: a.deadline(now) + core.settings.answer_grace_ms})  # type: ignore[operator]
    if not await core.attempts.create(a, claims_from=claims_base(now)):
        return Restored(None, exam, how)
    return Restored(await core.attempts.load(attempt_id), exam, how)


async def report(
    core: Core, snap: Snapshot, exam: Exam, ev: Evidence, *, kind: str, found: int, clock: str, fields: dict[str, Any]
) -> Snapshot:
    """Log, count and tell the proctors of a loss, and mark the acknowledged ids used; the attempt as written.

    ``kind`` is ``missing`` (Redis had no such attempt) or ``behind`` (it had
    one, with ``last_id`` ``found`` below the evidence); ``clock`` how the
    clock was set (``ticket``, ``held``, or ``kept`` when it was not put back).
    ``fields`` are the connection's log fields (never a token).
    """
    detail = {"lost": kind, "acked": ev.highest, "found": found, "clock": clock, "ticket": ev.ticket}
    core.log.error(EVENT, extra={"fields": {"event": EVENT, "node": core.settings.node_id, **fields, **detail}})
    await health.count_loss(core.redis)
    entry = {"kind": EVENT, "detail": detail, "at": core.clock(), "by": "server"}
    try:
        done = await commits.apply(core, engine.Lost(ev.highest), snap=snap, exam=exam, event=entry)
    except Refused:  # it ended meanwhile: a final attempt never changes
        return await core.attempts.load(snap.attempt.id) or snap
    except commits.Busy:
        return await core.attempts.load(snap.attempt.id) or snap
    return done.snap
