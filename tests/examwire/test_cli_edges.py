"""The command line where it meets something it cannot use: each refusal is one line and a documented status.

Real ``python -m examwire`` processes; a shared Redis (the session's), or the
embedded one of a data dir (a real ``redis-server`` started here).
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis as redis_sync

import testkit
from examwire.redis_server import EmbeddedRedis
from storage import keys
from testkit import SAMPLE_EXAM, clean_env, http_json, run_examwire, wait_until
from tests.conftest import REPO_ROOT




def _shared(redis_url: str, secrets: Any, tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(EXAMWIRE_REDIS_URL=redis_url, EXAMWIRE_JWT_SECRET=secrets.jwt_secret, EXAMWIRE_SECRET=secrets.secret,
                EXAMWIRE_SQLITE_PATH=str(tmp_path / "results.sqlite3"), **extra)  # fmt: skip


def test_import_refuses_what_it_cannot_read(tmp_path):
    env = clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "data"))
    missing = tmp_path / "nowhere.json"
    out = run_examwire("import", str(missing), env=env)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith(f"examwire: cannot read {missing}: ") and out.stderr.count("\n") == 1, out.stderr
    out = run_examwire("import", "-", env=env, stdin="{ not json")
    assert out.returncode == 2 and out.stderr.startswith("examwire: cannot read -: "), out.stderr
    assert not (tmp_path / "data" / "redis.sock").exists()  # refused before any Redis was started


def test_import_into_a_shared_redis_is_seen_by_a_node(make_node, redis_url, secrets, tmp_path, make_token):
    env = _shared(redis_url, secrets, tmp_path)
    path = tmp_path / "exam.json"
    path.write_text(json.dumps({**SAMPLE_EXAM, "id": "shared-import"}))
    out = run_examwire("import", str(path), env=env)
    assert out.returncode == 0 and out.stdout == "exam 'shared-import' stored as version 1\n", out
    node = make_node(EXAMWIRE_SQLITE_PATH=str(tmp_path / "results.sqlite3"))
    status, body = http_json("GET", f"{node.base_url}/v1/exams/shared-import", token=make_token("adm", "admin"))
    assert status == 200 and body["version"] == 1 and body["total"] == len(SAMPLE_EXAM["questions"]), body


def test_import_uses_the_embedded_redis_that_runs_and_replaces_a_stale_socket(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    env = clean_env(EXAMWIRE_DATA_DIR=str(data))
    path = tmp_path / "exam.json"
    path.write_text(json.dumps({**SAMPLE_EXAM, "id": "embedded-import"}))

    # a socket file left behind by a Redis that died: nothing answers on it, a temporary Redis is started
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(data / "redis.sock"))
    stale.close()
    out = run_examwire("import", str(path), env=env)
    assert out.returncode == 0 and "stored as version 1" in out.stdout, out

    # an embedded Redis that runs (as `examwire serve` keeps one): used as it is, and left running
    server = EmbeddedRedis(data)
    server.start()
    try:
        again = {**SAMPLE_EXAM, "id": "embedded-import", "title": "Changed"}
        path.write_text(json.dumps(again))
        out = run_examwire("import", str(path), env=env)
        assert out.returncode == 0 and out.stdout == "exam 'embedded-import' stored as version 2\n", out
        client = redis_sync.Redis(unix_socket_path=str(data / "redis.sock"), decode_responses=True)
        try:
            assert client.hget(keys.exam("embedded-import"), "current") == "2"
        finally:
            client.close()
        assert server.running
    finally:
        server.stop()


def test_worker_and_outbox_need_a_redis(tmp_path):
    env = clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "empty"))
    out = run_examwire("worker", env=env)
    sock = (tmp_path / "empty").resolve() / "redis.sock"
    assert out.returncode == 2 and out.stderr == (
        f"examwire: set EXAMWIRE_REDIS_URL, or start `examwire serve` first (no Redis at {sock})\n"
    ), out.stderr
    for action in ("dead", "retry-dead"):
        out = run_examwire("outbox", action, env=env)
        assert out.returncode == 2 and out.stderr.startswith(f"examwire: Redis unreachable at unix://{sock}: "), out.stderr
        assert out.stderr.count("\n") == 1


def test_outbox_dead_lists_entries_as_text(redis_url, secrets, tmp_path):
    env = _shared(redis_url, secrets, tmp_path)
    r = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    try:
        ids = [
            r.xadd(keys.OUTBOX_DEAD, {"attempt": f"{n:032x}", "record": "{}", "events": "[]", "entry": f"1-{n}", "reason": f"refused by the store: #{n}"})
            for n in (1, 2)
        ]
    finally:
        r.close()
    out = run_examwire("outbox", "dead", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        f"{ids[0]}  attempt {1:032x}  refused by the store: #1",
        f"{ids[1]}  attempt {2:032x}  refused by the store: #2",
        "2 dead-lettered entries",
    ]
    out = run_examwire("outbox", "dead", "--limit", "1", env=env)
    assert out.stdout.splitlines()[-1] == "1 dead-lettered entry shown", out.stdout


def test_token_signs_the_configured_issuer_and_refuses_without_an_hmac_secret(redis_url, secrets, tmp_path):
    env = _shared(redis_url, secrets, tmp_path, EXAMWIRE_JWT_ISSUER="https://exams.example")
    out = run_examwire("token", "--sub", "ann", "--role", "proctor", "--exam", "e1", "--ttl", "60", env=env)
    assert out.returncode == 0, out.stderr
    claims = jwt.decode(out.stdout.strip(), secrets.jwt_secret, algorithms=["HS256"], audience="examwire", issuer="https://exams.example")
    assert claims["sub"] == "ann" and claims["role"] == "proctor" and claims["exams"] == ["e1"] and claims["exp"] - claims["iat"] == 60
    jwks = clean_env(EXAMWIRE_REDIS_URL=redis_url, EXAMWIRE_SECRET=secrets.secret, EXAMWIRE_JWKS_URL="http://127.0.0.1:1/jwks.json")
    out = run_examwire("token", "--sub", "ann", "--role", "candidate", env=jwks)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "examwire: tokens can only be minted with EXAMWIRE_JWT_SECRET (HS256 mode)\n", out.stderr


def test_serve_refuses_a_host_it_cannot_resolve(tmp_path):
    port = testkit.free_port()
    out = run_examwire("serve", "--host", "no-such-host.invalid", "--port", str(port), env=clean_env(EXAMWIRE_DATA_DIR=str(tmp_path / "d")))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith(f"examwire: cannot listen on no-such-host.invalid:{port}: ") and out.stderr.count("\n") == 1, out.stderr
    assert not (tmp_path / "d").exists()


def test_serve_on_the_ipv6_wildcard_takes_ipv4_too_and_a_second_sigterm_changes_nothing(redis_url, secrets, tmp_path):
    """``--host ::`` is dual-stack (IPV6_V6ONLY off): 127.0.0.1 reaches it. Two SIGTERMs (an impatient
    operator, or a supervisor and a shell) are one graceful stop, with one watchdog."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 on this machine: {exc}")
    port = testkit.free_port()
    argv = [sys.executable, "-m", "examwire", "serve", "--host", "::", "--port", str(port), "--data-dir", str(tmp_path / "d")]
    env = clean_env(EXAMWIRE_REDIS_URL=redis_url, EXAMWIRE_JWT_SECRET=secrets.jwt_secret, EXAMWIRE_SECRET=secrets.secret)
    node = testkit.Node(argv, env, port=port, data_dir=tmp_path, cwd=REPO_ROOT)
    try:
        node.wait_ready()
        status, body = http_json("GET", f"http://[::1]:{port}/healthz")
        assert status == 200 and body == {"status": "ok"}
        wait_until(lambda: f"examwire: listening on http://127.0.0.1:{port}" in node.log_text(), 10, node.log_text)
        node.proc.send_signal(signal.SIGTERM)
        time.sleep(0.05)  # two signals sent at once may arrive as one
        node.proc.send_signal(signal.SIGTERM)
        assert node.proc.wait(30) == 128 + signal.SIGTERM
        log = node.log_text()
        assert "shutdown_forced" not in log and '"node_stopped"' in log, log[-3000:]
    finally:
        node.stop()


