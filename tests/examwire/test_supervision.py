"""Embedded ``examwire serve`` watches its children: the private Redis and the worker with beat.

Real processes only: ``python -m examwire serve`` with no EXAMWIRE_REDIS_URL,
its redis-server and Celery worker children, candidates over WebSockets.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from testkit import SAMPLE_EXAM, SAMPLE_RIGHT_ANSWERS, clean_env, free_port, http_json, json_events, Node, wait_until
from examwire.client import ExamClient, attempt_url

from tests.conftest import REPO_ROOT


def _embedded(tmp_path: Path, **env: str) -> Node:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    full = clean_env(EXAMWIRE_DATA_DIR=str(data_dir), **env)
    port = free_port()
    argv = [sys.executable, "-m", "examwire", "serve", "--port", str(port)]
    node = Node(argv, full, port=port, data_dir=data_dir, cwd=REPO_ROOT)
    node.wait_ready(30)
    return node


def _ready(node: Node) -> dict[str, Any]:
    status, body = http_json("GET", f"{node.base_url}/readyz", timeout=5)
    assert isinstance(body, dict), body
    body["_status"] = status
    return body


def _events(node: Node, name: str) -> list[dict[str, Any]]:
    return json_events(node.log_text(), name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _token(node: Node, user: str) -> str:
    import jwt

    secret = (node.data_dir / "jwt-secret").read_text().strip()
    claims = {"sub": user, "role": "candidate", "aud": "examwire", "exp": int(time.time()) + 600}
    return jwt.encode(claims, secret, algorithm="HS256")


def _admin(node: Node) -> str:
    import jwt

    secret = (node.data_dir / "jwt-secret").read_text().strip()
    return jwt.encode({"sub": "adm", "role": "admin", "aud": "examwire", "exp": int(time.time()) + 600}, secret, algorithm="HS256")


async def _finish(node: Node, user: str) -> str:
    c = ExamClient(attempt_url(node.ws_url, SAMPLE_EXAM["id"]), _token(node, user), reply_timeout=15)
    await c.connect()
    await c.hello()
    assert (await c.start())["t"] == "ack"
    assert (await c.answer("q1", SAMPLE_RIGHT_ANSWERS["q1"]))["t"] == "ack"
    assert (await c.submit())["t"] == "ack"
    attempt = c.welcome["attempt"]
    await c.close()
    return attempt


def _stored(node: Node) -> set[str]:
    db = node.data_dir / "results.sqlite3"
    if not db.exists():
        return set()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return {a for (a,) in conn.execute("SELECT attempt FROM results")}
    except sqlite3.OperationalError:
        return set()
    finally:
        conn.close()


@pytest.mark.timeout(180)
def test_a_killed_worker_or_redis_is_logged_and_restarted_and_results_keep_arriving(tmp_path) -> None:
    node = _embedded(tmp_path, EXAMWIRE_BEAT_LOCK_TTL_S="3")
    try:
        status, _ = http_json("PUT", f"{node.base_url}/v1/exams/{SAMPLE_EXAM['id']}", token=_admin(node), body=SAMPLE_EXAM)
        assert status == 200
        # the worker's first heartbeat comes a few seconds after the node is ready
        first = wait_until(lambda: (r := _ready(node))["persistence"] == "ok" and r, 30, "persistence ok")
        assert first["children"]["worker"]["state"] == "running" and first["children"]["redis"]["state"] == "running"
        old_worker = first["children"]["worker"]["pid"]

        os.killpg(old_worker, signal.SIGKILL)  # the worker and its pool and beat, as the OOM killer might
        exited = wait_until(lambda: _events(node, "child_exited"), 10, "child_exited in the node's log\n" + node.log_text()[-3000:])
        assert exited[0]["child"] == "worker" and exited[0]["status"] == -signal.SIGKILL
        assert exited[0]["exit"] == "killed by SIGKILL"
        assert any("celery" in line.lower() for line in exited[0]["tail"]), exited[0]["tail"]  # its own last lines
        again = wait_until(lambda: (r := _ready(node))["children"]["worker"]["restarts"] == 1 and r, 15, "the worker restarted")
        assert again["children"]["worker"]["pid"] != old_worker and again["children"]["worker"]["state"] == "running"
        assert again["persistence"] == "ok"

        # results still arrive: the new worker drains, its beat took the lock over
        attempt = asyncio.run(_finish(node, "after-worker-kill"))
        wait_until(lambda: attempt in _stored(node), 30, "the result after the worker restart\n" + node.log_text()[-3000:])

        # the private Redis killed: restarted from its AOF, nothing acknowledged lost
        redis_pid = again["children"]["redis"]["pid"]
        os.kill(redis_pid, signal.SIGKILL)
        wait_until(lambda: any(e["child"] == "redis" for e in _events(node, "child_exited")), 10, "Redis's exit logged")
        back = wait_until(
            lambda: (r := _ready(node))["_status"] == 200 and r["children"]["redis"]["restarts"] == 1 and r, 30,
            "Redis restarted and the node ready\n" + node.log_text()[-3000:],
        )  # fmt: skip
        assert back["children"]["redis"]["pid"] != redis_pid
        status, exam = http_json("GET", f"{node.base_url}/v1/exams/{SAMPLE_EXAM['id']}", token=_token(node, "x"))
        assert status == 200 and exam["version"] == 1
        attempt2 = asyncio.run(_finish(node, "after-redis-kill"))
        wait_until(lambda: attempt2 in _stored(node), 40, "the result after the Redis restart\n" + node.log_text()[-3000:])
    finally:
        node.stop(30)


@pytest.mark.timeout(120)
def test_a_worker_that_keeps_dying_marks_the_node_degraded(tmp_path) -> None:
    # a broker URL no transport serves: only the worker uses it, and it exits at start every time
    node = _embedded(tmp_path, EXAMWIRE_CELERY_BROKER_URL="bogus://nowhere", EXAMWIRE_CHILD_RESTART_LIMIT="2")
    try:
        body = wait_until(lambda: (r := _ready(node))["persistence"] == "degraded" and "children" in r and
                     r["children"]["worker"]["state"] == "failing" and r, 40, "the node degraded")  # fmt: skip
        assert body["_status"] == 200  # candidates are still served: answers are safe in Redis
        assert "embedded worker keeps exiting" in body["problems"]
        assert body["children"]["redis"]["state"] == "running"
        exits = [e for e in _events(node, "child_exited") if e["child"] == "worker"]
        assert len(exits) >= 2 and all(e["status"] != 0 for e in exits)
        assert any("bogus" in line for line in exits[0]["tail"]), exits[0]["tail"]
        delays = [e["restart_in_s"] for e in exits[:3]]
        assert delays == sorted(delays) and delays[0] == 1.0 and (len(delays) < 2 or delays[1] == 2.0)
    finally:
        node.stop(30)


@pytest.mark.timeout(90)
def test_a_sigkilled_node_leaves_no_child_behind(tmp_path) -> None:
    node = _embedded(tmp_path)
    children = _ready(node)["children"]
    pids = [children["redis"]["pid"], children["worker"]["pid"]]
    assert all(_alive(p) for p in pids)
    node.kill()
    wait_until(lambda: not any(_alive(p) for p in pids), 30, f"children {pids} to go with the node")


@pytest.mark.timeout(60)
def test_a_busy_port_is_one_clear_error_and_starts_nothing(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "data"))
        out = subprocess.run(
            [sys.executable, "-m", "examwire", "serve", "--demo", "--port", str(port)],
            env=env, capture_output=True, text=True, timeout=30, cwd=REPO_ROOT,
        )  # fmt: skip
    assert out.returncode == 1
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert lines == [f"examwire: cannot listen on 127.0.0.1:{port}: the port is already in use"], lines
    assert not (tmp_path / "data").exists()  # not even the data dir or its secrets


@pytest.mark.timeout(120)
def test_a_node_whose_children_hang_is_forced_out_within_the_bound(tmp_path) -> None:
    """The shutdown watchdog: children that ignore SIGTERM (stopped) cannot keep the node alive."""
    node = _embedded(tmp_path, EXAMWIRE_SHUTDOWN_TIMEOUT_S="1")
    children = _ready(node)["children"]
    pids = [children["redis"]["pid"], children["worker"]["pid"]]
    for pid in pids:
        os.killpg(pid, signal.SIGSTOP)  # hung: SIGTERM and SHUTDOWN go unanswered
    started = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    code = node.proc.wait(timeout=60)
    took = time.monotonic() - started
    assert code == 1, node.log_text()[-3000:]
    assert took < 1 + 10 + 10, took  # the graceful bound, the watchdog's grace, and the forced stop's own 5 s join
    forced = _events(node, "shutdown_forced")
    assert len(forced) == 1 and forced[0]["after_s"] == 11
    assert "Thread" in node.log_text()  # the stacks, for whoever investigates
    wait_until(lambda: not any(_alive(p) for p in pids), 10, "the hung children killed")
