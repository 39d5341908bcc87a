"""What the Redis client does when Redis goes away, restarts, fails over or has too few replicas.

Real redis-server (and redis-sentinel) processes on private TCP ports; no mocks.

* A lost connection is replaced and the command sent again, with backoff, for
  at most ``retry_ms`` (``services.core.BoundedRetry``); then it fails.
* Every script is safe to run twice (docs/architecture.md, "Failure modes"):
  a resent commit returns its first result and writes nothing more.
* After a restart the scripts are loaded again (NOSCRIPT).
* With ``replicas`` required, a commit, a claim and a repeat's confirmation
  return only once a replica has the write (``WAIT`` on the same connection),
  else ``NotReplicated``.
* Behind sentinels the client finds the primary and follows a failover.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

import engine
from services.core import connect_redis
from storage import keys
from examwire.redis_server import find_redis_server
from storage.attempts import Claimed, Commit, RedisAttempts, Snapshot, attempt_id
from storage.live import raw_client
from storage.scripts import LUA_DIR, NotReplicated, Scripts
from testkit import REPO_ROOT, SAMPLE_EXAM, free_port
from testkit.redis_topology import RedisProcess as _RedisProcess, SentinelProcess, info, resp


def RedisProcess(*args, **kwargs) -> _RedisProcess:  # noqa: N802 - the class, with the binary embedded mode would run
    return _RedisProcess(*args, executable=find_redis_server(), **kwargs)
from tests.conftest import require_tool

SECRET = b"s" * 32


def _exam() -> engine.Exam:
    return engine.parse_exam(SAMPLE_EXAM, version=1)


def _fresh(exam: engine.Exam, user: str = "u1") -> engine.Attempt:
    return engine.new_attempt(id=attempt_id(SECRET, exam.id, user), exam=exam, user=user, name=user,
                              seed=engine.derive_seed(SECRET, exam.id, user), now=1_000)  # fmt: skip


def _answer(snap: Snapshot, exam: engine.Exam, rid: int, i: int) -> engine.Attempt:
    q = exam.questions[i % len(exam.questions)]
    value = {"single": q.options[0].id if q.options else None, "multiple": [q.options[0].id] if q.options else None,
             "true_false": True, "numeric": 1, "text": "x"}[q.type]  # fmt: skip
    return engine.apply(snap.attempt, exam, engine.Answer(rid, q.id, value), now=2_000, grace_ms=0).attempt


async def _started(store: RedisAttempts, exam: engine.Exam, user: str = "u1") -> Snapshot:
    a = _fresh(exam, user)
    await store.create(a)
    snap = await store.load(a.id)
    assert snap is not None
    started = await store.commit(snap, engine.apply(snap.attempt, exam, engine.Start(1), now=2_000, grace_ms=0).attempt)
    assert isinstance(started, Snapshot)
    return started


def test_a_lost_connection_is_replaced_and_the_command_retried_within_the_budget(tmp_path, keeper):
    server = RedisProcess(tmp_path, appendonly=True).start()
    try:
        async def go() -> dict[str, float]:
            redis = connect_redis(f"redis://127.0.0.1:{server.port}/0", max_connections=4, retry_ms=3000)
            quick = connect_redis(f"redis://127.0.0.1:{server.port}/0", max_connections=4, retry_ms=0)
            try:
                await redis.set("k", "1")
                await quick.ping()
                await asyncio.to_thread(server.stop)  # every pooled connection is now dead
                pending = asyncio.create_task(redis.incr("k"))
                await asyncio.sleep(0.5)
                assert not pending.done()  # waiting out the outage, not failing
                t0 = time.monotonic()
                with pytest.raises(RedisConnectionError):  # no retry: fails at once
                    await quick.ping()
                no_retry_s = time.monotonic() - t0
                await keeper(server.start)
                assert await asyncio.wait_for(pending, 5) == 2  # sent again once Redis was back, on a new connection
                await asyncio.to_thread(server.kill)
                t0 = time.monotonic()
                with pytest.raises(RedisConnectionError):
                    await redis.get("k")
                return {"no_retry": no_retry_s, "gave_up": time.monotonic() - t0}
            finally:
                await redis.aclose()
                await quick.aclose()

        took = asyncio.run(go())
        assert took["no_retry"] < 0.5, took
        assert 2.5 <= took["gave_up"] <= 4.5, took  # the budget (3 s), not a count of tries nor for ever
    finally:
        server.kill()


def test_a_resent_commit_returns_its_first_result_and_writes_nothing_more(redis_url):
    """What a resend looks like to Redis: the very same EVALSHA twice (same token)."""

    async def go() -> None:
        redis = connect_redis(redis_url, max_connections=4)
        scripts = Scripts.register(redis)
        store = RedisAttempts(redis, scripts)
        exam = _exam()
        snap = await _started(store, exam)
        new = _answer(snap, exam, 2, 0)
        sent: list[tuple[object, ...]] = []
        call = scripts.batcher.call

        def twice(*command: object, durable: bool = False) -> "asyncio.Future[object]":
            sent.append(command)
            return call(*command, durable=durable)

        scripts.batcher.call = twice  # type: ignore[method-assign]
        first = await store.commit(snap, new, answered=exam.questions[0].id)
        scripts.batcher.call = call  # type: ignore[method-assign]
        assert isinstance(first, Snapshot) and first.ver == snap.ver + 1
        again = await scripts.batcher.call(*sent[0])  # the resend
        assert [int(x) for x in again] == [1, first.ver]
        assert int(await redis.hget(keys.attempt(snap.attempt.id), "ver")) == first.ver  # written once
        # a different commit computed from the same old version still loses
        assert await store.commit(snap, _answer(snap, exam, 2, 1)) is Commit.CONFLICT
        # a resend after another writer committed is refused by the version check: the caller reloads and finds
        # its request id already applied (a repeat), so nothing is applied twice
        later = await store.commit(first, _answer(first, exam, 3, 1))
        assert isinstance(later, Snapshot)
        assert [int(x) for x in await scripts.batcher.call(*sent[0])] == [0, later.ver]
        await redis.aclose()

    asyncio.run(go())


def test_claim_and_release_run_twice(redis_url):
    """A repeated claim is a newer claim by the same connection; a repeated release still says released."""

    async def go() -> None:
        redis = connect_redis(redis_url, max_connections=4)
        store = RedisAttempts(redis, Scripts.register(redis))
        exam = _exam()
        a = _fresh(exam)
        await store.create(a)
        assert await store.claim(a.id, "c1") == Claimed(1, 1)
        assert await store.claim(a.id, "c1") == Claimed(1, 2)  # still the owner, nothing published (it was the owner)
        assert await store.release(a.id, "c1") is True
        assert await store.release(a.id, "c1") is True  # the repeat: nobody holds it
        assert await store.claim(a.id, "c2") == Claimed(1, 3)
        assert await store.release(a.id, "c1") is False  # a newer connection holds it
        await redis.aclose()

    asyncio.run(go())


def test_every_script_is_listed_with_why_it_is_safe_to_run_twice():
    doc = (REPO_ROOT / "docs" / "architecture.md").read_text()
    section = doc.split("\n## Failure modes\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(\w+)\.lua`", section, re.M))
    assert listed == {p.stem for p in LUA_DIR.glob("*.lua")}


def test_scripts_are_loaded_again_after_a_restart(tmp_path, keeper):
    server = RedisProcess(tmp_path, appendonly=True).start()
    try:
        async def go() -> None:
            redis = connect_redis(f"redis://127.0.0.1:{server.port}/0", max_connections=4)
            store = RedisAttempts(redis, Scripts.register(redis))
            exam = _exam()
            snap = await _started(store, exam)
            await asyncio.to_thread(server.stop)
            await keeper(server.start)  # the AOF keeps the data, not the script cache
            assert resp(server.port, "SCRIPT", "EXISTS", "0" * 40) == [0]
            got = await store.commit(snap, _answer(snap, exam, 2, 0))
            assert isinstance(got, Snapshot) and got.ver == snap.ver + 1
            await redis.aclose()

        asyncio.run(go())
    finally:
        server.kill()


def test_with_replicas_required_nothing_returns_before_a_replica_has_it(tmp_path, keeper):
    primary = RedisProcess(tmp_path).start()
    replica = RedisProcess(tmp_path, replica_of=primary.port).start()
    try:
        primary.wait_replicas(1)

        async def go() -> dict[str, float]:
            redis = connect_redis(f"redis://127.0.0.1:{primary.port}/0", max_connections=4)
            store = RedisAttempts(redis, Scripts.register(redis, replicas=1, wait_ms=300))
            exam = _exam()
            snap = await _started(store, exam)
            aid = snap.attempt.id
            assert await store.claim(aid, "c1") == Claimed(snap.ver, 1)
            answered = await store.commit(snap, _answer(snap, exam, 2, 0), owner="c1")
            assert isinstance(answered, Snapshot)
            # returned only once the replica had it: read it there, at once
            assert int(resp(replica.port, "HGET", keys.attempt(aid), "ver")) == answered.ver
            await store.confirm()

            await asyncio.to_thread(replica.kill)
            t0 = time.monotonic()
            with pytest.raises(NotReplicated):
                await store.commit(answered, _answer(answered, exam, 3, 1), owner="c1")
            waited = time.monotonic() - t0
            on_primary = await store.load(aid)  # written on the primary, never acknowledged
            assert on_primary is not None and on_primary.attempt.last_id == 3
            with pytest.raises(NotReplicated):  # a repeat of request 3 is not acknowledged either
                await store.confirm()
            with pytest.raises(NotReplicated):
                await store.claim(aid, "c2")

            await keeper(replica.start)
            await asyncio.to_thread(primary.wait_replicas, 1)
            await store.confirm()  # the repeat can be acknowledged now: the replica has request 3
            assert int(resp(replica.port, "HGET", keys.attempt(aid), "last_id")) == 3
            await redis.aclose()
            return {"waited": waited}

        got = asyncio.run(go())
        assert 0.25 <= got["waited"] < 2.0, got  # the bounded wait (300 ms), then the error
    finally:
        replica.kill()
        primary.kill()


def test_behind_sentinels_the_client_finds_the_primary_and_follows_a_failover(tmp_path):
    require_tool("redis-sentinel", "apt-get install redis-sentinel; .ci/run does")
    primary = RedisProcess(tmp_path).start()
    replica = RedisProcess(tmp_path, replica_of=primary.port).start()
    sentinel = SentinelProcess(tmp_path, primary_port=primary.port, quorum=1, down_after_ms=500, failover_timeout_ms=2000).start()
    try:
        primary.wait_replicas(1)
        deadline = time.monotonic() + 15
        while not sentinel.knows(replicas=1, sentinels=0):
            assert time.monotonic() < deadline, "the sentinel never saw the replica"
            time.sleep(0.1)

        async def go() -> float:
            redis = connect_redis("redis://", max_connections=4, sentinels=(("127.0.0.1", free_port()), ("127.0.0.1", sentinel.port)),
                                  service="examwire", retry_ms=10_000)  # fmt: skip  (the first sentinel is dead: skipped)
            feed = raw_client(redis)
            try:
                store = RedisAttempts(redis, Scripts.register(redis))
                exam = _exam()
                snap = await _started(store, exam)
                async with feed.pubsub() as ps:  # the subscribers' client goes through the sentinels too
                    await ps.subscribe("chan")
                    assert (await ps.get_message(timeout=2))["type"] == "subscribe"
                await asyncio.to_thread(resp, primary.port, "WAIT", 1, 1000)
                # a command in flight when the primary dies: its retry must reconnect to the new primary, not the dead one
                blocked = asyncio.create_task(redis.blpop(["nothing"], 2))
                await asyncio.sleep(0.2)
                await asyncio.to_thread(primary.kill)  # kill -9
                t0 = time.monotonic()
                nxt = await store.commit(snap, _answer(snap, exam, 2, 0))  # waits for the promotion, then lands there
                switched = time.monotonic() - t0
                assert isinstance(nxt, Snapshot), nxt
                assert await blocked is None  # sent again on the new primary, where it timed out as it should
                assert sentinel.primary() == replica.port and info(replica.port)["role"] == "master"
                assert int(resp(replica.port, "HGET", keys.attempt(snap.attempt.id), "ver")) == nxt.ver
                return switched
            finally:
                await feed.aclose()
                await redis.aclose()

        switched = asyncio.run(go())
        assert switched < 9, switched
    finally:
        sentinel.kill()
        replica.kill()
        primary.kill()
