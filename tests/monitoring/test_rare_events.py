"""The series an operator needs on the worst day, each provoked for real and read from the exporter that owns it.

Every metric of the catalogue that no request path counts on an ordinary day
gets its day here: a proctor's updates coalesced and a proctor that stopped
reading dropped (1013), an attempt expired by the node's sweeper (its lag),
two writers racing on one attempt (commit conflicts), Redis losing its data
under a candidate who resumes with its evidence (``examwire_attempts_lost``,
refreshed from Redis), and on a worker's exporter the records the store
refused for good (dead letters) and drains that found the store locked.

Real parts: redis-server, ``examwire serve`` nodes, an ``examwire worker``
with its exporter on a port of its own, SQLite, clients over WebSockets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import redis as redis_sync
from websockets.asyncio.client import connect

from examwire.client import ExamClient, ProctorClient, attempt_url, proctor_url
from storage import keys
from testkit import SAMPLE_EXAM, SAMPLE_RIGHT_ANSWERS, free_port, make_exam, wait_until
from tests.tasks.conftest import finish, store_rows

from .conftest import scrape, worker_with_exporter

EXAM = "rare"
FAST_REFRESH = {"EXAMWIRE_METRICS_REFRESH_MS": "200"}


def metrics(node: Any) -> dict[str, float]:
    return scrape(f"{node.base_url}/metrics")


def test_a_proctors_updates_are_coalesced_and_counted(make_node, put_exam, make_token, arun) -> None:
    node = make_node(EXAMWIRE_PROCTOR_UPDATE_MS="1000", EXAMWIRE_RATE_PER_S="500", EXAMWIRE_RATE_BURST="500")
    exam = make_exam(EXAM, 10, shuffle_questions=False, types_=("single",))
    put_exam(node, exam)

    async def run() -> None:
        proctor = ProctorClient(proctor_url(node.ws_url, EXAM), make_token("pat", "proctor", exams=[EXAM]), reply_timeout=10)
        await proctor.connect()
        await proctor.hello()
        cand = ExamClient(attempt_url(node.ws_url, EXAM), make_token("quick", exams=[EXAM]), reply_timeout=10)
        await cand.connect()
        aid = (await cand.hello())["attempt"]
        await cand.start()
        for q in exam["questions"]:  # ten acknowledged answers inside one update window
            assert (await cand.answer(q["id"], "c"))["t"] == "ack"
        await proctor.wait_for("update", 5, pred=lambda u: u.get("attempt") == aid and u.get("answered") == 10)
        await cand.close()
        await proctor.close()

    arun(run())
    got = metrics(node)
    sent, folded = got["examwire_proctor_updates_sent_total{}"], got["examwire_proctor_updates_coalesced_total{}"]
    # every one of the ten answers reached the proctor, either in an update of its own or folded into one waiting
    assert sent + folded >= 10 and folded >= 1, (sent, folded)
    assert sent <= 5, sent  # one window per second: the burst took a few updates, not ten


def test_a_proctor_that_stops_reading_is_dropped_and_counted(make_node, put_exam, make_token, arun) -> None:
    flood = {"EXAMWIRE_SEND_QUEUE": "4", "EXAMWIRE_PROCTOR_UPDATE_MS": "0", "EXAMWIRE_RATE_PER_S": "5000",
             "EXAMWIRE_RATE_BURST": "5000", "EXAMWIRE_EVENT_RATE_PER_MIN": "60000", "EXAMWIRE_EVENT_BURST": "10000"}  # fmt: skip
    node = make_node(**flood)
    put_exam(node, {**SAMPLE_EXAM, "id": EXAM})
    token = make_token("pat", "proctor", exams=[EXAM])
    dropped = 'examwire_slow_clients_dropped_total{"role": "proctor"}'

    async def run() -> int:
        # a dashboard that says hello and then reads nothing: a tiny receive buffer, one frame queued at most
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", node.port))
        deaf = await connect(proctor_url(node.ws_url, EXAM), sock=sock, max_queue=1, compression=None, ping_interval=None)
        await deaf.send(json.dumps({"t": "hello", "v": 1, "token": token}))
        reading = ProctorClient(proctor_url(node.ws_url, EXAM), token, reply_timeout=10, keep=False)
        await reading.connect()
        await reading.hello()
        cand = ExamClient(attempt_url(node.ws_url, EXAM), make_token("loud", exams=[EXAM]), reply_timeout=10, keep=False)
        await cand.connect()
        await cand.hello()
        sent = 0
        while metrics(node).get(dropped, 0) < 1:
            assert sent < 5000, "the node kept a proctor that does not read"
            ids = [await cand.send_request("event", kind="blur", detail="x" * 900) for _ in range(50)]  # ~1 KiB updates
            for rid in ids:
                assert (await cand.reply(rid))["t"] == "ack"
            sent += len(ids)
        assert not reading.closed.is_set()  # only the one that stopped reading
        for c in (reading, cand):
            await c.close()
        deaf.transport.abort()
        return sent

    sent = arun(run(), timeout=120)
    got = metrics(node)
    assert got[dropped] == 1, sent
    assert got['examwire_closes_total{"code": "1013", "role": "proctor"}'] == 1
    assert got.get('examwire_slow_clients_dropped_total{"role": "candidate"}', 0) == 0


def test_an_expiry_by_the_sweeper_is_counted_with_its_lag(make_node, put_exam, make_token, arun) -> None:
    node = make_node(EXAMWIRE_ANSWER_GRACE_MS="0", EXAMWIRE_SWEEP_INTERVAL_MS="50")
    put_exam(node, make_exam(EXAM, 2, duration_s=1))

    async def run() -> None:
        cand = ExamClient(attempt_url(node.ws_url, EXAM), make_token("late", exams=[EXAM]), reply_timeout=10)
        await cand.connect()
        await cand.hello()
        await cand.start()
        await cand.close()  # gone: only the sweeper can end it

    arun(run())
    expired = 'examwire_attempts_ended_total{"state": "expired"}'
    got = wait_until(lambda: (m := metrics(node)).get(expired) == 1 and m, 15, "the attempt expired by the node's sweeper")
    assert got["examwire_expiry_lag_seconds_count{}"] == 1
    assert 0 <= got["examwire_expiry_lag_seconds_sum{}"] < 5  # swept every 50 ms; the rest is the box's load


def test_commits_that_lose_a_race_are_counted(make_node, put_exam, make_token, arun) -> None:
    # two writers on one attempt, on two nodes: the candidate answering, a proctor extending its time
    fast = {"EXAMWIRE_RATE_PER_S": "1000", "EXAMWIRE_RATE_BURST": "1000"}
    a, b = make_node(**fast), make_node(**fast)
    exam = make_exam(EXAM, 40, shuffle_questions=False, types_=("single",), duration_s=3600)
    put_exam(a, exam)
    conflicts = "examwire_commit_conflicts_total{}"

    async def run() -> tuple[int, int, int, int]:
        proctor = ProctorClient(proctor_url(b.ws_url, EXAM), make_token("pat", "proctor", exams=[EXAM]), reply_timeout=10, keep=False)
        await proctor.connect()
        await proctor.hello()
        cand = ExamClient(attempt_url(a.ws_url, EXAM), make_token("raced", exams=[EXAM]), reply_timeout=10, keep=False)
        await cand.connect()
        aid = (await cand.hello())["attempt"]
        deadline = first = (await cand.start())["deadline"]
        extended = busy = 0

        async def answer() -> None:
            for q in exam["questions"]:
                reply = await cand.answer(q["id"], "c")
                assert reply["t"] == "ack", reply

        async def extend() -> None:
            nonlocal extended, busy, deadline
            for _ in range(40):
                while (reply := await proctor.request("extend", attempt=aid, seconds=1))["t"] == "error":
                    # a writer that lost every race of its tries: `internal`, retryable (docs/protocol.md)
                    assert reply["code"] == "internal" and busy < 100, reply
                    busy += 1
                extended += 1
                deadline = reply["deadline"]

        for _ in range(10):  # a race is likely in every round; ten rounds make a lost one near certain
            await asyncio.gather(answer(), extend())
            if metrics(a).get(conflicts, 0) + metrics(b).get(conflicts, 0) > 0:
                break
        await cand.close()
        await proctor.close()
        return first, deadline, extended, busy

    first, deadline, extended, busy = arun(run(), timeout=120)
    assert metrics(a)[conflicts] + metrics(b)[conflicts] >= 1
    # each extension applied once, however many times its commit was recomputed: a second per ack
    assert deadline - first == extended * 1000, (first, deadline, extended, busy)


def test_redis_losing_its_data_under_a_candidate_shows_in_attempts_lost(make_node, put_exam, make_token, redis_url, arun) -> None:
    node = make_node(**FAST_REFRESH)
    put_exam(node, {**SAMPLE_EXAM, "id": EXAM})
    assert metrics(node)["examwire_attempts_lost{}"] == 0

    async def run() -> dict[str, Any]:
        cand = ExamClient(attempt_url(node.ws_url, EXAM), make_token("kept", exams=[EXAM]), reply_timeout=10)
        await cand.connect()
        await cand.hello()
        await cand.start()
        assert (await cand.answer("q1", SAMPLE_RIGHT_ANSWERS["q1"]))["t"] == "ack"
        await cand.close()
        r = redis_sync.Redis.from_url(redis_url)
        try:
            r.flushall()  # Redis lost its data (a restart without persistence, a failover that missed the writes)
        finally:
            r.close()
        welcome, _ = await cand.resume()  # hello with acked and the newest ticket
        await cand.close()
        return welcome

    lost_at = time.time()
    welcome = arun(run())
    assert welcome["last_id"] >= 2  # not handed out afresh: the acknowledged ids stay used
    got = wait_until(lambda: (m := metrics(node))["examwire_attempts_lost{}"] == 1 and m, 10, "the loss in the shared facts")
    assert got["examwire_shared_refresh_timestamp_seconds{}"] > lost_at
    assert got["examwire_redis_up{}"] == 1


def test_a_worker_counts_dead_letters_and_a_locked_store(
    make_node, put_exam, make_token, redis_url, secrets, tmp_path: Path, arun
) -> None:
    db = tmp_path / "results.sqlite3"
    node = make_node(EXAMWIRE_SQLITE_PATH=str(db))
    put_exam(node, {**SAMPLE_EXAM, "id": EXAM})
    port = free_port()
    worker = worker_with_exporter(tmp_path, redis_url=redis_url, secrets=secrets, db=db, port=port)
    url = f"http://127.0.0.1:{port}/metrics"
    r = redis_sync.Redis.from_url(redis_url, decode_responses=True)

    try:
        wait_until(lambda: _answers(url), 30, lambda: "the worker's exporter\n" + worker.log())
        # records the store will never take (what a node of a broken build could write)
        r.xadd(keys.OUTBOX, {"attempt": "x", "record": "{not json", "events": "[]"})
        r.xadd(keys.OUTBOX, {"attempt": "y", "record": json.dumps({"attempt": "y"}), "events": "[]"})
        got = wait_until(lambda: (m := scrape(url)).get("examwire_worker_records_dead_lettered_total{}") == 2 and m, 30,
                         lambda: "two dead letters counted\n" + worker.log())  # fmt: skip
        assert r.xlen(keys.OUTBOX_DEAD) == 2
        assert got.get("examwire_worker_store_unavailable_total{}", 0) == 0

        # the store locked by another writer while an attempt ends: drains find it unavailable, then it is written
        lock = sqlite3.connect(db, isolation_level=None, timeout=30)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            attempt = arun(finish(node, make_token("locked-out", exams=[EXAM]), EXAM))
            wait_until(lambda: scrape(url).get("examwire_worker_store_unavailable_total{}", 0) >= 1, 60,
                       lambda: "a drain finding the store locked\n" + worker.log())  # fmt: skip
        finally:
            lock.rollback()
            lock.close()
        wait_until(lambda: attempt in {a for a, _, _ in store_rows(db)}, 30, lambda: "the record stored\n" + worker.log())
        got = scrape(url)
        assert got["examwire_worker_records_written_total{}"] >= 1
        assert got["examwire_worker_records_dead_lettered_total{}"] == 2  # nothing else went there
    finally:
        r.close()
        worker.stop()


def _answers(url: str) -> bool:
    try:
        scrape(url)
    except OSError:
        return False
    return True
