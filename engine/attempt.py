"""One candidate's attempt as a pure state machine.

``apply(attempt, exam, command, now=..., grace_ms=...)`` returns an
:class:`Outcome` with the new attempt, or raises :class:`Refused` and nothing
changed.  Time (``now``, integer ms since the epoch) and randomness (the
attempt's ``seed``) are inputs, so any attempt can be replayed from its log
of ``(command, now)`` pairs with :func:`replay`.

States::

    ready --Start--> active <--Pause/Resume--> paused
    active --Submit--> submitted        active --Expire--> expired
    ready/active/paused --Terminate--> terminated

Loss (``Lost``, see ``engine.recovery``): when the store turns out to have lost
acknowledged work of an attempt, the ids up to the highest one the client saw
acknowledged count as used (``last_id`` rises to it), so a request that had
been acknowledged is never applied a second time, and the loss is counted as
one of the attempt's events.  Nothing else changes: what was lost comes back
only as new requests, under the normal rules.

Clock: ``deadline = started_at + duration_ms + extended_ms + paused_ms``,
plus the running pause while paused.  Candidate writes (answer, flag, goto,
submit) and a pause arriving after ``deadline + grace_ms`` are refused with
``time_up``; ``Expire`` is accepted from ``deadline + grace_ms`` on and ends
the attempt at ``deadline``.

Exactly-once: a candidate command with ``req <= last_id`` is a duplicate and
changes nothing; an accepted candidate command sets ``last_id = req``, except
on a final attempt, which never changes: there ``Fetch`` (review, the one
candidate command a final attempt accepts) leaves ``last_id`` where the attempt
ended, the value its persisted record keeps.

Linear navigation: ``index`` is the candidate's position and only moves
forward; ``Goto`` moves it, and so does an ``Answer`` or ``Flag`` of a later
question (to that question's position).  Questions before ``index`` are
closed: ``Goto``, ``Answer`` and ``Flag`` there are refused with
``navigation``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Iterable, Mapping

from .exam import Exam
from .refused import Refused
from .scoring import Result, Value, check_value, number, score_exam
from .shuffle import question_order

__all__ = [
    "State", "FINAL", "Refused", "Attempt", "new_attempt",
    "Start", "Answer", "Flag", "Goto", "Fetch", "Event", "Submit",
    "Expire", "Pause", "Resume", "Extend", "Terminate", "Lost",
    "Outcome", "apply", "replay", "progress", "MAX_EXTEND_MS",
]

MAX_EXTEND_MS = 86_400_000


class State(StrEnum):
    READY = "ready"
    ACTIVE = "active"
    PAUSED = "paused"
    SUBMITTED = "submitted"
    EXPIRED = "expired"
    TERMINATED = "terminated"


FINAL = frozenset({State.SUBMITTED, State.EXPIRED, State.TERMINATED})


@dataclass(frozen=True, slots=True)
class Attempt:
    """Immutable snapshot of an attempt.  ``answers`` maps question id to the
    saved (normalized) value; it is never mutated, every change builds a new
    dict."""

    id: str
    exam_id: str
    exam_version: int
    user: str
    name: str
    seed: str
    duration_ms: int
    created_at: int
    state: State = State.READY
    last_id: int = 0
    index: int = 0
    started_at: int | None = None
    paused_at: int | None = None
    paused_ms: int = 0
    extended_ms: int = 0
    answers: Mapping[str, Value] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    events: int = 0
    ended_at: int | None = None
    end_reason: str | None = None
    result: Result | None = None

    def deadline(self, now: int) -> int | None:
        """None before start; else start + duration + extensions + completed
        pauses, plus the running pause while paused.  For a final attempt the
        deadline as it stood when it ended."""
        if self.started_at is None:
            return None
        d = self.started_at + self.duration_ms + self.extended_ms + self.paused_ms
        if self.state is State.PAUSED and self.paused_at is not None:
            d += max(0, now - self.paused_at)
        return d

    def remaining_ms(self, now: int) -> int:
        """ready: the full allowance; active: time to the deadline (>= 0);
        paused: frozen at its value when paused (plus extensions); final: 0."""
        s = self.state
        if s is State.READY:
            return self.duration_ms + self.extended_ms
        if s in FINAL:
            return 0
        if s is State.PAUSED and self.paused_at is not None:
            # deadline(now) - now with the running pause term cancelled out.
            return max(0, self.deadline(self.paused_at) - self.paused_at)  # type: ignore[operator]
        return max(0, self.deadline(now) - now)  # type: ignore[operator]


def new_attempt(*, id: str, exam: Exam, user: str, name: str, seed: str, now: int) -> Attempt:
    """A fresh READY attempt at ``exam``'s current version and duration."""
    return Attempt(
        id=id, exam_id=exam.id, exam_version=exam.version, user=user, name=name,
        seed=seed, duration_ms=exam.duration_ms, created_at=now,
    )


