"""A worker behind Redis Sentinel: Celery's broker and backend (kombu's ``sentinel://``), the outbox, heartbeats.

Real processes: a primary, a replica and one redis-sentinel (quorum 1) on
private ports; an engine node and an ``examwire worker --beat`` configured
with ``EXAMWIRE_REDIS_SENTINELS`` only. A finished attempt reaches the results
store, the worker's heartbeat is on the primary, and after the primary is
killed (``kill -9``) and the replica promoted, the next finished attempt is
stored too: every client of the worker followed the failover.
"""

from __future__ import annotations

from storage import keys
from testkit import SAMPLE_EXAM, wait_until
from testkit.redis_topology import RedisProcess, SentinelProcess, resp
from tests.conftest import require_tool

from .conftest import finish, store_rows


def test_a_worker_behind_sentinels_persists_results_before_and_after_a_failover(
    tmp_path, make_node, make_worker, put_exam, make_token, results_db, arun
):
    require_tool("redis-sentinel", "apt-get install redis-sentinel; .ci/run does")
    topo = tmp_path / "redis"
    primary = RedisProcess(topo).start()
    replica = RedisProcess(topo, replica_of=primary.port).start()
    sentinel = SentinelProcess(topo, primary_port=primary.port, quorum=1, down_after_ms=500, failover_timeout_ms=2000).start()
    stop_first: list = []  # the worker and the node, stopped while Redis still answers (a warm shutdown talks to it)
    try:
        primary.wait_replicas(1)
        wait_until(lambda: sentinel.knows(replicas=1, sentinels=0), 15, "the sentinel seeing the replica")
        env = {"EXAMWIRE_REDIS_URL": None, "EXAMWIRE_REDIS_SENTINELS": f"127.0.0.1:{sentinel.port}",
               "EXAMWIRE_SQLITE_PATH": str(results_db), "EXAMWIRE_HEARTBEAT_INTERVAL_MS": "200"}  # fmt: skip
        node = make_node(**env)
        worker = make_worker(**env)
        stop_first += [worker, node]
        put_exam(node, {**SAMPLE_EXAM, "id": "sent"})

        first = arun(finish(node, make_token("before", exams=["sent"]), "sent"), timeout=30)
        wait_until(lambda: first in {a for a, _, _ in store_rows(results_db)}, 30, lambda: "the first result stored\n" + worker.log())
        assert resp(primary.port, "ZCARD", keys.WORKERS) >= 1  # the heartbeat went to the primary through the sentinel

        primary.kill()  # kill -9; the sentinel promotes the replica
        wait_until(lambda: sentinel.primary() == replica.port, 15, "the replica promoted")
        seconds, micros = resp(replica.port, "TIME")
        promoted_ms = int(seconds) * 1000 + int(micros) // 1000
        second = arun(finish(node, make_token("after", exams=["sent"]), "sent"), timeout=30)
        wait_until(lambda: second in {a for a, _, _ in store_rows(results_db)}, 45,
                   lambda: "the result finished after the failover stored\n" + worker.log())  # fmt: skip

        def beat_since() -> bool:
            scores = resp(replica.port, "ZRANGE", keys.WORKERS, 0, -1, "WITHSCORES")[1::2]
            return any(int(float(x)) > promoted_ms for x in scores)

        wait_until(beat_since, 10, "a heartbeat written on the new primary")
        assert {s for a, s, _ in store_rows(results_db)} == {"submitted"}
    finally:
        for proc in stop_first:
            proc.stop()
        sentinel.kill()
        replica.kill()
        primary.kill()
