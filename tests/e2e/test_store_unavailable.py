"""A results store that cannot be reached (README, "A store that cannot be reached answers 503 store_unavailable").

Two real nodes share the test's Redis: one on a working SQLite store (where the
exam is loaded and an attempt started), one configured with a MongoDB that
nothing listens for. Through the second one:

* ``/readyz`` stays 200 (Redis answers) and says ``store: false``; the node
  logs that it keeps trying to open the store;
* every route that needs the store is 503 ``store_unavailable``; the exam's
  facts, cached in Redis, are still served;
* a running attempt goes on: answers are acknowledged and the submit scores
  it, since nothing on the answer path touches the store;
* a candidate without an attempt in Redis is closed with 1013 (try again): the
  store may hold a persisted attempt of theirs, and the engine never starts
  afresh on a guess (docs/architecture.md, "Results").
"""

from __future__ import annotations

import testkit
from tests.e2e.client import ExamClient, attempt_url, hello_close


def test_a_node_whose_store_is_down_serves_running_attempts_and_says_503_for_the_rest(
    make_node, put_exam, make_token, kit, http_json, arun
):
    good = make_node()
    exam = kit.make_exam("store-down", 3, duration_s=600)
    put_exam(good, exam)
    dead = f"mongodb://127.0.0.1:{testkit.free_port()}/?directConnection=true"
    down = make_node(EXAMWIRE_MONGODB_URL=dead, EXAMWIRE_STORE_TIMEOUT_MS="300")

    status, ready = http_json("GET", f"{down.base_url}/readyz")
    assert status == 200 and ready["redis"] is True and ready["store"] is False, ready
    testkit.wait_until(lambda: "results_store_unavailable" in down.log_text(), 10, "the node to log the unreachable store")

    admin = make_token("adm", "admin")
    base = f"{down.base_url}/v1/exams"
    for method, url, body in (
        ("GET", base, None),
        ("GET", f"{base}/store-down/results", None),
        ("GET", f"{base}/store-down/analysis", None),
        ("PUT", f"{base}/another", kit.make_exam("another", 1)),
        ("GET", f"{down.base_url}/v1/attempts/{'0' * 32}", None),  # not in Redis: only the store could know it
    ):
        status, got = http_json(method, url, token=admin, body=body)
        assert (status, got.get("error")) == (503, "store_unavailable"), (method, url, status, got)
    status, got = http_json("GET", f"{base}/store-down", token=admin)
    assert status == 200 and got["version"] == 1 and got["total"] == 3, got  # from the Redis cache

    token = make_token("ann", exams=["store-down"])
    q = {x["id"]: x for x in exam["questions"]}

    async def scenario() -> tuple[dict, tuple]:
        client = ExamClient(attempt_url(good.ws_url, "store-down"), token, reply_timeout=10)
        await client.connect()
        await client.hello()
        assert (await client.start())["t"] == "ack"
        assert (await client.answer("x01", kit.right(q["x01"])))["t"] == "ack"
        # the same attempt, resumed on the node whose store is down
        welcome, _ = await client.resume(attempt_url(down.ws_url, "store-down"))
        assert welcome["state"] == "active" and welcome["answers"] == {"x01": kit.right(q["x01"])}, welcome
        assert (await client.answer("x02", kit.right(q["x02"])))["t"] == "ack"
        done = await client.submit()
        assert done["t"] == "ack", done
        result = await client.wait_for("result", timeout=10)
        await client.close()

        closed = await hello_close(attempt_url(down.ws_url, "store-down"), make_token("bob", exams=["store-down"]))
        return result, closed

    result, (code, reason) = arun(scenario(), timeout=60)
    assert result["score"] == 2 and result["max_score"] == 3, result
    assert code == 1013 and "results store unavailable" in (reason or ""), (code, reason)
    assert http_json("GET", f"{down.base_url}/readyz")[0] == 200