# --------------------------------------------------------------------------
# Commands.  Candidate commands carry ``req``, the client's request id.

@dataclass(frozen=True, slots=True)
class Start:
    req: int


@dataclass(frozen=True, slots=True)
class Answer:
    req: int
    q: str
    value: object


@dataclass(frozen=True, slots=True)
class Flag:
    req: int
    q: str
    on: bool


@dataclass(frozen=True, slots=True)
class Goto:
    req: int
    index: int


@dataclass(frozen=True, slots=True)
class Event:
    req: int
    kind: str


@dataclass(frozen=True, slots=True)
class Fetch:
    """The candidate asked for questions again: read-only, but its id is consumed (not once the attempt is final)."""

    req: int


@dataclass(frozen=True, slots=True)
class Submit:
    req: int


@dataclass(frozen=True, slots=True)
class Expire:
    pass


@dataclass(frozen=True, slots=True)
class Pause:
    by: str


@dataclass(frozen=True, slots=True)
class Resume:
    by: str


@dataclass(frozen=True, slots=True)
class Extend:
    ms: int
    by: str


@dataclass(frozen=True, slots=True)
class Terminate:
    reason: str
    by: str


@dataclass(frozen=True, slots=True)
class Lost:
    """The store lost acknowledged work of the attempt; ``acked`` is the highest request id the
    client saw acknowledged (0: none). A system command: it carries no request id of its own."""

    acked: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of an accepted command.  ``duplicate``: a repeat, nothing
    applied.  ``reply``: extra ack fields.  ``time_changed``: the clock's
    deadline/remaining/running state changed.  ``ended``: the attempt just
    became final and ``attempt.result`` is set.  ``answered``: the one
    question whose saved answer an ``Answer`` set or cleared; every other
    command leaves ``attempt.answers`` the very same mapping."""

    attempt: Attempt
    duplicate: bool = False
    reply: Mapping[str, object] = field(default_factory=dict)
    time_changed: bool = False
    ended: bool = False
    answered: str | None = None


_CANDIDATE = (Start, Answer, Flag, Goto, Fetch, Event, Submit)

_R, _A, _P, _X = State.READY, State.ACTIVE, State.PAUSED, State.EXPIRED

# Per command: state -> None (accepted) or the refusal code.  A state not
# listed refuses the command with "not_active".  A candidate's work on an
# expired attempt is refused with "time_up": that is why it ended.
_ACCEPTS: dict[type, dict[State, str | None]] = {
    Start: {_R: None, _A: None, _P: None},
    Answer: {_A: None, _R: "not_started", _X: "time_up"},
    Flag: {_A: None, _R: "not_started", _X: "time_up"},
    Goto: {_A: None, _R: "not_started", _X: "time_up"},
    Event: {_R: None, _A: None, _P: None},
    Fetch: {_R: "not_started", _A: None, _P: None, State.SUBMITTED: None, _X: None, State.TERMINATED: None},
    Submit: {_A: None, _R: "not_started", _X: "time_up"},
    Expire: {_A: None},
    Pause: {_A: None},
    Resume: {_P: None},
    Extend: {_R: None, _A: None, _P: None},
    Terminate: {_R: None, _A: None, _P: None},
    Lost: {_R: None, _A: None, _P: None},
}

# Commands refused with time_up when ACTIVE and now > deadline + grace.
_TIMED = frozenset({Answer, Flag, Goto, Submit, Pause})

_MESSAGES = {
    "not_started": "the attempt has not been started",
    "not_active": "the attempt is not active",
    "time_up": "the time is up",
    "unknown_question": "no such question",
    "navigation": "question is closed",
    "not_due": "the deadline has not passed yet",
}


_FIELDS = tuple(f.name for f in dataclasses.fields(Attempt))
_new = object.__new__
_set = object.__setattr__


def _evolve(a: Attempt, **changes: object) -> Attempt:
    """``dataclasses.replace(a, **changes)`` for the transitions: ``a`` with ``changes`` (field names only).

    The same value, at a fifth of the cost on the answer path: the fields are
    copied as they are instead of going back through ``__init__`` (which
    checks nothing for ``Attempt``).
    """
    new = _new(Attempt)
    for name in _FIELDS:
        _set(new, name, getattr(a, name))
    for name, value in changes.items():
        _set(new, name, value)
    return new


def _refuse(code: str, message: str | None = None) -> Refused:
    return Refused(code, message or _MESSAGES.get(code, code))


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finish(a: Attempt, exam: Exam, state: State, reason: str, at: int, **changes: object) -> Attempt:
    return _evolve(
        a, state=state, end_reason=reason, ended_at=at,
        result=score_exam(exam, a.answers), **changes,
    )


def _position(exam: Exam, seed: str, qi: int) -> int:
    """Candidate position of ``exam.questions[qi]``, as ``layout().position``."""
    if not exam.shuffle_questions:
        return qi
    return question_order(exam, seed).index(qi)


def apply(attempt: Attempt, exam: Exam, cmd: object, *, now: int, grace_ms: int) -> Outcome:
    """Apply one command at time ``now``.  Raises :class:`Refused` (and
    nothing changed) when the command is not allowed."""
    a = attempt
    kind = type(cmd)
    gate = _ACCEPTS.get(kind)
    if gate is None:
        raise _refuse("bad_request", "unknown command")

    candidate = kind in _CANDIDATE
    if candidate:
        req = cmd.req  # type: ignore[attr-defined]
        if not _is_int(req) or req < 1:
            raise _refuse("bad_request", "request id must be a positive integer")
        if req <= a.last_id:
            return Outcome(a, duplicate=True)

    code = gate.get(a.state, "not_active")
    if code is not None:
        raise _refuse(code)
    if kind in _TIMED and a.state is _A and now > a.deadline(now) + grace_ms:  # type: ignore[operator]
        raise _refuse("time_up")

    if kind is Start:
        if a.state is _R:
            a = _evolve(a, state=_A, started_at=now, last_id=req)
            return Outcome(a, reply={"deadline": a.deadline(now)}, time_changed=True)
        return Outcome(_evolve(a, last_id=req), reply={"deadline": a.deadline(now)})

    if kind is Answer or kind is Flag:
        qid = cmd.q  # type: ignore[attr-defined]
        qi = exam.by_id.get(qid) if isinstance(qid, str) else None
        if qi is None:
            raise _refuse("unknown_question")
        index = a.index
        if exam.navigation == "linear":
            # the candidate is where it works: answering or flagging a later question moves
            # the position there (closing what lies before it), as a goto would
            index = _position(exam, a.seed, qi)
            if index < a.index:
                raise _refuse("navigation")
        if kind is Answer:
            value = check_value(exam.questions[qi], cmd.value)  # type: ignore[attr-defined]
            answers = dict(a.answers)
            if value is None:
                answers.pop(qid, None)
            else:
                answers[qid] = value
            return Outcome(_evolve(a, answers=answers, last_id=req, index=index), answered=qid)
        on = cmd.on  # type: ignore[attr-defined]
        if not isinstance(on, bool):
            raise _refuse("bad_request", "on must be a boolean")
        flags = a.flags | {qid} if on else a.flags - {qid}
        return Outcome(_evolve(a, flags=flags, last_id=req, index=index))

    if kind is Goto:
        index = cmd.index  # type: ignore[attr-defined]
        if not _is_int(index) or not 0 <= index < exam.total:
            raise _refuse("bad_request", "index out of range")
        if exam.navigation == "linear" and index < a.index:
            raise _refuse("navigation")
        return Outcome(_evolve(a, index=index, last_id=req))

    if kind is Fetch:
        if a.state in FINAL:
            # a final attempt never changes (its record is already on its way to the results
            # store): review is answered, but its id is not recorded
            return Outcome(a)
        return Outcome(_evolve(a, last_id=req))

    if kind is Event:
        return Outcome(_evolve(a, events=a.events + 1, last_id=req))

    if kind is Submit:
        return Outcome(_finish(a, exam, State.SUBMITTED, "submitted", now, last_id=req), ended=True)

    if kind is Expire:
        due = a.deadline(now)
        if now < due + grace_ms:  # type: ignore[operator]
            raise _refuse("not_due")
        return Outcome(_finish(a, exam, State.EXPIRED, "time_up", due), ended=True)  # type: ignore[arg-type]

    if kind is Pause:
        return Outcome(_evolve(a, state=_P, paused_at=now), time_changed=True)

    if kind is Resume:
        paused = max(0, now - a.paused_at)  # type: ignore[operator]
        a = _evolve(a, state=_A, paused_ms=a.paused_ms + paused, paused_at=None)
        return Outcome(a, time_changed=True)

    if kind is Extend:
        ms = cmd.ms  # type: ignore[attr-defined]
        if not _is_int(ms) or not 1 <= ms <= MAX_EXTEND_MS:
            raise _refuse("bad_request", f"extension must be 1 to {MAX_EXTEND_MS} ms")
        return Outcome(_evolve(a, extended_ms=a.extended_ms + ms), time_changed=True)

    if kind is Lost:
        acked = cmd.acked  # type: ignore[attr-defined]
        if not _is_int(acked) or acked < 0:
            raise _refuse("bad_request", "acked must be a non-negative integer")
        return Outcome(_evolve(a, last_id=max(a.last_id, acked), events=a.events + 1))

    # Terminate
    reason = cmd.reason  # type: ignore[attr-defined]
    changes: dict[str, object] = {}
    if a.state is _P and a.paused_at is not None:
        changes = {"paused_ms": a.paused_ms + max(0, now - a.paused_at), "paused_at": None}
    return Outcome(_finish(a, exam, State.TERMINATED, reason, now, **changes), ended=True)


def replay(attempt: Attempt, exam: Exam, steps: Iterable[tuple[object, int]], *, grace_ms: int) -> Attempt:
    """Apply ``(command, now)`` steps in order, skipping refused ones."""
    for cmd, now in steps:
        try:
            attempt = apply(attempt, exam, cmd, now=now, grace_ms=grace_ms).attempt
        except Refused:
            continue
    return attempt


def progress(a: Attempt, total: int, now: int, result: Mapping[str, object] | None = None) -> dict[str, object]:
    """An attempt as a proctor sees it at ``now``: one row of the live view, JSON values only.

    ``total`` is the number of questions of the attempt's exam version;
    ``result`` the wire result of a final attempt (else ``a.result`` is used).
    ``score`` and ``percent`` are None until the attempt is final.
    """
    score = percent = None
    if a.state in FINAL:
        if result is not None:
            score, percent = result.get("score"), result.get("percent")
        elif a.result is not None:
            score, percent = number(a.result.score), number(a.result.percent)
    return {
        "user": a.user,
        "name": a.name,
        "state": a.state.value,
        "answered": len(a.answers),
        "total": total,
        "flagged": len(a.flags),
        "index": a.index,
        "deadline": a.deadline(now),
        "remaining_ms": a.remaining_ms(now),
        "events": a.events,
        "reason": a.end_reason,
        "score": score,
        "percent": percent,
    }
