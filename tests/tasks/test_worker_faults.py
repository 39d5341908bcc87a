"""Faults on the way to the results store: the store down, a worker killed mid-drain.

Real parts: a redis-server, engine nodes, worker processes, SQLite files. The
store is made unavailable the way SQLite fails in production: another process
holds the write lock (``BEGIN EXCLUSIVE``); writers time out, readers go on.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import redis as redis_sync

import engine
from services.core import connect_redis
from storage import keys
from storage.attempts import RedisAttempts, Snapshot, attempt_id
from storage.scripts import Scripts
from examwire.client import ExamClient, attempt_url
from testkit import SAMPLE_EXAM, SAMPLE_RIGHT_ANSWERS, wait_until

from .conftest import store_rows


def _lock(db) -> sqlite3.Connection:
    """Take the store's write lock (waiting for a writer in progress to commit)."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    conn.execute("BEGIN EXCLUSIVE")
    return conn


def _outbox(redis_url: str) -> dict[str, int]:
    r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    try:
        if not r.exists(keys.OUTBOX):
            return {"length": 0, "pending": 0}
        return {"length": r.xlen(keys.OUTBOX), "pending": r.xpending(keys.OUTBOX, keys.OUTBOX_GROUP)["pending"]}
    finally:
        r.close()


def _wait_for_group(redis_url: str, worker) -> None:
    """Until the worker has drained once (it creates the consumer group)."""
    r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    try:
        wait_until(lambda: r.exists(keys.OUTBOX) and r.xinfo_groups(keys.OUTBOX), 30, "the worker's first drain\n" + worker.log())
    finally:
        r.close()


def test_store_down_while_100_attempts_end_then_restored(make_node, make_worker, put_exam, make_token, results_db, redis_url, arun):
    node = make_node(EXAMWIRE_SQLITE_PATH=str(results_db), EXAMWIRE_STORE_TIMEOUT_MS="300")
    worker = make_worker(EXAMWIRE_STORE_TIMEOUT_MS="300")
    put_exam(node, {**SAMPLE_EXAM, "id": "down"})
    url = attempt_url(node.ws_url, "down")
    lock_box: list[sqlite3.Connection] = []

    async def go() -> tuple[list[str], int]:
        async def started(user: str) -> ExamClient:
            c = ExamClient(url, make_token(user, exams=["down"]), reply_timeout=20)
            await c.connect()
            await c.hello()
            await c.start()
            return c

        enders = [await started(f"end{i:03d}") for i in range(100)]
        busy = [await started(f"busy{i}") for i in range(10)]
        await asyncio.to_thread(_wait_for_group, redis_url, worker)
        lock_box.append(_lock(results_db))  # the store is down from here on

        async def keep_answering(c: ExamClient) -> int:
            n = 0
            for _ in range(6):
                for q, v in SAMPLE_RIGHT_ANSWERS.items():
                    t0 = time.monotonic()
                    ack = await c.answer(q, v)
                    assert ack["t"] == "ack" and time.monotonic() - t0 < 2, ack
                    n += 1
                await asyncio.sleep(0.1)
            return n

        answering = asyncio.gather(*(keep_answering(c) for c in busy))
        acks = await asyncio.gather(*(c.submit() for c in enders))
        assert all(a["t"] == "ack" for a in acks)
        acked = sum(await answering)
        ids = [c.welcome["attempt"] for c in enders]
        await asyncio.gather(*(c.close() for c in enders + busy))
        return ids, acked

    try:
        ids, acked = arun(go(), timeout=120)
        assert acked == 10 * 6 * len(SAMPLE_RIGHT_ANSWERS)  # the engine kept acking answers throughout
        time.sleep(1.5)  # several drains fail meanwhile
        assert store_rows(results_db) == []
        box = _outbox(redis_url)
        assert box["length"] == 100 and box["pending"] > 0  # queued, delivered, not acknowledged
    finally:
        for conn in lock_box:
            conn.execute("ROLLBACK")
            conn.close()
    rows = wait_until(lambda: (r := store_rows(results_db)) and len(r) >= 100 and r, 30, "100 results\n" + worker.log())
    time.sleep(1)
    rows = store_rows(results_db)
    assert sorted(a for a, _, _ in rows) == sorted(ids)  # all 100, none twice
    assert _outbox(redis_url) == {"length": 0, "pending": 0}
    assert "outbox_store_unavailable" in worker.log_path.read_text()  # the whole log, not its tail


def _end_attempts(redis_url: str, secret: str, users: list[str]) -> list[str]:
    """Attempts started, answered and submitted through the storage layer (as a node would)."""
    exam = engine.parse_exam({**SAMPLE_EXAM, "id": "killed"}, version=1)

    async def go() -> list[str]:
        r = connect_redis(redis_url, max_connections=8)
        attempts = RedisAttempts(r, Scripts.register(r))
        ids = []
        for user in users:
            aid = attempt_id(secret.encode(), exam.id, user)
            await attempts.create(engine.new_attempt(id=aid, exam=exam, user=user, name=user, seed="00" * 16, now=1_000))
            snap = await attempts.load(aid)
            a = engine.apply(snap.attempt, exam, engine.Start(1), now=2_000, grace_ms=0).attempt
            a = engine.apply(a, exam, engine.Answer(2, "q1", SAMPLE_RIGHT_ANSWERS["q1"]), now=2_500, grace_ms=0).attempt
            out = engine.apply(a, exam, engine.Submit(3), now=3_000, grace_ms=0)
            done = await attempts.commit(snap, out.attempt, result=out.attempt.result.to_wire())
            assert isinstance(done, Snapshot)
            ids.append(aid)
        await r.aclose()
        return ids

    return asyncio.run(go())


def test_a_worker_killed_mid_drain_leaves_nothing_lost_or_doubled(make_worker, results_db, redis_url, secrets):
    first = make_worker(EXAMWIRE_OUTBOX_BATCH="5", EXAMWIRE_STORE_TIMEOUT_MS="60000")
    wave1 = _end_attempts(redis_url, secrets.secret, [f"w1-{i}" for i in range(50)])
    wait_until(lambda: len(store_rows(results_db)) == 50, 30, "the first wave\n" + first.log())

    lock = _lock(results_db)
    try:
        wave2 = _end_attempts(redis_url, secrets.secret, [f"w2-{i}" for i in range(150)])
        # the first worker reads a batch and blocks writing it: it is mid-drain
        r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
        pending = wait_until(
            lambda: r.xpending_range(keys.OUTBOX, keys.OUTBOX_GROUP, min="-", max="+", count=100), 20, "a batch in flight"
        )
        assert len({p["consumer"] for p in pending}) == 1 and 1 <= len(pending) <= 5  # one batch, held by the first worker
        first.kill()  # SIGKILL the whole worker (parent and pool process)
        r.close()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert len(store_rows(results_db)) == 50

    second = make_worker(EXAMWIRE_OUTBOX_BATCH="20")
    rows = wait_until(lambda: (x := store_rows(results_db)) and len(x) >= 200 and x, 30, "all 200\n" + second.log())
    time.sleep(1)
    rows = store_rows(results_db)
    assert sorted(a for a, _, _ in rows) == sorted(wave1 + wave2)  # nothing lost, nothing doubled
    assert _outbox(redis_url) == {"length": 0, "pending": 0}
