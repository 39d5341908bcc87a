"""Error codes and the two error families of the wire protocol.

* :class:`RequestError` -- a request (or frame) is refused; the server answers
  with an ``error`` message and the connection lives on.
* :class:`Disconnect` -- the connection is closed with a WebSocket close code.

:func:`error_message` is the one place a :class:`RequestError` becomes wire
data.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = [
    "ErrorCode",
    "CloseCode",
    "RequestError",
    "Disconnect",
    "error_message",
    "MAX_CLOSE_REASON_BYTES",
    "MAX_ERROR_MESSAGE_CHARS",
]

#: A close frame carries at most 125 payload bytes, 2 of them the code.
MAX_CLOSE_REASON_BYTES = 120
#: Error messages are short, human-readable, server-written texts.
MAX_ERROR_MESSAGE_CHARS = 200

class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` message (docs/protocol.md, plus our additions)."""

    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    BAD_REQUEST = "bad_request"
    NOT_STARTED = "not_started"
    NOT_ACTIVE = "not_active"
    TIME_UP = "time_up"
    UNKNOWN_QUESTION = "unknown_question"
    BAD_VALUE = "bad_value"
    NAVIGATION = "navigation"
    RATE_LIMITED = "rate_limited"
    FORBIDDEN = "forbidden"
    #: Our addition: a server fault. Its message is a fixed text, never an exception's.
    INTERNAL = "internal"
    #: Our addition.
    NOT_FOUND = "not_found"


class CloseCode(IntEnum):
    """WebSocket close codes used by the engine."""

    NORMAL = 1000
    #: Node shutting down; the client resumes elsewhere.
    GOING_AWAY = 1001
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    #: Our addition: the client did not drain its send queue; reconnect and resume.
    TRY_AGAIN = 1013
    #: Our addition: ``hello.v`` is not 1.
    UNSUPPORTED_VERSION = 4400
    BAD_TOKEN = 4401
    FORBIDDEN = 4403
    NO_EXAM = 4404
    HELLO_TIMEOUT = 4408
    SUPERSEDED = 4409


class RequestError(Exception):
    """A request was refused; nothing changed and the connection lives on."""

    code: ErrorCode
    message: str
    id: int | None

    def __init__(self, code: ErrorCode | str, message: str, id: int | None = None) -> None:
        code = ErrorCode(code)
        message = str(message)
        super().__init__(code, message, id)
        self.code = code
        self.message = message
        self.id = id

    def __str__(self) -> str:
        if self.id is None:
            return f"{self.code.value}: {self.message}"
        return f"{self.code.value}: {self.message} (id={self.id})"

    def __repr__(self) -> str:
        return f"RequestError({self.code.value!r}, {self.message!r}, id={self.id!r})"


def _truncate_utf8(text: str, limit: int) -> str:
    # "replace" turns lone surrogates into "?"; "ignore" drops a partial
    # trailing sequence so the cut lands on a character boundary.
    return text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore")


class Disconnect(Exception):
    """Close the connection with ``code``; ``reason`` is cut to 120 UTF-8 bytes."""

    code: CloseCode
    reason: str

    def __init__(self, code: CloseCode | int, reason: str = "") -> None:
        code = CloseCode(code)
        reason = _truncate_utf8(str(reason), MAX_CLOSE_REASON_BYTES)
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{int(self.code)} {self.code.name}: {self.reason}"

    def __repr__(self) -> str:
        return f"Disconnect({int(self.code)}, {self.reason!r})"


def error_message(err: RequestError) -> dict:
    """The wire map ``{"t":"error","code":...,"message":...,"id":...}`` for ``err``.

    ``id`` is omitted when ``None``; ``code`` is a plain ``str``. The message
    is passed through (cut to :data:`MAX_ERROR_MESSAGE_CHARS`): it must be a
    fixed, server-written text -- for ``internal`` never an exception's text.
    """
    message = err.message
    if len(message) > MAX_ERROR_MESSAGE_CHARS:
        message = message[: MAX_ERROR_MESSAGE_CHARS - 3] + "..."
    out = {"t": "error", "code": err.code.value, "message": message}
    if err.id is not None:
        out["id"] = err.id
    return out
