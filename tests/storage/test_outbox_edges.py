"""The outbox's last resorts, against a real Redis and a real SQLite store.

An entry that cannot be parsed, or that keeps failing, must not block the
drain for ever: it goes to the dead-letter stream with its reason (README,
``examwire outbox dead``), and everything behind it is still persisted.
"""

from __future__ import annotations

import asyncio
import json

from storage import keys
from storage.outbox import dead_letters
from tests.storage.test_outbox import EXAM, Kit, run


def test_pending_counts_what_was_delivered_and_not_acknowledged(redis_url, tmp_path):
    async def go():
        async with Kit(redis_url, tmp_path / "r.db") as kit:
            box = kit.outbox("counter")
            assert await box.pending() == 0  # creates the group on an empty stream
            for i in range(3):
                await kit.ended(f"p{i}")
            got = await kit.redis.xreadgroup(keys.OUTBOX_GROUP, "reader", {keys.OUTBOX: ">"}, count=2)
            assert len(got[0][1]) == 2
            assert await box.pending() == 2
            await asyncio.sleep(0.06)
            assert (await box.drain()).written == 3
            assert await box.pending() == 0

    run(go())


def test_an_entry_that_keeps_failing_is_dead_lettered_after_its_deliveries(redis_url, tmp_path):
    async def go():
        async with Kit(redis_url, tmp_path / "r.db") as kit:
            done = await kit.ended("stuck")
            box = kit.outbox("c1", max_deliveries=2, retry_ms=10, retry_max_ms=10)
            await box.drain(budget_s=0)  # the group only
            # delivered to a worker that died before writing it, then claimed by another that died too
            got = await kit.redis.xreadgroup(keys.OUTBOX_GROUP, "w1", {keys.OUTBOX: ">"}, count=1)
            entry_id = got[0][1][0][0]
            await kit.redis.xclaim(keys.OUTBOX, keys.OUTBOX_GROUP, "w2", min_idle_time=0, message_ids=[entry_id])
            await asyncio.sleep(0.03)
            stats = await box.drain()
            assert (stats.written, stats.rejected) == (0, 0)  # not rejected by the store: given up on
            dead = await dead_letters(kit.redis)
            assert [(d["attempt"], d["reason"]) for d in dead] == [(done.attempt.id, "not persisted after 2 deliveries")]
            assert await kit.redis.xlen(keys.OUTBOX) == 0 and await box.pending() == 0
            assert await kit.store.count_results(EXAM.id) == 0

    run(go())


def test_a_malformed_entry_is_dead_lettered_and_the_rest_persisted(redis_url, tmp_path):
    async def go():
        async with Kit(redis_url, tmp_path / "r.db") as kit:
            good = await kit.ended("good")
            other = f"{1:032x}"
            # a record that names another attempt than its entry, and one that is not JSON
            mismatch = await kit.redis.xadd(keys.OUTBOX, {"attempt": other, "record": json.dumps({"attempt": "someone-else"})})
            garbage = await kit.redis.xadd(keys.OUTBOX, {"attempt": other, "record": "{truncated"})
            stats = await kit.outbox().drain()
            assert (stats.written, stats.rejected) == (1, 2)
            assert (await kit.store.get_result(good.attempt.id))["user"] == "good"
            dead = {d["entry"]: d["reason"] for d in await dead_letters(kit.redis)}
            assert dead[mismatch] == "malformed entry: record does not match its attempt"
            assert dead[garbage].startswith("malformed entry: ")
            assert await kit.redis.xlen(keys.OUTBOX) == 0

    run(go())


def test_a_vanished_group_is_recreated_and_nothing_new_is_lost(redis_url, tmp_path):
    """Redis flushed or restored from an older snapshot: the consumer group is gone under a running drainer."""

    async def go():
        async with Kit(redis_url, tmp_path / "r.db") as kit:
            box = kit.outbox()
            await kit.ended("before")
            assert (await box.drain()).written == 1
            await kit.redis.xgroup_destroy(keys.OUTBOX, keys.OUTBOX_GROUP)
            after = await kit.ended("after")
            assert (await box.drain()).written == 1  # finds the group gone, recreates it, and goes on
            assert await box.pending() == 0
            assert await kit.store.get_result(after.attempt.id) is not None

    run(go())


def test_a_vanished_consumer_group_is_made_again_and_said_as_an_error(redis_url, tmp_path, caplog):
    """Redis lost its data under a running worker: the drain goes on, and the loss is not silent."""

    async def go():
        async with Kit(redis_url, tmp_path / "r.db") as kit:
            box = kit.outbox("c1")
            await box.drain(budget_s=0)  # the group exists
            await kit.redis.flushall()
            with caplog.at_level("ERROR", logger="examwire.outbox"):
                assert (await box.drain()).written == 0
            lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "examwire.outbox"]
            assert [line["event"] for line in lines] == ["outbox_lost"], lines
            await kit.ended("after")
            assert (await box.drain()).written == 1  # made again: what ends later is persisted

    run(go())
