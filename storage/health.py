"""The persistence path's health, kept in Redis: outbox, dead letters, worker and beat heartbeats, lost attempts.

Workers and beats write heartbeats (``heartbeat.lua``, scored by the Redis
server's clock); ``read`` gathers every fact in one pipeline, with ages taken
against that same clock, so nodes and operators on any host agree. Read by
``/readyz`` on every probe and by ``examwire status``.

The one-beat rule lives here too: ``BeatLock`` is a Redis lock with a time to
live that its holder renews; any other beat stands by until it expires.

``Heartbeat`` and ``BeatLock`` are synchronous: they run in Celery's worker
and beat processes, which have no event loop of their own.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import redis as redis_sync
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import keys
from .scripts import source

log = logging.getLogger("examwire.health")

#: Heartbeats silent this long are forgotten (a worker that was scaled away).
FORGET_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Persistence:
    """What stands between a finished attempt and the results store, as Redis sees it now."""

    now_ms: int
    outbox: int  # entries not yet persisted
    pending: int  # of those, delivered to a worker and not yet acknowledged
    oldest_ms: int | None  # when the oldest entry was queued (None: the outbox is empty)
    dead: int  # entries the store refused for good (``examwire outbox retry-dead``)
    workers: dict[str, int] = field(default_factory=dict)  # worker name -> last heartbeat (ms)
    beats: dict[str, int] = field(default_factory=dict)  # beat name -> last heartbeat (ms)
    beat_holder: str | None = None  # the beat that schedules (holds the lock)
    beat_lock_ms: int | None = None  # the lock's time to live left
    lost: int = 0  # attempts found to have lost acknowledged work (``count_loss``), since Redis last lost its data

    @property
    def oldest_age_ms(self) -> int | None:
        return None if self.oldest_ms is None else max(0, self.now_ms - self.oldest_ms)

    @property
    def worker_age_ms(self) -> int | None:
        """Age of the newest worker heartbeat (None: no worker ever beat, or all were forgotten)."""
        return max(0, self.now_ms - max(self.workers.values())) if self.workers else None

    def worker_ages_ms(self) -> dict[str, int]:
        return {name: max(0, self.now_ms - t) for name, t in sorted(self.workers.items())}

    def beat_ages_ms(self) -> dict[str, int]:
        return {name: max(0, self.now_ms - t) for name, t in sorted(self.beats.items())}

    def problems(self, *, worker_stale_ms: int, outbox_stale_ms: int) -> list[str]:
        """Why results are not reaching the store (empty: they are)."""
        out = []
        age = self.worker_age_ms
        if age is None:
            out.append("no worker heartbeat")
        elif age > worker_stale_ms:
            out.append(f"no worker heartbeat for {age / 1000:.0f} s (limit {worker_stale_ms / 1000:g} s)")
        oldest = self.oldest_age_ms
        if oldest is not None and oldest > outbox_stale_ms:
            out.append(f"oldest outbox entry is {oldest / 1000:.0f} s old (limit {outbox_stale_ms / 1000:g} s)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "outbox": self.outbox,
            "pending": self.pending,
            "oldest_age_s": _seconds(self.oldest_age_ms),
            "dead_letters": self.dead,
            "worker_heartbeat_age_s": _seconds(self.worker_age_ms),
            "attempts_lost": self.lost,
        }


def connection_lost(exc: BaseException) -> bool:
    """Redis cannot be reached at all. A node reports that once, in its Redis watch
    (``redis_unreachable``); loops that retry on their own stay quiet about it."""
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError))


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else round(ms / 1000, 3)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _queue(pipe: Any) -> int:
    """Queue the commands of ``Persistence`` on ``pipe``; how many replies they make."""
    pipe.time()
    pipe.xlen(keys.OUTBOX)
    pipe.xrange(keys.OUTBOX, count=1)
    pipe.xpending(keys.OUTBOX, keys.OUTBOX_GROUP)
    pipe.xlen(keys.OUTBOX_DEAD)
    pipe.zrange(keys.WORKERS, 0, -1, withscores=True)
    pipe.zrange(keys.BEATS, 0, -1, withscores=True)
    pipe.get(keys.BEAT_LOCK)
    pipe.pttl(keys.BEAT_LOCK)
    pipe.get(keys.ATTEMPTS_LOST)
    return 10


def _raise_failed(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, ResponseError) and "NOGROUP" in str(reply):
            continue  # no drain has run yet: nothing is pending
        if isinstance(reply, BaseException):
            raise reply


def _persistence(replies: list[Any]) -> Persistence:
    now, length, first, pending, dead, workers, beats, holder, ttl, lost = replies
    seconds, micros = now
    oldest = int(_text(first[0][0]).partition("-")[0]) if first else None
    return Persistence(
        now_ms=int(seconds) * 1000 + int(micros) // 1000,
        outbox=int(length),
        pending=0 if isinstance(pending, BaseException) else int(pending["pending"]),
        oldest_ms=oldest,
        dead=int(dead),
        workers={_text(m): int(s) for m, s in workers},
        beats={_text(m): int(s) for m, s in beats},
        beat_holder=_text(holder) if holder is not None else None,
        beat_lock_ms=int(ttl) if holder is not None and int(ttl) >= 0 else None,
        lost=int(lost or 0),
    )


async def read(redis: Redis) -> Persistence:
    """Every fact of ``Persistence`` in one round trip; raises ``RedisError`` when Redis cannot answer."""
    async with redis.pipeline(transaction=False) as pipe:
        _queue(pipe)
        replies = await pipe.execute(raise_on_error=False)
    _raise_failed(replies)
    return _persistence(replies)


@dataclass(frozen=True, slots=True)
class Shared:
    """The deployment's facts every engine node exports as gauges (``services.metrics``), read in one pipeline."""

    persistence: Persistence
    scheduled: int  # attempts in the deadline set: started and not yet ended
    first_due_ms: int | None  # the earliest due time (deadline + grace) in it
    used_memory: int | None  # Redis ``used_memory`` (None: INFO refused, e.g. by an ACL)
    maxmemory: int | None  # Redis ``maxmemory`` (0: no limit)

    @property
    def sweeper_lag_ms(self) -> int:
        """How far the earliest due deadline is behind the Redis clock (0: nothing overdue)."""
        if self.first_due_ms is None:
            return 0
        return max(0, self.persistence.now_ms - self.first_due_ms)


