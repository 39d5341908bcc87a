"""Finished attempts reach the results store through a real Celery worker, exactly once.

Real parts only: a redis-server, ``examwire serve`` nodes, ``examwire worker``
processes (prefork pool, beat), SQLite files, candidates over WebSockets.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import redis as redis_sync

from storage import keys
from examwire.client import ExamClient, attempt_url
from testkit import SAMPLE_EXAM, SAMPLE_MAX_SCORE, SAMPLE_RIGHT_ANSWERS, http_json, wait_until

from .conftest import store_rows


def _exam(exam_id: str, duration_s: int) -> dict[str, Any]:
    return {**SAMPLE_EXAM, "id": exam_id, "duration_s": duration_s}


async def _started(node, exam_id: str, users: list[str], make_token) -> list[ExamClient]:
    async def one(user: str) -> ExamClient:
        c = ExamClient(attempt_url(node.ws_url, exam_id), make_token(user, exams=[exam_id]), reply_timeout=20)
        await c.connect()
        await c.hello()
        ack = await c.start()
        assert ack["t"] == "ack", ack
        return c

    clients: list[ExamClient] = []
    for i in range(0, len(users), 50):  # connect in waves of 50
        clients += await asyncio.gather(*(one(u) for u in users[i : i + 50]))
    return clients


def _outbox(redis_url: str) -> tuple[int, int]:
    r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    try:
        length = r.xlen(keys.OUTBOX)
        pending = r.xpending(keys.OUTBOX, keys.OUTBOX_GROUP)["pending"] if length or r.exists(keys.OUTBOX) else 0
        return length, pending
    finally:
        r.close()


def test_200_attempts_ending_at_once_are_stored_exactly_once(
    make_node, make_worker, put_exam, make_token, results_db, redis_url, arun
):
    node = make_node(EXAMWIRE_SQLITE_PATH=str(results_db), EXAMWIRE_ANSWER_GRACE_MS="200")
    worker = make_worker(EXAMWIRE_PERSISTED_TTL_S="2")
    put_exam(node, _exam("rush", duration_s=6))
    users = [f"cand{i:03d}" for i in range(200)]

    async def go() -> dict[str, str]:
        clients = await _started(node, "rush", users, make_token)
        # everyone answers one question right; 150 submit at the same instant, 50 let time run out
        await asyncio.gather(*(c.answer("q1", SAMPLE_RIGHT_ANSWERS["q1"]) for c in clients))
        acks = await asyncio.gather(*(c.submit() for c in clients[:150]))
        assert all(a["t"] == "ack" for a in acks)
        await asyncio.gather(*(c.wait_for("state", timeout=20) for c in clients[150:]))
        ids = {c.welcome["attempt"]: ("submitted" if i < 150 else "expired") for i, c in enumerate(clients)}
        await asyncio.gather(*(c.close() for c in clients))
        return ids

    expected = arun(go(), timeout=90)
    rows = wait_until(lambda: (r := store_rows(results_db)) and len(r) >= 200 and r, 60, "200 stored results\n" + worker.log())
    time.sleep(1)  # anything doubled or late would show now
    rows = store_rows(results_db)
    assert len(rows) == 200 and len({a for a, _, _ in rows}) == 200
    assert {a: s for a, s, _ in rows} == expected
    assert {score for _, _, score in rows} == {1}  # q1 right (1 point), nothing else answered
    assert _outbox(redis_url) == (0, 0)
    conn = sqlite3.connect(results_db)
    assert conn.execute("SELECT COUNT(*) FROM results WHERE exam = 'rush'").fetchone() == (200,)
    conn.close()


def test_a_persisted_attempt_resumes_from_the_store_after_its_redis_keys_expire(
    make_node, make_worker, put_exam, make_token, results_db, redis_url, arun
):
    node = make_node(EXAMWIRE_SQLITE_PATH=str(results_db))
    make_worker(EXAMWIRE_PERSISTED_TTL_S="1")
    put_exam(node, _exam("archive", duration_s=600))
    token = make_token("alice", exams=["archive"])
    url = attempt_url(node.ws_url, "archive")

    async def take() -> tuple[str, int]:
        c = ExamClient(url, token)
        await c.connect()
        await c.hello()
        await c.start()
        for q, v in SAMPLE_RIGHT_ANSWERS.items():
            await c.answer(q, v)
        ack = await c.submit()
        await c.close()
        return c.welcome["attempt"], ack["id"]

    aid, last_id = arun(take())
    wait_until(lambda: len(store_rows(results_db)) == 1, 30, "the result in the store")
    r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    wait_until(lambda: not r.exists(keys.attempt(aid)), 10, "the attempt's Redis keys to expire")
    r.close()

    status, body = http_json("GET", f"{node.base_url}/v1/attempts/{aid}", token=token)
    assert status == 200, body
    assert body["persisted"] is True and body["state"] == "submitted"
    assert body["score"] == SAMPLE_MAX_SCORE and body["passed"] is True

    async def resume() -> None:
        # the same candidate comes back: the store answers, no fresh attempt is started
        c = ExamClient(url, token)
        await c.connect()
        welcome = await c.hello()
        assert welcome["state"] == "submitted" and welcome["attempt"] == aid
        assert welcome["answers"] == SAMPLE_RIGHT_ANSWERS
        result = await c.wait_for("result")
        assert result["score"] == SAMPLE_MAX_SCORE
        c.next_id = last_id  # a replay of the submit is acknowledged as a duplicate
        dup = await c.request("submit", id=last_id)
        assert dup["t"] == "ack" and dup.get("dup") is True, dup
        refused = await c.answer("q1", "a")
        assert refused["t"] == "error"
        await c.close()

    arun(resume())
    r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    assert not r.exists(keys.attempt(aid))  # nothing recreated in Redis
    r.close()
    assert len(store_rows(results_db)) == 1
