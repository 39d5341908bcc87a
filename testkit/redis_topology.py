"""Redis primaries, replicas and sentinels as real processes on private TCP ports (127.0.0.1).

For the failover tests and the replicated-ack benchmark: ``RedisProcess``
runs a ``redis-server`` (optionally ``replicaof`` another), ``SentinelProcess``
a ``redis-sentinel`` watching one primary under a service name, with the
short ``down-after-milliseconds`` and ``failover-timeout`` a test wants (or a
configuration given whole), ``CommandProcess`` a ``redis-server`` command line
taken from a deployment file.
``resp`` is a minimal RESP client (standard library only, like all of
``testkit``) for the few commands a test sends to set up and watch them.
Every process dies with the thread that started it (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from .processes import free_port, tail


try:  # resolved once: the preexec_fn below runs in a child forked from a threaded process
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class RespError(Exception):
    """An error reply (``-ERR ...``)."""


def resp(port: int, *args: Any, timeout: float = 2.0) -> Any:
    """Send one command to ``127.0.0.1:port`` and return its decoded reply (bytes become text)."""
    payload = f"*{len(args)}\r\n".encode()
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        return _read(sock.makefile("rb"))


def _read(fh: Any) -> Any:
    line = fh.readline()
    if not line:
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RespError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = fh.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(fh) for _ in range(n)]
    raise ConnectionError(f"unexpected reply {line!r}")


def info(port: int, section: str = "replication") -> dict[str, str]:
    """``INFO section`` as a dict."""
    text = resp(port, "INFO", section)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def answers(port: int) -> bool:
    try:
        return resp(port, "PING", timeout=0.5) == "PONG"
    except (OSError, RespError):
        return False


class _Process:
    """A child process with its log in ``workdir``; ``kill()`` is SIGKILL (a crash), ``stop()`` SIGTERM."""

    name = "process"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.log_path = workdir / f"{self.name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)  # fmt: skip
        deadline = time.monotonic() + 10
        while not answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} on port {self.port} did not start\n{tail(self.log_path, 30)}")
            time.sleep(0.02)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class RedisProcess(_Process):
    """``redis-server`` on 127.0.0.1:``port``; ``replica_of`` another port makes it that server's replica."""

    name = "redis"

    def __init__(self, workdir: Path, port: int | None = None, *, replica_of: int | None = None, appendonly: bool = False,
                 executable: str = "redis-server") -> None:  # fmt: skip
        super().__init__(workdir, port)
        self.replica_of = replica_of
        self.appendonly = appendonly
        self.executable = executable

    def start(self) -> "RedisProcess":
        data = self.workdir / f"data-{self.port}"
        data.mkdir(parents=True, exist_ok=True)
        argv = [shutil.which(self.executable) or self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(data), "--save", "", "--logfile", str(self.log_path), "--daemonize", "no",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
                "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]  # fmt: skip
        if self.replica_of is not None:
            argv += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self._spawn(argv)
        return self

    def wait_replicas(self, n: int, timeout: float = 10.0) -> None:
        """Until ``n`` replicas are connected and in sync (``INFO replication``, state online)."""
        deadline = time.monotonic() + timeout
        while True:
            facts = info(self.port)
            online = [v for k, v in facts.items() if k.startswith("slave") and "state=online" in v]
            if len(online) >= n:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(online)} of {n} replicas online at port {self.port}: {facts}")
            time.sleep(0.05)


class CommandProcess(RedisProcess):
    """A ``redis-server`` command line as given (a deployment file's), listening on ``port``; ``--logfile`` is added."""

    def __init__(self, workdir: Path, argv: list[str], port: int) -> None:
        _Process.__init__(self, workdir, port)
        self.argv = argv

    def start(self) -> "CommandProcess":
        self._spawn([shutil.which(self.argv[0]) or self.argv[0], *self.argv[1:], "--logfile", str(self.log_path)])
        return self


class SentinelProcess(_Process):
    """``redis-sentinel`` watching the primary at ``primary_port`` as ``service``.

    ``down_after_ms`` and ``failover_timeout_ms`` are short for tests (the
    defaults, 30 s and 3 min, suit a network, not a test run).
    """

    name = "sentinel"

    def __init__(self, workdir: Path, port: int | None = None, *, primary_port: int, service: str = "examwire",
                 quorum: int = 2, down_after_ms: int = 1000, failover_timeout_ms: int = 3000,
                 executable: str = "redis-sentinel", conf: str | None = None, args: tuple[str, ...] = ()) -> None:  # fmt: skip
        """``conf``: a configuration to run instead of the one built from the other arguments (its ``port``
        must be ``port``); ``args``: more of the command line (``--sentinel announce-ip ...``)."""
        super().__init__(workdir, port)
        self.conf = conf
        self.args = args
        self.primary_port = primary_port
        self.service = service
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.executable = executable

    def start(self) -> "SentinelProcess":
        conf = self.workdir / f"sentinel-{self.port}.conf"  # sentinel rewrites its config: one file each
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.conf is not None:
            conf.write_text(f"{self.conf}\nlogfile {self.log_path}\n")
            self._spawn([shutil.which(self.executable) or self.executable, str(conf), *self.args])
            return self
        conf.write_text("\n".join([
            f"port {self.port}",
            "bind 127.0.0.1",
            "daemonize no",
            f"logfile {self.log_path}",
            f"dir {self.workdir}",
            f"sentinel monitor {self.service} 127.0.0.1 {self.primary_port} {self.quorum}",
            f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
            f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {self.service} 1",
            "",
        ]))  # fmt: skip
        self._spawn([shutil.which(self.executable) or self.executable, str(conf)])
        return self

    def primary(self) -> int | None:
        """The port of the primary this sentinel names now."""
        try:
            addr = resp(self.port, "SENTINEL", "get-master-addr-by-name", self.service)
        except (OSError, RespError):
            return None
        return int(addr[1]) if addr else None

    def knows(self, replicas: int, sentinels: int) -> bool:
        """True once this sentinel sees ``sentinels`` other sentinels and ``replicas`` replicas it could promote
        (in sync with the primary, by their last ``INFO``)."""
        try:
            master = resp(self.port, "SENTINEL", "master", self.service)
            found = resp(self.port, "SENTINEL", "replicas", self.service)
        except (OSError, RespError):
            return False
        facts = dict(zip(master[::2], master[1::2]))
        good = [r for r in (dict(zip(x[::2], x[1::2])) for x in found)
                if r.get("flags") == "slave" and r.get("master-link-status") == "ok"]  # fmt: skip
        return len(good) >= replicas and int(facts.get("num-other-sentinels", 0)) >= sentinels
