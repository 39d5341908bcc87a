"""Embedded ``examwire serve``'s children, watched: the private Redis and the worker with beat.

One thread, the supervisor's, starts every child, watches it, restarts it,
and stops it: a child started with ``die_with_parent`` gets SIGTERM when the
thread that started it ends, so none outlives the node, even a SIGKILLed one.

A child that exits is logged as an error (``child_exited``) with its exit
status and the last lines of its output, and started again after a backoff
(1 s, doubling to 30 s; reset once it has run for a minute). One that exited
``restart_limit`` times within ten minutes is *failing*: ``/readyz`` reports
the node's persistence as degraded while it is (the supervisor keeps trying).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from . import logs
from .redis_server import EmbeddedRedis, die_with_parent
from .settings import Settings

log = logging.getLogger("examwire.supervisor")

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
#: A child that ran this long is healthy again: its next exit starts the backoff afresh.
STABLE_S = 60.0
#: Exits counted against ``restart_limit`` within this window.
WINDOW_S = 600.0
POLL_S = 0.2
TAIL_LINES = 30


class Child(Protocol):
    name: str

    def start(self) -> None:
        """Start (or start again); raise when it cannot."""
        ...

    def poll(self) -> int | None:
        """None while running, else the exit status (negative: killed by that signal)."""
        ...

    def pid(self) -> int | None: ...

    def stop(self, timeout: float) -> None:
        """Stop politely, then by force after ``timeout``; idempotent."""
        ...

    def tail(self) -> list[str]:
        """The last lines of its output."""
        ...


class RedisChild:
    """The private redis-server; its output is its log file in the data dir."""

    name = "redis"

    def __init__(self, server: EmbeddedRedis) -> None:
        self.server = server

    def start(self) -> None:
        self.server.stop()  # reap a dead one and release its lock before starting again
        self.server.start()

    def poll(self) -> int | None:
        proc = self.server.proc
        return None if proc is None else proc.poll()

    def pid(self) -> int | None:
        return self.server.proc.pid if self.server.proc is not None else None

    def stop(self, timeout: float) -> None:
        self.server.stop()

    def tail(self) -> list[str]:
        try:
            with open(self.server.log_path, errors="replace") as fh:
                return [line.rstrip("\n") for line in collections.deque(fh, maxlen=TAIL_LINES)]
        except OSError:
            return []


class ProcessChild:
    """A child command whose output is copied to ours line by line, keeping its last lines."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], out: IO[str] | None = None) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self._out = out or sys.stderr
        self._proc: subprocess.Popen[bytes] | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._copier: threading.Thread | None = None

    def start(self) -> None:
        self._tail.clear()
        self._proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the node, which stops its children in order
            preexec_fn=die_with_parent,
        )
        self._copier = threading.Thread(target=self._copy, args=(self._proc,), name=f"{self.name}-output", daemon=True)
        self._copier.start()

    def _copy(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self._tail.append(line)
            try:
                self._out.write(logs.wrap(line, logger=f"examwire.{self.name}") + "\n")
                self._out.flush()
            except (OSError, ValueError):
                pass
        proc.stdout.close()

    def poll(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()  # a Celery worker's warm shutdown: finish the running task
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # what is left of its process group (pool children)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        if self._copier is not None:
            self._copier.join(timeout=2)

    def tail(self) -> list[str]:
        return list(self._tail)


def worker_child(settings: Settings) -> ProcessChild:
    """``examwire worker --beat`` on the embedded Redis (embedded mode only)."""
    env = {
        **os.environ,
        "EXAMWIRE_REDIS_URL": settings.redis_url or "",
        "EXAMWIRE_SECRET": settings.secret,
        "EXAMWIRE_JWT_SECRET": settings.jwt_secret or "",
    }
    argv = [sys.executable, "-m", "examwire", "worker", "--beat", "--data-dir", str(settings.data_dir)]
    return ProcessChild("worker", argv, env)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


@dataclass
class _Watch:
    child: Child
    started_at: float = 0.0
    running: bool = False
    restarts: int = 0
    failures: int = 0  # exits since it last ran for STABLE_S
    exits: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=1000))
    last_exit: str | None = None
    restart_at: float | None = None
    last_pid: int | None = None  # kept through a stop, for a forced exit to kill


