"""The outbox against a real Redis and a real SQLite store: queued by the ending script, drained exactly once."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

import engine
from engine import State
from services.core import connect_redis
from storage import keys
from storage.attempts import RedisAttempts, Snapshot, attempt_id, from_record
from storage.outbox import Outbox, parse_entry
from storage.results import StoreUnavailable
from storage.scripts import Scripts
from storage.sqlite_results import SqliteResults
from testkit import SAMPLE_EXAM, SAMPLE_RIGHT_ANSWERS

SECRET = b"o" * 32
EXAM = engine.parse_exam(SAMPLE_EXAM, version=1)


def run(coro):
    return asyncio.run(coro)


class Kit:
    def __init__(self, redis_url: str, db_path, *, busy_ms: int = 5000) -> None:
        self.redis = connect_redis(redis_url, max_connections=16)
        self.scripts = Scripts.register(self.redis)
        self.attempts = RedisAttempts(self.redis, self.scripts)
        self.store = SqliteResults(db_path, busy_timeout_ms=busy_ms)

    def outbox(self, consumer: str = "c1", **kw) -> Outbox:
        kw.setdefault("retry_ms", 50)
        kw.setdefault("retry_max_ms", 400)
        return Outbox(self.redis, self.scripts, self.store, consumer=consumer, **kw)

    async def __aenter__(self) -> "Kit":
        await self.store.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.store.close()
        await self.redis.aclose()

    async def ended(self, user: str, *, answer: bool = True, event: dict | None = None) -> Snapshot:
        """An attempt started, answered (right answers), with an optional event, then submitted."""
        aid = attempt_id(SECRET, EXAM.id, user)
        fresh = engine.new_attempt(id=aid, exam=EXAM, user=user, name=user.title(), seed=engine.derive_seed(SECRET, EXAM.id, user), now=1_000)
        await self.attempts.create(fresh)
        snap = await self.attempts.load(aid)
        a = engine.apply(snap.attempt, EXAM, engine.Start(1), now=2_000, grace_ms=0).attempt
        if answer:
            for i, (q, v) in enumerate(SAMPLE_RIGHT_ANSWERS.items()):
                a = engine.apply(a, EXAM, engine.Answer(2 + i, q, v), now=3_000, grace_ms=0).attempt
        snap = await self.attempts.commit(snap, a, event=event)
        assert isinstance(snap, Snapshot)
        out = engine.apply(snap.attempt, EXAM, engine.Submit(100), now=4_000, grace_ms=0)
        done = await self.attempts.commit(snap, out.attempt, result=out.attempt.result.to_wire())
        assert isinstance(done, Snapshot) and done.attempt.state is State.SUBMITTED
        return done


def test_only_the_ending_commit_queues_the_record(redis_url, tmp_path):
    async def go():
        async with Kit(redis_url, tmp_path / "r.db") as kit:
            done = await kit.ended("ann", event={"kind": "blur", "detail": {"$where": "x.y"}, "at": 3_500})
            entries = await kit.redis.xrange(keys.OUTBOX)
            assert len(entries) == 1
            _, fields = entries[0]
            assert fields["attempt"] == done.attempt.id
            record = parse_entry(fields)
            assert record["state"] == "submitted" and record["score"] == 7 and record["max_score"] == 7
            assert record["user"] == "ann" and record["ended_at"] == 4_000 and record["last_id"] == 100
            assert [q["id"] for q in record["questions"]] == [q.id for q in EXAM.questions]
            # nested event details become JSON text: no user-chosen key reaches the store
            assert record["events"] == [{"kind": "blur", "detail": '{"$where": "x.y"}', "at": 3_500}]
            # a resumed snapshot from the record has the same answers and final state
            back = from_record(record)
            assert back.attempt.answers == done.attempt.answers and back.attempt.state is State.SUBMITTED

    run(go())


def test_drain_persists_acks_deletes_and_lets_keys_expire(redis_url, tmp_path):
    async def go():
        async with Kit(redis_url, tmp_path / "r.db") as kit:
            ids = [(await kit.ended(f"u{i}")).attempt.id for i in range(25)]
            stats = await kit.outbox(batch=10, persisted_ttl_ms=60_000).drain()
            assert stats.written == 25 and stats.rejected == 0
            assert await kit.store.count_results(EXAM.id) == 25
            assert await kit.redis.xlen(keys.OUTBOX) == 0
            assert (await kit.redis.xpending(keys.OUTBOX, keys.OUTBOX_GROUP))["pending"] == 0
            for aid in ids:
                for key in keys.attempt_keys(aid)[:2]:
                    assert 0 < await kit.redis.pttl(key) <= 60_000
                assert await kit.redis.hget(keys.attempt(aid), "persisted")
            got = await kit.store.get_result(ids[0])
            assert got["state"] == "submitted" and got["score"] == 7
            # draining again finds nothing and changes nothing
            assert (await kit.outbox().drain()).written == 0
            assert await kit.store.count_results(EXAM.id) == 25

    run(go())


def test_entries_of_a_dead_consumer_are_claimed_after_backoff_and_stored_once(redis_url, tmp_path):
    async def go():
        async with Kit(redis_url, tmp_path / "r.db") as kit:
            for i in range(5):
                await kit.ended(f"u{i}")
            dead = kit.outbox("dead")
            await dead.drain(budget_s=0)  # creates the group only
            got = await kit.redis.xreadgroup(keys.OUTBOX_GROUP, "dead", {keys.OUTBOX: ">"}, count=3)
            assert len(got[0][1]) == 3  # delivered to a consumer that then dies
            live = kit.outbox("live")
            first = await live.drain()
            assert first.written == 2  # the three are not due yet
            assert (await kit.redis.xpending(keys.OUTBOX, keys.OUTBOX_GROUP))["pending"] == 3
            await asyncio.sleep(0.08)  # past backoff(1) = 50 ms
            second = await live.drain()
            assert second.written == 3 and second.retried == 3
            assert await kit.store.count_results(EXAM.id) == 5
            assert await kit.redis.xlen(keys.OUTBOX) == 0
            assert await live.reap_consumers(idle_ms=0) == 1  # "dead" had nothing pending any more

    run(go())


def test_store_unavailable_keeps_entries_pending_then_retries_with_backoff(redis_url, tmp_path):
    async def go():
        db = tmp_path / "r.db"
        async with Kit(redis_url, db, busy_ms=100) as kit:
            for i in range(4):
                await kit.ended(f"u{i}")
            lock = sqlite3.connect(db, isolation_level=None)
            lock.execute("BEGIN EXCLUSIVE")
            box = kit.outbox(retry_ms=300, retry_max_ms=5000)
            with pytest.raises(StoreUnavailable):
                await box.drain()
            pending = await kit.redis.xpending_range(keys.OUTBOX, keys.OUTBOX_GROUP, min="-", max="+", count=10)
            assert len(pending) == 4 and {p["consumer"] for p in pending} == {"c1"}
            assert await kit.redis.xlen(keys.OUTBOX) == 4
            # the next try waits for its backoff: nothing is due at once
            assert (await box.drain()).written == 0
            await asyncio.sleep(0.3)
            with pytest.raises(StoreUnavailable):
                await box.drain()  # second delivery fails too; backoff doubles to 600 ms
            lock.execute("ROLLBACK")
            lock.close()
            assert (await box.drain()).written == 0  # not due yet
            await asyncio.sleep(0.6)
            stats = await box.drain()
            assert stats.written == 4 and stats.retried == 4
            assert await kit.store.count_results(EXAM.id) == 4
            assert await kit.redis.xlen(keys.OUTBOX) == 0

    run(go())


def test_malformed_entries_go_to_the_dead_letter_stream(redis_url, tmp_path):
    async def go():
        async with Kit(redis_url, tmp_path / "r.db") as kit:
            await kit.ended("good")
            await kit.redis.xadd(keys.OUTBOX, {"attempt": "x", "record": "{not json", "events": "[]"})
            await kit.redis.xadd(keys.OUTBOX, {"attempt": "y", "record": json.dumps({"attempt": "y"}), "events": "[]"})
            stats = await kit.outbox().drain()
            assert stats.written == 1 and stats.rejected == 2
            dead = await kit.redis.xrange(keys.OUTBOX_DEAD)
            assert {f["attempt"] for _, f in dead} == {"x", "y"}
            assert all(f["reason"] for _, f in dead)
            assert await kit.redis.xlen(keys.OUTBOX) == 0

    run(go())


def test_a_vanished_group_is_recreated(redis_url, tmp_path):
    async def go():
        async with Kit(redis_url, tmp_path / "r.db") as kit:
            box = kit.outbox()
            await kit.ended("a")
            assert (await box.drain()).written == 1
            await kit.redis.delete(keys.OUTBOX)  # e.g. Redis restored from an old snapshot
            await kit.ended("b")
            assert (await box.drain()).written == 1
            assert await kit.store.count_results(EXAM.id) == 2

    run(go())


def test_backoff_doubles_per_delivery_up_to_the_cap(redis_url, tmp_path):
    async def go():
        async with Kit(redis_url, tmp_path / "r.db") as kit:
            box = kit.outbox(retry_ms=1000, retry_max_ms=60_000)
            assert [box.backoff_ms(d) for d in (1, 2, 3, 6, 7, 30)] == [1000, 2000, 4000, 32_000, 60_000, 60_000]

    run(go())


def test_drain_works_in_batches_until_empty_within_its_budget(redis_url, tmp_path):
    async def go():
        async with Kit(redis_url, tmp_path / "r.db") as kit:
            for i in range(12):
                await kit.ended(f"u{i}")
            assert (await kit.outbox(batch=5).drain(budget_s=0)).written == 0
            assert (await kit.outbox(batch=5).drain(budget_s=30)).written == 12

    run(go())
