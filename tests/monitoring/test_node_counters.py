"""What a node counts at its connections, read from its own ``/metrics``: refusals, bad and oversized frames, rate
limits, proctor updates, and the scrape-time gauges of open connections and live attempts (real node, real sockets)."""

from __future__ import annotations

import json
from typing import Any

from websockets.asyncio.client import connect

from examwire.client import ExamClient, ProctorClient, attempt_url, proctor_url
from testkit import SAMPLE_EXAM, SAMPLE_RIGHT_ANSWERS, wait_until

from . import conftest

EXAM = "counted"


def scrape(node: Any) -> dict[str, float]:
    return conftest.scrape(f"{node.base_url}/metrics")


def test_connection_counters(make_node, put_exam, make_token, arun) -> None:
    node = make_node(EXAMWIRE_MAX_FRAME_BYTES="1024", EXAMWIRE_RATE_PER_S="2", EXAMWIRE_RATE_BURST="4", EXAMWIRE_PROCTOR_UPDATE_MS="0",
                     EXAMWIRE_LOOP_LAG_INTERVAL_MS="20")
    put_exam(node, {**SAMPLE_EXAM, "id": EXAM})
    url = attempt_url(node.ws_url, EXAM)

    async def run() -> None:
        # refused at hello: a bad token
        async with connect(url) as ws:
            await ws.send(json.dumps({"t": "hello", "v": 1, "token": "not-a-token"}))
            await ws.wait_closed()
            assert ws.close_code == 4401
        # a bad frame, then a burst past the message budget
        async with connect(url) as ws:
            await ws.send(json.dumps({"t": "hello", "v": 1, "token": make_token("ann", exams=[EXAM])}))
            assert json.loads(await ws.recv())["t"] == "welcome"
            await ws.send("{not json")
            for i in range(12):
                await ws.send(json.dumps({"t": "ping", "ct": i}))
            await ws.wait_closed()  # past the budget: 1008
        # a frame over EXAMWIRE_MAX_FRAME_BYTES
        async with connect(url, max_size=None) as ws:
            await ws.send(json.dumps({"t": "hello", "v": 1, "token": make_token("bob", exams=[EXAM])}))
            assert json.loads(await ws.recv())["t"] == "welcome"
            await ws.send("x" * 4000)
            await ws.wait_closed()
            assert ws.close_code == 1009
        # a proctor watches a candidate who stays connected mid-exam
        proctor = ProctorClient(proctor_url(node.ws_url, EXAM), make_token("pat", "proctor", exams=[EXAM]), reply_timeout=10)
        await proctor.connect()
        await proctor.hello()
        cand = ExamClient(url, make_token("cat", exams=[EXAM]), reply_timeout=10)
        await cand.connect()
        await cand.hello()
        await cand.start()
        await cand.answer("q1", SAMPLE_RIGHT_ANSWERS["q1"])
        await proctor.wait_for("update", pred=lambda u: u.get("answered") == 1)
        now = scrape(node)
        assert now['examwire_connections{"role": "candidate"}'] == 1 and now['examwire_connections{"role": "proctor"}'] == 1
        assert now['examwire_attempts_live{"state": "active"}'] == 1
        await cand.close()
        await proctor.close()

    arun(run())

    def settled() -> dict[str, float]:
        got = scrape(node)
        return got if got['examwire_connections{"role": "candidate"}'] == 0 else {}

    got = wait_until(settled, 10, "the connections closed")
    assert got['examwire_hellos_total{"result": "4401", "role": "candidate"}'] == 1
    assert got['examwire_hellos_total{"result": "ok", "role": "candidate"}'] == 3
    assert got['examwire_hellos_total{"result": "ok", "role": "proctor"}'] == 1
    assert got['examwire_bad_frames_total{"role": "candidate"}'] == 1
    assert got['examwire_requests_total{"code": "bad_frame", "outcome": "refused", "type": "other"}'] == 1
    assert got['examwire_rate_limited_total{"action": "refused", "role": "candidate"}'] >= 1
    assert got['examwire_rate_limited_total{"action": "closed", "role": "candidate"}'] == 1
    assert got['examwire_closes_total{"code": "1008", "role": "candidate"}'] == 1
    assert got['examwire_frames_too_large_total{"role": "candidate"}'] == 1
    assert got['examwire_closes_total{"code": "1009", "role": "candidate"}'] == 1
    assert got["examwire_proctor_updates_sent_total{}"] >= 1
    assert got["examwire_attempts_started_total{}"] == 1
    assert got['examwire_redis_script_seconds_count{"script": "commit"}'] >= 2  # the start and the answer
    assert got['examwire_redis_script_seconds_count{"script": "claim"}'] >= 1  # every script, not only commit
    assert got['examwire_redis_script_seconds_count{"script": "present"}'] >= 1
    assert got["examwire_event_loop_lag_seconds_count{}"] >= 1
    assert got['examwire_attempts_live{"state": "active"}'] == 0
