"""This node's live connections, and the control channel that reaches them.

Scripts publish attempt notifications (``owner`` when a newer connection
claims an attempt, ``changed`` when a system or proctor change was committed)
on one channel; every node receives them and hands each to its own
connections of that attempt. After the subscription is (re)established every
connection is told to ``resync``, since notifications may have been missed.

Who is superseded follows the claim numbers of ``claim.lua``, never the
arrival order of messages: an ``owner`` message numbered ``s`` closes exactly
the local connections whose own claim is numbered below ``s``. A connection
whose claim has not returned yet is judged when it does (``claimed``) against
the newest claim number seen for its attempt meanwhile. So the connection with
the newest claim is never closed by its own message or an older one arriving
late, and every older one is closed once, whatever the interleaving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from storage import keys
from storage.live import raw_client

log = logging.getLogger("examwire.hub")


class Listener(Protocol):
    conn_id: str

    def deliver(self, item: tuple[Any, ...]) -> None:
        """Queue ``item`` for the connection's task without waiting."""
        ...


#: A local connection's claim number before its claim returned.
_CLAIMING = 0
#: A local connection already told it is superseded (it is closing).
_TOLD = -1


class _Local:
    """This node's connections of one attempt, and the newest claim number seen for it."""

    __slots__ = ("conns", "newest")

    def __init__(self) -> None:
        self.conns: dict[Listener, int] = {}  # connection -> its claim number, or _CLAIMING / _TOLD
        self.newest = 0


class Hub:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._by_attempt: dict[str, _Local] = {}
        self.subscribed = asyncio.Event()

    def add(self, attempt_id: str, conn: Listener) -> None:
        """Listen for ``conn`` before it claims the attempt, so no newer claim can go unseen."""
        self._by_attempt.setdefault(attempt_id, _Local()).conns.setdefault(conn, _CLAIMING)

    def claimed(self, attempt_id: str, conn: Listener, claim: int) -> bool:
        """Record the number of ``conn``'s claim; False when a newer claim was already seen (``conn`` is superseded)."""
        local = self._by_attempt.get(attempt_id)
        if local is None or conn not in local.conns:
            return True
        if local.newest > claim:
            local.conns[conn] = _TOLD
            return False
        local.conns[conn] = claim
        return True

    def remove(self, attempt_id: str, conn: Listener) -> None:
        local = self._by_attempt.get(attempt_id)
        if local is not None:
            local.conns.pop(conn, None)
            if not local.conns:
                del self._by_attempt[attempt_id]

    def connections(self) -> list[Listener]:
        return [c for local in self._by_attempt.values() for c in local.conns]

    def dispatch(self, message: dict[str, Any]) -> None:
        """Hand one control message to the local connections of its attempt."""
        local = self._by_attempt.get(message.get("a", ""))
        if local is None:
            return
        kind = message.get("k")
        if kind == "owner":
            self._owner(local, message)
            return
        for conn in list(local.conns):
            if kind == "changed":
                if message.get("o") != conn.conn_id:
                    conn.deliver(("changed", message.get("v", 0)))
            else:
                conn.deliver((kind, message))

    @staticmethod
    def _owner(local: _Local, message: dict[str, Any]) -> None:
        """A claim numbered ``s``: supersede the local connections whose claims are older, each once."""
        claim = message.get("s")
        if type(claim) is not int:
            # no claim number (a node of an older release): let the attempt's owner in Redis decide
            for conn in list(local.conns):
                if message.get("o") != conn.conn_id:
                    conn.deliver(("changed", 0))
            return
        local.newest = max(local.newest, claim)
        for conn, own in list(local.conns.items()):
            if _CLAIMING < own < claim:
                local.conns[conn] = _TOLD
                conn.deliver(("superseded",))

    async def run(self) -> None:
        """Subscribe and dispatch until cancelled, subscribing again after a lost connection.

        The subscription has a connection of its own that redis-py never
        reconnects behind our back (``storage.live.raw_client``): messages
        published while it was down are lost, so once Redis confirms the new
        subscription every local connection reloads its attempt. Tries again
        after 0.1 s, doubling to at most 2 s, with jitter (nodes that lost
        Redis together do not come back in step).
        """
        client = raw_client(self._redis, max_connections=2)
        failures = 0
        try:
            while True:
                try:
                    async with client.pubsub() as ps:
                        await ps.subscribe(keys.CONTROL)
                        async for msg in ps.listen():
                            kind = msg.get("type")
                            if kind == "subscribe":  # in place: whatever was published before it is not coming
                                if self.subscribed.is_set():
                                    for conn in self.connections():
                                        conn.deliver(("changed", 0))
                                self.subscribed.set()
                                failures = 0
                                continue
                            if kind != "message":
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
                    if self.subscribed.is_set() and failures == 0:  # once per loss; an unreachable Redis is reported by the node's Redis watch
                        log.warning(json.dumps({"event": "control_channel_lost", "error": type(exc).__name__}))
                    failures += 1
                    delay = min(2.0, 0.1 * 2 ** (failures - 1))
                    await asyncio.sleep(delay / 2 + random.uniform(0, delay / 2))
        finally:
            await client.aclose()
