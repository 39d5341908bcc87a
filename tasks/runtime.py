"""One asyncio loop per worker process, with that process's resources.

Celery 5 runs only synchronous tasks. Each worker process keeps one event
loop in a background thread, built on first use *in that process* (after the
prefork fork), holding the Redis pool, the results store and the outbox
consumer; tasks submit coroutines to it and wait for the result.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol, TypeVar

from services.core import Core, CoreSettings, build_core
from services.metrics import Metrics
from storage.outbox import Outbox

T = TypeVar("T")


class WorkerSettings(CoreSettings, Protocol):
    """The settings a worker process reads (``examwire.settings.Settings`` has these and more)."""

    @property
    def outbox_batch(self) -> int: ...
    @property
    def outbox_retry_ms(self) -> int: ...
    @property
    def outbox_retry_max_ms(self) -> int: ...
    @property
    def persisted_ttl_s(self) -> int: ...
    @property
    def broker_url(self) -> str: ...
    @property
    def broker_options(self) -> dict[str, object]: ...
    @property
    def drain_interval_ms(self) -> int: ...
    @property
    def worker_sweep_interval_ms(self) -> int: ...
    @property
    def analysis_interval_s(self) -> int: ...
    @property
    def heartbeat_interval_ms(self) -> int: ...
    @property
    def beat_lock_ttl_s(self) -> int: ...


@dataclass(slots=True)
class Resources:
    core: Core
    outbox: Outbox
    opened: bool = False

    async def ready(self) -> "Resources":
        """Open the results store (tables, indexes) on first use; raises ``StoreUnavailable``."""
        if not self.opened:
            await self.core.results.open()
            self.opened = True
        return self


class Runtime:
    """Runs coroutines for tasks on this process's loop (see the module docstring)."""

    def __init__(self, settings: WorkerSettings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        #: what this worker records (``services.metrics.WorkerMetrics``; built by ``examwire worker``), else nothing
        self.metrics = metrics or Metrics()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._res: Resources | None = None

    def run(self, job: Callable[[Resources], Awaitable[T]], *, timeout: float = 600) -> T:
        loop, res = self._ensure()
        return asyncio.run_coroutine_threadsafe(job(res), loop).result(timeout)  # type: ignore[arg-type]

    def _ensure(self) -> tuple[asyncio.AbstractEventLoop, Resources]:
        with self._lock:
            if self._pid != os.getpid() or self._loop is None or self._res is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="examwire-tasks", daemon=True).start()
                self._res = asyncio.run_coroutine_threadsafe(self._build(), loop).result(60)
                self._loop, self._pid = loop, os.getpid()
            return self._loop, self._res

    async def _build(self) -> Resources:
        s = self.settings
        core = build_core(s, metrics=self.metrics)
        outbox = Outbox(
            core.redis,
            core.scripts,
            core.results,
            consumer=f"{socket.gethostname()}:{os.getpid()}",
            batch=s.outbox_batch,
            retry_ms=s.outbox_retry_ms,
            retry_max_ms=s.outbox_retry_max_ms,
            persisted_ttl_ms=s.persisted_ttl_s * 1000,
            observer=self.metrics,
        )
        return Resources(core, outbox)
