"""Fixtures for the results-store contract suite: both stores, real engines, no mocks.

``mongodb_url``         (session) ``EXAMWIRE_TEST_MONGODB_URL`` when set; else an
                        ``nx-27017`` server (a MongoDB wire-protocol server on
                        SQLite) on a free port in a tmp dir, ready (``ping``)
                        within 20 s, stopped at session end. Skips when neither
                        is available.
``results_store``       parametrised ``"sqlite"`` / ``"mongodb"``: a
                        ``StoreFactory`` on fresh, empty state for this test
                        (SQLite: a file in ``tmp_path``; MongoDB: a database
                        ``ewtest_<hex>``, dropped at teardown). Stores are made
                        inside the test's coroutine (``AsyncMongoClient`` binds
                        to the running loop): ``factory()`` is an unopened
                        store, ``async with factory.opened() as store`` an open
                        one closed on exit. Every store of one factory shares
                        the same data.
``make_results_store``  the same factory, by its other name.
``on_stand_in``         True when MongoDB is the ``nx-27017`` stand-in (no
                        ``EXAMWIRE_TEST_MONGODB_URL``): tests xfail on its known
                        deviations only then.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from storage.mongo_results import MongoResults
from storage.results import ResultStore
from storage.sqlite_results import SqliteResults
from tests.support import free_port, tail

MONGODB_URL_ENV = "EXAMWIRE_TEST_MONGODB_URL"
NX = "nx-27017"
READY_TIMEOUT_S = 20.0


class StoreFactory:
    """Unopened stores of one kind on one test's data (see the module docstring)."""

    def __init__(self, kind: str, make: Callable[..., ResultStore]) -> None:
        self.kind = kind
        self._make = make

    def __call__(self, **options: Any) -> ResultStore:
        """A new, unopened store; ``options`` go to its constructor (e.g. ``busy_timeout_ms``)."""
        return self._make(**options)

    @contextlib.asynccontextmanager
    async def opened(self, **options: Any) -> AsyncIterator[ResultStore]:
        store = self(**options)
        await store.open()
        try:
            yield store
        finally:
            await store.close()


def _ping(url: str, timeout_ms: int = 500) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
    finally:
        client.close()


@pytest.fixture(scope="session")
def on_stand_in() -> bool:
    return not os.environ.get(MONGODB_URL_ENV)


@pytest.fixture(scope="session")
def mongodb_url(tmp_path_factory: pytest.TempPathFactory):
    url = os.environ.get(MONGODB_URL_ENV)
    if url:
        yield url
        return
    exe = shutil.which(NX)
    if exe is None:
        pytest.skip(f"no MongoDB to test against: set {MONGODB_URL_ENV} or install {NX}")
    root = tmp_path_factory.mktemp("nx27017")
    port = free_port()
    log_path = root / "nx.log"
    argv = [exe, "--data-dir", str(root / "data"), "-p", str(port)]
    argv += ["--log-file", str(log_path), "--pid-file", str(root / "nx.pid")]
    with open(root / "stdout.log", "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        _wait_ready(proc, url, log_path)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer yet"
    while True:
        code = proc.poll()
        if code is not None:
            raise RuntimeError(f"{NX} exited with code {code} before answering ping\n--- {log_path} ---\n{tail(log_path)}")
        try:
            _ping(url)
            return
        except PyMongoError as exc:
            last = repr(exc)[:300]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{NX} no ping answer within {READY_TIMEOUT_S:g} s ({last})\n--- {log_path} ---\n{tail(log_path)}")
        time.sleep(0.1)


@pytest.fixture(params=["sqlite", "mongodb"])
def results_store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        path = tmp_path / "results" / "results.sqlite3"

        def make_sqlite(**options: Any) -> ResultStore:
            return SqliteResults(path, **options)

        yield StoreFactory("sqlite", make_sqlite)
        return

    url = request.getfixturevalue("mongodb_url")
    database = f"ewtest_{secrets.token_hex(6)}"

    def make_mongo(**options: Any) -> ResultStore:
        return MongoResults(url, **{"database": database, **options})

    yield StoreFactory("mongodb", make_mongo)
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(database)
    finally:
        client.close()


@pytest.fixture
def make_results_store(results_store: StoreFactory) -> StoreFactory:
    return results_store