class Supervisor:
    """Starts ``children`` in order on its own thread, restarts those that exit, stops them in reverse."""

    def __init__(self, children: list[Child], *, restart_limit: int = 5, stop_timeout: float = 15.0) -> None:
        self._watches = [_Watch(c) for c in children]
        self.restart_limit = restart_limit
        self.stop_timeout = stop_timeout
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- the node's side ---------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Start every child (in order) and return once they run; raise what stopped one from starting."""
        self._thread = threading.Thread(target=self._run, name="examwire-supervisor", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            self.close()
            raise RuntimeError(f"children did not start within {timeout:g} s")
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error

    def close(self, timeout: float | None = None) -> None:
        """Stop restarting and stop every child (the last started first). Idempotent."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def pids(self) -> list[int]:
        """Every child process started and not known to be reaped (the last one of each child)."""
        return [p for w in self._watches if (p := w.last_pid) is not None]

    def failing(self) -> list[str]:
        """The children that keep dying (``restart_limit`` exits within ten minutes)."""
        now = time.monotonic()
        with self._lock:
            return [w.child.name for w in self._watches if sum(1 for t in w.exits if now - t <= WINDOW_S) >= self.restart_limit]

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        failing = set(self.failing())
        out = {}
        with self._lock:
            for w in self._watches:
                state = "running" if w.running else "restarting"
                if w.child.name in failing:
                    state = "failing"
                out[w.child.name] = {
                    "state": state,
                    "pid": w.child.pid() if w.running else None,
                    "restarts": w.restarts,
                    "last_exit": w.last_exit,
                    "up_s": round(now - w.started_at, 1) if w.running else None,
                }
        return out

    # -- the supervisor's thread -------------------------------------------------------

    def _run(self) -> None:
        started: list[_Watch] = []
        try:
            for w in self._watches:
                w.child.start()
                w.started_at, w.running, w.last_pid = time.monotonic(), True, w.child.pid()
                started.append(w)
        except BaseException as exc:
            self._start_error = exc
            self._stop_all(started)
            self._started.set()
            return
        self._started.set()
        try:
            while not self._stopping.wait(POLL_S):
                for w in self._watches:
                    self._check(w)
        finally:
            self._stop_all(self._watches)

    def _check(self, w: _Watch) -> None:
        now = time.monotonic()
        if w.running:
            code = w.child.poll()
            if code is None:
                if w.failures and now - w.started_at >= STABLE_S:
                    w.failures = 0
                return
            with self._lock:
                w.running = False
                w.failures += 1
                w.exits.append(now)
                w.last_exit = describe_exit(code)
            delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (w.failures - 1))
            w.restart_at = now + delay
            log.error(json.dumps({
                "event": "child_exited", "child": w.child.name, "status": code, "exit": w.last_exit,
                "ran_s": round(now - w.started_at, 1), "restart_in_s": delay, "failing": w.child.name in self.failing(),
                "tail": w.child.tail(),
            }))  # fmt: skip
            return
        if w.restart_at is not None and now >= w.restart_at:
            try:
                w.child.start()
            except Exception as exc:
                with self._lock:
                    w.failures += 1
                    w.exits.append(now)
                    w.last_exit = f"could not start: {exc}"
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (w.failures - 1))
                w.restart_at = now + delay
                log.error(json.dumps({"event": "child_start_failed", "child": w.child.name, "error": str(exc)[:500], "restart_in_s": delay}))
                return
            with self._lock:
                w.started_at, w.running, w.restart_at = time.monotonic(), True, None
                w.restarts += 1
                w.last_pid = w.child.pid()
            log.warning(json.dumps({"event": "child_restarted", "child": w.child.name, "pid": w.child.pid(), "restarts": w.restarts}))

    def _stop_all(self, watches: list[_Watch]) -> None:
        for w in reversed(watches):
            try:
                w.child.stop(self.stop_timeout)
            except Exception as exc:  # keep stopping the others
                log.error(json.dumps({"event": "child_stop_failed", "child": w.child.name, "error": str(exc)[:300]}))
                continue
            with self._lock:
                w.running, w.last_pid = False, None
