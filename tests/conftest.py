"""Shared fixtures: real processes (redis-server, engine nodes), no mocks.

Fixture contracts (names are the public API of the test suite):

``redis_server``  (session) ``EmbeddedRedis`` on a unix socket in a tmp dir,
                  AOF off; stopped at session end.
``redis_url``     (function) FLUSHALL, then the server's ``unix:///…/redis.sock`` URL.
``secrets``       (session) ``SimpleNamespace(jwt_secret, secret)``: random per session.
``make_token``    ``make_token(sub, role="candidate", *, exams=None, name=None,
                  ttl=3600, **claims) -> str``: HS256 JWT signed with
                  ``secrets.jwt_secret``; claims ``sub``, ``role``,
                  ``aud="examwire"``, ``exp=now+ttl`` (negative ttl: expired),
                  ``exams``/``name`` when given, then ``claims`` (which override
                  the above; a ``None`` value drops that claim, e.g. ``aud=None``).
``make_node``     ``make_node(**env) -> Node``: starts ``python -m examwire serve``
                  on a free port with a fresh data dir, env = os.environ +
                  EXAMWIRE_REDIS_URL/EXAMWIRE_JWT_SECRET/EXAMWIRE_SECRET + ``env``
                  (full variable names; ``None`` unsets). Returns once
                  ``GET /readyz`` is 200 (20 s), else raises ``NodeStartError``
                  with the log path and its last 60 lines. All nodes are stopped
                  at teardown. See ``testkit.Node``.
``http_json``     ``testkit.http_json(method, url, *, token=None, body=None,
                  timeout=10) -> (status, json-or-text)``; never raises on 4xx/5xx.
``put_exam``      ``put_exam(node, exam) -> dict``: PUT /v1/exams/{id} as admin,
                  asserts 200, returns the JSON body.
``arun``          ``arun(coro, timeout=30)``: run a coroutine to completion with ``asyncio.run``
                  (pytest-asyncio is not installed), failing after ``timeout`` seconds.
``mongodb_url``   (session) ``EXAMWIRE_TEST_MONGODB_URL`` when set; else an ``nx-27017``
                  server (a MongoDB wire-protocol server on SQLite) on a free port in
                  a tmp dir, ready (``ping``) within 20 s, stopped at session end.
                  Skips when neither is available.
``on_stand_in``   True when MongoDB is the ``nx-27017`` stand-in: tests xfail on its
                  known deviations only then.
``sample_exam``   a fresh deep copy of ``testkit.SAMPLE_EXAM`` (see
                  ``SAMPLE_RIGHT_ANSWERS``, ``SAMPLE_WRONG_ANSWERS``, ``SAMPLE_MAX_SCORE``).
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import subprocess
import secrets as _secrets
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import jwt
import pytest
import redis
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from examwire.redis_server import EmbeddedRedis
import testkit
from testkit import REPO_ROOT, free_port, Node, tail



def require_tool(name: str, how: str, *, path: str | None = None) -> str:
    """The path of a program the test needs. Missing, it fails the test under ``CI`` (which
    installs it: ``how`` says how) and skips it elsewhere (a developer's machine may lack it)."""
    found = shutil.which(name, path=path) if path else shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed, and CI must run this test: {how}", pytrace=False)
        pytest.skip(f"{name} is not installed ({how})")
    return found


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A private redis-server for the whole session (no AOF: speed over durability)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The session server's URL, emptied (FLUSHALL, all 16 databases) before the test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def secrets() -> types.SimpleNamespace:
    """Random ``jwt_secret`` (HS256 key) and ``secret`` (EXAMWIRE_SECRET), fixed for the session."""
    return types.SimpleNamespace(jwt_secret=_secrets.token_urlsafe(32), secret=_secrets.token_urlsafe(32))


@pytest.fixture
def make_token(secrets: types.SimpleNamespace) -> Callable[..., str]:
    """Factory of HS256 tokens the engine under test accepts (see the module docstring)."""

    def _make_token(
        sub: str,
        role: str = "candidate",
        *,
        exams: list[str] | None = None,
        name: str | None = None,
        ttl: int = 3600,
        **claims: Any,
    ) -> str:
        payload: dict[str, Any] = {"sub": sub, "role": role, "aud": "examwire", "exp": int(time.time()) + ttl}
        if exams is not None:
            payload["exams"] = exams
        if name is not None:
            payload["name"] = name
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, secrets.jwt_secret, algorithm="HS256")

    return _make_token


