"""``Core``: what the services need of a process (Redis, the stores, the clock), and how it is built.

Settings reach this layer as a ``CoreSettings``: the few fields read here,
declared as a protocol, so that nothing below the composition root imports
``examwire.settings`` (whose ``Settings`` has them all).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from redis.asyncio import BlockingConnectionPool, Redis

from storage.attempts import AttemptStore, RedisAttempts
from storage.exams import ExamCache
from storage.live import LiveStore, RedisLive
from storage.results import ResultStore
from storage.scripts import Scripts


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


def connect_redis(url: str, *, max_connections: int) -> Redis:
    """A client on a blocking pool: callers wait for a connection instead of failing past the cap."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, decode_responses=True, health_check_interval=30,
        socket_connect_timeout=5,
    )  # fmt: skip
    return Redis.from_pool(pool)


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
    if settings.redis_url is None:
        raise ValueError("settings.redis_url must be set")
    redis = connect_redis(settings.redis_url, max_connections=settings.redis_max_connections)
    scripts = Scripts.register(redis)
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
