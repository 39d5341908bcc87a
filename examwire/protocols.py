"""The node's uvicorn protocols: uvicorn's own, with the limits a listener open to anyone needs.

uvicorn bounds neither the time nor the size of a request's head (the request
line and headers: its parser holds whatever arrives until the blank line),
and its WebSocket protocol answers every ping at once whether or not the peer
reads, closes by waiting for its write buffer to drain, and so lets a peer
that never reads hold the connection and its buffered output for ever. These
subclasses add, per connection:

HTTP (uvicorn's ``httptools`` protocol):

* the head of a request must be complete ``header_timeout_s`` after the
  connection opens (or after the first byte of the next request on a kept-alive
  connection), else the connection is closed;
* and at most ``max_header_bytes`` long, else 431 and closed: the parser is
  never fed more of it than that. A WebSocket upgrade is a request like any
  other until its head is complete.
* a response the client does not read is abandoned (the connection aborted)
  once the write buffer has stayed above its high-water mark for
  ``send_timeout_s``; and when a request is answered before its body came in
  (refused, or a route that reads none), the rest of that body and the next
  request's head must come within ``header_timeout_s`` (uvicorn would wait
  for them for ever: each chunk of a body nobody reads cancels its keep-alive
  timer);
* at most ``max_pipelined`` requests may wait behind the one being answered
  (pipelining); a client further ahead of its answers is dropped.

WebSocket (uvicorn's ``websockets-sansio`` protocol):

* the frames that carry no whole message (ping, pong, continuation fragments)
  take from a budget of ``frames_per_s`` a second up to ``frames_burst``, from
  the upgrade on, before ``hello`` and after; past it the connection closes
  with 1008 (policy);
* while the write buffer is above its high-water mark (the peer is not reading
  what it is sent: pongs, answers, pushes), nothing more is read from the peer,
  so what it sends cannot make the node write more; if the buffer is still
  above the mark ``send_timeout_s`` later, the connection is aborted;
* once the application is done with a connection, or the keepalive ping went
  unanswered, the connection is aborted if it has not closed within
  ``send_timeout_s`` (a close waits for the buffer to drain, which a peer that
  does not read never lets happen).

Whole data messages take none of this: they go through uvicorn's own path,
unchanged, and are budgeted by the connection that receives them
(``handlers/connection.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import CloseCode

from handlers.ratelimit import Bucket

from .settings import Settings


def node_protocols(settings: Settings) -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """The HTTP and WebSocket protocol classes of ``uvicorn.Config`` (``http=``, ``ws=``), with ``settings``' limits."""
    http = type("NodeHttp", (NodeHttp,), {
        "max_header_bytes": settings.max_header_bytes,
        "header_timeout_s": settings.header_timeout_s,
        "max_pipelined": settings.max_pipelined,
        "send_timeout_s": settings.send_timeout_s,
    })  # fmt: skip
    ws = type("NodeWebSocket", (NodeWebSocket,), {
        "frames_per_s": float(settings.rate_per_s),
        "frames_burst": float(settings.rate_burst),
        "send_timeout_s": settings.send_timeout_s,
    })  # fmt: skip
    return http, ws


