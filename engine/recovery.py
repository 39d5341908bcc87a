"""When the store lost an attempt: the ticket that carries its clock, and what is put back.

The live store (Redis) is the authority for a running attempt, and it can lose
data: a restart without persistence, a failover to a replica that missed the
last writes. The attempt's id and seed are derived from (secret, exam, user),
so a lost attempt is found again under the same id with the same shuffles;
what is gone is its clock (start, pauses, extensions), its answers, flags and
position, and ``last_id``. Two rules put it back without ever handing out the
full time again silently:

* **Tickets.** The server hands the client a *ticket* with every change of the
  clock (``seal(secret, clock_of(attempt, now))``): the clock's facts, signed
  with the deployment's secret (HMAC-SHA256, key separated by a label), so any
  node can check it and no client can forge or alter one. The client keeps
  the newest and sends it back on ``hello``. A ticket says nothing the client
  may not know; it is opaque only in that clients must not build or change it.
* **Restore.** ``restore`` gives the attempt to put back: with a verified
  clock of this attempt and exam version, the attempt as the clock says
  (started when it started, its pauses and extensions, so the deadline is
  where it was: time that passed stays passed, and a deadline already over
  ends the attempt as usual); without one, *held*: paused from ``now``, so its
  clock does not run until a proctor resumes (or extends, or terminates) it.
  Either way it has no answers, flags or position: those come back only as
  new requests from the client, each under the normal rules
  (``engine.apply``), deadline included. Then ``Lost(acked)`` marks the ids the
  client saw acknowledged as used.

Ticket text (ASCII, 13 fields joined by ``.``)::

    t1 . attempt . exam_version . duration_ms . created_at . state (r|a|p) . started_at|_ .
    paused_at|_ . paused_ms . extended_ms . last_id . issued_at .
    hex(HMAC-SHA256(secret, "examwire-ticket" 0x00 <the text before the last dot>))[:32]
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from .attempt import FINAL, Attempt, State
from .exam import Exam

__all__ = ["Clock", "clock_of", "seal", "unseal", "restore", "MAX_TICKET_LEN"]

#: A ticket is at most this long (they are about 160 characters).
MAX_TICKET_LEN = 512

_VERSION = "t1"
_LABEL = b"examwire-ticket\x00"
_MAC_HEX = 32  # 128 bits of the HMAC
_NONE = "_"
_STATE_CODES = {State.READY: "r", State.ACTIVE: "a", State.PAUSED: "p"}
_STATES = {code: state for state, code in _STATE_CODES.items()}
_DIGITS = frozenset("0123456789")
_MAX_DIGITS = 16  # any ms time or id of the protocol (below 2^53) fits
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True, slots=True)
class Clock:
    """The facts that fix a live attempt's deadline, as of ``issued_at``, and its ``last_id`` then."""

    attempt: str
    exam_version: int
    duration_ms: int
    created_at: int
    state: State  # READY, ACTIVE or PAUSED
    started_at: int | None
    paused_at: int | None
    paused_ms: int
    extended_ms: int
    last_id: int
    issued_at: int


def clock_of(a: Attempt, now: int) -> Clock | None:
    """The clock of a live attempt at ``now``; None for a final one (a final attempt is never restored)."""
    if a.state in FINAL:
        return None
    return Clock(
        attempt=a.id, exam_version=a.exam_version, duration_ms=a.duration_ms, created_at=a.created_at,
        state=a.state, started_at=a.started_at, paused_at=a.paused_at, paused_ms=a.paused_ms,
        extended_ms=a.extended_ms, last_id=a.last_id, issued_at=now,
    )


def _mac(secret: bytes, body: str) -> str:
    return hmac.new(secret, _LABEL + body.encode("ascii"), hashlib.sha256).hexdigest()[:_MAC_HEX]


def _opt(v: int | None) -> str:
    return _NONE if v is None else str(v)


def seal(secret: bytes, clock: Clock) -> str:
    """The ticket of ``clock``: its text, signed."""
    body = ".".join((
        _VERSION, clock.attempt, str(clock.exam_version), str(clock.duration_ms), str(clock.created_at),
        _STATE_CODES[clock.state], _opt(clock.started_at), _opt(clock.paused_at), str(clock.paused_ms),
        str(clock.extended_ms), str(clock.last_id), str(clock.issued_at),
    ))  # fmt: skip
    return body + "." + _mac(secret, body)


def _int(text: str) -> int:
    if not 1 <= len(text) <= _MAX_DIGITS or not _DIGITS.issuperset(text):
        raise ValueError
    return int(text)


def _opt_int(text: str) -> int | None:
    return None if text == _NONE else _int(text)


def unseal(secret: bytes, ticket: object) -> Clock | None:
    """The clock a ticket signed with ``secret`` carries; None for anything else (never raises)."""
    if not isinstance(ticket, str) or len(ticket) > MAX_TICKET_LEN or not ticket.isascii():
        return None
    body, dot, mac = ticket.rpartition(".")
    if not dot or len(mac) != _MAC_HEX or not hmac.compare_digest(mac, _mac(secret, body)):
        return None
    parts = body.split(".")
    if len(parts) != 12 or parts[0] != _VERSION or not parts[1] or not _ID_CHARS.issuperset(parts[1]):
        return None
    try:
        state = _STATES[parts[5]]
        clock = Clock(
            attempt=parts[1], exam_version=_int(parts[2]), duration_ms=_int(parts[3]), created_at=_int(parts[4]),
            state=state, started_at=_opt_int(parts[6]), paused_at=_opt_int(parts[7]), paused_ms=_int(parts[8]),
            extended_ms=_int(parts[9]), last_id=_int(parts[10]), issued_at=_int(parts[11]),
        )  # fmt: skip
    except (KeyError, ValueError):
        return None
    started, paused = clock.started_at is not None, clock.paused_at is not None
    if (state is State.READY and (started or paused)) or (state is State.ACTIVE and (not started or paused)) or (
        state is State.PAUSED and not (started and paused)
    ):
        return None
    return clock


def restore(*, id: str, exam: Exam, user: str, name: str, seed: str, now: int, clock: Clock | None) -> Attempt:
    """The attempt to put back when the store lost it (see the module's rule).

    ``clock`` counts only when it is of this attempt (``id``) and of ``exam``'s
    version; otherwise the attempt is held (paused from ``now``, started then).
    """
    if clock is not None and clock.attempt == id and clock.exam_version == exam.version:
        return Attempt(
            id=id, exam_id=exam.id, exam_version=exam.version, user=user, name=name, seed=seed,
            duration_ms=clock.duration_ms, created_at=clock.created_at, state=clock.state,
            started_at=clock.started_at, paused_at=clock.paused_at, paused_ms=clock.paused_ms,
            extended_ms=clock.extended_ms,
        )  # fmt: skip
    return Attempt(
        id=id, exam_id=exam.id, exam_version=exam.version, user=user, name=name, seed=seed,
        duration_ms=exam.duration_ms, created_at=now, state=State.PAUSED, started_at=now, paused_at=now,
    )  # fmt: skip
