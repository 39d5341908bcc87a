"""Clear failures at start: an unreachable Redis, and links only once the node listens."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from examwire.redis_server import find_redis_server
from testkit import clean_env, free_port, http_json, json_events, Node
from tests.conftest import REPO_ROOT


@pytest.mark.timeout(90)
def test_an_unreachable_redis_is_one_clear_line_every_few_seconds_then_recovers(tmp_path: Path, secrets) -> None:
    port = free_port()
    url = f"redis://:sekret-pw@127.0.0.1:{port}/0"
    env = clean_env(EXAMWIRE_REDIS_URL=url, EXAMWIRE_JWT_SECRET=secrets.jwt_secret, EXAMWIRE_SECRET=secrets.secret)
    node_port = free_port()
    argv = [sys.executable, "-m", "examwire", "serve", "--port", str(node_port), "--data-dir", str(tmp_path / "node")]
    (tmp_path / "node").mkdir()
    node = Node(argv, env, port=node_port, data_dir=tmp_path / "node", cwd=REPO_ROOT)
    redis_proc = None
    try:
        started = time.monotonic()
        deadline = started + 10
        while True:  # the node answers /healthz at once, though Redis is not there
            try:
                if http_json("GET", f"{node.base_url}/healthz", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, node.log_text()
            time.sleep(0.1)
        assert time.monotonic() - started < 6
        status, body = http_json("GET", f"{node.base_url}/readyz", timeout=10)
        assert status == 503 and body["redis"] is False
        time.sleep(11)
        log = node.log_text()
        events = json_events(log)
        said = [e for e in events if e.get("event") == "redis_unreachable"]
        assert 2 <= len(said) <= 4, log  # one line every 5 s, not a flood
        assert said[0]["url"] == f"redis://***@127.0.0.1:{port}/0" and f"127.0.0.1:{port}" in said[0]["message"]
        assert "sekret-pw" not in log
        noisy = [e for e in events if e.get("event") in ("sweep_failed", "control_channel_lost", "presence_beat_failed")]
        assert noisy == [], noisy
        assert len(log.splitlines()) < 15, log

        # Redis comes up: the node is ready again and says so once
        redis_proc = subprocess.Popen(
            [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "sekret-pw", "--save", "", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while http_json("GET", f"{node.base_url}/readyz", timeout=5)[0] != 200:
            assert time.monotonic() < deadline, node.log_text()
            time.sleep(0.2)
        while not (back := [e for e in json_events(node.log_text()) if e.get("event") == "redis_reachable"]):
            assert time.monotonic() < deadline, node.log_text()
            time.sleep(0.2)
        assert len(back) == 1 and back[0]["url"] == said[0]["url"]
    finally:
        node.stop()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
