"""Processes and HTTP for tests and benchmarks: engine nodes, free ports, log tails.

Import as ``from testkit import Node, http_json``; the fixtures in
``tests/conftest.py`` and the benchmarks in ``loadtests/`` are built on these.
Standard library only (no pytest), so a benchmark runs without the test extra.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any, Callable


def http_json(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    timeout: float = 10,
) -> tuple[int, Any]:
    """One HTTP request with urllib; returns ``(status, decoded body)``.

    ``token`` is sent as ``Authorization: Bearer <token>``. ``body``: ``str`` or
    ``bytes`` are sent as they are (for malformed-JSON tests), anything else
    not None is JSON-encoded with ``Content-Type: application/json``. The
    response is decoded as JSON when it parses, else returned as text (``""``
    for an empty body). 4xx/5xx are returned, not raised; connection errors and
    timeouts raise (``urllib.error.URLError`` / ``OSError``).
    """
    headers = {"Accept": "application/json"}
    data: bytes | None = None
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode()
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method.upper(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
        err.close()
    text = raw.decode("utf-8", errors="replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def wait_until(predicate: Callable[[], Any], timeout: float, what: str | Callable[[], str], *, every: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); raise ``AssertionError`` naming ``what``
    (a string, or a function giving one, e.g. with a log tail read at that moment) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        time.sleep(every)


def json_events(text: str, event: str | None = None) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines log (other lines skipped); only those whose ``event`` is ``event`` when given."""
    out = []
    for line in text.splitlines():
        if not line.startswith("{") or (event is not None and f'"{event}"' not in line):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and (event is None or doc.get("event") == event):
            out.append(doc)
    return out


#: The repository checkout ``testkit`` lives in (commands run from here find the product's packages).
REPO_ROOT = Path(__file__).resolve().parents[1]


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without any ``EXAMWIRE_*`` of the caller's shell, unbuffered, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXAMWIRE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


def run_examwire(*args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m examwire ARGS`` from the checkout, to completion; output captured as text."""
    return subprocess.run([sys.executable, "-m", "examwire", *args], env=env, cwd=REPO_ROOT, input=stdin,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1 (bind to 0, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a text file (or a note that it is missing)."""
    try:
        with open(path, errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
    except OSError as exc:
        return f"(cannot read {path}: {exc})\n"


class NodeStartError(AssertionError):
    """An engine node exited or did not become ready; the message has its log."""


class Node:
    """A real ``python -m examwire serve`` process on 127.0.0.1.

    Attributes: ``port``, ``base_url`` (``http://127.0.0.1:PORT``), ``ws_url``
    (``ws://127.0.0.1:PORT``), ``data_dir``, ``log_path`` (stdout+stderr),
    ``proc`` (the ``subprocess.Popen``). ``stop()`` is SIGTERM, wait up to 10 s,
    then SIGKILL; ``kill()`` is SIGKILL and wait. Both are idempotent.
    """

    READY_TIMEOUT = 20.0

    def __init__(self, argv: list[str], env: dict[str, str], *, port: int, data_dir: Path, cwd: Path):
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        self.data_dir = data_dir
        self.log_path = data_dir / "node.log"
        self.argv = argv
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``GET /readyz`` until 200; raise ``NodeStartError`` (with the log tail) on exit or timeout."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            code = self.proc.poll()
            if code is not None:
                self._fail(f"engine node exited with code {code} before /readyz answered 200")
            try:
                status, body = http_json("GET", f"{self.base_url}/readyz", timeout=2)
                if status == 200:
                    return
                last = f"HTTP {status}: {body!r}"[:300]
            except OSError as exc:  # URLError is an OSError
                last = repr(exc)
            if time.monotonic() > deadline:
                self.kill()
                self._fail(f"engine node not ready within {timeout:g} s (last /readyz: {last})")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL (a crash) and wait. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_text(self) -> str:
        """Everything the node has logged so far."""
        return self.log_path.read_text(errors="replace")

    def _fail(self, why: str) -> None:
        self.kill()
        raise NodeStartError(
            f"{why}\ncommand: {' '.join(self.argv)}\nlog: {self.log_path}\n"
            f"--- last 60 lines of {self.log_path} ---\n{tail(self.log_path, 60)}"
        )

    def __repr__(self) -> str:
        state = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
        return f"<Node {self.base_url} pid={self.proc.pid} {state} log={self.log_path}>"


def node_env(base: dict[str, str] | None = None, **overrides: str | None) -> dict[str, str]:
    """``base`` (default ``os.environ``) plus ``overrides``; a ``None`` value removes the variable."""
    env = dict(os.environ if base is None else base)
    env.setdefault("PYTHONUNBUFFERED", "1")
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env
