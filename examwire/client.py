"""The project's client of the wire protocol (docs/protocol.md): asyncio, over ``websockets``.

The benchmarks and the tests that need a candidate or a proctor (but do not
test the contract itself) use it. It imports ``protocol`` and runtime
dependencies only, so it works from a production install.

* ``ExamClient`` (a candidate) and ``ProctorClient`` keep their state across
  reconnects: ``connect``, then ``hello`` returns the ``welcome`` (a proctor's
  also waits for the ``snapshot``). ``encoding``: ``"json"`` text frames or
  ``"msgpack"`` binary frames; what arrives is decoded by its frame type.
* ``request(t, **fields)`` sends the next ``id`` (increasing; after a
  ``welcome``, above its ``last_id``) and returns the ``ack`` or ``error``; a
  request stays in ``pending`` until answered, ``replies`` holds answers not
  collected yet. Anything else is a push (``batch``, ``time``, ``state``,
  ``result``, ``notice``, ``snapshot``, ``update``...): kept in ``pushes``,
  passed to ``on_push``, awaited with ``wait_for``. Batches fill
  ``questions``; a proctor's snapshot and updates fill ``rows``.
* ``ExamClient.resume(url)`` reconnects (any node) and resends every pending
  request under its original id. The client keeps the loss evidence of its
  attempt (docs/protocol.md, "Loss is detected, never silent"): ``acked``, the
  highest id it saw acknowledged, and ``ticket``, the newest the server gave;
  ``hello(evidence=True)`` and ``resume`` send them once it was welcomed.
  Proctor ids are per connection, so a proctor's ``reconnect`` drops what
  was pending.
* ``close_code``/``close_reason`` say how the connection ended and ``closed`` is
  set; a call waiting then raises ``Closed``, one out of time ``TimeoutError``.

By default a background task reads every frame. With ``background=False`` the
waiting call reads (one at a time) and ``reply_timeout=None`` sets no timer:
the load generators' fast path, with ``keep=False`` (pushes are kept only
while a ``wait_for`` waits).
"""

from __future__ import annotations

import asyncio
import json
import time
from types import EllipsisType
from typing import Any, Awaitable, Callable

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from protocol import PROTOCOL_VERSION, Encoding

__all__ = ["ExamClient", "ProctorClient", "Closed", "Message", "attempt_url", "proctor_url"]

Message = dict[str, Any]
#: seconds; None: no limit; ``...``: the client's ``reply_timeout``
Timeout = float | None | EllipsisType

#: Options of ``websockets.connect`` (overridable per client and per ``connect``).
CONNECT_OPTIONS: dict[str, Any] = {"compression": None, "ping_interval": None, "max_size": None, "proxy": None,
                                   "open_timeout": 10, "close_timeout": 2}

_pack = msgpack.Packer().pack
_unpack = msgpack.unpackb
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads


class Closed(Exception):
    """The connection closed (or was never open) while a call waited on it."""

    def __init__(self, code: int | None, reason: str | None, what: str) -> None:
        super().__init__(f"connection closed (code={code}, reason={reason!r}) while waiting for {what}")
        self.code, self.reason = code, reason


def attempt_url(ws_base: str, exam_id: str) -> str:
    """The candidate endpoint of ``exam_id`` on a node (``ws://host:port``)."""
    return f"{ws_base}/v1/exams/{exam_id}/attempt"


def proctor_url(ws_base: str, exam_id: str) -> str:
    """The proctor endpoint of ``exam_id`` on a node."""
    return f"{ws_base}/v1/exams/{exam_id}/proctor"


