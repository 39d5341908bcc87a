"""The Celery processes' side of health: worker heartbeats, and exactly one beat.

``heartbeat_step(settings)`` is a worker bootstep: from the moment the worker
starts until it stops, a thread writes the worker's name into
``keys.WORKERS`` every ``heartbeat_interval_ms`` (read by ``/readyz`` and
``examwire status``).

``locked_scheduler(settings)`` is beat's scheduler class: Celery's
``PersistentScheduler`` that schedules only while it holds ``keys.BEAT_LOCK``
(``storage.health.BeatLock``), renewed on every tick. A second beat on the
same Redis, ``examwire beat`` or ``worker --beat``, stands by, says so, and
takes over once the holder has been silent for the lock's time to live, or at
once when the holder was a process of this host that no longer exists.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import Any

from celery import bootsteps
from celery.beat import PersistentScheduler
from redis.exceptions import RedisError

from storage import health, keys

from .runtime import WorkerSettings

log = logging.getLogger("examwire.beat")


def heartbeat_step(settings: WorkerSettings) -> type[bootsteps.StartStopStep]:
    class WorkerHeartbeat(bootsteps.StartStopStep):
        """Heartbeats of this worker (its Celery hostname) into ``keys.WORKERS``."""

        def __init__(self, worker: Any, **kwargs: Any) -> None:
            super().__init__(worker, **kwargs)
            self.beater: health.Heartbeat | None = None

        def start(self, worker: Any) -> None:
            client = health.sync_client(settings.redis_url or "", sentinels=settings.redis_sentinels, service=settings.redis_sentinel_service)
            self.beater = health.Heartbeat(client, keys.WORKERS, worker.hostname, settings.heartbeat_interval_ms / 1000)
            self.beater.start()

        def stop(self, worker: Any) -> None:
            beater, self.beater = self.beater, None
            if beater is not None:
                beater.stop(forget=True)

        shutdown = stop

    return WorkerHeartbeat


def beat_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def gone_from_this_host(holder: str | None) -> bool:
    """True when ``holder`` names a process of this host (``host:pid``) that no longer exists.

    Such a holder was killed without releasing the lock (SIGKILL, OOM):
    waiting for its time to live would only pause the schedule.
    """
    host, _, pid = (holder or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def locked_scheduler(settings: WorkerSettings) -> type[PersistentScheduler]:
    ttl_ms = settings.beat_lock_ttl_s * 1000
    renew_s = max(0.5, settings.beat_lock_ttl_s / 3)

    class LockedScheduler(PersistentScheduler):
        """``PersistentScheduler`` that sends nothing unless it holds the beat lock."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._name = beat_name()
            client = health.sync_client(settings.redis_url or "", sentinels=settings.redis_sentinels, service=settings.redis_sentinel_service)
            self._lock = health.BeatLock(client, self._name, ttl_ms)
            self._heartbeat = health.Heartbeat(client, keys.BEATS, self._name, renew_s)
            self._holding = False
            self._standby_logged: str | None = None
            super().__init__(*args, **kwargs)

        def tick(self, *args: Any, **kwargs: Any) -> float:
            self._heartbeat.beat_once()
            try:
                held, holder, left_ms = self._lock.hold()
            except (RedisError, OSError) as exc:
                # without Redis nothing can be sent anyway; whoever holds the lock when it is back schedules
                if self._holding:
                    log.warning(json.dumps({"event": "beat_lock_unknown", "name": self._name, "error": type(exc).__name__}))
                self._holding = False
                return renew_s
            if not held and gone_from_this_host(holder):
                self._lock.release_for(holder or "")  # only if that dead process still holds it
                log.warning(json.dumps({"event": "beat_lock_freed", "name": self._name, "holder": holder,
                                        "reason": "the holder's process is gone from this host"}))  # fmt: skip
                held, holder, left_ms = self._lock.hold()
            if not held:
                if self._holding or self._standby_logged != holder:
                    log.warning(json.dumps({
                        "event": "beat_standby", "name": self._name, "holder": holder,
                        "message": f"another beat ({holder}) holds the lock: not scheduling; taking over if it is silent for {settings.beat_lock_ttl_s} s",
                    }))  # fmt: skip
                    self._standby_logged = holder
                self._holding = False
                return min(renew_s, max(0.1, (left_ms or 0) / 1000)) if left_ms and left_ms > 0 else renew_s
            if not self._holding:
                log.warning(json.dumps({"event": "beat_lock_taken", "name": self._name, "ttl_s": settings.beat_lock_ttl_s}))
                self._holding = True
                self._standby_logged = None
            return min(super().tick(*args, **kwargs), renew_s)

        def close(self) -> None:
            try:
                if self._holding:
                    self._lock.release()
                self._heartbeat.stop(forget=True)
            except (RedisError, OSError):
                pass
            super().close()

    return LockedScheduler
