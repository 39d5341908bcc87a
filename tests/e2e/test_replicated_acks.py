"""``EXAMWIRE_REDIS_MIN_REPLICAS``: an ack means the change is on a replica too (docs/architecture.md, "Durability").

A real primary and replica on private TCP ports and a real node with
``MIN_REPLICAS=1``. While the replica is up every request is acknowledged.
With the replica gone: an answer is refused ``internal`` within the bounded
wait (it did reach the primary, and is not acknowledged), its repeat with the
same id is refused as well (a repeat's ack waits for the replicas too), and a
new candidate's ``hello`` is closed 1013. Once the replica is back and in
sync, the repeat is acknowledged ``dup`` and the replica has the answer.
"""

from __future__ import annotations

import asyncio
import json
import time

from examwire.redis_server import find_redis_server
from storage import keys
from storage.attempts import attempt_id
from tests.e2e.client import ExamClient, attempt_url, hello_close
from testkit.redis_topology import RedisProcess as _RedisProcess, resp


def RedisProcess(*args, **kwargs) -> _RedisProcess:  # noqa: N802 - the class, with the binary embedded mode would run
    return _RedisProcess(*args, executable=find_redis_server(), **kwargs)


def test_nothing_is_acknowledged_before_a_replica_has_it(tmp_path, make_node, put_exam, make_token, kit, arun, secrets, keeper):
    primary = RedisProcess(tmp_path / "redis").start()
    replica = RedisProcess(tmp_path / "redis", replica_of=primary.port).start()
    try:
        primary.wait_replicas(1)
        node = make_node(EXAMWIRE_REDIS_URL=f"redis://127.0.0.1:{primary.port}/0", EXAMWIRE_REDIS_MIN_REPLICAS="1",
                         EXAMWIRE_REDIS_WAIT_TIMEOUT_MS="300", EXAMWIRE_SQLITE_PATH=str(tmp_path / "results.sqlite3"))  # fmt: skip
        exam = kit.make_exam("repl", 3, types_=("numeric",))
        put_exam(node, exam)
        url = attempt_url(node.ws_url, "repl")
        aid = attempt_id(secrets.secret.encode(), "repl", "ann")
        answers_key = keys.answers(aid)

        async def scenario() -> dict[str, object]:
            c = ExamClient(url, make_token("ann", exams=["repl"]), reply_timeout=10)
            await c.connect()
            await c.hello()
            assert (await c.start())["t"] == "ack"
            first = await c.answer("x01", 1)
            await asyncio.to_thread(replica.kill)
            t0 = time.monotonic()
            refused = await c.answer("x02", 2)
            waited = time.monotonic() - t0
            on_primary = await asyncio.to_thread(resp, primary.port, "HGET", answers_key, "x02")
            repeat_refused = await c.request("answer", id=refused["id"], q="x02", value=2)
            newcomer = await hello_close(url, make_token("bob", exams=["repl"]))
            await keeper(replica.start)
            await asyncio.to_thread(primary.wait_replicas, 1)
            repeat = await c.request("answer", id=refused["id"], q="x02", value=2)
            after = await c.answer("x03", 3)
            await c.close()
            return {"first": first, "refused": refused, "waited": waited, "on_primary": on_primary,
                    "repeat_refused": repeat_refused, "newcomer": newcomer, "repeat": repeat, "after": after}  # fmt: skip

        got = arun(scenario(), timeout=60)
        on_replica = resp(replica.port, "HGETALL", answers_key)
    finally:
        replica.kill()
        primary.kill()
    assert got["first"]["t"] == "ack", got
    refused = got["refused"]
    assert refused["t"] == "error" and refused["code"] == "internal" and "replicas" in refused["message"], refused
    assert got["waited"] < 3, got  # the bounded wait (300 ms), not the retry budget
    assert got["on_primary"] == "2"  # written on the primary, not acknowledged
    assert got["repeat_refused"]["t"] == "error" and got["repeat_refused"]["code"] == "internal", got
    assert got["newcomer"][0] == 1013, got["newcomer"]
    assert got["repeat"] == {"t": "ack", "id": refused["id"], "dup": True}, got["repeat"]
    assert got["after"]["t"] == "ack", got
    stored = {on_replica[k]: json.loads(on_replica[k + 1]) for k in range(0, len(on_replica), 2)}
    assert stored == {"x01": 1, "x02": 2, "x03": 3}
    log = node.log_text()
    assert '"not_replicated"' in log and "Traceback" not in log
