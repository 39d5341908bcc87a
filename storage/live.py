"""The live view of an exam in Redis: its roster, who is connected, and its feed channel.

Every commit of an attempt publishes the attempt's progress summary on its
exam's live channel (``commit.lua``); the connection scripts here publish
presence. A node with proctors watching exams subscribes to those exams'
channels, all on one pub/sub connection (``handlers.live.Feed``), so the feed
crosses engine nodes and costs nothing for exams nobody watches.

Presence is heartbeats with expiry, not close events alone: a node that dies
stops beating, and whichever node watches the exam reaps its attempts once
their last heartbeat is older than the staleness limit.

Live messages are MessagePack maps: ``a`` (attempt id) and any of ``v`` +
``s`` (version and summary after a commit), ``c`` (connected) and ``e`` (a
candidate event ``{kind, detail, at}``). MessagePack, not JSON: every commit
publishes one, and encoding it is on the answer path (JSON cost five times
as much there). Subscribers read the channels on a connection that does not
decode responses to text (``subscribe``).
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol

import msgpack
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import NoBackoff

from . import keys
from .scripts import Scripts


class LiveStore(Protocol):
    """What the handlers need of the exam-level live state."""

    async def present(self, exam_id: str, attempt_id: str, now: int, ver: int, summary: Mapping[str, Any], *,
                      claim: int = 0) -> bool: ...
    async def absent(self, exam_id: str, attempt_id: str, *, claim: int = 0) -> bool: ...
    async def beat(self, exam_id: str, attempt_ids: list[str], now: int) -> int: ...
    async def reap(self, exam_id: str, cutoff: int) -> list[str]: ...
    async def roster(self, exam_id: str) -> list[str]: ...
    async def presence(self, exam_id: str) -> dict[str, int]: ...
    async def last_seen(self, exam_id: str, attempt_id: str) -> int | None: ...
    def subscribe(self, *, confirmations: bool = False) -> PubSub: ...
    async def aclose(self) -> None: ...


def encode_message(message: Mapping[str, Any]) -> bytes:
    """A live-channel message as published."""
    return msgpack.packb(message)


def parse_message(data: Any) -> dict[str, Any] | None:
    """A live-channel message, or None when it is not one."""
    if not isinstance(data, (bytes, bytearray)):
        return None
    try:
        message = msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.UnpackException):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("a"), str):
        return None
    return message


def raw_client(redis: Redis, max_connections: int = 64) -> Redis:
    """A client for subscribers, on its own pool to the same server as ``redis``, whose replies stay bytes.

    Behind sentinels it asks them for the primary as ``redis`` does (same
    pool class, service and ``Sentinel``). Its connections never retry inside
    redis-py: a subscriber must see a lost connection (messages published
    meanwhile are gone) to subscribe again and reload, rather than be
    resubscribed silently.
    """
    pool = redis.connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in ("connection_pool", "retry")}
    kwargs.update(connection_class=pool.connection_class, decode_responses=False, retry=Retry(NoBackoff(), 0))
    if isinstance(pool, SentinelConnectionPool):
        new = type(pool)(pool.service_name, pool.sentinel_manager, is_master=True, max_connections=max_connections,
                         timeout=10, **kwargs)  # fmt: skip
    else:
        new = BlockingConnectionPool(max_connections=max_connections, timeout=10, **kwargs)
    return Redis.from_pool(new)


#: Pub/sub connections of one process's subscribers: an engine node's feed holds one (``handlers.live.Feed``),
#: whatever the number of exams it watches; the spare is for a new connection while a lost one is let go.
_SUBSCRIBERS = 2


class RedisLive:
    """``LiveStore`` on Redis: roster set, presence sorted set, live channel per exam."""

    def __init__(self, redis: Redis, scripts: Scripts) -> None:
        self._redis = redis
        self._s = scripts
        self._feed: Redis | None = None  # for subscribers, made on first use

    async def present(self, exam_id: str, attempt_id: str, now: int, ver: int, summary: Mapping[str, Any], *,
                      claim: int = 0) -> bool:
        """Add the attempt to the roster, mark it connected at ``now`` and publish its summary.

        ``claim`` is the connection's claim number (``RedisAttempts.claim``):
        False (nothing marked or published) when a connection with a newer
        claim announced the attempt already.
        """
        message = encode_message({"a": attempt_id, "v": ver, "s": summary, "c": True})
        return bool(await self._s.present(
            keys=[keys.roster(exam_id), keys.presence(exam_id), keys.presence_claims(exam_id)],
            args=[attempt_id, now, keys.live(exam_id), message, claim],
        ))

    async def absent(self, exam_id: str, attempt_id: str, *, claim: int = 0) -> bool:
        """Mark the attempt disconnected; True when it had been present (and the proctors were told).

        ``claim`` is the closed connection's claim number: nothing happens when
        a connection with a newer claim announced the attempt meanwhile.
        """
        message = encode_message({"a": attempt_id, "c": False})
        return bool(await self._s.absent(keys=[keys.presence(exam_id), keys.presence_claims(exam_id)],
                                         args=[attempt_id, keys.live(exam_id), message, claim]))

    async def beat(self, exam_id: str, attempt_ids: list[str], now: int) -> int:
        """Heartbeat ``attempt_ids``; returns how many had been reaped and are announced again."""
        if not attempt_ids:
            return 0
        return int(await self._s.beat(keys=[keys.presence(exam_id)], args=[now, keys.live(exam_id), *attempt_ids]))

    async def reap(self, exam_id: str, cutoff: int) -> list[str]:
        """Remove (and announce as disconnected) the attempts last seen before ``cutoff``."""
        return list(await self._s.reap(keys=[keys.presence(exam_id)], args=[cutoff, keys.live(exam_id)]))

    async def roster(self, exam_id: str) -> list[str]:
        return sorted(await self._redis.smembers(keys.roster(exam_id)))

    async def presence(self, exam_id: str) -> dict[str, int]:
        """Attempt id -> its last heartbeat (ms)."""
        pairs = await self._redis.zrange(keys.presence(exam_id), 0, -1, withscores=True)
        return {aid: int(score) for aid, score in pairs}

    async def last_seen(self, exam_id: str, attempt_id: str) -> int | None:
        score = await self._redis.zscore(keys.presence(exam_id), attempt_id)
        return None if score is None else int(score)

    def subscribe(self, *, confirmations: bool = False) -> PubSub:
        """A pub/sub connection of its own (the caller subscribes to ``keys.live(exam)`` channels and closes it).

        Its messages' ``data`` are bytes, for ``parse_message``. With
        ``confirmations`` it also yields Redis's ``subscribe``/``unsubscribe``
        replies, which say when a subscription is in place. An engine node
        holds one of these for all the exams it watches (``handlers.live.Feed``).
        """
        if self._feed is None:
            self._feed = raw_client(self._redis, max_connections=_SUBSCRIBERS)
        return self._feed.pubsub(ignore_subscribe_messages=not confirmations)

    async def aclose(self) -> None:
        """Close the subscribers' pool (the shared client is the caller's)."""
        if self._feed is not None:
            feed, self._feed = self._feed, None
            await feed.aclose()