class _Client:
    """One live WebSocket at a time; ids, pending requests and pushes kept across reconnects."""

    def __init__(self, url: str, token: str | None, *, encoding: str | Encoding = Encoding.JSON,
                 headers: dict[str, str] | None = None, reply_timeout: float | None = 10.0, background: bool = True,
                 keep: bool = True, on_push: Callable[[Message], Any] | None = None, **options: Any) -> None:
        self.url, self.token, self.headers = url, token, dict(headers or {})
        self.encoding = Encoding(encoding)
        self._encode: Callable[[Message], str | bytes] = _pack if self.encoding is Encoding.MSGPACK else _dumps
        self.reply_timeout, self.background, self.keep, self.on_push = reply_timeout, background, keep, on_push
        self.options = {**CONNECT_OPTIONS, **options}
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None  # set when a message is dispatched (background reading)
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.welcome: Message | None = None  # of the current connection
        self.next_id = 1
        self.pending: dict[int, Message] = {}  # sent (or queued), not answered: id -> request
        self.replies: dict[int, Message] = {}  # ack/error received, not collected by reply() yet
        self.pushes: list[Message] = []
        #: the highest request id acknowledged so far (an ``ack``, or a ``welcome``'s ``last_id``)
        self.acked = 0
        self._taken: set[int] = set()  # positions in pushes already returned by wait_for
        self._tapped = 0  # wait_for calls waiting (keep=False keeps pushes only then)
        self.undecodable: list[Any] = []

    # ---------------------------------------------------------------- connection
    async def connect(self, url: str | None = None, **options: Any) -> None:
        """Open the WebSocket (closing any previous one); ``options`` go to ``websockets.connect``."""
        if url is not None:
            self.url = url
        await self.close()
        self.closed = asyncio.Event()
        self.close_code = self.close_reason = self.welcome = None
        self.ws = await connect(self.url, additional_headers=self.headers or None, **{**self.options, **options})
        if self.background:
            self._reader = asyncio.create_task(self._read_loop(self.ws))

    async def hello(self, *, timeout: Timeout = ...) -> Message:
        """Send ``hello`` (the token, if any: else header authentication) and return the ``welcome``."""
        return await self._hello({}, timeout)

    async def _hello(self, extra: Message, timeout: Timeout) -> Message:
        message: Message = {"t": "hello", "v": PROTOCOL_VERSION}
        if self.token is not None:
            message["token"] = self.token
        await self.send({**message, **extra})
        return await self._wait(lambda: self.welcome, timeout, "welcome")

    async def reconnect(self, url: str | None = None, *, timeout: Timeout = ...) -> Message:
        """``connect`` then ``hello``; returns the ``welcome``."""
        await self.connect(url)
        return await self.hello(timeout=timeout)

    async def close(self) -> None:
        """Close politely (1000) and stop the reader."""
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                await ws.close()  # bounded by close_timeout
            except Exception:  # noqa: BLE001 - best effort
                ws.transport.abort()
            self._set_closed(ws)
        await self._stop_reader()

    async def abort(self) -> None:
        """Drop the TCP connection at once, no close frame (a network failure)."""
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.transport.abort()
        await self._stop_reader()
        if ws is not None:
            self._set_closed(ws)

    async def _stop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await asyncio.wait((reader,), timeout=2)
            reader.cancel()  # it only reads

    async def wait_closed(self, timeout: Timeout = ...) -> tuple[int | None, str | None]:
        """Wait until the server closes the connection; ``(close_code, close_reason)``."""
        return await self._wait(lambda: (self.close_code, self.close_reason) if self.closed.is_set() else None,
                                timeout, "the close")

    def _set_closed(self, ws: ClientConnection) -> None:
        if self.closed.is_set() or (self.ws is not None and self.ws is not ws):
            return
        self.close_code = ws.close_code if ws.close_code is not None else 1006
        self.close_reason = ws.close_reason or ""
        self.closed.set()
        self._wake()

    # ---------------------------------------------------------------- input
    async def _read_loop(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                self._frame(frame)
        except ConnectionClosed:
            pass
        finally:
            self._set_closed(ws)

    def _frame(self, frame: str | bytes) -> None:
        try:
            m = _unpack(frame) if type(frame) is bytes else _loads(frame)
        except Exception:  # noqa: BLE001 - kept for the caller to see
            self.undecodable.append(frame)
            return
        if type(m) is not dict:
            self.undecodable.append(m)
            return
        t = m.get("t")
        if t == "ack" or t == "error":
            rid = m.get("id")
            if type(rid) is int:
                if t == "ack" and rid > self.acked:
                    self.acked = rid
                self.pending.pop(rid, None)
                self.replies[rid] = m
                if self._wakeup is not None:
                    self._wake()
                return
        self._note(m, t)
        if t == "welcome":
            self.welcome = m
        else:
            if self.keep or self._tapped:
                self.pushes.append(m)
            if self.on_push is not None:
                self.on_push(m)
        if self._wakeup is not None:
            self._wake()

    def _note(self, m: Message, t: Any) -> None:
        """A ``welcome`` or a push arrived: update the client's view of the attempt(s)."""

    def _wake(self) -> None:
        w, self._wakeup = self._wakeup, None
        if w is not None and not w.done():
            w.set_result(None)

    async def _next(self, deadline: float | None) -> None:
        """Until a message is dispatched, the connection closes, or ``deadline`` (loop time) passes."""
        ws = self.ws
        if ws is None:
            raise Closed(self.close_code, self.close_reason, "a message (not connected)")
        if self._reader is None:  # this call reads
            try:
                if deadline is None:
                    frame = await ws.recv()
                else:
                    async with asyncio.timeout_at(deadline):
                        frame = await ws.recv()
            except ConnectionClosed:
                self._set_closed(ws)
                return
            self._frame(frame)
            return
        if self._wakeup is None:
            self._wakeup = asyncio.get_running_loop().create_future()
        await asyncio.wait((self._wakeup,), timeout=None if deadline is None else deadline - asyncio.get_running_loop().time())

    async def _wait(self, found: Callable[[], Any], timeout: Timeout, what: str) -> Any:
        """The first non-None ``found()``, reading or waiting for messages meanwhile."""
        if timeout is ...:
            timeout = self.reply_timeout
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            got = found()
            if got is not None:
                return got
            if self.closed.is_set() or self.ws is None:
                raise Closed(self.close_code, self.close_reason, what)
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"no {what} within {timeout} s ({self!r})")
            try:
                await self._next(deadline)
            except TimeoutError:
                pass

    # ---------------------------------------------------------------- output
    async def send(self, message: Message) -> None:
        """Send one message as it is (no id added)."""
        ws = self.ws
        if ws is None:
            raise Closed(self.close_code, self.close_reason, "a send (not connected)")
        try:
            await ws.send(self._encode(message))
        except ConnectionClosed:
            self._set_closed(ws)
            raise Closed(self.close_code, self.close_reason, f"sending {message.get('t')!r}") from None

    def _file(self, message: Message, rid: int | None) -> int:
        """Give ``message`` the next id (or ``rid``) and file it in ``pending``."""
        if rid is None:
            rid = self.next_id
        else:
            self.replies.pop(rid, None)
        if rid >= self.next_id:
            self.next_id = rid + 1
        message["id"] = rid
        self.pending[rid] = message
        return rid

    def queue_request(self, t: str, *, id: int | None = None, **fields: Any) -> int:
        """File request ``t`` in ``pending`` without sending it (it goes out with ``resume``); returns its id."""
        return self._file({"t": t, **fields}, id)

    async def send_request(self, t: str, *, id: int | None = None, **fields: Any) -> int:
        """Send request ``t`` without waiting for its answer; returns its id."""
        message = {"t": t, **fields}
        rid = self._file(message, id)
        await self.send(message)
        return rid

    async def reply(self, rid: int, timeout: Timeout = ...) -> Message:
        """The ``ack`` or ``error`` of request ``rid`` (waits for it)."""
        return await self._wait(lambda: self.replies.pop(rid, None), timeout, f"the reply to id {rid}")

    async def request(self, t: str, *, id: int | None = None, timeout: Timeout = ..., **fields: Any) -> Message:
        """Send request ``t`` and return its ``ack`` or ``error``."""
        message = {"t": t, **fields}
        rid = self._file(message, id)
        ws, replies = self.ws, self.replies
        if ws is None or self._reader is not None or (self.reply_timeout if timeout is ... else timeout) is not None:
            await self.send(message)
            return await self.reply(rid, timeout)
        try:  # the fast path of load generators: this call reads, no timer
            await ws.send(self._encode(message))
            while rid not in replies:
                self._frame(await ws.recv())
        except ConnectionClosed:
            self._set_closed(ws)
            raise Closed(self.close_code, self.close_reason, f"the reply to id {rid}") from None
        return replies.pop(rid)

    async def ping(self, ct: int | None = None, timeout: Timeout = ...) -> Message:
        """Send ``ping{ct}``; returns the ``pong`` echoing it."""
        ct = int(time.time() * 1000) if ct is None else ct
        since = self.mark()
        await self.send({"t": "ping", "ct": ct})
        return await self.wait_for("pong", timeout, pred=lambda m: m.get("ct") == ct, since=since)

    # ---------------------------------------------------------------- pushes
    def mark(self) -> int:
        """A position in ``pushes``: pass it as ``since=`` to wait only for later pushes."""
        return len(self.pushes)

    async def wait_for(self, t: str, timeout: Timeout = ..., *, pred: Callable[[Message], bool] | None = None,
                       since: int = 0) -> Message:
        """The first push of type ``t`` at position ``since`` or later (matching ``pred``) that no
        earlier ``wait_for`` returned; with ``keep=False``, the first such push from now on."""
        pushes, taken = self.pushes, self._taken
        pos = since if self.keep else len(pushes)

        def found() -> Message | None:
            nonlocal pos
            for i in range(pos, len(pushes)):
                m = pushes[i]
                if i not in taken and m.get("t") == t and (pred is None or pred(m)):
                    taken.add(i)
                    return m
            pos = len(pushes)
            return None

        self._tapped += 1
        try:
            return await self._wait(found, timeout, f"a {t!r} push")
        finally:
            self._tapped -= 1
            if not self.keep and not self._tapped:
                pushes.clear()
                taken.clear()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.url} {self.encoding.value} next_id={self.next_id} "
                f"pending={sorted(self.pending)} close={self.close_code}>")


