"""This node's live connections, and the control channel that reaches them.

Scripts publish attempt notifications (``owner`` when a newer connection
claims an attempt, ``changed`` when a system or proctor change was committed)
on one channel; every node receives them and hands each to its own
connections of that attempt. After the subscription is (re)established every
connection is told to ``resync``, since notifications may have been missed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from storage import keys

log = logging.getLogger("examwire.hub")


class Listener(Protocol):
    conn_id: str

    def deliver(self, item: tuple[Any, ...]) -> None:
        """Queue ``item`` for the connection's task without waiting."""
        ...


class Hub:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._by_attempt: dict[str, set[Listener]] = {}
        self.subscribed = asyncio.Event()

    def add(self, attempt_id: str, conn: Listener) -> None:
        self._by_attempt.setdefault(attempt_id, set()).add(conn)

    def remove(self, attempt_id: str, conn: Listener) -> None:
        conns = self._by_attempt.get(attempt_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._by_attempt[attempt_id]

    def connections(self) -> list[Listener]:
        return [c for conns in self._by_attempt.values() for c in conns]

    def dispatch(self, message: dict[str, Any]) -> None:
        """Hand one control message to the local connections of its attempt."""
        conns = self._by_attempt.get(message.get("a", ""))
        if not conns:
            return
        kind = message.get("k")
        for conn in list(conns):
            if kind == "owner":
                if message.get("o") != conn.conn_id:
                    conn.deliver(("superseded",))
            elif kind == "changed":
                if message.get("o") != conn.conn_id:
                    conn.deliver(("changed", message.get("v", 0)))
            else:
                conn.deliver((kind, message))

    async def run(self) -> None:
        """Subscribe and dispatch until cancelled, resubscribing after Redis errors."""
        backoff = 0.1
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as ps:
                    await ps.subscribe(keys.CONTROL)
                    if self.subscribed.is_set():
                        for conn in self.connections():
                            conn.deliver(("changed", 0))
                    self.subscribed.set()
                    backoff = 0.1
                    async for msg in ps.listen():
                        if msg.get("type") != "message":
                            continue
                        try:
                            data = json.loads(msg["data"])
                        except (TypeError, ValueError):
                            continue
                        if isinstance(data, dict):
                            self.dispatch(data)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.subscribed.is_set() and backoff == 0.1:  # once per loss; an unreachable Redis is reported by the node's Redis watch
                    log.warning(json.dumps({"event": "control_channel_lost", "error": type(exc).__name__}))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
