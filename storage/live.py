"""The live view of an exam in Redis: its roster, who is connected, and its feed channel.

Every commit of an attempt publishes the attempt's progress summary on its
exam's live channel (``commit.lua``); the connection scripts here publish
presence. A node with proctors watching an exam subscribes to that one
channel, so the feed crosses engine nodes and costs nothing for exams nobody
watches.

Presence is heartbeats with expiry, not close events alone: a node that dies
stops beating, and whichever node watches the exam reaps its attempts once
their last heartbeat is older than the staleness limit.

Live messages are JSON objects: ``a`` (attempt id) and any of ``v`` + ``s``
(version and summary after a commit), ``c`` (connected) and ``e`` (a candidate
event ``{kind, detail, at}``).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from . import keys
from .scripts import Scripts


class LiveStore(Protocol):
    """What the handlers need of the exam-level live state."""

    async def present(self, exam_id: str, attempt_id: str, now: int, ver: int, summary: Mapping[str, Any]) -> None: ...
    async def absent(self, exam_id: str, attempt_id: str) -> bool: ...
    async def beat(self, exam_id: str, attempt_ids: list[str], now: int) -> int: ...
    async def reap(self, exam_id: str, cutoff: int) -> list[str]: ...
    async def roster(self, exam_id: str) -> list[str]: ...
    async def presence(self, exam_id: str) -> dict[str, int]: ...
    async def last_seen(self, exam_id: str, attempt_id: str) -> int | None: ...
    def subscribe(self) -> PubSub: ...


def parse_message(data: Any) -> dict[str, Any] | None:
    """A live-channel message, or None when it is not one."""
    try:
        message = json.loads(data)
    except (TypeError, ValueError):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("a"), str):
        return None
    return message


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class RedisLive:
    """``LiveStore`` on Redis: roster set, presence sorted set, live channel per exam."""

    def __init__(self, redis: Redis, scripts: Scripts) -> None:
        self._redis = redis
        self._s = scripts

    async def present(self, exam_id: str, attempt_id: str, now: int, ver: int, summary: Mapping[str, Any]) -> None:
        """Add the attempt to the roster, mark it connected at ``now`` and publish its summary."""
        message = _json({"a": attempt_id, "v": ver, "s": summary, "c": True})
        await self._s.present(
            keys=[keys.roster(exam_id), keys.presence(exam_id)],
            args=[attempt_id, now, keys.live(exam_id), message],
        )

    async def absent(self, exam_id: str, attempt_id: str) -> bool:
        """Mark the attempt disconnected; True when it had been present (and the proctors were told)."""
        message = _json({"a": attempt_id, "c": False})
        return bool(await self._s.absent(keys=[keys.presence(exam_id)], args=[attempt_id, keys.live(exam_id), message]))

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

    def subscribe(self) -> PubSub:
        """A pub/sub connection of its own (the caller subscribes to ``keys.live(exam)`` and closes it)."""
        return self._redis.pubsub(ignore_subscribe_messages=True)
