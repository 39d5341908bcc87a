"""The live attempt store against a real Redis: the scripts' contracts."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

import engine
from engine import State
from services.core import connect_redis
from storage import keys
from storage.attempts import Claimed, Commit, RedisAttempts, Snapshot, attempt_id
from storage.exams import ExamCache
from storage.scripts import LUA_DIR, Scripts
from storage.sqlite_results import SqliteResults
from testkit import SAMPLE_EXAM

SECRET = b"s" * 32


def run(coro):
    return asyncio.run(coro)


async def _store(url: str) -> tuple[Redis, RedisAttempts, Scripts]:
    redis = connect_redis(url, max_connections=8)
    scripts = Scripts.register(redis)
    return redis, RedisAttempts(redis, scripts), scripts


def _exam() -> engine.Exam:
    return engine.parse_exam(SAMPLE_EXAM, version=1)


async def _created(store: RedisAttempts, exam: engine.Exam):
    """A fresh attempt stored in Redis, as read back."""
    a = _fresh(exam)
    await store.create(a)
    return await store.load(a.id)


def _fresh(exam: engine.Exam, user: str = "u1", now: int = 1_000) -> engine.Attempt:
    aid = attempt_id(SECRET, exam.id, user)
    return engine.new_attempt(
        id=aid, exam=exam, user=user, name=user.upper(), seed=engine.derive_seed(SECRET, exam.id, user), now=now
    )


def test_create_is_idempotent_and_load_round_trips(redis_url):
    async def go():
        redis, store, _ = await _store(redis_url)
        exam = _exam()
        a = _fresh(exam)
        assert await store.create(a) is True
        assert await store.create(a) is False
        snap = await store.load(a.id)
        assert snap is not None and snap.ver == 1 and snap.owner == ""
        assert snap.attempt == a
        assert await store.load("0" * 32) is None
        await redis.aclose()

    run(go())


def test_commit_writes_the_difference_and_bumps_the_version(redis_url):
    async def go():
        redis, store, _ = await _store(redis_url)
        exam = _exam()
        snap = await _created(store, exam)
        a = snap.attempt
        out = engine.apply(snap.attempt, exam, engine.Start(1), now=2_000, grace_ms=0)
        snap2 = await store.commit(snap, out.attempt)
        assert isinstance(snap2, Snapshot) and snap2.ver == 2
        q = exam.questions[0]
        value = q.options[0].id if q.options else True
        out = engine.apply(snap2.attempt, exam, engine.Answer(2, q.id, value), now=2_100, grace_ms=0)
        out = engine.apply(out.attempt, exam, engine.Flag(3, q.id, True), now=2_100, grace_ms=0)
        snap3 = await store.commit(snap2, out.attempt)
        assert isinstance(snap3, Snapshot) and snap3.ver == 3
        loaded = await store.load(a.id)
        assert loaded.attempt == out.attempt
        assert loaded.attempt.answers == {q.id: value} and loaded.attempt.flags == {q.id}
        # clearing an answer and a flag deletes them
        out = engine.apply(loaded.attempt, exam, engine.Answer(4, q.id, None), now=2_200, grace_ms=0)
        out = engine.apply(out.attempt, exam, engine.Flag(5, q.id, False), now=2_200, grace_ms=0)
        assert isinstance(await store.commit(loaded, out.attempt), Snapshot)
        assert await redis.hgetall(keys.answers(a.id)) == {}
        assert await redis.smembers(keys.flags(a.id)) == set()
        assert (await store.load(a.id)).attempt.last_id == 5
        await redis.aclose()

    run(go())


def test_stale_version_conflicts_and_writes_nothing(redis_url):
    async def go():
        redis, store, _ = await _store(redis_url)
        exam = _exam()
        snap = await _created(store, exam)
        a = snap.attempt
        started = engine.apply(snap.attempt, exam, engine.Start(1), now=2_000, grace_ms=0).attempt
        assert isinstance(await store.commit(snap, started), Snapshot)
        # a second writer computed from the same old version loses
        other = engine.apply(snap.attempt, exam, engine.Event(1, "blur"), now=2_000, grace_ms=0).attempt
        assert await store.commit(snap, other, event={"kind": "blur"}) is Commit.CONFLICT
        now = await store.load(a.id)
        assert now.ver == 2 and now.attempt.state is State.ACTIVE and now.attempt.events == 0
        assert await redis.llen(keys.events(a.id)) == 0
        await redis.aclose()

    run(go())


def test_owner_check_supersedes_older_connections(redis_url):
    async def go():
        redis, store, _ = await _store(redis_url)
        exam = _exam()
        a = _fresh(exam)
        await store.create(a)
        assert await store.claim(a.id, "conn-1") == Claimed(ver=1, claim=1)  # the version at the claim, the first claim
        snap = await store.load(a.id)
        started = engine.apply(snap.attempt, exam, engine.Start(1), now=2_000, grace_ms=0).attempt
        assert isinstance(await store.commit(snap, started, owner="conn-1"), Snapshot)
        assert await store.claim(a.id, "conn-2") == Claimed(ver=2, claim=2)  # conn-1's commit counts
        snap = await store.load(a.id)
        ev = engine.apply(snap.attempt, exam, engine.Event(2, "blur"), now=2_000, grace_ms=0).attempt
        assert await store.commit(snap, ev, owner="conn-1") is Commit.SUPERSEDED
        # a system change (no owner) is not tied to a connection
        assert isinstance(await store.commit(snap, ev), Snapshot)
        # release only by the current owner
        await store.release(a.id, "conn-1")
        assert (await store.load(a.id)).owner == "conn-2"
        await store.release(a.id, "conn-2")
        assert (await store.load(a.id)).owner == ""
        assert await store.claim("f" * 32, "conn-3") is None
        await redis.aclose()

    run(go())


def test_claim_and_notifying_commits_publish_on_the_control_channel(redis_url):
    async def go():
        redis, store, _ = await _store(redis_url)
        exam = _exam()
        a = _fresh(exam)
        await store.create(a)
        async with redis.pubsub(ignore_subscribe_messages=True) as ps:
            await ps.subscribe(keys.CONTROL)
            await store.claim(a.id, "c1")  # nobody owned it: no message
            await store.claim(a.id, "c2")
            snap = await store.load(a.id)
            started = engine.apply(snap.attempt, exam, engine.Start(1), now=2_000, grace_ms=0).attempt
            await store.commit(snap, started, owner="c2", notify=True)
            got = []
            deadline = asyncio.get_running_loop().time() + 5
            while len(got) < 2 and asyncio.get_running_loop().time() < deadline:
                msg = await ps.get_message(timeout=1)  # None for the swallowed subscribe confirmation
                if msg is not None:
                    got.append(json.loads(msg["data"]))
        assert got == [{"a": a.id, "k": "owner", "o": "c2", "s": 2}, {"a": a.id, "k": "changed", "v": 2, "o": "c2"}]
        await redis.aclose()

    run(go())


def test_events_are_capped(redis_url):
    async def go():
        redis, store, _ = await _store(redis_url)
        exam = _exam()
        snap = await _created(store, exam)
        a = snap.attempt
        for i in range(1, 211):
            new = engine.apply(snap.attempt, exam, engine.Event(i, "blur"), now=2_000, grace_ms=0).attempt
            snap = await store.commit(snap, new, event={"kind": "blur", "n": i})
        assert snap.attempt.events == 210
        assert await redis.llen(keys.events(a.id)) == 200
        assert json.loads(await redis.lindex(keys.events(a.id), 0))["n"] == 210
        await redis.aclose()

    run(go())


def test_unschedule_only_removes_an_unchanged_entry(redis_url):
    async def go():
        redis, _, scripts = await _store(redis_url)
        await redis.zadd(keys.DEADLINES, {"a1": 5000})
        assert await scripts.unschedule(keys=[keys.DEADLINES], args=["a1", "4000"]) == 0
        assert await redis.zscore(keys.DEADLINES, "a1") == 5000
        assert await scripts.unschedule(keys=[keys.DEADLINES], args=["a1", repr(5000.0)]) == 1
        assert await redis.zscore(keys.DEADLINES, "a1") is None
        await redis.aclose()

    run(go())


def test_exam_versions(redis_url, tmp_path):
    async def go():
        redis, _, scripts = await _store(redis_url)
        store = SqliteResults(tmp_path / "r.db")
        await store.open()
        cache = ExamCache(redis, scripts, store)
        exam, created = await cache.put(SAMPLE_EXAM)
        assert (exam.version, created) == (1, True)
        exam, created = await cache.put(json.loads(json.dumps(SAMPLE_EXAM)))
        assert (exam.version, created) == (1, False)
        changed = {**SAMPLE_EXAM, "title": "Renamed"}
        exam, created = await cache.put(changed)
        assert (exam.version, created) == (2, True)
        assert (await cache.current(SAMPLE_EXAM["id"])).title == "Renamed"
        assert (await cache.get(SAMPLE_EXAM["id"], 1)).title == SAMPLE_EXAM["title"]
        assert await cache.current("nope") is None
        with pytest.raises(engine.ExamInvalid):
            await cache.put({**SAMPLE_EXAM, "duration_s": -1})
        # the store is the authority: the versions are there
        assert await store.exam_version(SAMPLE_EXAM["id"]) == 2
        assert (await store.get_exam(SAMPLE_EXAM["id"], 1))["title"] == SAMPLE_EXAM["title"]
        await redis.aclose()
        await store.close()

    run(go())


def test_exam_cache_layers_memory_redis_store(redis_url, tmp_path):
    """A node reads memory, then Redis, then the store, and refills Redis from the store."""

    async def go():
        redis, _, scripts = await _store(redis_url)
        store = SqliteResults(tmp_path / "r.db")
        await store.open()
        eid = SAMPLE_EXAM["id"]
        await ExamCache(redis, scripts, store).put(SAMPLE_EXAM)
        assert await redis.hget(keys.exam(eid), "current") == "1"
        # Redis lost its cache (flushed): a fresh node falls back to the store and refills Redis
        await redis.delete(keys.exam(eid))
        fresh = ExamCache(redis, scripts, store)
        assert (await fresh.current(eid)).version == 1
        assert await redis.hget(keys.exam(eid), "current") == "1"
        assert await redis.hget(keys.exam(eid), "v:1") is not None
        # with the store closed, Redis alone serves another fresh node
        await store.close()
        other = ExamCache(redis, scripts, store)
        assert (await other.get(eid, 1)).title == SAMPLE_EXAM["title"]
        # a version another node stored becomes current everywhere at once
        await store.open()
        await ExamCache(redis, scripts, store).put({**SAMPLE_EXAM, "title": "v2"})
        assert (await fresh.current(eid)).title == "v2"
        await redis.aclose()
        await store.close()

    run(go())


def test_every_script_declares_its_keys_and_they_share_one_slot():
    """Cluster-safety: each script's keys are declared in its header, and one attempt's keys hash together."""
    for path in Path(LUA_DIR).glob("*.lua"):
        text = path.read_text()
        used = set(re.findall(r"KEYS\[(\d+)\]", text))
        header = {m for line in text.splitlines() if line.startswith("--") for m in re.findall(r"KEYS\[(\d+)\]", line)}
        assert used <= header, f"{path.name} uses KEYS it does not document"
        assert "redis.call('KEYS'" not in text and "SCAN" not in text
    aid = "0123456789abcdef0123456789abcdef"
    assert len({key_slot(k.encode()) for k in keys.attempt_keys(aid)}) == 1
    assert key_slot(keys.exam("net-101").encode()) == key_slot(b"net-101")


def test_an_answer_commit_with_its_question_named_writes_what_the_full_diff_writes(redis_url):
    """``answered=`` (``Outcome.answered``) spares comparing every answer; the stored attempt is the same."""
    async def go():
        redis, store, _ = await _store(redis_url)
        exam = _exam()
        created = await _created(store, exam)
        snap = await store.commit(created, engine.apply(created.attempt, exam, engine.Start(1), now=2_000, grace_ms=0).attempt)
        assert isinstance(snap, Snapshot)
        rid = 2
        picked = [q for q in exam.questions if q.type in ("single", "multiple", "true_false")][:3]
        assert len(picked) == 3
        for q in picked:
            value = True if q.type == "true_false" else q.options[-1].id if q.type == "single" else [q.options[0].id]
            out = engine.apply(snap.attempt, exam, engine.Answer(rid, q.id, value), now=2_100, grace_ms=0)
            snap = await store.commit(snap, out.attempt, answered=out.answered)
            assert isinstance(snap, Snapshot)
            rid += 1
        first = picked[0].id
        out = engine.apply(snap.attempt, exam, engine.Answer(rid, first, None), now=2_200, grace_ms=0)  # a clear
        snap = await store.commit(snap, out.attempt, answered=out.answered)
        loaded = await store.load(snap.attempt.id)
        assert loaded.attempt == snap.attempt == out.attempt
        assert first not in await redis.hgetall(keys.answers(snap.attempt.id))
        assert len(loaded.attempt.answers) == len(picked) - 1
        await redis.aclose()

    run(go())


def test_the_queued_final_record_is_the_record_as_json():
    """The record queued on the outbox decodes to ``final_record`` (the result is encoded once and spliced in)."""
    from storage.attempts import _final_record_json, _json, final_record

    exam = _exam()
    a = engine.apply(_fresh(exam), exam, engine.Start(1), now=2_000, grace_ms=0).attempt
    q = next(q for q in exam.questions if q.type == "single")
    a = engine.apply(a, exam, engine.Answer(2, q.id, q.options[0].id), now=2_100, grace_ms=0).attempt
    a = engine.apply(a, exam, engine.Flag(3, q.id, True), now=2_100, grace_ms=0).attempt
    done = engine.apply(a, exam, engine.Submit(4), now=2_200, grace_ms=0).attempt
    result = done.result.to_wire()
    text = _final_record_json(done, result, _json(result))
    assert json.loads(text) == final_record(done, result)
    odd = {**result, "extra": 1}  # a result of another shape is encoded whole
    assert json.loads(_final_record_json(done, odd, _json(odd))) == final_record(done, odd)
