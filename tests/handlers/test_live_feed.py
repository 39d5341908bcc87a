"""The node's live feed against a real Redis: one pub/sub connection for every watched exam.

Stand-in watches record what the feed hands them: ``subscribed()`` (Redis
confirmed the channel: the watch (re)loads) and ``receive(message)``. The
Redis side is read with ``CLIENT LIST TYPE pubsub``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from handlers.live import Feed
from services.core import connect_redis
from storage import keys
from storage.live import RedisLive, encode_message
from storage.scripts import Scripts


class StandIn:
    def __init__(self, exam_id: str) -> None:
        self.exam_id = exam_id
        self.channel = keys.live(exam_id).encode()
        self.confirmed = 0
        self.messages: list[dict[str, Any]] = []

    def subscribed(self) -> None:
        self.confirmed += 1

    def receive(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


async def _until(predicate: Any, what: str, timeout: float = 5.0) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = predicate() if not asyncio.iscoroutinefunction(predicate) else await predicate()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _subs(redis: Any) -> list[int]:
    """The ``sub`` count of every pub/sub client of the server."""
    return [int(c["sub"]) for c in await redis.client_list(_type="pubsub")]


async def _setup(url: str):
    redis = connect_redis(url, max_connections=8)
    live = RedisLive(redis, Scripts.register(redis))
    feed = Feed(live)
    task = asyncio.create_task(feed.run())
    return redis, live, feed, task


async def _teardown(redis: Any, live: RedisLive, task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await live.aclose()
    await redis.aclose()


def test_one_connection_carries_every_watched_channel(redis_url):
    async def go():
        redis, live, feed, task = await _setup(redis_url)
        watches = [StandIn(f"e{i}") for i in range(50)]
        for w in watches:
            feed.add(w)  # type: ignore[arg-type]
        await _until(lambda: all(w.confirmed == 1 for w in watches), "every channel confirmed")
        assert await _subs(redis) == [50]

        await redis.publish(keys.live("e7"), encode_message({"a": "x" * 32, "c": True}))
        await redis.publish(keys.live("nobody-watches"), encode_message({"a": "y" * 32, "c": True}))
        await _until(lambda: watches[7].messages, "the message of e7")
        assert watches[7].messages == [{"a": "x" * 32, "c": True}]
        assert all(not w.messages for i, w in enumerate(watches) if i != 7)

        for w in watches[10:]:
            feed.remove(w)  # type: ignore[arg-type]

        async def ten() -> bool:
            return await _subs(redis) == [10]

        await _until(ten, "the stopped watches unsubscribed")
        for w in watches[:10]:
            feed.remove(w)  # type: ignore[arg-type]

        async def none() -> bool:
            return await _subs(redis) == []

        await _until(none, "no pub/sub connection once nothing is watched")
        feed.add(watches[3])  # type: ignore[arg-type]
        await _until(lambda: watches[3].confirmed == 2, "a new connection for a watch again")
        assert await _subs(redis) == [1]
        await _teardown(redis, live, task)

    asyncio.run(go())


def test_a_watch_started_again_while_its_channel_is_subscribed_loads_at_once(redis_url):
    async def go():
        redis, live, feed, task = await _setup(redis_url)
        keep, old = StandIn("keep"), StandIn("again")
        feed.add(keep)  # type: ignore[arg-type]
        feed.add(old)  # type: ignore[arg-type]
        await _until(lambda: old.confirmed and keep.confirmed, "both confirmed")
        new = StandIn("again")
        feed.remove(old)  # type: ignore[arg-type]
        feed.add(new)  # type: ignore[arg-type]  (before the feed ran: the channel is never unsubscribed)
        await _until(lambda: new.confirmed, "the new watch of the exam told to load")
        await redis.publish(keys.live("again"), encode_message({"a": "z" * 32, "c": False}))
        await _until(lambda: new.messages, "the message reaches the new watch")
        assert not old.messages
        assert await _subs(redis) == [2]
        await _teardown(redis, live, task)

    asyncio.run(go())


def test_a_lost_connection_is_subscribed_again_and_every_watch_reloads(redis_url):
    async def go():
        redis, live, feed, task = await _setup(redis_url)
        watches = [StandIn(f"lost{i}") for i in range(5)]
        for w in watches:
            feed.add(w)  # type: ignore[arg-type]
        await _until(lambda: all(w.confirmed == 1 for w in watches), "every channel confirmed")
        assert await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 1
        await _until(lambda: all(w.confirmed == 2 for w in watches), "every watch told to reload", timeout=10)
        assert await _subs(redis) == [5]
        for i, w in enumerate(watches):
            await redis.publish(keys.live(w.exam_id), encode_message({"a": f"{i:032d}", "c": True}))
        await _until(lambda: all(w.messages for w in watches), "messages after the loss")
        await _teardown(redis, live, task)

    asyncio.run(go())
