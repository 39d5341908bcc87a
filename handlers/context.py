"""What one engine node's endpoints share, built by the lifespan: the services' ``Core`` and the node's own parts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from services.core import Core, CoreSettings

from .auth import Authenticator
from .hub import Hub
from .live import LiveSettings, Presence, Watches


class NodeSettings(CoreSettings, LiveSettings, Protocol):
    """The settings an engine node's endpoints read (``examwire.settings.Settings`` has these and more)."""

    @property
    def allowed_origins(self) -> tuple[str, ...]: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def event_burst(self) -> int: ...
    @property
    def event_rate_per_s(self) -> float: ...
    @property
    def hello_timeout_s(self) -> float: ...
    @property
    def max_exam_bytes(self) -> int: ...
    @property
    def max_token_lifetime_s(self) -> int: ...
    @property
    def outbox_stale_s(self) -> int: ...
    @property
    def rate_burst(self) -> int: ...
    @property
    def rate_per_s(self) -> int: ...
    @property
    def readyz_fail_degraded(self) -> bool: ...
    @property
    def send_queue(self) -> int: ...
    @property
    def time_push_interval_s(self) -> float: ...
    @property
    def worker_stale_s(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Context:
    settings: NodeSettings
    core: Core
    hub: Hub
    auth: Authenticator
    presence: Presence
    watches: Watches
    #: the tasks of the WebSocket connections open on this node (``Connection.run``), for the lifespan to stop
    connections: set[asyncio.Task[Any]] = field(default_factory=set)

    # the services' resources, by their usual names
    redis = property(lambda self: self.core.redis)
    scripts = property(lambda self: self.core.scripts)
    attempts = property(lambda self: self.core.attempts)
    exams = property(lambda self: self.core.exams)
    results = property(lambda self: self.core.results)
    live = property(lambda self: self.core.live)
    secret = property(lambda self: self.core.secret)

    @property
    def clock(self) -> Callable[[], int]:
        return self.core.clock

    def event(self, name: str, **fields: Any) -> None:
        """One structured log line (``Core.event``). Never pass tokens."""
        self.core.event(name, **fields)
