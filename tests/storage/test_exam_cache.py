"""``ExamCache`` in front of a real Redis and a real SQLite store.

Redis is a cache of the exam bank here: a Redis that lost its keys (flushed,
restarted without AOF, a new instance) must be refilled from the store on
the first read, for old versions too (attempts keep the version they
started on).

Reading an old version first (a candidate of the first edition resuming, a
persisted attempt served from the store, a proctor's view of it) used to
set the cached ``current`` to that old version: every new candidate then
started on the first edition until the exam was loaded again.
"""

from __future__ import annotations

import asyncio

from services.core import connect_redis
from storage import keys
from storage.exams import ExamCache
from storage.scripts import Scripts
from storage.sqlite_results import SqliteResults
from testkit import SAMPLE_EXAM


def test_a_redis_that_lost_the_exams_is_refilled_from_the_store_without_going_back_a_version(redis_url, tmp_path):
    async def go() -> None:
        redis = connect_redis(redis_url, max_connections=8)
        store = SqliteResults(tmp_path / "r.db")
        await store.open()
        try:
            scripts = Scripts.register(redis)
            first = ExamCache(redis, scripts, store)
            v1, created = await first.put({**SAMPLE_EXAM, "id": "bank"})
            v2, _ = await first.put({**SAMPLE_EXAM, "id": "bank", "title": "Second edition"})
            assert (v1.version, created, v2.version) == (1, True, 2)

            await redis.delete(keys.exam("bank"))  # Redis lost its copy; the store keeps the bank
            fresh = ExamCache(redis, scripts, store)  # another node: nothing parsed in memory either
            old = await fresh.get("bank", 1)  # an attempt that started on version 1
            assert old is not None and old.version == 1 and old.title == SAMPLE_EXAM["title"]
            assert await redis.hexists(keys.exam("bank"), "v:1")  # cached again for every node
            assert await redis.hget(keys.exam("bank"), "current") is None  # v1 is not known to be current
            current = await fresh.current("bank")  # what a new candidate starts on: the store's current
            assert current is not None and current.version == 2 and current.title == "Second edition"
            assert await redis.hget(keys.exam("bank"), "current") == "2"
            assert await fresh.get("bank", 3) is None and await fresh.get("nope", 1) is None
        finally:
            await store.close()
            await redis.aclose()

    asyncio.run(go())


def test_the_parsed_exams_kept_in_memory_are_bounded(redis_url, tmp_path):
    async def go() -> None:
        redis = connect_redis(redis_url, max_connections=8)
        store = SqliteResults(tmp_path / "r.db")
        await store.open()
        try:
            cache = ExamCache(redis, Scripts.register(redis), store, limit=2)
            for n in range(4):
                await cache.put({**SAMPLE_EXAM, "id": f"e{n}"})
            assert len(cache._parsed) == 2  # the oldest entries gave way
            again = await cache.get("e0", 1)  # evicted from memory: read from Redis again, same exam
            assert again is not None and again.id == "e0" and len(cache._parsed) == 2
        finally:
            await store.close()
            await redis.aclose()

    asyncio.run(go())
