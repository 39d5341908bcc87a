"""The exam-level live state against a real Redis: roster, presence heartbeats, the live channel."""

from __future__ import annotations

import asyncio
import json

from redis.crc import key_slot

import engine
from services.core import connect_redis
from storage import keys
from storage.attempts import RedisAttempts, Snapshot, attempt_id
from storage.live import RedisLive, parse_message
from storage.scripts import Scripts
from testkit import SAMPLE_EXAM

EXAM = engine.parse_exam(SAMPLE_EXAM, version=1)


async def _live(url: str):
    redis = connect_redis(url, max_connections=8)
    scripts = Scripts.register(redis)
    return redis, RedisLive(redis, scripts), RedisAttempts(redis, scripts)


async def _messages(ps, n: int, timeout: float = 2.0) -> list[dict]:
    out: list[dict] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while len(out) < n and loop.time() < end:
        msg = await ps.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if msg and msg["type"] == "message":
            out.append(parse_message(msg["data"]))
    return out


def test_exam_keys_share_one_slot():
    exam_keys = (keys.roster("e1"), keys.presence("e1"), keys.presence_claims("e1"), keys.live("e1"))
    assert len({key_slot(k.encode()) for k in exam_keys}) == 1


def test_presence_follows_the_newest_claim_not_the_order_of_the_scripts(redis_url):
    """Claim 2 announced; then claim 1's late announcement and claim 1's close change nothing; claim 2's close does."""

    async def go():
        redis, live, _ = await _live(redis_url)
        ps = live.subscribe()
        await ps.subscribe(keys.live("e1"))
        assert await live.present("e1", "a1", 1_000, 3, {"state": "ready"}, claim=2) is True
        assert (await _messages(ps, 1))[0]["c"] is True
        # the older connection released before claim 2 was made, and its absent runs only now
        assert await live.absent("e1", "a1", claim=1) is False
        # the older connection announces itself late
        assert await live.present("e1", "a1", 1_500, 3, {"state": "ready"}, claim=1) is False
        assert await live.presence("e1") == {"a1": 1_000}
        assert await _messages(ps, 1, timeout=0.3) == []
        assert await live.absent("e1", "a1", claim=2) is True
        assert await _messages(ps, 1) == [{"a": "a1", "c": False}]
        # a newer connection after that is announced again; an absent of the same claim after a failed
        # release never happens (the release succeeds only for the owner), but claims above it still win
        assert await live.present("e1", "a1", 2_000, 3, {"state": "ready"}, claim=3) is True
        assert await live.absent("e1", "a1", claim=2) is False
        assert await live.presence("e1") == {"a1": 2_000}
        await ps.aclose()
        await live.aclose()
        await redis.aclose()

    asyncio.run(go())


def test_presence_lifecycle_publishes_each_transition_once(redis_url):
    async def go():
        redis, live, _ = await _live(redis_url)
        ps = live.subscribe()
        await ps.subscribe(keys.live("e1"))
        await live.present("e1", "a1", 1_000, 3, {"state": "ready"})
        assert await live.roster("e1") == ["a1"]
        assert await live.presence("e1") == {"a1": 1_000}
        (m,) = await _messages(ps, 1)
        assert m == {"a": "a1", "v": 3, "s": {"state": "ready"}, "c": True}

        assert await live.beat("e1", ["a1"], 2_000) == 0  # still present: nothing to announce
        assert await live.last_seen("e1", "a1") == 2_000
        assert await live.reap("e1", 2_000) == []  # not older than the cutoff
        assert await live.reap("e1", 2_001) == ["a1"]
        assert await _messages(ps, 1) == [{"a": "a1", "c": False}]
        assert await live.presence("e1") == {}
        assert await live.roster("e1") == ["a1"]  # still an attempt of the exam

        assert await live.beat("e1", ["a1"], 3_000) == 1  # a stalled node came back: connected again
        assert await _messages(ps, 1) == [{"a": "a1", "c": True}]
        assert await live.absent("e1", "a1") is True
        assert await live.absent("e1", "a1") is False  # a second close publishes nothing
        assert await _messages(ps, 2, timeout=0.5) == [{"a": "a1", "c": False}]
        await ps.aclose()
        await live.aclose()
        await redis.aclose()

    asyncio.run(go())


def test_commit_publishes_the_summary_only_when_it_writes(redis_url):
    async def go():
        redis, live, attempts = await _live(redis_url)
        aid = attempt_id(b"s" * 32, EXAM.id, "u1")
        fresh = engine.new_attempt(id=aid, exam=EXAM, user="u1", name="U", seed="00" * 16, now=1)
        await attempts.create(fresh)
        snap = await attempts.load(aid)
        ps = live.subscribe()
        await ps.subscribe(keys.live(EXAM.id))
        out = engine.apply(snap.attempt, EXAM, engine.Start(1), now=10, grace_ms=0)
        summary = engine.progress(out.attempt, EXAM.total, 10)
        event = {"kind": "blur", "detail": None, "at": 10}
        new = await attempts.commit(snap, out.attempt, live=summary, event=event,
                                    action={"action": "extend", "by": "p", "at": 10})
        assert isinstance(new, Snapshot)
        stale = await attempts.commit(snap, out.attempt, live=summary)  # version conflict: nothing published
        assert not isinstance(stale, Snapshot)
        msgs = await _messages(ps, 2, timeout=0.5)
        assert msgs == [{"a": aid, "v": new.ver, "s": summary, "e": event}]
        assert summary["state"] == "active" and summary["total"] == EXAM.total and summary["deadline"] == 10 + EXAM.duration_ms
        assert await attempts.actions(aid) == [{"action": "extend", "by": "p", "at": 10}]
        many = await attempts.load_many([aid, "f" * 32])
        assert set(many) == {aid} and many[aid].attempt.state is engine.State.ACTIVE
        await ps.aclose()
        await live.aclose()
        await redis.aclose()

    asyncio.run(go())


def test_final_commit_queues_actions_with_the_record(redis_url):
    async def go():
        redis, _, attempts = await _live(redis_url)
        aid = attempt_id(b"s" * 32, EXAM.id, "u2")
        await attempts.create(engine.new_attempt(id=aid, exam=EXAM, user="u2", name="U", seed="00" * 16, now=1))
        snap = await attempts.load(aid)
        out = engine.apply(snap.attempt, EXAM, engine.Terminate("gone", "p"), now=5, grace_ms=0)
        done = await attempts.commit(snap, out.attempt, result=out.attempt.result.to_wire(),
                                     action={"action": "terminate", "reason": "gone", "by": "p", "at": 5})
        assert isinstance(done, Snapshot)
        (entry,) = await redis.xrange(keys.OUTBOX)
        assert json.loads(entry[1]["actions"]) == [{"action": "terminate", "reason": "gone", "by": "p", "at": 5}]
        await redis.aclose()

    asyncio.run(go())


def test_parse_message_refuses_what_is_not_a_live_message():
    from storage.live import encode_message

    assert parse_message(encode_message({"a": "a1", "c": True})) == {"a": "a1", "c": True}
    for junk in (b"", b"\xc1", b"{\"a\": \"a1\"}", encode_message([1, 2]), encode_message({"a": 5}), "text", None, 7):
        assert parse_message(junk) is None, junk
