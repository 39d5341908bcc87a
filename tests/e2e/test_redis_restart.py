"""Redis, the authority for live attempts, restarts under a running node (AOF on, as deployed).

While it is down: an answer is refused with an ``internal`` error to be
retried (never acknowledged), a candidate who connects is closed with 1011
"reconnect", ``/readyz`` says 503. Once it is back: the node is ready again,
the candidate's connection still works (the control channel is subscribed
again), the retried answer is acknowledged, and nothing acknowledged before
was lost. Real redis-server, a real node, real WebSockets.
"""

from __future__ import annotations

import asyncio

from examwire.redis_server import EmbeddedRedis
from tests.e2e.client import ExamClient, attempt_url, hello_close
from testkit import wait_until


def test_a_redis_restart_loses_nothing_acknowledged_and_refuses_what_it_cannot_take(tmp_path, make_node, put_exam, make_token, kit, http_json, arun):
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True)
    url = server.start()
    try:
        node = make_node(EXAMWIRE_REDIS_URL=url, EXAMWIRE_SQLITE_PATH=str(tmp_path / "results.sqlite3"))
        exam = kit.make_exam("restart", 3)
        put_exam(node, exam)
        q = {x["id"]: x for x in exam["questions"]}

        async def scenario() -> dict:
            c = ExamClient(attempt_url(node.ws_url, "restart"), make_token("ann", exams=["restart"]), reply_timeout=10)
            await c.connect()
            await c.hello()
            assert (await c.start())["t"] == "ack"
            assert (await c.answer("x01", kit.right(q["x01"])))["t"] == "ack"

            await asyncio.to_thread(server.stop)  # SHUTDOWN: the AOF is flushed, the process exits
            refused = await c.answer("x02", kit.right(q["x02"]))
            status, ready = await asyncio.to_thread(http_json, "GET", f"{node.base_url}/readyz")
            closed = await hello_close(attempt_url(node.ws_url, "restart"), make_token("bob", exams=["restart"]))

            await asyncio.to_thread(server.start)
            await asyncio.to_thread(
                wait_until, lambda: http_json("GET", f"{node.base_url}/readyz")[0] == 200, 20, "the node ready again"
            )
            retried = await c.answer("x02", kit.right(q["x02"]))
            after = await c.answer("x03", kit.right(q["x03"]))
            done = await c.submit()
            result = await c.wait_for("result", timeout=10)
            await c.close()
            return {"refused": refused, "ready": (status, ready), "closed": closed, "retried": retried,
                    "after": after, "done": done, "result": result}  # fmt: skip

        got = arun(scenario(), timeout=90)
    finally:
        server.stop()
    refused = got["refused"]
    assert refused["t"] == "error" and refused["code"] == "internal" and "retry" in refused["message"], refused
    status, ready = got["ready"]
    assert status == 503 and ready["redis"] is False, ready
    assert got["closed"] == (1011, "session store unavailable; reconnect"), got["closed"]
    assert got["retried"]["t"] == "ack" and got["after"]["t"] == "ack" and got["done"]["t"] == "ack", got
    assert got["result"]["score"] == 3 and got["result"]["max_score"] == 3, got["result"]  # x01 survived the restart
    log = node.log_text()
    assert "session store error" in log
