"""Fixtures for the background-work tests: real Celery worker processes on the test's Redis.

``results_db``   path of a SQLite results store shared by the nodes and workers of one test.
``make_worker``  ``make_worker(*, beat=True, **env) -> Worker``: starts ``python -m examwire
                 worker [--beat] --concurrency 1`` in its own process group, on the test's
                 Redis and ``results_db``, with fast outbox timings (drain every 100 ms,
                 retry after 300 ms, at most 1 s); ``env`` as in ``make_node``. All workers
                 are stopped at teardown.
``store_rows``   ``store_rows(db) -> list[(attempt, state, score)]`` read straight from SQLite.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import testkit
from examwire.client import ExamClient, attempt_url
from tests.conftest import REPO_ROOT

FAST = {
    "EXAMWIRE_DRAIN_INTERVAL_MS": "100",
    "EXAMWIRE_OUTBOX_RETRY_MS": "300",
    "EXAMWIRE_OUTBOX_RETRY_MAX_MS": "1000",
    "EXAMWIRE_WORKER_SWEEP_INTERVAL_MS": "500",
}


class Worker:
    """A real ``examwire worker`` process group; ``stop()`` is a warm shutdown, ``kill()`` a SIGKILL of the group."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM to the main process, as ``docker stop`` and the embedded supervisor send it: it stops
        its pool and beat children itself (a SIGTERM to the whole group would kill the pool children at
        once, and the beat child twice, before they save their coverage data); then SIGKILL what is left
        of the group after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self._log.close()

    def log(self) -> str:
        return testkit.tail(self.log_path, 80)


@pytest.fixture
def results_db(tmp_path: Path) -> Path:
    return tmp_path / "results.sqlite3"


@pytest.fixture
def make_worker(redis_url: str, secrets: Any, results_db: Path, tmp_path_factory: pytest.TempPathFactory):
    workers: list[Worker] = []

    def _make_worker(*, beat: bool = True, **env: str | None) -> Worker:
        data_dir = tmp_path_factory.mktemp("worker")
        argv = [sys.executable, "-m", "examwire", "worker", "--concurrency", "1", "--data-dir", str(data_dir), "--loglevel", "INFO"]
        if beat:
            argv.append("--beat")
        base = {
            "EXAMWIRE_REDIS_URL": redis_url,
            "EXAMWIRE_JWT_SECRET": secrets.jwt_secret,
            "EXAMWIRE_SECRET": secrets.secret,
            "EXAMWIRE_SQLITE_PATH": str(results_db),
            **FAST,
        }
        worker = Worker(argv, testkit.node_env(**{**base, **env}), data_dir / "worker.log")
        workers.append(worker)
        return worker

    yield _make_worker
    for w in workers:
        w.stop()


def store_rows(db: Path) -> list[tuple[str, str, Any]]:
    """Every stored result as (attempt, state, score), read with plain SQL (WAL readers are never blocked)."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT attempt, doc FROM results").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
    import json

    return [(a, json.loads(d)["state"], json.loads(d)["score"]) for a, d in rows]


@pytest.fixture(name="store_rows")
def store_rows_fixture() -> Callable[[Path], list[tuple[str, str, Any]]]:
    return store_rows


async def finish(node: Any, token: str, exam_id: str) -> str:
    """One candidate of the sample exam on ``node``: start, answer q1 right, submit (each acknowledged); the attempt id."""
    c = ExamClient(attempt_url(node.ws_url, exam_id), token, reply_timeout=20)
    await c.connect()
    try:
        await c.hello()
        assert (await c.start())["t"] == "ack"
        assert (await c.answer("q1", testkit.SAMPLE_RIGHT_ANSWERS["q1"]))["t"] == "ack"
        assert (await c.submit())["t"] == "ack"
    finally:
        await c.close()
    assert c.welcome is not None
    return c.welcome["attempt"]
