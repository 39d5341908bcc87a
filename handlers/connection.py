"""One WebSocket connection: framing, authentication, budgets, and the error mapping.

One task owns each connection: it takes frames and pushes from a single
bounded inbox, decodes, has its ``Session`` apply them, and sends the answers
itself. A small reader task only moves raw frames from the socket into the
inbox (blocking when it is full, which stops reading from the socket). Pushes
from elsewhere (the control channel, timers) never wait: when the inbox is
full because the client does not drain what it is sent, the connection is
dropped and the client resumes on reconnect.

This module is the one place where the two error families reach the wire:
``RequestError`` becomes an ``error`` message and the connection lives on;
``Disconnect`` becomes a close code. So do the session store's failures: a
request that Redis could not take (after the client's own retries, see
``services.core.BoundedRetry``) or whose write too few replicas confirmed
(``NotReplicated``) is answered ``internal`` (not acknowledged: retry);
during ``hello`` the first closes with 1011 and the second with 1013.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any, Awaitable, Callable, Mapping, Protocol

from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import (
    CloseCode,
    Disconnect,
    Encoding,
    ErrorCode,
    Hello,
    RequestError,
    decode,
    encode,
    error_message,
    parse_request,
    valid_id,
)
from storage.health import connection_lost
from storage.results import StoreUnavailable
from storage.scripts import NotReplicated

from .auth import BadToken, Claims, bearer, origin_allowed
from .context import Context
from .ratelimit import Bucket

log = logging.getLogger("examwire.connection")


def _store_error(exc: RedisError, where: str) -> None:
    """A session store failure, logged once per refusal: one warning line when Redis cannot
    be reached (an outage refuses every request; the node's Redis watch says why), a
    traceback only for anything else, which is a fault."""
    if connection_lost(exc):
        log.warning(json.dumps({"event": "session_store_unavailable", "where": where, "error": type(exc).__name__}))
    else:
        log.exception("session store error")

class Session(Protocol):
    """What a kind of connection (candidate, proctor) does once framing is handled."""

    async def open(self, conn: "Connection", claims: Claims) -> None:
        """Authorize ``claims`` and send the welcome; raise ``Disconnect`` to refuse."""
        ...

    async def request(self, message: dict[str, Any]) -> None:
        """Handle one decoded message; raise ``RequestError`` to refuse it."""
        ...

    async def push(self, item: tuple[Any, ...]) -> None:
        """Handle an item delivered to the inbox by the hub or a timer."""
        ...

    async def close(self) -> None:
        """Release what ``open`` took; called exactly once, even after errors."""
        ...


def endpoint(session: Callable[[Context, "Connection", str], Session], *, role: str) -> Callable[[WebSocket], Awaitable[None]]:
    """The WebSocket endpoint of one kind of session (``GET /v1/exams/{exam_id}/...``).

    ``role`` (``candidate``, ``proctor``) labels its connections' metrics.
    """

    async def serve(ws: WebSocket) -> None:
        ctx: Context = ws.app.state.ctx
        conn = Connection(ctx, ws, role=role)
        await conn.run(session(ctx, conn, ws.path_params["exam_id"]))

    return serve


class _Gone(Exception):
    """The client closed the connection (``args[0]``: its close code, when the server knows it)."""


class Connection:
    def __init__(self, ctx: Context, ws: WebSocket, *, role: str = "candidate") -> None:
        self.ctx = ctx
        self.ws = ws
        self.role = role
        self.conn_id = secrets.token_hex(8)
        s = ctx.settings
        self.inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(maxsize=s.send_queue)
        self.encoding: Encoding | None = None
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._rate = Bucket.full(s.rate_per_s, s.rate_burst, s.rate_burst / 2, loop.time())
        self._bad = Bucket.full(1.0, 10.0, 0.0, loop.time())
        self._task: asyncio.Task[Any] | None = None
        self._slow = False
        self._timer: asyncio.TimerHandle | None = None
        self.log_fields: dict[str, Any] = {"conn": self.conn_id}
        #: the client's ``hello``, once it parsed (a candidate session reads ``acked`` and ``ticket``)
        self.hello: Hello | None = None
        # metrics (services.metrics): the request being handled, until its reply (ack or error) is written
        self._metrics = ctx.core.metrics
        self._metered = self._metrics.enabled
        self._session: Session | None = None
        self._read_at: float | None = None  # when the request's frame came off the socket (perf_counter)
        self._kind = ""  # its type

    def attempt_state(self) -> str | None:
        """The state of the attempt this connection's session holds (a candidate's), for ``examwire_attempts_live``."""
        snap = getattr(self._session, "snap", None)
        return snap.attempt.state.value if snap is not None else None

    def loop_time(self) -> float:
        """The event loop's monotonic clock (seconds), for budgets."""
        return self._loop.time()

    # -- delivery from other tasks -------------------------------------------------

    def deliver(self, item: tuple[Any, ...]) -> None:
        """Queue a push without waiting; a full inbox drops the connection (1013)."""
        try:
            self.inbox.put_nowait(item)
        except asyncio.QueueFull:
            if not self._slow and self._task is not None:
                self._slow = True
                self._task.cancel()

    def every(self, seconds: float, item: tuple[Any, ...]) -> None:
        """Deliver ``item`` every ``seconds`` while the connection lives."""

        def fire() -> None:
            self.deliver(item)
            self._timer = self._loop.call_later(seconds, fire)

        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(seconds, fire)

    # -- sending ---------------------------------------------------------------------

    async def send(self, message: Mapping[str, Any]) -> None:
        await self._send(encode(message, self.encoding or Encoding.JSON))
        if self._read_at is not None and message.get("t") == "ack":  # the request's ack is written: count it
            dup = message.get("dup") is True
            if self._kind == "answer":
                self._metrics.answer_acked(time.perf_counter() - self._read_at, dup)
            else:
                self._metrics.request(self._kind, "duplicate" if dup else "applied")
            self._read_at = None

    async def send_error(self, err: RequestError, encoding: Encoding | None = None) -> None:
        await self._send(encode(error_message(err), encoding or self.encoding or Encoding.JSON))
        if self._read_at is not None:  # the request is refused
            self._read_at = None
            self._metrics.request(self._kind, "refused", err.code.value)

    async def _send(self, data: str | bytes) -> None:
        """Send one frame; a client that is gone (it dropped mid-request) raises ``_Gone``, not an error."""
        key = "bytes" if isinstance(data, bytes) else "text"
        try:
            await self.ws.send({"type": "websocket.send", key: data})
        except (WebSocketDisconnect, RuntimeError, OSError):
            raise _Gone from None

    # -- the connection's life -------------------------------------------------------

    async def run(self, session: Session) -> None:
        ctx = self.ctx
        if not origin_allowed(self.ws.headers, ctx.settings.allowed_origins):
            ctx.event("refused", reason="origin", path=self.ws.url.path)
            await self._close(CloseCode.POLICY, "")  # before accept: HTTP 403
            return
        try:
            await self.ws.accept()
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the client left before its upgrade was answered
        self._task = task = asyncio.current_task()
        assert task is not None
        ctx.connections.add(task)
        task.add_done_callback(ctx.connections.discard)
        metrics, metered = self._metrics, self._metered
        self._session = session
        metrics.track(self)
        reader = asyncio.create_task(self._read())
        opened = welcomed = False
        close_code: int | None = None
        try:
            try:
                claims = await self._hello()
                self.log_fields["user"] = claims.sub
                opened = True
                await session.open(self, claims)
                welcomed = True
                metrics.hello(self.role, "ok")
                while True:
                    item = await self.inbox.get()
                    if item[0] == "frame":
                        await self._frame(session, item[1], item[2])
                    elif item[0] == "closed":
                        close_code = item[1]
                        break
                    else:
                        if metered and item[0] == "updates":  # a proctor's share of its watch's flush
                            metrics.proctor_updates(len(item[1]))
                        await session.push(item)
            except Disconnect as exc:
                close_code = int(exc.code)
                await self._close(exc.code, exc.reason)
            except _Gone as gone:
                # the close code uvicorn reported (1009: a frame too large), else: went away without a close frame
                close_code = close_code or (gone.args[0] if gone.args and gone.args[0] else None) or self._closed_with() or 1006
            except NotReplicated:  # before RedisError, which it is: nothing failed, the replicas are late or gone
                log.warning('{"event":"not_replicated","where":"connection"}')
                close_code = int(CloseCode.TRY_AGAIN)
                await self._close(CloseCode.TRY_AGAIN, "session store replicas unavailable; retry shortly")
            except RedisError as exc:
                _store_error(exc, "connection")
                close_code = int(CloseCode.INTERNAL)
                await self._close(CloseCode.INTERNAL, "session store unavailable; reconnect")
            except StoreUnavailable:
                log.warning('{"event":"results_store_unavailable","where":"connection"}')
                close_code = int(CloseCode.TRY_AGAIN)
                await self._close(CloseCode.TRY_AGAIN, "results store unavailable; retry shortly")
            except Exception:
                log.exception("internal error")
                close_code = int(CloseCode.INTERNAL)
                await self._close(CloseCode.INTERNAL, "internal error")
        except asyncio.CancelledError:
            # absorb only the slow-consumer drop (``deliver``'s own cancel); any other cancellation,
            # e.g. the server's at shutdown, even one that came together with the drop, goes on
            if not self._slow or task.uncancel() > 0:
                raise
            close_code = int(CloseCode.TRY_AGAIN)
        finally:
            reader.cancel()
            if self._timer is not None:
                self._timer.cancel()
            metrics.untrack(self)
            if metered:
                self._count_close(welcomed, close_code)
            if opened:
                try:
                    await asyncio.shield(session.close())
                except (RedisError, OSError):
                    pass
                except Exception:  # logged as one JSON line; it must not escape the connection's task
                    log.exception("internal error closing the session")
            ctx.event("disconnect", code=close_code, slow=self._slow, **self.log_fields)

    def _closed_with(self) -> int | None:
        """The close code the reader has queued already, if it has (a send that failed found the socket closed)."""
        while not self.inbox.empty():
            item = self.inbox.get_nowait()
            if item[0] == "closed":
                return item[1]
        return None

    def _count_close(self, welcomed: bool, code: int | None) -> None:
        m, role = self._metrics, self.role
        if not welcomed and code is not None:  # refused before its welcome (or gone: 1006)
            m.hello(role, str(code))
        m.closed(role, code)
        if code == CloseCode.TOO_BIG:
            m.frame_too_large(role)
        if self._slow:
            m.slow_client(role)

    async def _read(self) -> None:
        clock = time.perf_counter
        try:
            while True:
                msg = await self.ws.receive()
                kind = msg["type"]
                if kind == "websocket.receive":
                    data = msg.get("text")
                    await self.inbox.put(("frame", data if data is not None else msg.get("bytes", b""), clock()))
                elif kind == "websocket.disconnect":
                    await self.inbox.put(("closed", msg.get("code")))
                    return
        except (RuntimeError, OSError):
            await self.inbox.put(("closed", None))

    async def _close(self, code: int, reason: str) -> None:
        """Send the close frame; a client that is gone already (even while its socket was backed up) is not an error."""
        try:
            await self.ws.close(code=int(code), reason=reason[:120])
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass

    async def _hello(self) -> Claims:
        """Wait for ``hello`` and verify its token (or the upgrade's bearer token)."""
        try:
            async with asyncio.timeout(self.ctx.settings.hello_timeout_s):
                while True:
                    item = await self.inbox.get()
                    if item[0] == "closed":
                        raise _Gone(item[1])
                    if item[0] != "frame":
                        continue
                    data = item[1]
                    try:
                        message = self._decode(data)
                    except RequestError as err:
                        await self.send_error(err, Encoding.JSON if isinstance(data, str) else Encoding.MSGPACK)
                        continue
                    self.encoding = Encoding.JSON if isinstance(data, str) else Encoding.MSGPACK
                    break
        except TimeoutError:
            raise Disconnect(CloseCode.HELLO_TIMEOUT, "no hello in time") from None
        if message.get("t") != "hello":
            raise Disconnect(CloseCode.BAD_TOKEN, "hello expected")
        try:
            hello = parse_request(message)
        except RequestError:
            raise Disconnect(CloseCode.BAD_TOKEN, "malformed hello") from None
        assert isinstance(hello, Hello)
        self.hello = hello
        if hello.v != 1:
            raise Disconnect(CloseCode.UNSUPPORTED_VERSION, "unsupported protocol version")
        token = hello.token or bearer(self.ws.headers)
        try:
            return await self.ctx.auth.verify(token)
        except BadToken as exc:
            self.ctx.event("refused", reason=str(exc), path=self.ws.url.path)
            raise Disconnect(CloseCode.BAD_TOKEN, str(exc)) from None

    def _decode(self, data: str | bytes) -> dict[str, Any]:
        """Decode a frame; too many bad frames close the connection (1008)."""
        try:
            message, _ = decode(data)
        except RequestError:
            if self._metered:
                self._metrics.bad_frame(self.role)
            if self._bad.take(self._loop.time()) is not True:
                raise Disconnect(CloseCode.POLICY, "too many bad frames") from None
            raise
        return message

    async def _frame(self, session: Session, data: str | bytes, read_at: float) -> None:
        verdict = self._rate.take(self._loop.time())
        metered = self._metered
        if verdict is None:
            if metered:
                self._metrics.rate_limited(self.role, True)
            raise Disconnect(CloseCode.POLICY, "rate limit exceeded")
        kind: Any = None
        try:
            message = self._decode(data)
            kind = message.get("t")
            if verdict is False:
                raise RequestError(ErrorCode.RATE_LIMITED, "too many messages; slow down", valid_id(message))
            if metered:
                self._read_at, self._kind = read_at, kind if type(kind) is str else "other"
            try:
                await session.request(message)
            except (RequestError, Disconnect, _Gone):
                raise
            except NotReplicated:  # written, but not confirmed by enough replicas: not acknowledged
                log.warning('{"event":"not_replicated","where":"request"}')
                raise RequestError(
                    ErrorCode.INTERNAL, "not yet on enough replicas; retry", valid_id(message)
                ) from None
            except RedisError as exc:
                _store_error(exc, "request")
                raise RequestError(
                    ErrorCode.INTERNAL, "session store unavailable; retry", valid_id(message)
                ) from None
            except StoreUnavailable:
                raise RequestError(ErrorCode.INTERNAL, "results store unavailable; retry", valid_id(message)) from None
            except Exception:
                log.exception("internal error handling %s", message.get("t"))
                raise RequestError(ErrorCode.INTERNAL, "internal error", valid_id(message)) from None
        except RequestError as err:
            if metered:
                if self._read_at is None:  # refused before it was taken (a bad frame, the rate limit)
                    self._metrics.request(kind if type(kind) is str else "other", "refused", err.code.value)
                if err.code is ErrorCode.RATE_LIMITED:
                    self._metrics.rate_limited(self.role, False)
            await self.send_error(err)  # counts a taken request as refused
            return
        if metered and self._read_at is not None:  # answered without an ack or an error (a ping's pong)
            self._read_at = None
            self._metrics.request(self._kind, "applied")

