"""The candidate message family.

Client -> server requests are parsed by :func:`parse_request` into frozen
dataclasses; server -> client messages are frozen dataclasses whose
``to_wire()`` gives the plain map to :func:`protocol.codec.encode`.

Requests also have ``to_wire()`` (for test and load clients), and
``parse_request(r.to_wire()) == r`` for every valid request ``r``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from . import _fields as f
from .codec import INT_MAX, INT_MIN, MAX_ID
from .errors import ErrorCode, RequestError

__all__ = [
    # requests
    "Hello",
    "Start",
    "Answer",
    "Flag",
    "Goto",
    "Fetch",
    "Event",
    "Submit",
    "Ping",
    "Request",
    "parse_request",
    # server messages
    "Welcome",
    "Ack",
    "Batch",
    "Time",
    "StateChange",
    "Notice",
    "ResultMsg",
    "Pong",
    "ServerMessage",
    # limits
    "PROTOCOL_VERSION",
    "MAX_TOKEN_LEN",
    "MAX_CLIENT_LEN",
    "MAX_TICKET_LEN",
    "MAX_QID_LEN",
    "MAX_INDEX",
    "MAX_FETCH_COUNT",
    "MAX_KIND_LEN",
    "MAX_DETAIL_BYTES",
    "MAX_TEXT_VALUE_LEN",
    "MAX_LIST_VALUE_ITEMS",
    "MAX_LIST_ITEM_LEN",
    "MAX_NUMERIC_VALUE",
]

PROTOCOL_VERSION = 1
MAX_TOKEN_LEN = 16_384
MAX_CLIENT_LEN = 200
#: ``hello.ticket``, ``welcome.ticket``, ``time.ticket``: opaque text from the server (``engine.MAX_TICKET_LEN``).
MAX_TICKET_LEN = 512
MAX_QID_LEN = 128
MAX_INDEX = 100_000
MAX_FETCH_COUNT = 100
MAX_KIND_LEN = 32
MAX_DETAIL_BYTES = 1024
MAX_TEXT_VALUE_LEN = 10_000
MAX_LIST_VALUE_ITEMS = 100
MAX_LIST_ITEM_LEN = 200
MAX_NUMERIC_VALUE = 2**53

_KIND_RE = re.compile(r"[a-z0-9_]+", re.ASCII)

# --------------------------------------------------------------------------
# Client -> server


@dataclass(frozen=True, slots=True)
class Hello:
    """``hello``: ``token`` may be ``None`` (Authorization header); ``v`` is not
    checked here (absent means 1): the handler decides what a wrong version means.

    Optional, for a candidate that resumes (docs/protocol.md, "Loss is detected,
    never silent"): ``acked``, the highest request id the client saw
    acknowledged for this attempt (``None`` when absent), and ``ticket``, the
    newest ticket the server gave it (opaque; checked by the handler)."""

    t: ClassVar[str] = "hello"
    token: str | None
    v: int
    client: str | None
    acked: int | None = None
    ticket: str | None = None

    def to_wire(self) -> dict:
        d: dict = {"t": "hello", "v": self.v}
        if self.token is not None:
            d["token"] = self.token
        if self.client is not None:
            d["client"] = self.client
        if self.acked is not None:
            d["acked"] = self.acked
        if self.ticket is not None:
            d["ticket"] = self.ticket
        return d


@dataclass(frozen=True, slots=True)
class Start:
    t: ClassVar[str] = "start"
    id: int

    def to_wire(self) -> dict:
        return {"t": "start", "id": self.id}


@dataclass(frozen=True, slots=True)
class Answer:
    """``answer``: ``value`` is ``None`` (clear), a bool, an int, a finite float,
    a str or a list of str. Whether it fits the question is checked elsewhere."""

    t: ClassVar[str] = "answer"
    id: int
    q: str
    value: object

    def to_wire(self) -> dict:
        return {"t": "answer", "id": self.id, "q": self.q, "value": self.value}


@dataclass(frozen=True, slots=True)
class Flag:
    t: ClassVar[str] = "flag"
    id: int
    q: str
    on: bool

    def to_wire(self) -> dict:
        return {"t": "flag", "id": self.id, "q": self.q, "on": self.on}


@dataclass(frozen=True, slots=True)
class Goto:
    t: ClassVar[str] = "goto"
    id: int
    index: int

    def to_wire(self) -> dict:
        return {"t": "goto", "id": self.id, "index": self.index}


@dataclass(frozen=True, slots=True)
class Fetch:
    """``fetch``: ``start`` is the wire field ``from``."""

    t: ClassVar[str] = "fetch"
    id: int
    start: int
    count: int

    def to_wire(self) -> dict:
        return {"t": "fetch", "id": self.id, "from": self.start, "count": self.count}


@dataclass(frozen=True, slots=True)
class Event:
    """``event``: ``detail`` is ``None`` when absent (or null)."""

    t: ClassVar[str] = "event"
    id: int
    kind: str
    detail: object

    def to_wire(self) -> dict:
        d: dict = {"t": "event", "id": self.id, "kind": self.kind}
        if self.detail is not None:
            d["detail"] = self.detail
        return d


@dataclass(frozen=True, slots=True)
class Submit:
    t: ClassVar[str] = "submit"
    id: int

    def to_wire(self) -> dict:
        return {"t": "submit", "id": self.id}


@dataclass(frozen=True, slots=True)
class Ping:
    t: ClassVar[str] = "ping"
    ct: int | float

    def to_wire(self) -> dict:
        return {"t": "ping", "ct": self.ct}


Request = Hello | Start | Answer | Flag | Goto | Fetch | Event | Submit | Ping


def parse_hello(m: dict) -> Hello:
    rid = f.valid_id(m)
    token = m.get("token")
    if token is not None and not (type(token) is str and 1 <= len(token) <= MAX_TOKEN_LEN):
        raise RequestError(
            ErrorCode.BAD_REQUEST,
            f"field 'token' must be a string of 1..{MAX_TOKEN_LEN} characters",
            rid,
        )
    v = m.get("v", PROTOCOL_VERSION)
    if type(v) is not int or not INT_MIN <= v <= INT_MAX:
        raise RequestError(ErrorCode.BAD_REQUEST, "field 'v' must be an integer", rid)
    client = m.get("client")
    if not (type(client) is str and len(client) <= MAX_CLIENT_LEN):
        client = None  # informational only: ignore rather than fail
    acked = m.get("acked")
    if acked is not None and not (type(acked) is int and 0 <= acked <= MAX_ID):
        raise RequestError(ErrorCode.BAD_REQUEST, "field 'acked' must be an integer 0..2^53-1", rid)
    ticket = m.get("ticket")
    if ticket is not None and not (type(ticket) is str and 1 <= len(ticket) <= MAX_TICKET_LEN):
        raise RequestError(
            ErrorCode.BAD_REQUEST, f"field 'ticket' must be a string of 1..{MAX_TICKET_LEN} characters", rid
        )
    return Hello(token, v, client, acked, ticket)


def _parse_start(m: dict) -> Start:
    return Start(f.req_id(m))


def _check_value(value: object) -> bool:
    if value is None:
        return True
    tv = type(value)
    if tv is bool:
        return True
    if tv is int:
        return -MAX_NUMERIC_VALUE <= value <= MAX_NUMERIC_VALUE  # type: ignore[operator]
    if tv is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    if tv is str:
        return len(value) <= MAX_TEXT_VALUE_LEN  # type: ignore[arg-type]
    if tv is list:
        if len(value) > MAX_LIST_VALUE_ITEMS:  # type: ignore[arg-type]
            return False
        for item in value:  # type: ignore[attr-defined]
            if type(item) is not str or len(item) > MAX_LIST_ITEM_LEN:
                return False
        return True
    return False


def _parse_answer(m: dict) -> Answer:
    rid = f.req_id(m)
    q = f.req_str(m, "q", 1, MAX_QID_LEN, rid)
    if "value" not in m:
        raise RequestError(ErrorCode.BAD_REQUEST, "missing field 'value'", rid)
    value = m["value"]
    if not _check_value(value):
        raise RequestError(
            ErrorCode.BAD_VALUE,
            "field 'value' must be null, a boolean, a number, a string "
            f"(at most {MAX_TEXT_VALUE_LEN} characters) or a list of at most "
            f"{MAX_LIST_VALUE_ITEMS} strings (each at most {MAX_LIST_ITEM_LEN} characters)",
            rid,
        )
    return Answer(rid, q, value)


def _parse_flag(m: dict) -> Flag:
    rid = f.req_id(m)
    return Flag(rid, f.req_str(m, "q", 1, MAX_QID_LEN, rid), f.req_bool(m, "on", rid))


def _parse_goto(m: dict) -> Goto:
    rid = f.req_id(m)
    return Goto(rid, f.req_int(m, "index", 0, MAX_INDEX, rid))


def _parse_fetch(m: dict) -> Fetch:
    rid = f.req_id(m)
    start = f.req_int(m, "from", 0, MAX_INDEX, rid)
    count = f.req_int(m, "count", 1, MAX_FETCH_COUNT, rid)
    return Fetch(rid, start, count)


def _parse_event(m: dict) -> Event:
    rid = f.req_id(m)
    kind = f.req_str(m, "kind", 1, MAX_KIND_LEN, rid)
    if _KIND_RE.fullmatch(kind) is None:
        raise RequestError(ErrorCode.BAD_REQUEST, "field 'kind' must match [a-z0-9_]+", rid)
    detail = f.opt_json(m, "detail", MAX_DETAIL_BYTES, rid)
    return Event(rid, kind, detail)


def _parse_submit(m: dict) -> Submit:
    return Submit(f.req_id(m))


def parse_ping(m: dict) -> Ping:
    return Ping(f.req_number(m, "ct", f.valid_id(m)))


_PARSERS = {
    "hello": parse_hello,
    "start": _parse_start,
    "answer": _parse_answer,
    "flag": _parse_flag,
    "goto": _parse_goto,
    "fetch": _parse_fetch,
    "event": _parse_event,
    "submit": _parse_submit,
    "ping": parse_ping,
}


def parse_request(m: dict) -> Request:
    """Validate a decoded candidate message and return its request type.

    Unknown extra fields are ignored. Raises :class:`RequestError` only:
    ``unknown_type`` for an unknown ``t``; ``bad_request`` for a missing or
    ill-typed field; ``bad_value`` for an ``answer`` value of a disallowed
    shape. The error carries the message's ``id`` whenever that is valid.
    """
    return f.dispatch(m, _PARSERS)  # type: ignore[return-value]


# --------------------------------------------------------------------------
# Server -> client


@dataclass(frozen=True, slots=True)
class Welcome:
    t: ClassVar[str] = "welcome"
    attempt: str
    exam: dict
    state: str
    server_time: int
    deadline: int | None
    remaining_ms: int
    last_id: int
    answers: dict
    flags: list
    index: int
    #: optional: the attempt's clock, signed, for the client to send back in ``hello`` (absent when final)
    ticket: str | None = None
    #: optional: sent (``true``) only when the server found it had lost acknowledged work of the attempt
    lost: bool = False

    def to_wire(self) -> dict:
        d = {
            "t": "welcome",
            "attempt": self.attempt,
            "exam": self.exam,
            "state": self.state,
            "server_time": self.server_time,
            "deadline": self.deadline,
            "remaining_ms": self.remaining_ms,
            "last_id": self.last_id,
            "answers": self.answers,
            "flags": self.flags,
            "index": self.index,
        }
        if self.ticket is not None:
            d["ticket"] = self.ticket
        if self.lost:
            d["lost"] = True
        return d


@dataclass(frozen=True, slots=True)
class Ack:
    """``ack``: ``{"t":"ack","id":id, **fields}``; a repeat is ``Ack(id, {"dup": True})``."""

    t: ClassVar[str] = "ack"
    id: int
    fields: Mapping = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "t" in self.fields or "id" in self.fields:
            raise ValueError("Ack fields must not contain 't' or 'id'")

    def to_wire(self) -> dict:
        d = {"t": "ack", "id": self.id}
        d.update(self.fields)
        return d


@dataclass(frozen=True, slots=True)
class Batch:
    """``batch``: ``start`` is the wire field ``from``."""

    t: ClassVar[str] = "batch"
    start: int
    questions: list
    total: int

    def to_wire(self) -> dict:
        return {"t": "batch", "from": self.start, "questions": self.questions, "total": self.total}


@dataclass(frozen=True, slots=True)
class Time:
    """``time``; ``ticket`` (optional) is the attempt's clock, signed, as in ``welcome``."""

    t: ClassVar[str] = "time"
    server_time: int
    deadline: int | None
    remaining_ms: int
    state: str
    ticket: str | None = None

    def to_wire(self) -> dict:
        d = {
            "t": "time",
            "server_time": self.server_time,
            "deadline": self.deadline,
            "remaining_ms": self.remaining_ms,
            "state": self.state,
        }
        if self.ticket is not None:
            d["ticket"] = self.ticket
        return d


@dataclass(frozen=True, slots=True)
class StateChange:
    """Wire type ``state``; ``reason`` is sent as null when ``None``."""

    t: ClassVar[str] = "state"
    state: str
    reason: str | None = None

    def to_wire(self) -> dict:
        return {"t": "state", "state": self.state, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Notice:
    """``notice``: ``sender`` is the wire field ``from``."""

    t: ClassVar[str] = "notice"
    text: str
    sender: str

    def to_wire(self) -> dict:
        return {"t": "notice", "text": self.text, "from": self.sender}


@dataclass(frozen=True, slots=True)
class ResultMsg:
    """Wire type ``result``."""

    t: ClassVar[str] = "result"
    score: int | float
    max_score: int | float
    percent: int | float
    passed: bool

    def to_wire(self) -> dict:
        return {
            "t": "result",
            "score": self.score,
            "max_score": self.max_score,
            "percent": self.percent,
            "passed": self.passed,
        }


@dataclass(frozen=True, slots=True)
class Pong:
    t: ClassVar[str] = "pong"
    ct: int | float
    st: int

    def to_wire(self) -> dict:
        return {"t": "pong", "ct": self.ct, "st": self.st}


ServerMessage = Welcome | Ack | Batch | Time | StateChange | Notice | ResultMsg | Pong
