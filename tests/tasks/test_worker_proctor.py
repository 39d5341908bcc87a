"""Proctor actions are kept with the persisted result; a proctor still sees attempts archived in the store.

Real parts: a redis-server, an ``examwire serve`` node, an ``examwire worker``
(prefork, beat), SQLite, candidate and proctor WebSockets.
"""

from __future__ import annotations

import json
import sqlite3

import redis as redis_sync

from storage import keys
from examwire.client import ExamClient, ProctorClient, attempt_url
from testkit import SAMPLE_EXAM, http_json, wait_until

from .conftest import store_rows


def test_actions_travel_with_the_result_and_archived_attempts_stay_in_the_snapshot(
    make_node, make_worker, put_exam, make_token, results_db, redis_url, arun
):
    node = make_node(EXAMWIRE_SQLITE_PATH=str(results_db))
    make_worker(EXAMWIRE_PERSISTED_TTL_S="1")
    put_exam(node, {**SAMPLE_EXAM, "id": "kept"})
    staff = make_token("pro-7", "proctor", exams=["kept"], name="Proctor Seven")
    proctor_url = f"{node.ws_url}/v1/exams/kept/proctor"

    async def act() -> str:
        c = ExamClient(attempt_url(node.ws_url, "kept"), make_token("bob", exams=["kept"]))
        await c.connect()
        aid = (await c.hello())["attempt"]
        await c.start()
        await c.answer("q3", True)
        p = ProctorClient(proctor_url, staff)
        await p.connect()
        await p.hello()
        for t, fields in (("extend", {"seconds": 90}), ("pause", {}), ("message", {"text": "stay seated"}),
                          ("resume", {}), ("terminate", {"reason": "left the room"})):
            reply = await p.request(t, attempt=aid, **fields)
            assert reply["t"] == "ack", reply
        await c.event("blur")  # refused: the attempt is final; the event list is unaffected
        await p.close()
        await c.close()
        return aid

    aid = arun(act())
    wait_until(lambda: len(store_rows(results_db)) == 1, 30, "the terminated result in the store")
    conn = sqlite3.connect(results_db)
    (doc,) = conn.execute("SELECT doc FROM results WHERE attempt = ?", (aid,)).fetchone()
    conn.close()
    record = json.loads(doc)
    assert record["state"] == "terminated" and record["end_reason"] == "left the room"
    assert record["extended_ms"] == 90_000 and record["paused_ms"] >= 0
    actions = record["actions"]
    assert [x["action"] for x in actions] == ["extend", "pause", "message", "resume", "terminate"]
    assert all(x["by"] == "pro-7" and x["by_name"] == "Proctor Seven" and x["role"] == "proctor" for x in actions)
    assert [x["at"] for x in actions] == sorted(x["at"] for x in actions)
    assert actions[2]["text"] == "stay seated" and actions[4]["reason"] == "left the room"

    r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    wait_until(lambda: not r.exists(keys.attempt(aid)), 10, "the attempt's Redis keys to expire")
    r.close()
    status, body = http_json("GET", f"{node.base_url}/v1/attempts/{aid}", token=staff)
    assert status == 200 and body["persisted"] is True
    assert [x["action"] for x in body["actions"]] == ["extend", "pause", "message", "resume", "terminate"]

    async def watch() -> None:
        p = ProctorClient(proctor_url, staff)
        await p.connect()
        await p.hello()
        (row,) = (await p.wait_for("snapshot"))["attempts"]
        assert row["attempt"] == aid and row["state"] == "terminated" and row["connected"] is False
        assert row["reason"] == "left the room" and row["answered"] == 1
        await p.close()

    arun(watch())
