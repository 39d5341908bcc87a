"""Helpers of the Locust harness (``loadtests/locustfile.py``) that need neither Locust nor gevent.

Kept apart so they can be read and unit-tested on their own: frame encoding
and checking, tokens (minted or read from a file), answer values by question
type, URLs, and the synchronized-start instant. Only ``msgpack`` and ``PyJWT``
(both dependencies of the project) are imported; nothing from ``examwire``,
so the harness runs against any Examwire node from a venv that holds only
``.[load]``.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
import msgpack

# WebSocket opcodes (RFC 6455), as websocket-client reports them
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8

ENCODINGS = ("msgpack", "json")
SYNC_GRID_S = 10.0  # --sync-start without --start-at: the next multiple of this many seconds ...
SYNC_MIN_LEAD_S = 3.0  # ... at least this long after spawning completed


class ProtocolError(Exception):
    """The server did something the protocol does not allow here (or refused a request)."""


class RequestRefused(ProtocolError):
    """An ``error`` reply to one of our requests."""

    def __init__(self, code: str, message: str, rid: int | None = None) -> None:
        super().__init__(f"error {code}: {message}" + (f" (id {rid})" if rid is not None else ""))
        self.code = code
        self.rid = rid


class UnexpectedClose(ProtocolError):
    """The server closed the connection (a close frame) when the client did not expect it."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"connection closed by server: {code}" + (f" {reason}" if reason else ""))
        self.code = code


class MalformedFrame(ProtocolError):
    """A frame that does not decode to a map with a string ``t``, or of the wrong frame type."""


# ------------------------------------------------------------------ frames


def encode(message: dict[str, Any], encoding: str) -> tuple[bytes | str, int]:
    """``(payload, opcode)`` of one message: a MessagePack binary frame or a JSON text frame."""
    if encoding == "msgpack":
        return msgpack.packb(message, use_bin_type=True), OPCODE_BINARY
    return json.dumps(message, separators=(",", ":")), OPCODE_TEXT


def decode(opcode: int, data: bytes | str, encoding: str) -> dict[str, Any]:
    """Decode one data frame; the server must answer in the frame type of our ``hello``."""
    want = OPCODE_BINARY if encoding == "msgpack" else OPCODE_TEXT
    if opcode != want:
        raise MalformedFrame(f"{'binary' if opcode == OPCODE_BINARY else 'text'} frame on a {encoding} connection")
    try:
        if encoding == "msgpack":
            obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
        else:
            obj = json.loads(data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:  # any decoder failure is the server's fault here
        raise MalformedFrame(f"frame does not decode as {encoding}: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise MalformedFrame(f"frame is not a map with a string 't': {str(obj)[:200]}")
    return obj


def close_code(data: bytes | None) -> tuple[int | None, str]:
    """Status code and reason of a close frame's payload."""
    if not data or len(data) < 2:
        return None, ""
    return int.from_bytes(data[:2], "big"), data[2:].decode("utf-8", "replace")


# ------------------------------------------------------------------ answers


def answer_value(question: dict[str, Any]) -> Any:
    """A valid value for a delivered question (``single`` and ``multiple`` use its first option)."""
    kind = question.get("type")
    options = question.get("options") or []
    if kind == "single":
        if not options:
            raise ProtocolError(f"single-choice question {question.get('id')!r} has no options")
        return options[0]["id"]
    if kind == "multiple":
        if not options:
            raise ProtocolError(f"multiple-choice question {question.get('id')!r} has no options")
        return [options[0]["id"]]
    if kind == "true_false":
        return True
    if kind == "numeric":
        return 1
    if kind == "text":
        return "answer"
    raise ProtocolError(f"question {question.get('id')!r} has unknown type {kind!r}")


# ------------------------------------------------------------------ URLs


def ws_base(host: str) -> str:
    """Locust's ``--host`` (``http://h:p`` or ``ws://h:p``, any path prefix kept) as a WebSocket base URL."""
    if not host:
        raise ValueError("no host: pass --host http://127.0.0.1:8000")
    parts = urlsplit(host if "://" in host else f"http://{host}")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"--host {host!r}: expected http(s):// or ws(s)://")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


# ------------------------------------------------------------------ tokens


def read_secret(secret_file: str | None) -> str | None:
    """The HS256 secret: ``--jwt-secret-file`` when given, else ``EXAMWIRE_JWT_SECRET``, else None."""
    if secret_file:
        value = Path(secret_file).expanduser().read_text().strip()
        if not value:
            raise ValueError(f"{secret_file} is empty")
        return value
    return os.environ.get("EXAMWIRE_JWT_SECRET") or None


def mint(secret: str, *, sub: str, role: str, exam: str, audience: str = "examwire", ttl_s: int = 4 * 3600) -> str:
    """An HS256 token like ``examwire token`` makes: ``sub``, ``role``, ``aud``, ``iat``, ``exp``, ``name``, ``exams``."""
    now = int(time.time())
    claims = {"sub": sub, "role": role, "aud": audience, "iat": now, "exp": now + ttl_s, "name": sub, "exams": [exam]}
    return jwt.encode(claims, secret, algorithm="HS256")


def token_subject(token: str) -> str:
    """The ``sub`` of a token, unverified (for logs and names only)."""
    try:
        return str(jwt.decode(token, options={"verify_signature": False}).get("sub", "?"))
    except jwt.PyJWTError:
        return "?"


def read_tokens(path: str, worker_index: int, workers: int) -> list[str]:
    """This process's share of a tokens file: lines ``worker_index``, ``worker_index + workers``, ...

    Blank lines and lines starting with ``#`` are skipped before sharing out,
    so every process of a run (``--processes`` or ``--worker``) takes tokens
    no other process takes.
    """
    lines = [line.strip() for line in Path(path).expanduser().read_text().splitlines()]
    tokens = [line for line in lines if line and not line.startswith("#")]
    workers = max(1, workers)
    return tokens[worker_index % workers :: workers]


def identity_prefix() -> str:
    """A prefix for minted ``sub``s unique to this process and run (called after any fork)."""
    return f"lt-{secrets.token_hex(4)}-{os.getpid()}"


# ------------------------------------------------------------------ synchronized start


def sync_instant(now: float, *, grid_s: float = SYNC_GRID_S, min_lead_s: float = SYNC_MIN_LEAD_S) -> float:
    """The first wall-clock multiple of ``grid_s`` at least ``min_lead_s`` after ``now`` (epoch seconds)."""
    return math.ceil((now + min_lead_s) / grid_s) * grid_s


@dataclass
class Pending:
    """A request sent and not yet acknowledged: resent with its original ``id`` after a drop."""

    rid: int
    kind: str  # "answer", "goto", "start", "submit"
    message: dict[str, Any]
    sent_at: float  # time.perf_counter() of the last send
    qid: str | None = None
    value: Any = None
    expect_dup: bool | None = None  # set when resent: the ack must say dup exactly when rid <= welcome.last_id
    reported: bool = False  # already reported as failed (the connection broke before its ack)