@pytest.fixture
def make_node(redis_url: str, secrets: types.SimpleNamespace, tmp_path_factory: pytest.TempPathFactory):
    """Factory of real engine processes sharing the test's Redis; all stopped at teardown."""
    nodes: list[Node] = []

    def _make_node(**env: str | None) -> Node:
        port = testkit.free_port()
        data_dir = tmp_path_factory.mktemp("node")
        argv = [sys.executable, "-m", "examwire", "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
        base = {"EXAMWIRE_REDIS_URL": redis_url, "EXAMWIRE_JWT_SECRET": secrets.jwt_secret, "EXAMWIRE_SECRET": secrets.secret}
        full_env = testkit.node_env(**{**base, **env})
        node = Node(argv, full_env, port=port, data_dir=data_dir, cwd=REPO_ROOT)
        nodes.append(node)
        node.wait_ready()
        return node

    yield _make_node
    for node in nodes:
        node.stop()


@pytest.fixture(name="http_json")
def http_json_fixture() -> Callable[..., tuple[int, Any]]:
    """``testkit.http_json`` as a fixture."""
    return testkit.http_json


@pytest.fixture
def put_exam(make_token: Callable[..., str], http_json: Callable[..., tuple[int, Any]]):
    """``put_exam(node, exam) -> dict``: load an exam through the admin API, asserting HTTP 200."""

    def _put_exam(node: Node, exam: dict[str, Any]) -> Any:
        token = make_token("test-admin", "admin")
        status, body = http_json("PUT", f"{node.base_url}/v1/exams/{exam['id']}", token=token, body=exam)
        assert status == 200, f"PUT /v1/exams/{exam['id']} -> {status}: {body!r} (node log: {node.log_path})"
        return body

    return _put_exam


@pytest.fixture
def arun() -> Callable[..., Any]:
    def _run(coro: Any, timeout: float = 30.0) -> Any:
        async def guarded() -> Any:
            return await asyncio.wait_for(coro, timeout)

        return asyncio.run(guarded())

    return _run


@pytest.fixture(scope="session")
def keeper() -> Iterator[Callable[..., Any]]:
    """``await keeper(fn, *args)``: run a blocking call on one thread that lives as long as the session.

    For starting, from inside a coroutine, a process that dies with the thread
    that started it (``PR_SET_PDEATHSIG``: ``EmbeddedRedis``, the processes of
    ``testkit.redis_topology``). ``asyncio.to_thread``'s threads end with
    ``arun``'s event loop, and such a child with them: a Redis restarted that
    way is gone moments after the scenario returns.
    """
    pool = ThreadPoolExecutor(1, thread_name_prefix="keeper")

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    yield run
    pool.shutdown(wait=True)


@pytest.fixture
def sample_exam() -> dict[str, Any]:
    """A fresh (mutable) copy of ``SAMPLE_EXAM``: six questions, all five types."""
    return copy.deepcopy(testkit.SAMPLE_EXAM)


# ---------------------------------------------------------------- MongoDB
MONGODB_URL_ENV = "EXAMWIRE_TEST_MONGODB_URL"
NX = "nx-27017"
READY_TIMEOUT_S = 20.0


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
    # the test extra installs it beside this interpreter, which need not be on PATH (`make test`)
    exe = shutil.which(NX, path=str(Path(sys.executable).parent)) or require_tool(
        NX, f"the test extra installs it; or set {MONGODB_URL_ENV} to a MongoDB"
    )
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
