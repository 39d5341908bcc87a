"""The ceiling of this stack: a bare WebSocket echo that makes one EVALSHA per message.

Same stack as an engine node (Starlette on uvicorn with uvloop,
``websockets-sansio``, per-message deflate off, redis-py asyncio on a
``BlockingConnectionPool``, MessagePack frames), none of the engine's work:
each binary frame is decoded, one script increments a per-connection counter
(``HINCRBY`` on a hash-tagged key), and ``{"t":"ack","id":…}`` is sent back.

    uvicorn --factory loadtests.ceiling_app:create --loop uvloop \\
        --ws websockets-sansio --ws-per-message-deflate false --port P

Reads ``EXAMWIRE_REDIS_URL``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import AsyncIterator

import msgpack
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from examwire.app import connect_redis

SCRIPT = """
-- KEYS[1]  the connection's counter hash
-- ARGV[1]  the request id
return redis.call('HINCRBY', KEYS[1], 'n', 1)
"""


def create() -> Starlette:
    url = os.environ["EXAMWIRE_REDIS_URL"]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = connect_redis(url, max_connections=200)
        app.state.redis = redis
        app.state.sha = await redis.script_load(SCRIPT)
        yield
        await redis.aclose()

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        redis, sha = ws.app.state.redis, ws.app.state.sha
        key = f"ceiling:{{{secrets.token_hex(8)}}}"
        try:
            while True:
                frame = await ws.receive_bytes()
                message = msgpack.unpackb(frame, raw=False)
                await redis.evalsha(sha, 1, key, message.get("id", 0))
                await ws.send_bytes(msgpack.packb({"t": "ack", "id": message.get("id")}))
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[WebSocketRoute("/echo", echo)], lifespan=lifespan)
