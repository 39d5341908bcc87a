"""The proctor message family.

A proctor connection starts with the same ``hello`` as a candidate's
(:data:`ProctorHello` is :class:`protocol.candidate.Hello`). Errors follow the
candidate rules (see :func:`protocol.candidate.parse_request`).

Our additions: ``extend``, ``pause`` and ``resume`` may carry ``all: true``
instead of ``attempt`` (every attempt of the exam where the action is
allowed; the type's ``attempt`` is then None), and ``ping`` works as on a
candidate connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from . import _fields as f
from .candidate import Hello, Ping, parse_hello, parse_ping

__all__ = [
    "ProctorHello",
    "Extend",
    "Pause",
    "Resume",
    "Terminate",
    "Message",
    "ProctorRequest",
    "parse_proctor_request",
    "ProctorWelcome",
    "Snapshot",
    "Update",
    "ProctorServerMessage",
    "MAX_ATTEMPT_LEN",
    "MAX_EXTEND_SECONDS",
    "MAX_REASON_LEN",
    "MAX_MESSAGE_LEN",
]

MAX_ATTEMPT_LEN = 128
MAX_EXTEND_SECONDS = 86_400
MAX_REASON_LEN = 200
MAX_MESSAGE_LEN = 2000

ProctorHello = Hello

# --------------------------------------------------------------------------
# Proctor -> server


def _target(attempt: str | None) -> dict:
    return {"all": True} if attempt is None else {"attempt": attempt}


@dataclass(frozen=True, slots=True)
class Extend:
    """``attempt`` None: every attempt of the exam (wire ``all: true``)."""

    t: ClassVar[str] = "extend"
    id: int
    attempt: str | None
    seconds: int

    def to_wire(self) -> dict:
        return {"t": "extend", "id": self.id, **_target(self.attempt), "seconds": self.seconds}


@dataclass(frozen=True, slots=True)
class Pause:
    """``attempt`` None: every attempt of the exam (wire ``all: true``)."""

    t: ClassVar[str] = "pause"
    id: int
    attempt: str | None

    def to_wire(self) -> dict:
        return {"t": "pause", "id": self.id, **_target(self.attempt)}


@dataclass(frozen=True, slots=True)
class Resume:
    """``attempt`` None: every attempt of the exam (wire ``all: true``)."""

    t: ClassVar[str] = "resume"
    id: int
    attempt: str | None

    def to_wire(self) -> dict:
        return {"t": "resume", "id": self.id, **_target(self.attempt)}


@dataclass(frozen=True, slots=True)
class Terminate:
    t: ClassVar[str] = "terminate"
    id: int
    attempt: str
    reason: str

    def to_wire(self) -> dict:
        return {"t": "terminate", "id": self.id, "attempt": self.attempt, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Message:
    t: ClassVar[str] = "message"
    id: int
    attempt: str
    text: str

    def to_wire(self) -> dict:
        return {"t": "message", "id": self.id, "attempt": self.attempt, "text": self.text}


ProctorRequest = Hello | Extend | Pause | Resume | Terminate | Message | Ping


def _attempt(m: dict, rid: int) -> str:
    return f.req_str(m, "attempt", 1, MAX_ATTEMPT_LEN, rid)


def _attempt_or_all(m: dict, rid: int) -> str | None:
    """``attempt``, or None for ``all: true`` (exactly one of the two)."""
    if "all" not in m:
        return _attempt(m, rid)
    if not f.req_bool(m, "all", rid) or "attempt" in m:
        raise f.RequestError(f.BAD_REQUEST, "give either 'attempt' or 'all: true'", rid)
    return None


def _parse_extend(m: dict) -> Extend:
    rid = f.req_id(m)
    attempt = _attempt_or_all(m, rid)
    return Extend(rid, attempt, f.req_int(m, "seconds", 1, MAX_EXTEND_SECONDS, rid))


def _parse_pause(m: dict) -> Pause:
    rid = f.req_id(m)
    return Pause(rid, _attempt_or_all(m, rid))


def _parse_resume(m: dict) -> Resume:
    rid = f.req_id(m)
    return Resume(rid, _attempt_or_all(m, rid))


def _parse_terminate(m: dict) -> Terminate:
    rid = f.req_id(m)
    attempt = _attempt(m, rid)
    return Terminate(rid, attempt, f.req_str(m, "reason", 1, MAX_REASON_LEN, rid))


def _parse_message(m: dict) -> Message:
    rid = f.req_id(m)
    attempt = _attempt(m, rid)
    return Message(rid, attempt, f.req_str(m, "text", 1, MAX_MESSAGE_LEN, rid))


_PARSERS = {
    "hello": parse_hello,
    "extend": _parse_extend,
    "pause": _parse_pause,
    "resume": _parse_resume,
    "terminate": _parse_terminate,
    "message": _parse_message,
    "ping": parse_ping,
}


def parse_proctor_request(m: dict) -> ProctorRequest:
    """Validate a decoded proctor message and return its request type.

    Same rules as :func:`protocol.candidate.parse_request`: unknown extra
    fields are ignored; raises :class:`RequestError` only (``unknown_type``,
    ``bad_request``), carrying the message's ``id`` whenever that is valid.
    """
    return f.dispatch(m, _PARSERS)  # type: ignore[return-value]


# --------------------------------------------------------------------------
# Server -> proctor


@dataclass(frozen=True, slots=True)
class ProctorWelcome:
    """Wire type ``welcome`` on a proctor connection."""

    t: ClassVar[str] = "welcome"
    exam: dict
    server_time: int

    def to_wire(self) -> dict:
        return {"t": "welcome", "exam": self.exam, "server_time": self.server_time}


@dataclass(frozen=True, slots=True)
class Snapshot:
    t: ClassVar[str] = "snapshot"
    attempts: list

    def to_wire(self) -> dict:
        return {"t": "snapshot", "attempts": self.attempts}


@dataclass(frozen=True, slots=True)
class Update:
    """``update``: ``{"t":"update","attempt":attempt, **fields}``."""

    t: ClassVar[str] = "update"
    attempt: str
    fields: Mapping

    def __post_init__(self) -> None:
        if "t" in self.fields or "attempt" in self.fields:
            raise ValueError("Update fields must not contain 't' or 'attempt'")

    def to_wire(self) -> dict:
        d = {"t": "update", "attempt": self.attempt}
        d.update(self.fields)
        return d


ProctorServerMessage = ProctorWelcome | Snapshot | Update
