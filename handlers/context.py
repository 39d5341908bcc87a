"""The resources one engine node shares across requests, built by the lifespan."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from redis.asyncio import Redis

from examwire.settings import Settings
from storage.attempts import AttemptStore
from storage.exams import ExamCache
from storage.live import LiveStore
from storage.results import ResultStore
from storage.scripts import Scripts

from .auth import Authenticator
from .hub import Hub
from .live import Presence, Watches


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Context:
    settings: Settings
    redis: Redis
    scripts: Scripts
    attempts: AttemptStore
    exams: ExamCache
    results: ResultStore
    hub: Hub
    auth: Authenticator
    live: LiveStore
    presence: Presence = field(default_factory=Presence)
    watches: Watches = field(default_factory=Watches)
    #: the tasks of the WebSocket connections open on this node (``Connection.run``), for the lifespan to stop
    connections: set[asyncio.Task[Any]] = field(default_factory=set)
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
