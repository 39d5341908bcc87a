"""A small asyncio Examwire candidate client, written from docs/protocol.md alone.

Deliberately not ``examwire.client`` (the project's own client, which the
benchmarks and the other tests use): the end-to-end tests check the engine
against the contract, so their client is a second reading of the contract
that shares no code with the package, and a misreading in one is caught by the other.

It speaks protocol version 1 over the ``websockets`` library:

* ``encoding="json"`` sends text frames holding one JSON object each,
  ``encoding="msgpack"`` sends binary frames holding one MessagePack map each.
  Incoming frames are decoded by their frame type (text -> JSON, binary ->
  MessagePack); the kinds seen are recorded in ``frame_kinds``.
* Requests that expect an answer get a strictly increasing positive ``id``
  (per attempt, across reconnects: after every ``welcome`` the next id is at
  least ``last_id + 1``). ``request()`` returns the ``ack`` or ``error`` that
  carries the same ``id``.
* Every other incoming message (``batch``, ``time``, ``state``, ``result``,
  ``notice``, ``pong``, ...) is an unsolicited push: it is appended to
  ``pushes`` (and ``pushes_by_type[t]``) and can be awaited with
  ``wait_for(t)``. Questions from every ``batch`` are also merged into
  ``questions`` (candidate index -> question).
* ``sent`` logs every request sent (resends included); ``queue_request()``
  files a request as pending without sending it (an offline queue).
* Exactly-once resume: every request sent and not yet answered is kept in
  ``pending`` (id -> message, with the original id). ``resume(url)`` opens a
  new connection (to any node), says ``hello`` and resends every pending
  request with its original id, returning the replies. A request answered by
  ``error`` is considered answered (the server refused it and nothing
  changed), so it is not resent.
* When the server closes the connection, ``close_code`` / ``close_reason``
  hold what it sent, and ``closed`` (an ``asyncio.Event``) is set.

Example::

    c = ExamClient(node.ws_url + "/v1/exams/x/attempt", token)
    await c.connect()
    welcome = await c.hello()
    ack = await c.start()
    batch = await c.wait_for("batch")
    await c.answer("q1", "b")
    await c.submit()
    result = await c.wait_for("result")
    await c.close()
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable, Iterable

import msgpack
import websockets
from websockets.asyncio.client import ClientConnection, connect

PROTOCOL_VERSION = 1

#: The message types that answer a request (matched by ``id``).
REPLY_TYPES = ("ack", "error")


class ProtocolError(AssertionError):
    """The server sent something the client cannot make sense of, or timed out."""


class ConnectionClosedByServer(ProtocolError):
    """The connection closed while the client was waiting for a reply."""

    def __init__(self, code: int | None, reason: str | None, what: str):
        super().__init__(f"connection closed (code={code}, reason={reason!r}) while waiting for {what}")
        self.code = code
        self.reason = reason


def now_ms() -> int:
    """Wall-clock time in integer ms since the Unix epoch (the protocol's unit)."""
    return int(time.time() * 1000)


def _new_future() -> asyncio.Future[Any]:
    """A future whose exception (a closed connection) never warns when nobody awaits it."""
    fut = asyncio.get_running_loop().create_future()
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    return fut


def attempt_url(base_ws_url: str, exam_id: str) -> str:
    """The candidate endpoint of ``exam_id`` on a node (``ws://host:port``)."""
    return f"{base_ws_url}/v1/exams/{exam_id}/attempt"


class ExamClient:
    """One candidate's client; one live WebSocket at a time, state kept across reconnects."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        encoding: str = "json",
        headers: dict[str, str] | None = None,
        reply_timeout: float = 5.0,
    ):
        if encoding not in ("json", "msgpack"):
            raise ValueError(f"unknown encoding {encoding!r}")
        self.url = url
        self.token = token
        self.encoding = encoding
        self.headers = dict(headers or {})
        self.reply_timeout = reply_timeout

        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None

        self.next_id = 1
        self.pending: dict[int, dict[str, Any]] = {}  # sent, not answered yet: id -> message
        self.sent: list[dict[str, Any]] = []  # every request sent (resends included), in order
        self.replies: dict[int, dict[str, Any]] = {}  # id -> last ack/error received for it
        self._reply_waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._welcome: asyncio.Future[dict[str, Any]] | None = None

        self.welcome: dict[str, Any] | None = None
        self.received: list[dict[str, Any]] = []  # every decoded message, in arrival order
        self.pushes: list[dict[str, Any]] = []  # unsolicited messages, in arrival order
        self.pushes_by_type: dict[str, list[dict[str, Any]]] = {}
        self._taken: set[int] = set()  # positions in ``pushes`` already returned by wait_for
        self._push_signal = asyncio.Condition()
        self.questions: dict[int, dict[str, Any]] = {}  # candidate index -> question
        self.frame_kinds: set[str] = set()  # "text" / "binary" frames received
        self.undecodable: list[Any] = []

    # ------------------------------------------------------------------ codec
    def encode(self, message: dict[str, Any]) -> str | bytes:
        """JSON text or MessagePack bytes, by ``encoding``."""
        if self.encoding == "json":
            return json.dumps(message, separators=(",", ":"))
        return msgpack.packb(message, use_bin_type=True)

    @staticmethod
    def decode(frame: str | bytes) -> Any:
        """Text frame -> JSON, binary frame -> MessagePack."""
        if isinstance(frame, str):
            return json.loads(frame)
        return msgpack.unpackb(frame, raw=False, strict_map_key=False)

    # ------------------------------------------------------------- connection
    async def connect(self, url: str | None = None) -> None:
        """Open the WebSocket (closing any previous one first); no message is sent."""
        if url is not None:
            self.url = url
        await self._drop_socket()
        self.closed = asyncio.Event()
        self.close_code = None
        self.close_reason = None
        self.welcome = None
        self.ws = await connect(
            self.url,
            additional_headers=self.headers or None,
            proxy=None,
            open_timeout=10,
            ping_interval=None,
            max_size=None,
            compression=None,
        )
        self._reader = asyncio.create_task(self._read_loop(self.ws))

    async def hello(self, *, token: Any = ..., v: int = PROTOCOL_VERSION, client: str | None = "e2e-client",
                    timeout: float | None = None, **extra: Any) -> dict[str, Any]:
        """Send ``hello`` and return the ``welcome``.

        ``token=...`` uses the client's token (omitted from the message when it
        is None, for header authentication). ``extra`` fields are sent as they
        are (e.g. the optional ``acked`` and ``ticket``). Raises
        ``ConnectionClosedByServer`` when the server closes instead (e.g.
        4401/4403/4404).
        """
        message: dict[str, Any] = {"t": "hello", "v": v}
        tok = self.token if token is ... else token
        if tok is not None:
            message["token"] = tok
        if client is not None:
            message["client"] = client
        message.update(extra)
        self._welcome = _new_future()
        await self.send_raw(message)
        welcome = await self._await(self._welcome, timeout, "welcome")
        return welcome

    async def close(self) -> None:
        """Close the WebSocket politely (1000) and stop the reader."""
        await self._drop_socket()

    async def abort(self) -> None:
        """Kill the TCP connection at once (no close frame): a network drop."""
        if self.ws is not None:
            self.ws.transport.abort()
        await self._stop_reader()
        self.ws = None

    async def _drop_socket(self) -> None:
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except Exception:  # noqa: BLE001 - best effort
                self.ws.transport.abort()
        await self._stop_reader()
        self.ws = None

    async def _stop_reader(self) -> None:
        if self._reader is not None:
            if not self._reader.done():
                try:
                    await asyncio.wait_for(asyncio.shield(self._reader), 2)
                except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                    self._reader.cancel()
                    try:
                        await self._reader
                    except BaseException:  # noqa: BLE001
                        pass
            self._reader = None

    async def wait_closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        """Wait for the server to close this connection; return ``(code, reason)``."""
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code, self.close_reason

    # ------------------------------------------------------------------ input
    async def _read_loop(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                self.frame_kinds.add("text" if isinstance(frame, str) else "binary")
                try:
                    message = self.decode(frame)
                except Exception:  # noqa: BLE001
                    self.undecodable.append(frame)
                    continue
                if not isinstance(message, dict):
                    self.undecodable.append(message)
                    continue
                await self._dispatch(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            if ws.close_code is not None:
                self.close_code = ws.close_code
                self.close_reason = ws.close_reason
            elif self.close_code is None:
                self.close_code = 1006
                self.close_reason = ""
            self.closed.set()
            exc = ConnectionClosedByServer(self.close_code, self.close_reason, "a reply")
            for fut in list(self._reply_waiters.values()):
                if not fut.done():
                    fut.set_exception(exc)
            if self._welcome is not None and not self._welcome.done():
                self._welcome.set_exception(ConnectionClosedByServer(self.close_code, self.close_reason, "welcome"))
            async with self._push_signal:
                self._push_signal.notify_all()

    async def _dispatch(self, message: dict[str, Any]) -> None:
        self.received.append(message)
        kind = message.get("t")
        rid = message.get("id")
        if kind in REPLY_TYPES and isinstance(rid, int) and not isinstance(rid, bool):
            self.replies[rid] = message
            self.pending.pop(rid, None)
            waiter = self._reply_waiters.pop(rid, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)
            return
        if kind == "welcome":
            self.welcome = message
            last_id = message.get("last_id") or 0
            if isinstance(last_id, int):
                self.next_id = max(self.next_id, last_id + 1)
            if self._welcome is not None and not self._welcome.done():
                self._welcome.set_result(message)
            return
        if kind == "batch":
            for q in message.get("questions") or []:
                if isinstance(q, dict) and isinstance(q.get("index"), int):
                    self.questions[q["index"]] = q
        self.pushes.append(message)
        self.pushes_by_type.setdefault(str(kind), []).append(message)
        async with self._push_signal:
            self._push_signal.notify_all()

    # ----------------------------------------------------------------- output
    async def send_raw(self, message: Any, *, frame: str | bytes | None = None) -> None:
        """Send one message (encoded per ``encoding``) or an exact ``frame``."""
        if self.ws is None:
            raise ProtocolError("not connected")
        await self.ws.send(frame if frame is not None else self.encode(message))

    def allocate_id(self) -> int:
        rid = self.next_id
        self.next_id += 1
        return rid

    async def send_request(self, t: str, *, id: int | None = None, **fields: Any) -> int:
        """Send a request without waiting; it stays in ``pending`` until answered. Returns its id."""
        rid = self.allocate_id() if id is None else id
        if id is not None:
            self.next_id = max(self.next_id, id + 1)
        message = {"t": t, "id": rid, **fields}
        self.pending[rid] = message
        self.replies.pop(rid, None)
        self._reply_waiters[rid] = _new_future()
        self.sent.append(message)
        await self.send_raw(message)
        return rid

    def queue_request(self, t: str, **fields: Any) -> int:
        """Allocate an id and keep the request in ``pending`` without sending it
        (an offline queue: it goes out with the next ``resume``). Returns its id."""
        rid = self.allocate_id()
        self.pending[rid] = {"t": t, "id": rid, **fields}
        return rid

    async def reply(self, rid: int, timeout: float | None = None) -> dict[str, Any]:
        """The ``ack``/``error`` for request ``rid`` (waits for it)."""
        if rid in self.replies and (rid not in self._reply_waiters):
            return self.replies[rid]
        fut = self._reply_waiters.get(rid)
        if fut is None:
            fut = _new_future()
            self._reply_waiters[rid] = fut
        return await self._await(fut, timeout, f"the reply to id {rid}")

    async def request(self, t: str, *, id: int | None = None, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send request ``t`` and return its ``ack`` or ``error``."""
        rid = await self.send_request(t, id=id, **fields)
        return await self.reply(rid, timeout)

    async def start(self, **kw: Any) -> dict[str, Any]:
        return await self.request("start", **kw)

    async def answer(self, q: str, value: Any, **kw: Any) -> dict[str, Any]:
        return await self.request("answer", q=q, value=value, **kw)

    async def flag(self, q: str, on: bool = True, **kw: Any) -> dict[str, Any]:
        return await self.request("flag", q=q, on=on, **kw)

    async def goto(self, index: int, **kw: Any) -> dict[str, Any]:
        return await self.request("goto", index=index, **kw)

    async def fetch(self, from_: int, count: int, **kw: Any) -> dict[str, Any]:
        return await self.request("fetch", **{"from": from_, "count": count}, **kw)

    async def event(self, kind: str, detail: Any = None, **kw: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {"kind": kind}
        if detail is not None:
            fields["detail"] = detail
        return await self.request("event", **fields, **kw)

    async def submit(self, **kw: Any) -> dict[str, Any]:
        return await self.request("submit", **kw)

    async def ping(self, ct: int | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Send ``ping{ct}`` and return the ``pong`` echoing that ``ct``."""
        ct = now_ms() if ct is None else ct
        mark = len(self.pushes)
        await self.send_raw({"t": "ping", "ct": ct})
        return await self.wait_for("pong", timeout, pred=lambda m: m.get("ct") == ct, since=mark)

    # ------------------------------------------------------------------ pushes
    def mark(self) -> int:
        """A position in ``pushes``; pass as ``since=`` to wait only for later pushes."""
        return len(self.pushes)

    def pushes_of(self, t: str) -> list[dict[str, Any]]:
        return list(self.pushes_by_type.get(t, []))

    async def wait_for(
        self,
        t: str,
        timeout: float | None = None,
        *,
        pred: Callable[[dict[str, Any]], bool] | None = None,
        since: int = 0,
    ) -> dict[str, Any]:
        """The first push of type ``t`` (at position >= ``since``, matching ``pred``)
        not already returned by an earlier ``wait_for``; waits up to ``timeout`` s."""
        timeout = self.reply_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        async with self._push_signal:
            while True:
                for pos in range(since, len(self.pushes)):
                    m = self.pushes[pos]
                    if pos in self._taken or m.get("t") != t:
                        continue
                    if pred is None or pred(m):
                        self._taken.add(pos)
                        return m
                left = end - loop.time()
                if left <= 0:
                    raise ProtocolError(
                        f"no {t!r} push within {timeout} s; pushes so far: "
                        f"{[p.get('t') for p in self.pushes]}; close={self.close_code}"
                    )
                if self.closed.is_set():
                    raise ConnectionClosedByServer(self.close_code, self.close_reason, f"a {t!r} push")
                try:
                    await asyncio.wait_for(self._push_signal.wait(), left)
                except asyncio.TimeoutError:
                    pass

    async def collect_questions(self, total: int, timeout: float | None = None) -> list[dict[str, Any]]:
        """Fetch whatever is missing and return questions 0..total-1 in candidate order."""
        missing = [i for i in range(total) if i not in self.questions]
        if missing:
            lo = missing[0]
            reply = await self.fetch(lo, total - lo, timeout=timeout)
            if reply.get("t") != "ack":
                raise ProtocolError(f"fetch refused: {reply}")
            loop = asyncio.get_running_loop()
            end = loop.time() + (timeout or self.reply_timeout)
            while any(i not in self.questions for i in range(total)):
                if loop.time() > end:
                    raise ProtocolError(f"questions still missing after fetch: {sorted(set(range(total)) - set(self.questions))}")
                async with self._push_signal:
                    try:
                        await asyncio.wait_for(self._push_signal.wait(), 0.2)
                    except asyncio.TimeoutError:
                        pass
        return [self.questions[i] for i in range(total)]

    # ------------------------------------------------------------------ resume
    async def resume(self, new_url: str | None = None, *, timeout: float | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Reconnect (to ``new_url`` or the same url), ``hello``, then resend every
        request still without an answer, with its original id, in id order.

        Returns ``(welcome, replies)``, one reply per resent request, in id order.
        """
        await self.connect(new_url)
        welcome = await self.hello(timeout=timeout)
        resend = [self.pending[i] for i in sorted(self.pending)]
        for message in resend:
            self._reply_waiters[message["id"]] = _new_future()
            self.sent.append(message)
            await self.send_raw(message)
        replies = [await self.reply(m["id"], timeout) for m in resend]
        return welcome, replies

    # ----------------------------------------------------------------- helpers
    async def _await(self, fut: asyncio.Future[Any], timeout: float | None, what: str) -> Any:
        timeout = self.reply_timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            raise ProtocolError(f"no {what} within {timeout} s (close={self.close_code}, {self.close_reason!r})") from None

    def __repr__(self) -> str:
        return f"<ExamClient {self.url} {self.encoding} next_id={self.next_id} pending={sorted(self.pending)}>"


def answered_ids(messages: Iterable[dict[str, Any]]) -> list[int]:
    """The ids of the ``ack`` messages among ``messages``."""
    return [m["id"] for m in messages if m.get("t") == "ack"]


async def hello_close(url: str, token: str, timeout: float = 10) -> tuple[int | None, str | None]:
    """Connect, say ``hello`` and return how the server closed the connection: ``(code, reason)``."""
    client = ExamClient(url, token)
    await client.connect()
    try:
        await client.hello(timeout=timeout)
    except ConnectionClosedByServer:
        pass
    return await client.wait_closed(timeout)

