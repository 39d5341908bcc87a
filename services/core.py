"""``Core``: what the services need of a process (Redis, the stores, the clock), and how it is built.

Settings reach this layer as a ``CoreSettings``: the few fields read here,
declared as a protocol, so that nothing below the composition root imports
``examwire.settings`` (whose ``Settings`` has them all).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage.attempts import AttemptStore, RedisAttempts
from storage.exams import ExamCache
from storage.live import LiveStore, RedisLive
from storage.results import ResultStore
from storage.scripts import Scripts

from .metrics import Metrics


class CoreSettings(Protocol):
    """The settings the services read (``examwire.settings.Settings`` has these and more)."""

    @property
    def node_id(self) -> str: ...
    @property
    def secret(self) -> str: ...
    @property
    def data_dir(self) -> Path: ...
    @property
    def redis_url(self) -> str | None: ...
    @property
    def redis_max_connections(self) -> int: ...
    @property
    def redis_sentinels(self) -> tuple[tuple[str, int], ...]: ...
    @property
    def redis_sentinel_service(self) -> str: ...
    @property
    def redis_retry_ms(self) -> int: ...
    @property
    def redis_timeout_ms(self) -> int: ...
    @property
    def redis_min_replicas(self) -> int: ...
    @property
    def redis_wait_timeout_ms(self) -> int: ...
    @property
    def mongodb_url(self) -> str | None: ...
    @property
    def mongodb_database(self) -> str: ...
    @property
    def mongodb_write_concern(self) -> str | int: ...
    @property
    def store_timeout_ms(self) -> int: ...
    @property
    def results_path(self) -> Path: ...
    @property
    def answer_grace_ms(self) -> int: ...
    @property
    def sweep_interval_ms(self) -> int: ...


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Core:
    settings: CoreSettings
    redis: Redis
    scripts: Scripts
    attempts: AttemptStore
    exams: ExamCache
    results: ResultStore
    live: LiveStore
    clock: Callable[[], int] = wall_clock_ms
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("examwire"))
    #: what the services record (``services.metrics``); the base records nothing
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def secret(self) -> bytes:
        return self.settings.secret.encode()

    def event(self, name: str, **fields: Any) -> None:
        """One structured log line. Never pass tokens.

        The fields ride on the record (``extra``), so the JSON formatter
        (``examwire.logs``) writes them without parsing a message back.
        """
        self.log.info(name, extra={"fields": {"event": name, "node": self.settings.node_id, **fields}})

    async def aclose(self) -> None:
        await self.results.close()
        await self.live.aclose()
        await self.redis.aclose()


T = TypeVar("T")

#: The deadline of the outermost retried call in this task: a connect retried inside a retried command shares it.
_retry_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("examwire_redis_retry_deadline", default=None)


class BoundedRetry(Retry):
    """redis-py's ``Retry`` with a time budget instead of a count alone.

    A command that fails on a lost connection (``ConnectionError``, which
    includes ``BusyLoadingError`` and Sentinel's ``MasterNotFoundError``, or
    ``TimeoutError``) has its connection disconnected by redis-py and is sent
    again, on a fresh connection, after an equal-jitter backoff (``base_s``
    doubling, at most ``cap_s``), until ``budget_s`` has passed since the
    first try; then the last error is raised. redis-py nests retries (a
    connect inside a command, a health check inside a send); the nested ones
    share the outermost call's deadline, so the budget bounds the whole call.
    (A connection taken from the pool is connected before the command's call
    begins: a command that found Redis down then waits at most twice the
    budget.) Only requests that are safe to send twice go through here: see
    docs/architecture.md, "Failure modes".
    """

    def __init__(self, budget_s: float, *, base_s: float = 0.05, cap_s: float = 1.0) -> None:
        # the count is only an upper bound (and what redis-py reports); the deadline decides
        super().__init__(EqualJitterBackoff(cap=cap_s, base=base_s), retries=max(1, int(budget_s / (base_s / 2)) + 1),
                         supported_errors=(RedisConnectionError, RedisTimeoutError))  # fmt: skip
        self.budget_s = budget_s

    async def call_with_retry(  # type: ignore[override]
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = _retry_deadline.get()
        token = None
        if deadline is None:
            deadline = loop.time() + self.budget_s
            token = _retry_deadline.set(deadline)
        self._backoff.reset()
        failures = 0
        try:
            while True:
                try:
                    return await do()
                except self._supported_errors as error:
                    if is_retryable is not None and not is_retryable(error):
                        raise
                    failures += 1
                    await (fail(error, failures) if with_failure_count else fail(error))
                    left = deadline - loop.time()
                    if left <= 0 or failures > self._retries:
                        raise error
                    await asyncio.sleep(min(left, self._backoff.compute(failures)))
        finally:
            if token is not None:
                _retry_deadline.reset(token)


def no_retry() -> Retry:
    """For connections whose loss their user must see (pub/sub: messages may have been missed meanwhile)."""
    return Retry(NoBackoff(), 0)


class SentinelConnection(SentinelManagedConnection):
    """redis-py's ``SentinelManagedConnection`` that asks the sentinels for the primary on every socket connect.

    redis-py reconnects a connection that a command's retry had to drop through
    ``connect_check_health``, which dials the address the connection had, not
    the one the sentinels name: after the primary died, that retry would knock
    on the dead address until its budget ran out, however soon a replica was
    promoted (redis/redis-py#3874, open). Here every connect asks first
    (``get_master_address``, which also drops the pool's idle connections when
    the primary changed).
    """

    async def _connect(self) -> None:
        if self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super()._connect()


class SentinelSSLConnection(SentinelConnection, SSLConnection):
    """``SentinelConnection`` over TLS (``rediss://``)."""


class SentinelBlockingPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's ``SentinelConnectionPool`` (every new connection asks the sentinels where the primary is;
    a primary demoted to replica answers READONLY, which closes the connection) that waits for a free
    connection past ``max_connections``, as ``BlockingConnectionPool`` does, instead of failing."""


def connect_redis(
    url: str,
    *,
    max_connections: int,
    sentinels: tuple[tuple[str, int], ...] = (),
    service: str = "examwire",
    retry_ms: int = 10_000,
    timeout_ms: int = 5000,
) -> Redis:
    """A client on a blocking pool: callers wait for a connection instead of failing past the cap.

    A lost connection is replaced and the command sent again for up to
    ``retry_ms`` (``BoundedRetry``; 0: never). A reply that takes longer than
    ``timeout_ms`` counts as a lost connection. With ``sentinels`` the pool
    asks them for the primary of ``service`` (redis-py's asyncio ``Sentinel``,
    ``master_for``); ``url`` then gives only the user, password, database and
    TLS of the connections.
    """
    timeout_s = timeout_ms / 1000
    options: dict[str, Any] = {
        "max_connections": max_connections, "timeout": 10, "decode_responses": True, "health_check_interval": 30,
        "socket_connect_timeout": timeout_s, "socket_timeout": timeout_s,
        "retry": BoundedRetry(retry_ms / 1000) if retry_ms > 0 else no_retry(),
    }  # fmt: skip
    if not sentinels:
        return Redis.from_pool(BlockingConnectionPool.from_url(url, **options))
    parsed = parse_url(url)
    params = {k: v for k, v in parsed.items() if k in ("db", "username", "password")}
    tls = issubclass(parsed.get("connection_class", object), SSLConnection)
    params["connection_class"] = SentinelSSLConnection if tls else SentinelConnection
    # a dead sentinel is skipped at once (no retry), the next one asked
    probe = {"socket_timeout": min(timeout_s, 1.0), "socket_connect_timeout": min(timeout_s, 1.0), "retry": no_retry()}
    manager = Sentinel(list(sentinels), sentinel_kwargs=probe)
    return manager.master_for(service, connection_pool_class=SentinelBlockingPool, **params, **options)


def redis_for(settings: CoreSettings, *, max_connections: int | None = None) -> Redis:
    """``connect_redis`` as ``settings`` say (URL or sentinels, retry budget, timeout)."""
    if settings.redis_url is None:
        raise ValueError("settings.redis_url must be set")
    return connect_redis(
        settings.redis_url,
        max_connections=max_connections or settings.redis_max_connections,
        sentinels=settings.redis_sentinels,
        service=settings.redis_sentinel_service,
        retry_ms=settings.redis_retry_ms,
        timeout_ms=settings.redis_timeout_ms,
    )


def build_results(settings: CoreSettings) -> ResultStore:
    """MongoDB when ``mongodb_url`` is set, else SQLite in the data dir (not yet opened)."""
    if settings.mongodb_url:
        from storage.mongo_results import MongoResults

        return MongoResults(
            settings.mongodb_url,
            database=settings.mongodb_database,
            write_concern=settings.mongodb_write_concern,
            timeout_ms=settings.store_timeout_ms,
        )
    from storage.sqlite_results import SqliteResults

    return SqliteResults(settings.results_path, busy_timeout_ms=settings.store_timeout_ms)


def build_core(settings: CoreSettings, *, results: ResultStore | None = None, **overrides: Any) -> Core:
    """The Redis client, scripts and stores of one process (the results store not yet opened).

    ``overrides`` replace ``Core`` fields (a test's ``clock``, say).
    """
    redis = redis_for(settings)
    metrics = overrides.get("metrics")
    scripts = Scripts.register(redis, replicas=settings.redis_min_replicas, wait_ms=settings.redis_wait_timeout_ms,
                               observe=metrics.script_call if metrics is not None and metrics.enabled else None)
    results = results or build_results(settings)
    return Core(
        settings=settings,
        redis=redis,
        scripts=scripts,
        attempts=RedisAttempts(redis, scripts),
        exams=ExamCache(redis, scripts, results),
        results=results,
        live=RedisLive(redis, scripts),
        **overrides,
    )
