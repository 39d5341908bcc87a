"""``examwire status``: the deployment's health for an operator, and for health checks.

Exit status: 0 ok, 1 degraded, 2 Redis unreachable. ``--json`` prints the
same facts as one JSON object. ``--local worker`` / ``--local beat`` checks
only this host's worker (it answers a Celery ping) or beat (its heartbeat is
fresh): the health checks of compose's ``worker`` and ``beat`` containers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from storage import health, keys
from storage.results import StoreUnavailable

from .settings import Settings

OK, DEGRADED, UNREACHABLE = 0, 1, 2
PING_TIMEOUT_S = 1.5


@dataclass
class Report:
    redis_url: str | None
    reachable: bool = False
    error: str | None = None
    redis_version: str | None = None
    aof_enabled: bool | None = None
    aof_last_write: str | None = None
    active_attempts: int | None = None
    facts: health.Persistence | None = None
    pinged: list[str] = field(default_factory=list)
    store: str | None = None  # None: reachable; else why not
    store_name: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def code(self) -> int:
        if not self.reachable:
            return UNREACHABLE
        return DEGRADED if self.problems else OK

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": ("ok", "degraded", "unreachable")[self.code],
            "redis": {"url": self.redis_url, "reachable": self.reachable, "error": self.error, "version": self.redis_version,
                      "aof": self.aof_enabled, "aof_last_write": self.aof_last_write},  # fmt: skip
            "problems": self.problems,
            "warnings": self.warnings,
        }
        if not self.reachable:
            return out
        f = self.facts
        assert f is not None
        out.update(
            active_attempts=self.active_attempts,
            **f.to_json(),
            workers={"answered_ping": self.pinged, "heartbeat_age_s": {n: a / 1000 for n, a in f.worker_ages_ms().items()}},
            beat={"holder": f.beat_holder, "lock_ttl_s": None if f.beat_lock_ms is None else f.beat_lock_ms / 1000,
                  "heartbeat_age_s": {n: a / 1000 for n, a in f.beat_ages_ms().items()}},  # fmt: skip
            results_store={"kind": self.store_name, "reachable": self.store is None, "error": self.store},
        )
        return out

    def text(self) -> str:
        head = f"Examwire status: {('OK', 'DEGRADED', 'UNREACHABLE')[self.code]}"
        lines = [head]
        if not self.reachable:
            lines.append(f"  redis          UNREACHABLE  {self.redis_url}: {self.error}")
            return "\n".join(lines + self._lists())
        f = self.facts
        assert f is not None
        aof = "AOF on" if self.aof_enabled else "AOF OFF"
        if self.aof_enabled:
            aof += f", last write {self.aof_last_write}"
        lines.append(f"  redis          reachable    {self.redis_url} (Redis {self.redis_version}, {aof})")
        lines.append(f"  live attempts  {self.active_attempts} active")
        oldest = "empty" if f.oldest_age_ms is None else f"oldest {f.oldest_age_ms / 1000:.1f} s"
        lines.append(f"  outbox         {f.outbox} waiting, {f.pending} pending, {oldest}")
        retry = "  (requeue with `examwire outbox retry-dead` once the cause is fixed)" if f.dead else ""
        lines.append(f"  dead letters   {f.dead}{retry}")
        if f.lost:
            lines.append(f"  lost attempts  {f.lost} found without acknowledged work (`attempt_lost` in the node logs)")
        beats = ", ".join(f"{n} ({a / 1000:.1f} s ago)" for n, a in f.worker_ages_ms().items()) or "none"
        lines.append(f"  workers        {len(self.pinged)} answered ping; heartbeats: {beats}")
        if f.beat_holder:
            standby = [n for n in f.beats if n != f.beat_holder]
            extra = f"; standing by: {', '.join(standby)}" if standby else ""
            lines.append(f"  beat           {f.beat_holder} schedules (lock {(f.beat_lock_ms or 0) / 1000:.0f} s left){extra}")
        else:
            lines.append("  beat           none holds the lock")
        store = "reachable" if self.store is None else f"UNREACHABLE: {self.store}"
        lines.append(f"  results store  {store} ({self.store_name})")
        return "\n".join(lines + self._lists())

    def _lists(self) -> list[str]:
        out = []
        if self.problems:
            out += ["Problems:"] + [f"  - {p}" for p in self.problems]
        if self.warnings:
            out += ["Warnings:"] + [f"  - {w}" for w in self.warnings]
        return out


def _connect(settings: Settings) -> Any:
    from services.core import redis_for

    return redis_for(settings, max_connections=4)


async def gather(settings: Settings) -> Report:
    """Every fact of the report; Redis unreachable is a report too (code 2), never an exception."""
    from services.core import build_results

    report = Report(redis_url=settings.redis_where)
    redis = _connect(settings)
    try:
        try:
            async with asyncio.timeout(5):
                info = await redis.info("server")
                persistence = await redis.info("persistence")
                report.active_attempts = int(await redis.zcard(keys.DEADLINES))
                report.facts = await health.read(redis)
        except (RedisError, OSError, TimeoutError) as exc:
            report.error = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
            report.problems.append(f"Redis unreachable at {report.redis_url}")
            return report
        report.reachable = True
        report.redis_version = str(info.get("redis_version"))
        report.aof_enabled = bool(int(persistence.get("aof_enabled", 0)))
        report.aof_last_write = str(persistence.get("aof_last_write_status", "ok"))
    finally:
        await redis.aclose()

    facts = report.facts
    assert facts is not None
    report.problems += facts.problems(worker_stale_ms=settings.worker_stale_s * 1000, outbox_stale_ms=settings.outbox_stale_s * 1000)
    if facts.dead:
        report.problems.append(f"{facts.dead} dead-lettered result(s) never reached the store (`examwire outbox dead` lists them)")
    if facts.lost:
        report.warnings.append(
            f"{facts.lost} attempt(s) had lost acknowledged work since Redis last lost its data "
            "(`attempt_lost` error lines in the engine logs name them)"
        )
    if not report.aof_enabled:
        report.warnings.append("Redis AOF is off: a Redis restart loses acknowledged answers")
    elif report.aof_last_write != "ok":
        report.problems.append(f"Redis cannot write its AOF (aof_last_write_status={report.aof_last_write})")

    report.pinged = await asyncio.to_thread(ping_workers, settings, None)
    if not report.pinged:
        report.problems.append("no worker answered a ping")
    if facts.beat_holder is None:
        report.problems.append("no beat holds the lock: nothing schedules the drain and the sweep")

    store = build_results(settings)
    report.store_name = "MongoDB" if settings.mongodb_url else f"SQLite {settings.results_path}"
    try:
        async with asyncio.timeout(settings.store_timeout_ms / 1000 * 2 + 1):
            await store.open()
            await store.ping()
    except (StoreUnavailable, TimeoutError, OSError) as exc:
        report.store = str(exc)[:300] or type(exc).__name__
        report.problems.append(f"results store unreachable ({report.store_name})")
    finally:
        try:
            await store.close()
        except Exception:
            pass
    return report


def ping_workers(settings: Settings, destination: list[str] | None) -> list[str]:
    """The names of the Celery workers that answer a ping (all, or those in ``destination``)."""
    from tasks.app import create_celery

    app = create_celery(settings)
    try:
        replies = app.control.ping(destination=destination, timeout=PING_TIMEOUT_S) or []
    except Exception:  # the broker is Redis; an unreachable one is reported by the caller
        return []
    finally:
        app.close()
    return sorted(name for reply in replies for name in reply)


async def local(settings: Settings, role: str) -> tuple[int, str]:
    """Health of this host's ``worker`` or ``beat`` only: ``(exit status, one line)``."""
    host = socket.gethostname()
    redis = _connect(settings)
    try:
        async with asyncio.timeout(5):
            facts = await health.read(redis)
    except (RedisError, OSError, TimeoutError) as exc:
        return UNREACHABLE, f"Redis unreachable: {type(exc).__name__}"
    finally:
        await redis.aclose()
    if role == "worker":
        mine = [n for n in facts.workers if n.endswith(f"@{host}")]
        if not mine:
            return DEGRADED, f"no worker heartbeat from {host}"
        answered = await asyncio.to_thread(ping_workers, settings, mine)
        if not answered:
            return DEGRADED, f"worker(s) {', '.join(mine)} did not answer a ping"
        return OK, f"worker(s) {', '.join(answered)} answered"
    fresh_ms = settings.beat_lock_ttl_s * 1000
    mine_beats = {n: a for n, a in facts.beat_ages_ms().items() if n.startswith(f"{host}:")}
    alive = {n: a for n, a in mine_beats.items() if a <= fresh_ms}
    if not alive:
        return DEGRADED, f"no beat heartbeat from {host} within {settings.beat_lock_ttl_s} s"
    held = [n for n in alive if n == facts.beat_holder]
    return OK, f"beat {', '.join(alive)} alive ({'schedules' if held else 'standing by for ' + str(facts.beat_holder)})"


def main(settings: Settings, *, as_json: bool, role: str | None) -> int:
    if role is not None:
        code, line = asyncio.run(local(settings, role))
        if as_json:
            print(json.dumps({"status": ("ok", "degraded", "unreachable")[code], "role": role, "message": line}))
        else:
            print(line)
        return code
    report = asyncio.run(gather(settings))
    print(json.dumps(report.to_json(), indent=2) if as_json else report.text(), file=sys.stdout)
    return report.code
