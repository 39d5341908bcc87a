"""Chaos: the Redis primary is killed (``kill -9``) under two engine nodes; Sentinel promotes a replica.

Real processes on private ports: a primary, two replicas and three
redis-sentinel processes (quorum 2, ``down-after-milliseconds`` 1000), two
engine nodes configured with the sentinels only (``EXAMWIRE_REDIS_SENTINELS``)
and ``EXAMWIRE_REDIS_MIN_REPLICAS=1``, candidates answering through both
nodes. Two replicas, not one: with ``MIN_REPLICAS=1`` the promoted replica
needs a replica of its own to acknowledge anything after the failover.

Every candidate goes on within 10 s of the kill (a request waits, or is
answered ``internal`` and sent again with the same id, or its connection
closes and it resumes), nobody is closed 1011, and **no acknowledged answer is
lost**: every ack the clients got is counted and each acknowledged value is in
its attempt on the new primary afterwards.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from storage import keys
from storage.attempts import attempt_id
from tests.conftest import require_tool
from tests.e2e.client import ConnectionClosedByServer, ExamClient, ProtocolError, attempt_url
from testkit.redis_topology import RedisProcess, SentinelProcess, info, resp

CANDIDATES = 16
#: The promise: every candidate continues within this long of the kill.
CONTINUE_S = 10.0


def test_killing_the_primary_loses_no_acknowledged_answer_and_candidates_go_on(tmp_path, make_node, put_exam, make_token,
                                                                                 kit, arun, secrets):  # fmt: skip
    require_tool("redis-sentinel", "apt-get install redis-sentinel; .ci/run does")
    topo = tmp_path / "redis"
    primary = RedisProcess(topo, appendonly=True).start()
    replicas = [RedisProcess(topo, replica_of=primary.port, appendonly=True).start() for _ in range(2)]
    sentinels = [SentinelProcess(topo, primary_port=primary.port, quorum=2, down_after_ms=1000,
                                 failover_timeout_ms=3000).start() for _ in range(3)]  # fmt: skip
    procs = [*sentinels, *replicas, primary]
    try:
        primary.wait_replicas(2)
        deadline = time.monotonic() + 20
        while not all(s.knows(replicas=2, sentinels=2) for s in sentinels):
            assert time.monotonic() < deadline, "the sentinels never saw each other and both replicas"
            time.sleep(0.1)
        env = {
            "EXAMWIRE_REDIS_URL": None,
            "EXAMWIRE_REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in sentinels),
            "EXAMWIRE_REDIS_SENTINEL_SERVICE": "examwire",
            "EXAMWIRE_REDIS_MIN_REPLICAS": "1",
            "EXAMWIRE_REDIS_WAIT_TIMEOUT_MS": "500",
            "EXAMWIRE_SQLITE_PATH": str(tmp_path / "results.sqlite3"),
        }
        nodes = [make_node(**env), make_node(**env)]
        exam = kit.make_exam("failover", 12, types_=("numeric",))  # the value of answer i is i: each ack is told apart
        put_exam(nodes[0], exam)
        qids = [q["id"] for q in exam["questions"]]
        killed = asyncio.Event()
        killed_at: list[float] = []

        async def candidate(n: int) -> dict[str, Any]:
            node = nodes[n % 2]
            user = f"cand{n}"
            c = ExamClient(attempt_url(node.ws_url, "failover"), make_token(user, exams=["failover"]), reply_timeout=15)
            stats: dict[str, Any] = {"user": user, "acked": {}, "acks": 0, "internal": 0, "closes": [], "waits": [],
                                     "after_kill": 0, "first_after_kill": None}  # fmt: skip

            async def connect() -> None:
                while True:
                    try:
                        await c.connect()
                        await c.hello()
                        return
                    except (ConnectionClosedByServer, ProtocolError, OSError) as exc:
                        stats["closes"].append(getattr(exc, "code", None))
                        await asyncio.sleep(0.2)

            async def send(t: str, **fields: Any) -> dict[str, Any]:
                """One request until it is acknowledged: resent with its id after ``internal`` or a reconnect."""
                rid = c.allocate_id()
                sent = time.monotonic()
                while True:
                    try:
                        reply = await c.request(t, id=rid, timeout=CONTINUE_S + 5, **fields)
                    except ConnectionClosedByServer as exc:
                        stats["closes"].append(exc.code)
                        await connect()
                        continue
                    if reply.get("t") == "ack":
                        took = time.monotonic() - sent
                        stats["waits"].append(took)
                        return reply
                    assert reply.get("code") == "internal", reply
                    stats["internal"] += 1
                    await asyncio.sleep(0.1)

            await connect()
            await send("start")
            i = 0
            while not killed.is_set() or stats["after_kill"] < 5:
                q = qids[i % len(qids)]
                await send("answer", q=q, value=i)
                stats["acked"][q] = i
                stats["acks"] += 1
                if killed.is_set():
                    stats["after_kill"] += 1
                    if stats["first_after_kill"] is None:
                        stats["first_after_kill"] = time.monotonic() - killed_at[0]
                i += 1
                await asyncio.sleep(0.05)
            await c.close()
            return stats

        async def scenario() -> list[dict[str, Any]]:
            running = asyncio.gather(*(candidate(n) for n in range(CANDIDATES)))
            await asyncio.sleep(1.5)
            await asyncio.to_thread(primary.kill)  # kill -9: no shutdown, no AOF flush
            killed_at.append(time.monotonic())
            killed.set()
            return await running

        results = arun(scenario(), timeout=90)
    finally:
        new_primary = next((s.primary() for s in sentinels if s.running and s.primary() != primary.port), None)
        stored: dict[str, dict[str, Any]] = {}
        role = info(new_primary)["role"] if new_primary is not None else None
        if new_primary is not None:
            for n in range(CANDIDATES):
                aid = attempt_id(secrets.secret.encode(), "failover", f"cand{n}")
                raw = resp(new_primary, "HGETALL", keys.answers(aid))
                stored[f"cand{n}"] = {raw[k]: json.loads(raw[k + 1]) for k in range(0, len(raw), 2)}
        for p in procs:
            p.kill()

    assert new_primary in (r.port for r in replicas) and role == "master", f"no replica was promoted ({new_primary}, {role})"
    total = sum(r["acks"] for r in results)
    lost = {r["user"]: {q: (v, stored[r["user"]].get(q)) for q, v in r["acked"].items() if stored[r["user"]].get(q) != v}
            for r in results}  # fmt: skip
    lost = {u: x for u, x in lost.items() if x}
    assert not lost, f"acknowledged answers missing after the failover (of {total} acks): {lost}"
    slow = {r["user"]: (r["first_after_kill"], max(r["waits"])) for r in results
            if r["first_after_kill"] > CONTINUE_S or max(r["waits"]) > CONTINUE_S}  # fmt: skip
    assert not slow, f"candidates that did not go on within {CONTINUE_S} s (first ack after the kill, longest wait): {slow}"
    closed_1011 = [r["user"] for r in results if 1011 in r["closes"]]
    assert not closed_1011, closed_1011
    print(f"{total} acks, none lost; first ack after the kill within "
          f"{max(r['first_after_kill'] for r in results):.1f} s; longest wait {max(max(r['waits']) for r in results):.1f} s; "
          f"{sum(r['internal'] for r in results)} internal errors resent; closes {sum(len(r['closes']) for r in results)}")