class ExamClient(_Client):
    """A candidate: one attempt, exactly-once requests across reconnects."""

    def __init__(self, url: str, token: str | None, **kw: Any) -> None:
        super().__init__(url, token, **kw)
        self.questions: dict[int, Message] = {}  # candidate index -> question, from every batch
        #: the newest ``ticket`` (``welcome`` and ``time`` of a live attempt), sent back as it is
        self.ticket: str | None = None
        self._welcomed = False

    def _note(self, m: Message, t: Any) -> None:
        if t == "batch" and self.keep:
            for q in m.get("questions") or ():
                self.questions[q["index"]] = q
            return
        if (t == "time" or t == "welcome") and type(ticket := m.get("ticket")) is str:
            self.ticket = ticket
        if t == "welcome":
            self._welcomed = True
            if type(last_id := m.get("last_id")) is int:
                self.acked = max(self.acked, last_id)
                if last_id >= self.next_id:
                    self.next_id = last_id + 1

    def evidence(self) -> Message:
        """What a ``hello`` says it had: ``acked`` and ``ticket``, once this client was welcomed to the attempt."""
        if not self._welcomed:
            return {}
        return {**({"acked": self.acked} if self.acked else {}), **({"ticket": self.ticket} if self.ticket else {})}

    async def hello(self, *, timeout: Timeout = ..., evidence: bool = False) -> Message:
        """Send ``hello`` and return the ``welcome``; ``evidence``: with ``evidence()``."""
        return await self._hello(self.evidence() if evidence else {}, timeout)

    async def resume(self, url: str | None = None, *, timeout: Timeout = ...) -> tuple[Message, list[Message]]:
        """Reconnect (to ``url`` or the same one), ``hello`` with the loss evidence, and resend every
        pending request under its original id, in id order. Returns the ``welcome`` and their replies, in id order."""
        await self.connect(url)
        welcome = await self.hello(timeout=timeout, evidence=True)
        resend = [self.pending[i] for i in sorted(self.pending)]
        for m in resend:
            await self.send(m)
        return welcome, [await self.reply(m["id"], timeout) for m in resend]

    def start(self, **kw: Any) -> Awaitable[Message]:
        return self.request("start", **kw)

    def answer(self, q: str, value: Any, **kw: Any) -> Awaitable[Message]:
        return self.request("answer", q=q, value=value, **kw)

    def flag(self, q: str, on: bool = True, **kw: Any) -> Awaitable[Message]:
        return self.request("flag", q=q, on=on, **kw)

    def goto(self, index: int, **kw: Any) -> Awaitable[Message]:
        return self.request("goto", index=index, **kw)

    def fetch(self, from_: int, count: int, **kw: Any) -> Awaitable[Message]:
        return self.request("fetch", **{"from": from_, "count": count}, **kw)

    def event(self, kind: str, detail: Any = None, **kw: Any) -> Awaitable[Message]:
        return self.request("event", kind=kind, **({} if detail is None else {"detail": detail}), **kw)

    def submit(self, **kw: Any) -> Awaitable[Message]:
        return self.request("submit", **kw)


class ProctorClient(_Client):
    """A proctor: ``welcome`` then ``snapshot``, ``update``s merged into ``rows``, actions by ``request``."""

    def __init__(self, url: str, token: str | None, **kw: Any) -> None:
        super().__init__(url, token, **kw)
        self.snapshot: Message | None = None
        self.rows: dict[str, Message] = {}  # attempt -> its row, as of the latest update

    async def connect(self, url: str | None = None, **options: Any) -> None:
        self.snapshot = None
        self.pending.clear()  # a proctor's ids are per connection: nothing is resent
        await super().connect(url, **options)

    async def hello(self, *, timeout: Timeout = ...) -> Message:
        """Send ``hello``; returns the ``welcome`` once the ``snapshot`` (in ``snapshot``, ``rows``) is in too."""
        welcome = await super().hello(timeout=timeout)
        await self._wait(lambda: self.snapshot, timeout, "the snapshot")
        return welcome

    def _note(self, m: Message, t: Any) -> None:
        if t == "update":
            row = self.rows.setdefault(m["attempt"], {})
            row.update(m)
            del row["t"]
            row.pop("event", None)
        elif t == "snapshot":
            self.snapshot = m
            self.rows = {r["attempt"]: dict(r) for r in m.get("attempts") or ()}
