"""One node proctoring many exams: one pub/sub connection for all of them, a documented limit, recovery.

Issue 15, defect 3: a node used to open one Redis pub/sub connection per
watched exam, from a pool of 64, so the 65th proctored exam waited 10 s and
closed 1011. Real node, real Redis, real sockets; the Redis side is read with
``CLIENT LIST`` and a lost subscription is made with ``CLIENT KILL TYPE pubsub``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from examwire.client import Closed, ExamClient, ProctorClient, attempt_url, proctor_url
from testkit import make_exam, wait_until

#: More exams than the old per-exam pool (64) could hold.
EXAMS = 100


def _pubsub_clients(redis_url: str) -> list[dict[str, Any]]:
    """The server's pub/sub clients (``CLIENT LIST TYPE pubsub``), each with its ``sub`` count as an int."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        found = client.client_list(_type="pubsub")
    finally:
        client.close()
    for c in found:
        c["sub"] = int(c.get("sub", 0))
        c["psub"] = int(c.get("psub", 0))
    return found


def _kill_pubsub(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return int(client.execute_command("CLIENT", "KILL", "TYPE", "pubsub"))
    finally:
        client.close()


async def _answered(p: ProctorClient, aid: str, n: int, timeout: float) -> dict[str, Any]:
    return await p.wait_for("update", timeout, pred=lambda m: m.get("attempt") == aid and m.get("answered") == n)


def test_one_node_proctors_a_hundred_exams_on_one_subscription(make_node, put_exam, make_token, redis_url, arun):
    node = make_node()
    ids = [f"many{i:03d}" for i in range(EXAMS)]
    for exam_id in ids:
        put_exam(node, make_exam(exam_id, 3, shuffle_questions=False, types_=("single",)))
    staff = make_token("pro", "proctor")

    async def body() -> None:
        proctors = [ProctorClient(proctor_url(node.ws_url, exam_id), staff, reply_timeout=20) for exam_id in ids]

        async def open_one(p: ProctorClient) -> str:
            await p.connect()
            try:
                await p.hello()
            except Closed:
                return f"closed {p.close_code} {p.close_reason!r}"
            return "ok" if p.snapshot is not None else "no snapshot"

        t0 = time.monotonic()
        outcomes = await asyncio.gather(*(open_one(p) for p in proctors))
        failed = {ids[i]: o for i, o in enumerate(outcomes) if o != "ok"}
        assert not failed, f"{len(failed)} of {EXAMS} proctors got no snapshot ({time.monotonic() - t0:.1f} s): " \
                           f"{dict(list(failed.items())[:3])}"

        # the node holds a bounded number of pub/sub connections, not one per exam: the control
        # channel's, and one live feed subscribed to every watched exam's channel
        subs = _pubsub_clients(redis_url)
        assert len(subs) <= 2, [(c["id"], c["sub"], c["psub"]) for c in subs]
        assert sum(c["psub"] for c in subs) == 0, subs  # SUBSCRIBE of the watched channels, not a pattern
        assert max(c["sub"] for c in subs) == EXAMS, [(c["id"], c["sub"]) for c in subs]

        # a candidate of the last exam answers: that exam's proctor sees it, the others see nothing of it
        last = proctors[-1]
        c = ExamClient(attempt_url(node.ws_url, ids[-1]), make_token("cand-last", name="Last"))
        await c.connect()
        aid = (await c.hello())["attempt"]
        await c.start()
        await c.answer("x01", "c")
        row = await _answered(last, aid, 1, timeout=5)
        assert row["attempt"] == aid
        assert last.rows[aid]["state"] == "active" and last.rows[aid]["answered"] == 1
        assert all(aid not in p.rows for p in proctors[:-1])
        await c.close()
        await asyncio.gather(*(p.close() for p in proctors))

    arun(body(), timeout=120)
    log = node.log_text()
    assert "live_feed_lost" not in log and "watch_load_failed" not in log and "internal error" not in log, log[-2000:]


def test_the_watched_exams_limit_is_a_clear_refusal(make_node, put_exam, make_token, arun):
    node = make_node(EXAMWIRE_MAX_WATCHED_EXAMS="2")
    for exam_id in ("lim1", "lim2", "lim3"):
        put_exam(node, make_exam(exam_id, 2))
    staff = make_token("pro", "proctor")

    async def proctor(exam_id: str) -> ProctorClient:
        p = ProctorClient(proctor_url(node.ws_url, exam_id), staff, reply_timeout=15)
        await p.connect()
        return p

    async def body() -> None:
        one, two = await proctor("lim1"), await proctor("lim2")
        await one.hello()
        await two.hello()

        t0 = time.monotonic()
        three = await proctor("lim3")
        with pytest.raises(Closed):
            await three.hello()
        assert three.close_code == 1013, (three.close_code, three.close_reason)
        assert "2 exams" in three.close_reason and "EXAMWIRE" not in three.close_reason, three.close_reason
        assert time.monotonic() - t0 < 3, "the refusal is immediate, not a timeout"

        # another proctor of an exam already watched costs nothing more: accepted
        again = await proctor("lim2")
        await again.hello()

        # a watch nobody uses any more (lingering for a reconnect) makes room for a new exam
        await one.close()
        three = await proctor("lim3")
        await three.hello()
        assert three.snapshot is not None
        # and the exam whose watch made room is now the one refused
        four = await proctor("lim1")
        with pytest.raises(Closed):
            await four.hello()
        assert four.close_code == 1013
        await asyncio.gather(two.close(), again.close(), three.close())

    arun(body(), timeout=60)
    log = node.log_text()
    assert '"reason": "watched_exams"' in log or '"reason":"watched_exams"' in log, log[-2000:]


def test_a_lost_live_subscription_is_recovered_for_every_watched_exam(make_node, put_exam, make_token, redis_url, arun):
    node = make_node()
    ids = ["lost1", "lost2", "lost3"]
    for exam_id in ids:
        put_exam(node, make_exam(exam_id, 4, shuffle_questions=False, types_=("single",)))
    staff = make_token("pro", "proctor")

    async def body() -> None:
        proctors = [ProctorClient(proctor_url(node.ws_url, exam_id), staff, reply_timeout=15) for exam_id in ids]
        candidates = [ExamClient(attempt_url(node.ws_url, exam_id), make_token(f"c-{exam_id}")) for exam_id in ids]
        for p in proctors:
            await p.connect()
            await p.hello()
        aids = []
        for c in candidates:
            await c.connect()
            aids.append((await c.hello())["attempt"])
            await c.start()
        for p, c, aid in zip(proctors, candidates, aids):
            await c.answer("x01", "c")
            await _answered(p, aid, 1, timeout=5)

        assert await asyncio.to_thread(_kill_pubsub, redis_url) >= 1
        # changes made while the subscription is down reach the proctors (the view is reloaded) ...
        for c in candidates:
            await c.answer("x02", "c")
        for p, aid in zip(proctors, aids):
            await _answered(p, aid, 2, timeout=10)
        # ... and so do those made after it is back
        await asyncio.to_thread(wait_until, lambda: max((s["sub"] for s in _pubsub_clients(redis_url)), default=0) == len(ids),
                                10, "the live feed resubscribed to every watched exam")
        for c in candidates:
            await c.answer("x03", "c")
        for p, aid in zip(proctors, aids):
            await _answered(p, aid, 3, timeout=5)
            assert not p.closed.is_set()
        subs = _pubsub_clients(redis_url)
        assert len(subs) <= 2, subs
        await asyncio.gather(*(x.close() for x in (*proctors, *candidates)))

    arun(body(), timeout=60)
    log = node.log_text()
    assert "live_feed_lost" in log, log[-2000:]
