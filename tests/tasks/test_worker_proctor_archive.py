"""A proctor who opens an exam on a node that has never watched it still sees the attempts archived in the store.

Once an attempt is persisted its Redis keys expire (``EXAMWIRE_PERSISTED_TTL_S``);
the exam's roster still names it. A node that loads the view afresh reads
those attempts from the results store: one lookup each when they are few,
one pass over the exam's results when there are more than twenty. Real
parts: redis-server, two ``examwire serve`` nodes, an ``examwire worker``,
SQLite, WebSockets.
"""

from __future__ import annotations

import asyncio

import redis as redis_sync

from storage import keys
from examwire.client import ExamClient, ProctorClient, attempt_url
from testkit import SAMPLE_EXAM, SAMPLE_RIGHT_ANSWERS, wait_until

from .conftest import store_rows

ARCHIVED = 21  # more than the twenty looked up one by one


def test_a_fresh_node_shows_archived_attempts_next_to_live_ones(make_node, make_worker, put_exam, make_token, results_db, redis_url, arun):
    first = make_node(EXAMWIRE_SQLITE_PATH=str(results_db))
    worker = make_worker(EXAMWIRE_PERSISTED_TTL_S="1")
    put_exam(first, {**SAMPLE_EXAM, "id": "arch"})

    async def finish(n: int) -> str:
        c = ExamClient(attempt_url(first.ws_url, "arch"), make_token(f"cand{n:02d}", exams=["arch"], name=f"Candidate {n:02d}"), reply_timeout=15)
        await c.connect()
        aid = (await c.hello())["attempt"]
        await c.start()
        if n % 2 == 0:
            assert (await c.answer("q1", SAMPLE_RIGHT_ANSWERS["q1"]))["t"] == "ack"
        assert (await c.submit())["t"] == "ack"
        await c.close()
        return aid

    async def everyone() -> list[str]:
        return list(await asyncio.gather(*(finish(n) for n in range(ARCHIVED))))

    archived = arun(everyone(), timeout=90)
    wait_until(lambda: len(store_rows(results_db)) == ARCHIVED, 60, lambda: f"{ARCHIVED} stored results\n" + worker.log())
    r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    try:
        wait_until(lambda: not any(r.exists(keys.attempt(a)) for a in archived), 20, "the archived attempts' Redis keys to expire")
    finally:
        r.close()

    second = make_node(EXAMWIRE_SQLITE_PATH=str(results_db))  # has never watched "arch"
    staff = make_token("pro", "proctor", exams=["arch"])

    async def watch() -> list[dict]:
        live = ExamClient(attempt_url(second.ws_url, "arch"), make_token("late", exams=["arch"], name="Late Comer"))
        await live.connect()
        late = (await live.hello())["attempt"]
        p = ProctorClient(f"{second.ws_url}/v1/exams/arch/proctor", staff, reply_timeout=15)
        await p.connect()
        await p.hello()
        rows = (await p.wait_for("snapshot", timeout=15))["attempts"]
        await p.close()
        await live.close()
        return [dict(row, late=row["attempt"] == late) for row in rows]

    rows = arun(watch(), timeout=60)
    by_id = {row["attempt"]: row for row in rows}
    assert set(archived) <= set(by_id) and len(rows) == ARCHIVED + 1, sorted(by_id)
    for n, aid in enumerate(archived):
        row = by_id[aid]
        assert row["state"] == "submitted" and row["connected"] is False and row["name"] == f"Candidate {n:02d}", row
        assert row["answered"] == (1 if n % 2 == 0 else 0), row
    (late,) = [row for row in rows if row["late"]]
    assert late["state"] == "ready" and late["connected"] is True, late
