"""The persistence path watches itself: worker heartbeats, one beat, ``/readyz``, ``examwire status``.

Real parts: a redis-server, engine nodes, ``examwire worker``/``beat``
processes, SQLite, candidates over WebSockets, the ``examwire`` command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import redis as redis_sync

from storage import keys
from tests.conftest import REPO_ROOT
from testkit import SAMPLE_EXAM, clean_env, http_json, json_events, run_examwire, wait_until

from .conftest import FAST, finish, store_rows


def _ready(node) -> dict[str, Any]:
    status, body = http_json("GET", f"{node.base_url}/readyz")
    return {**body, "_status": status}


async def _finish(node, make_token, user: str, exam_id: str = "health") -> str:
    return await finish(node, make_token(user, exams=[exam_id]), exam_id)


def _cli_env(redis_url: str, secrets: Any, results_db, **extra: str) -> dict[str, str]:
    return clean_env(**{
        "EXAMWIRE_REDIS_URL": redis_url, "EXAMWIRE_JWT_SECRET": secrets.jwt_secret, "EXAMWIRE_SECRET": secrets.secret,
        "EXAMWIRE_SQLITE_PATH": str(results_db), **extra,
    })  # fmt: skip


def test_readyz_tells_whether_results_reach_the_store(make_node, make_worker, put_exam, make_token, results_db, redis_url, arun):
    node = make_node(EXAMWIRE_SQLITE_PATH=str(results_db), EXAMWIRE_WORKER_STALE_S="3", EXAMWIRE_OUTBOX_STALE_S="4")
    put_exam(node, {**SAMPLE_EXAM, "id": "health"})
    # no worker yet: ready (candidates are served) but persistence is degraded, and it says why
    body = _ready(node)
    assert body["_status"] == 200 and body["status"] == "ready"
    assert body["persistence"] == "degraded" and body["problems"] == ["no worker heartbeat"]
    assert body["worker_heartbeat_age_s"] is None and body["outbox"] == 0 and body["oldest_age_s"] is None
    assert "children" not in body  # a node on a shared Redis supervises nothing

    # an attempt ends with no worker to drain it: it waits in the outbox, and ages
    attempt = arun(_finish(node, make_token, "waits"))
    time.sleep(4.5)
    body = _ready(node)
    assert body["outbox"] == 1 and body["oldest_age_s"] >= 4
    assert any(p.startswith("oldest outbox entry is") for p in body["problems"]), body

    worker = make_worker()
    wait_until(lambda: attempt in {a for a, _, _ in store_rows(results_db)}, 30, "the waiting result stored\n" + worker.log())
    body = wait_until(lambda: (b := _ready(node))["persistence"] == "ok" and b, 15, "persistence ok\n" + worker.log())
    assert body["problems"] == [] and body["outbox"] == 0 and 0 <= body["worker_heartbeat_age_s"] < 3

    worker.kill()  # SIGKILL: no goodbye; its heartbeat goes stale
    body = wait_until(lambda: (b := _ready(node))["persistence"] == "degraded" and b, 15, "stale heartbeat noticed")
    assert body["problems"][0].startswith("no worker heartbeat for")
    assert body["_status"] == 200


def test_readyz_can_fail_when_persistence_is_degraded(make_node, make_worker, results_db):
    worker = make_worker()
    stale = {"EXAMWIRE_SQLITE_PATH": str(results_db), "EXAMWIRE_WORKER_STALE_S": "2"}
    lenient = make_node(**stale)
    strict = make_node(**stale, EXAMWIRE_READYZ_FAIL_DEGRADED="true")  # make_node waits for its 200: the worker beats
    assert _ready(strict)["persistence"] == "ok"
    worker.kill()
    body = wait_until(lambda: (b := _ready(strict))["_status"] == 503 and b, 15, "the strict node to fail its probe")
    assert body["status"] == "unavailable" and body["persistence"] == "degraded"
    body = _ready(lenient)  # the default: still ready, and says degraded
    assert body["_status"] == 200 and body["status"] == "ready" and body["persistence"] == "degraded"


def _beat(tmp_path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen, Any]:
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "examwire", "beat", "--data-dir", str(tmp_path / name)],
            env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return proc, log_path


def _said(log_path, event: str) -> list[dict[str, Any]]:
    return json_events(log_path.read_text(errors="replace"), event)


def test_one_beat_schedules_a_second_stands_by_and_takes_over(make_node, make_worker, put_exam, make_token, results_db, redis_url, secrets, arun, tmp_path):
    node = make_node(EXAMWIRE_SQLITE_PATH=str(results_db))
    put_exam(node, {**SAMPLE_EXAM, "id": "health"})
    first = make_worker(beat=True, EXAMWIRE_BEAT_LOCK_TTL_S="3")
    r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    holder = wait_until(lambda: r.get(keys.BEAT_LOCK), 30, "the first beat's lock\n" + first.log())
    base = {**_cli_env(redis_url, secrets, results_db), **FAST, "PYTHONUNBUFFERED": "1"}
    second, second_log = _beat(tmp_path, "beat2", {**base, "EXAMWIRE_BEAT_LOCK_TTL_S": "30"})
    third = None
    try:
        standby = wait_until(lambda: _said(second_log, "beat_standby"), 20, "the second beat to say it stands by")
        assert standby[0]["holder"] == holder and "not scheduling" in standby[0]["message"]
        time.sleep(2)
        assert r.get(keys.BEAT_LOCK) == holder  # still the first: the second never took it
        assert len(r.zrange(keys.BEATS, 0, -1)) == 2

        # the holder hangs (alive, silent): the standby waits out the lock's time to live (3 s), then schedules
        os.killpg(first.proc.pid, signal.SIGSTOP)
        hung_at = time.monotonic()
        wait_until(lambda: r.get(keys.BEAT_LOCK) not in (None, holder), 15, "the standby to take the lock over")
        assert time.monotonic() - hung_at >= 1.5  # it did wait for the lock to expire
        assert _said(second_log, "beat_lock_taken")
        first.kill()
        # it schedules for real: with a worker (no beat of its own) a new result is stored
        worker = make_worker(beat=False)
        attempt = arun(_finish(node, make_token, "after-takeover"))
        wait_until(lambda: attempt in {a for a, _, _ in store_rows(results_db)}, 30, "stored after the takeover\n" + worker.log())

        # the holder (lock for 30 s) is SIGKILLed: a beat on the same host sees its process gone and takes over at once
        second_name = r.get(keys.BEAT_LOCK)
        os.killpg(second.pid, signal.SIGKILL)
        second.wait()
        third, third_log = _beat(tmp_path, "beat3", {**base, "EXAMWIRE_BEAT_LOCK_TTL_S": "30"})
        wait_until(lambda: r.get(keys.BEAT_LOCK) not in (None, second_name), 15, "the third beat to take over at once")
        assert r.pttl(keys.BEAT_LOCK) > 20_000  # its own lock, not the dead one's remainder
        freed = _said(third_log, "beat_lock_freed")
        assert freed and freed[0]["holder"] == second_name
    finally:
        for proc in (second, third):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
        r.close()
    # a clean stop releases the lock at once
    r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    assert r.get(keys.BEAT_LOCK) is None
    r.close()


def test_status_tells_an_operator_the_truth(make_node, make_worker, put_exam, make_token, results_db, redis_url, secrets, arun):
    env = _cli_env(redis_url, secrets, results_db)
    node = make_node(EXAMWIRE_SQLITE_PATH=str(results_db))
    put_exam(node, {**SAMPLE_EXAM, "id": "health"})
    worker = make_worker(beat=True)
    r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    wait_until(lambda: r.zcard(keys.WORKERS) and r.get(keys.BEAT_LOCK), 30, "worker and beat up\n" + worker.log())

    # healthy
    out = run_examwire("status", "--json", env=env)
    report = json.loads(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert report["status"] == "ok" and report["problems"] == []
    assert report["redis"]["reachable"] is True and report["redis"]["aof"] is False  # the test Redis runs without AOF
    assert report["warnings"] == ["Redis AOF is off: a Redis restart loses acknowledged answers"]
    assert len(report["workers"]["answered_ping"]) == 1 and report["beat"]["holder"]
    assert report["results_store"]["reachable"] is True and report["dead_letters"] == 0
    text = run_examwire("status", env=env)
    assert text.returncode == 0 and text.stdout.startswith("Examwire status: OK")
    for role in ("worker", "beat"):
        local = run_examwire("status", "--local", role, env=env)
        assert local.returncode == 0, (role, local.stdout, local.stderr)

    # a result that was dead-lettered: listed, degraded, requeued after the "fix", then stored
    worker.stop()
    attempt = arun(_finish(node, make_token, "dead-one"))
    (entry_id, fields), = r.xrange(keys.OUTBOX)
    with r.pipeline(transaction=True) as pipe:
        pipe.xadd(keys.OUTBOX_DEAD, {**fields, "reason": "store rejected: test", "entry": entry_id})
        pipe.xdel(keys.OUTBOX, entry_id)
        pipe.execute()
    out = run_examwire("status", "--json", env=env)
    report = json.loads(out.stdout)
    assert out.returncode == 1 and report["status"] == "degraded"
    assert set(report["problems"]) == {
        "no worker heartbeat",
        "1 dead-lettered result(s) never reached the store (`examwire outbox dead` lists them)",
        "no worker answered a ping",
        "no beat holds the lock: nothing schedules the drain and the sweep",
    }, report["problems"]
    assert run_examwire("status", "--local", "worker", env=env).returncode == 1
    assert run_examwire("status", "--local", "beat", env=env).returncode == 1
    listed = run_examwire("outbox", "dead", "--json", env=env)
    assert [(d["attempt"], d["reason"]) for d in json.loads(listed.stdout)] == [(attempt, "store rejected: test")]
    moved = run_examwire("outbox", "retry-dead", env=env)
    assert moved.returncode == 0 and "requeued 1" in moved.stdout
    assert r.xlen(keys.OUTBOX_DEAD) == 0 and r.xlen(keys.OUTBOX) == 1
    assert set(r.xrange(keys.OUTBOX)[0][1]) == set(fields)  # the dead-letter fields are gone again
    worker = make_worker(beat=True)
    wait_until(lambda: attempt in {a for a, _, _ in store_rows(results_db)}, 30, "the requeued result stored\n" + worker.log())
    wait_until(lambda: run_examwire("status", env=env).returncode == 0, 30, "status ok again")

    # the results store unreachable: degraded, and it says which store
    not_a_dir = results_db.parent / "a-file"
    not_a_dir.write_text("")
    broken = _cli_env(redis_url, secrets, results_db, EXAMWIRE_SQLITE_PATH=str(not_a_dir / "results.sqlite3"))
    out = run_examwire("status", "--json", env=broken)
    assert out.returncode == 1, out.stdout
    assert f"results store unreachable (SQLite {not_a_dir / 'results.sqlite3'})" in json.loads(out.stdout)["problems"]

    # Redis unreachable: exit 2
    gone = _cli_env("redis://:pw@127.0.0.1:1/0", secrets, results_db)
    out = run_examwire("status", env=gone)
    assert out.returncode == 2 and out.stdout.startswith("Examwire status: UNREACHABLE")
    assert "redis://***@127.0.0.1:1/0" in out.stdout and "pw" not in out.stdout
    assert run_examwire("status", "--local", "worker", env=gone).returncode == 2
    r.close()