def _response(status: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class NodeHttp(HttpToolsProtocol):
    """uvicorn's ``httptools`` protocol with a bound on the size and the time of each request's head."""

    max_header_bytes = 32768
    header_timeout_s = 10.0
    max_pipelined = 16
    send_timeout_s = 20.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        #: how many more bytes the head being read may take; None while no head is being read
        self._head_left: int | None = self.max_header_bytes
        #: heads completed so far on this connection
        self._heads = 0
        self._head_timer: asyncio.TimerHandle | None = self.loop.call_later(self.header_timeout_s, self._head_timeout)
        self._stall_timer: asyncio.TimerHandle | None = None
        #: the request being answered; with pipelining, ``self.cycle`` is the newest one read, not this
        self._running: Any = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        self._stop(self._running)  # uvicorn tells only ``self.cycle``
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    @staticmethod
    def _stop(cycle: Any) -> None:
        """The request's task writes nothing more (it learns that the client is gone)."""
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()

    # a response the client does not read: the task sending it waits for the buffer to drain, for so long only

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall_timer is None:
            self._stall_timer = self.loop.call_later(self.send_timeout_s, self._drop)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _drop(self) -> None:
        """Abort the connection; the request being answered writes nothing more (uvloop refuses writes
        to an aborted transport, with an exception, until uvicorn hears of the loss)."""
        self._stall_timer = None
        self._stop(self._running)
        self._stop(self.cycle)
        self.transport.abort()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.pipeline and self._head_timer is None:
            # answered before its body came in (refused, or a route that reads none): the rest of
            # the body is discarded as it comes, and it and the next head get the head's time
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)
        super().on_response_complete()

    def data_received(self, data: bytes) -> None:
        left = self._head_left
        if left is not None:
            if len(data) > left:
                self._past_the_limit(data, left)
                return
            self._head_left = left - len(data)
        super().data_received(data)

    def _past_the_limit(self, data: bytes, left: int) -> None:
        """Feed the head only up to the limit: if it ends there, go on with the rest; else 431."""
        heads = self._heads
        self._head_left = 0
        super().data_received(data[:left])
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # refused by the parser, or upgraded to a WebSocket (which takes nothing more from here)
        if self._heads == heads:
            self._refuse(b"431 Request Header Fields Too Large")
            return
        self.data_received(data[left:])

    def _refuse(self, status: bytes) -> None:
        self._stop_head_timer()
        self._head_left = None
        if self.cycle is None or self.cycle.response_complete:  # not in the middle of a response
            self.transport.write(_response(status))
        self.transport.close()

    def _head_timeout(self) -> None:
        # closed without an answer, as nginx does: a 408 could race a request a browser just sent
        # on a connection it had opened ahead of need
        self._head_timer = None
        self._head_left = None
        self.transport.close()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    # parser callbacks

    def on_message_begin(self) -> None:
        if self._head_timer is None:  # the next request on a kept-alive connection
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self._head_left = None
        self._heads += 1
        if self.transport.is_closing():
            return  # refused or dropped: nothing more is started for this connection
        waiting = self.cycle is not None and not self.cycle.response_complete  # this one would wait its turn
        if waiting and len(self.pipeline) >= self.max_pipelined:
            # uvicorn reads requests ahead of their answers until the read is done: a whole read of
            # tiny requests, each holding its request-response state (kilobytes), is megabytes
            self._drop()
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_left = self.max_header_bytes  # what follows is the next request's head
        super().on_message_complete()

    def _should_upgrade(self) -> bool:
        # a head completed on a connection being dropped starts nothing, an upgrade neither
        return not self.transport.is_closing() and super()._should_upgrade()

    def _unsupported_upgrade_warning(self) -> None:
        if not self.transport.is_closing():
            super()._unsupported_upgrade_warning()


class NodeWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol with a frame budget and a bound on what a peer that does not read costs."""

    frames_per_s = 20.0
    frames_burst = 40.0
    send_timeout_s = 20.0

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._frames = Bucket.full(self.frames_per_s, self.frames_burst, 0.0, self.loop.time())
        self._stalled = False  # the write buffer is above its high-water mark
        self._stall_timer: asyncio.TimerHandle | None = None
        self._abort_timer: asyncio.TimerHandle | None = None

    # -- frames without a whole message: budgeted --------------------------------------

    def handle_ping(self) -> None:
        if self._spend():
            super().handle_ping()

    def handle_pong(self, event: Any) -> None:
        if self._spend():
            super().handle_pong(event)

    def handle_cont(self, event: Any) -> None:
        if self._spend():
            super().handle_cont(event)

    def _spend(self) -> bool:
        if self.transport.is_closing():
            return False
        if self._frames.take(self.loop.time()):
            return True
        # over budget: what this read asked for is not sent; a close frame is, then the connection ends
        self.conn.data_to_send()
        output = b""
        if self.handshake_complete and self.initial_response is None and not self.close_sent:
            self.conn.fail(CloseCode.POLICY_VIOLATION, "too many control frames")
            output = b"".join(self.conn.data_to_send())
        self.close_sent = True
        self.handshake_complete = True  # if the application has not accepted yet, it cannot now
        self.queue.put_nowait({"type": "websocket.disconnect", "code": int(CloseCode.POLICY_VIOLATION)})
        if output:
            self.transport.write(output)
        self._end()
        return False

    # -- a peer that does not read -----------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        self._stalled = True
        self.transport.pause_reading()
        if self._stall_timer is None:
            self._stall_timer = self.loop.call_later(self.send_timeout_s, self._stall_timeout)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._stalled = False
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        if not self.read_paused:  # else the application has not taken the last message yet
            self.transport.resume_reading()

    async def receive(self) -> Any:
        # uvicorn's, except that reading stays paused while the peer does not read
        message = await self.queue.get()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            if not self._stalled:
                self.transport.resume_reading()
        return message

    def _stall_timeout(self) -> None:
        self._stall_timer = None
        if self._stalled:
            self.transport.abort()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self._abort_later()

    async def run_asgi(self) -> None:
        await super().run_asgi()
        self._abort_later()

    def _end(self) -> None:
        """Close now if nothing waits to be sent, else abort: a peer over its budget is not waited for."""
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.transport.close()

    def _abort_later(self) -> None:
        if not self.disconnected and self._abort_timer is None:
            self._abort_timer = self.loop.call_later(self.close_timeout + self.send_timeout_s, self.transport.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._stall_timer, self._abort_timer):
            if timer is not None:
                timer.cancel()
        self._stall_timer = self._abort_timer = None
        super().connection_lost(exc)