def test_status_of_a_bare_redis_says_what_is_missing(tmp_path):
    """A Redis with AOF on and nothing else: no worker, no beat. And no Redis at all, as JSON."""
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True)
    url = server.start()
    try:
        env = clean_env(EXAMWIRE_REDIS_URL=url, EXAMWIRE_JWT_SECRET="j" * 32, EXAMWIRE_SECRET="s" * 32,
                   EXAMWIRE_SQLITE_PATH=str(tmp_path / "results.sqlite3"))  # fmt: skip
        out = run_examwire("status", env=env)
        assert out.returncode == 1, out.stdout + out.stderr
        lines = out.stdout.splitlines()
        assert lines[0] == "Examwire status: DEGRADED"
        assert any("AOF on, last write ok" in line for line in lines), out.stdout
        assert "  beat           none holds the lock" in lines, out.stdout
        assert "  - no worker heartbeat" in lines, out.stdout
        local = run_examwire("status", "--local", "worker", "--json", env=env)
        assert local.returncode == 1
        host = socket.gethostname()
        assert json.loads(local.stdout) == {"status": "degraded", "role": "worker", "message": f"no worker heartbeat from {host}"}
    finally:
        server.stop()
    gone = run_examwire("status", "--json", env=env)  # the same Redis, stopped
    assert gone.returncode == 2
    report = json.loads(gone.stdout)
    assert report["status"] == "unreachable" and report["redis"]["reachable"] is False
    assert set(report) == {"status", "redis", "problems", "warnings"}  # nothing claimed about what could not be read