async def read_shared(redis: Redis) -> Shared:
    """``Persistence`` plus the deadline set's size and head and Redis's memory, in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        n = _queue(pipe)
        pipe.zcard(keys.DEADLINES)
        pipe.zrange(keys.DEADLINES, 0, 0, withscores=True)
        pipe.info("memory")
        replies = await pipe.execute(raise_on_error=False)
    facts, (scheduled, head, memory) = replies[:n], replies[n:]
    _raise_failed([*facts, scheduled, head])
    info = memory if isinstance(memory, dict) else {}
    return Shared(
        persistence=_persistence(facts),
        scheduled=int(scheduled),
        first_due_ms=int(float(head[0][1])) if head else None,
        used_memory=int(info["used_memory"]) if "used_memory" in info else None,
        maxmemory=int(info["maxmemory"]) if "maxmemory" in info else None,
    )


async def count_loss(redis: Redis) -> int:
    """Count one attempt found to have lost acknowledged work; the count so far."""
    return int(await redis.incr(keys.ATTEMPTS_LOST))


def sync_client(url: str, timeout_s: float = 5.0, *, sentinels: tuple[tuple[str, int], ...] = (),
                service: str = "examwire") -> redis_sync.Redis:
    """A blocking client for the Celery side (worker and beat processes have no event loop).

    With ``sentinels``, a client of the primary of ``service`` (redis-py's
    ``Sentinel.master_for``); ``url`` then gives the user, password, database
    and TLS. Its heartbeats and lock renewals repeat on their own, so a failed
    one is simply the next one's to do.
    """
    if not sentinels:
        return redis_sync.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True)
    from redis.connection import SSLConnection, parse_url
    from redis.sentinel import Sentinel

    parsed = parse_url(url)
    params = {k: v for k, v in parsed.items() if k in ("db", "username", "password")}
    probe = {"socket_timeout": min(timeout_s, 1.0), "socket_connect_timeout": min(timeout_s, 1.0)}
    manager = Sentinel(list(sentinels), sentinel_kwargs=probe)
    return manager.master_for(service, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True,
                              ssl=issubclass(parsed.get("connection_class", object), SSLConnection), **params)  # fmt: skip


class Heartbeat:
    """Writes ``name`` into the heartbeat set ``key`` every ``interval_s`` from a daemon thread."""

    def __init__(self, client: redis_sync.Redis, key: str, name: str, interval_s: float) -> None:
        self.key = key
        self.name = name
        self._client = client
        self._script = client.register_script(source("heartbeat"))
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def beat_once(self) -> bool:
        """One heartbeat; False (logged once per outage) when Redis cannot take it."""
        try:
            self._script(keys=[self.key], args=[self.name, FORGET_MS])
        except (RedisError, OSError) as exc:
            if not self._failing:
                log.warning(json.dumps({"event": "heartbeat_failed", "name": self.name, "error": type(exc).__name__}))
            self._failing = True
            return False
        self._failing = False
        return True

    def start(self) -> None:
        """Beat once on the caller's thread, then every ``interval_s`` from a daemon thread.

        The first beat is the one that resolves the address and connects
        (``getaddrinfo`` imports the IDNA codec the first time). Done here, the
        thread never imports a module: Celery forks beat and pool processes
        after its bootsteps start, and a child forked while another thread was
        importing inherits that module's import lock held and hangs on it.
        """
        if self._thread is None:
            self.beat_once()
            self._thread = threading.Thread(target=self._run, name=f"heartbeat:{self.name}", daemon=True)
            self._thread.start()

    def stop(self, *, forget: bool = True) -> None:
        """Stop beating; ``forget`` removes the name, so a clean stop is not mistaken for a dead process."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 5)
            self._thread = None
        if forget:
            try:
                self._client.zrem(self.key, self.name)
            except (RedisError, OSError):
                pass

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.beat_once()


class BeatLock:
    """The scheduler lock: ``hold()`` takes or renews it; the holder's name is its value."""

    def __init__(self, client: redis_sync.Redis, name: str, ttl_ms: int) -> None:
        self.name = name
        self.ttl_ms = ttl_ms
        self._take = client.register_script(source("beat_lock"))
        self._release = client.register_script(source("beat_unlock"))

    def hold(self) -> tuple[bool, str | None, int | None]:
        """``(True, name, None)`` when this process holds the lock now, else ``(False, holder, ms left)``."""
        reply = self._take(keys=[keys.BEAT_LOCK], args=[self.name, self.ttl_ms])
        if int(reply[0]) == 1:
            return True, self.name, None
        return False, _text(reply[1]), int(reply[2])

    def release(self) -> bool:
        return self.release_for(self.name)

    def release_for(self, holder: str) -> bool:
        """Release the lock if ``holder`` still holds it (compare-and-delete)."""
        return bool(self._release(keys=[keys.BEAT_LOCK], args=[holder]))
