"""The ceiling of this stack: a bare WebSocket echo that makes one EVALSHA per message.

Same stack as an engine node (Starlette on uvicorn with uvloop,
``websockets-sansio``, per-message deflate off, redis-py asyncio on a
``BlockingConnectionPool``, MessagePack frames), none of the engine's work:
each binary frame is decoded, one script increments a per-connection counter
(``HINCRBY`` on a hash-tagged key), and ``{"t":"ack","id":…}`` is sent back.

Four routes, so a run can show each layer's cost side by side:

- ``/echo``: the EVALSHA through redis-py's client, one command per call
  (what a plain redis-py server does);
- ``/echo-batched``: the EVALSHA through the engine's own ``Batcher``
  (``storage/scripts.py``: the calls of one loop tick leave as one pipeline),
  the ceiling for the engine's Redis path;
- ``/echo-bare``: no Redis at all, the WebSocket stack alone;
- ``/v1/exams/{exam}/attempt``: the engine's own connection layer
  (``handlers.connection.Connection``: hello and token check, rate budgets,
  the inbox, validating decode, the error mapping) around a session that
  only makes the same batched EVALSHA and acks; no exam rules, no attempt
  state. ``start`` is answered with an ack and an empty ``batch``, so the
  bench's candidate client drives it unchanged.

Reads ``EXAMWIRE_REDIS_URL`` (and, for the connection layer, the engine's
settings from the environment, as a node does).

    uvicorn --factory loadtests.ceiling_app:create --loop uvloop \\
        --ws websockets-sansio --ws-per-message-deflate false --port P
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import Any, AsyncIterator, Awaitable, Callable

import msgpack
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from examwire.app import build_context
from examwire.cli import tune_gc
from examwire.settings import Settings
from handlers.auth import Claims
from handlers.connection import Connection
from protocol import Ack, Batch, Welcome, parse_request
from protocol import candidate as wire
from storage.scripts import Batcher

SCRIPT = """
-- KEYS[1]  the connection's counter hash
-- ARGV[1]  the request id
return redis.call('HINCRBY', KEYS[1], 'n', 1)
"""


def create() -> Starlette:
    url = os.environ["EXAMWIRE_REDIS_URL"]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        settings = Settings.from_env().with_redis(url)
        ctx = build_context(settings)  # the connection layer's; its client serves the echoes too
        app.state.ctx, app.state.redis = ctx, ctx.redis
        app.state.sha = await ctx.redis.script_load(SCRIPT)
        app.state.batcher = Batcher(ctx.redis)
        tune_gc(settings.gc_threshold)  # as `examwire serve` does: the same stack, the same collector
        yield
        await ctx.live.aclose()
        await ctx.redis.aclose()

    async def echo_loop(ws: WebSocket, call: Callable[[str, Any], Awaitable[Any]] | None) -> None:
        """Ack every binary frame, after ``call(key, request id)`` when given."""
        await ws.accept()
        key = f"ceiling:{{{secrets.token_hex(8)}}}"
        try:
            while True:
                message = msgpack.unpackb(await ws.receive_bytes(), raw=False)
                if call is not None:
                    await call(key, message.get("id", 0))
                await ws.send_bytes(msgpack.packb({"t": "ack", "id": message.get("id")}))
        except WebSocketDisconnect:
            pass

    async def echo(ws: WebSocket) -> None:
        redis, sha = ws.app.state.redis, ws.app.state.sha
        await echo_loop(ws, lambda key, rid: redis.evalsha(sha, 1, key, rid))

    async def echo_batched(ws: WebSocket) -> None:
        batcher, sha = ws.app.state.batcher, ws.app.state.sha
        await echo_loop(ws, lambda key, rid: batcher.call("EVALSHA", sha, 1, key, rid))

    async def echo_bare(ws: WebSocket) -> None:
        await echo_loop(ws, None)

    async def connection_layer(ws: WebSocket) -> None:
        conn = Connection(ws.app.state.ctx, ws)
        await conn.run(_EvalSession(conn, ws.app.state.batcher, ws.app.state.sha))

    return Starlette(routes=[WebSocketRoute("/echo", echo), WebSocketRoute("/echo-batched", echo_batched),
                             WebSocketRoute("/echo-bare", echo_bare),
                             WebSocketRoute("/v1/exams/{exam_id}/attempt", connection_layer)], lifespan=lifespan)


class _EvalSession:
    """A ``handlers.connection.Session`` that makes one batched EVALSHA per request and acks it."""

    def __init__(self, conn: Connection, batcher: Batcher, sha: str) -> None:
        self.conn, self.batcher, self.sha = conn, batcher, sha
        self.key = f"ceiling:{{{secrets.token_hex(8)}}}"

    async def open(self, conn: Connection, claims: Claims) -> None:
        await conn.send(Welcome(attempt=self.key, exam={}, state="active", server_time=0, deadline=None, remaining_ms=0,
                                last_id=0, answers={}, flags=[], index=0).to_wire())

    async def request(self, message: dict[str, Any]) -> None:
        req = parse_request(message)
        rid = getattr(req, "id", 0)
        await self.batcher.call("EVALSHA", self.sha, 1, self.key, rid)
        await self.conn.send(Ack(rid, {}).to_wire())
        if isinstance(req, wire.Start):
            await self.conn.send(Batch(0, [], 0).to_wire())

    async def push(self, item: tuple[Any, ...]) -> None:
        pass

    async def close(self) -> None:
        pass
