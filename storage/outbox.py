"""The results outbox: final records on a Redis Stream, drained into the results store.

``commit.lua`` appends an attempt's final record to ``keys.OUTBOX`` in the
same script that ends it. ``Outbox.drain`` reads the stream through the
consumer group ``keys.OUTBOX_GROUP`` and guarantees:

* an entry is acknowledged (``XACK``) and deleted only after the store wrote
  its record (or rejected it for good: then it moves to ``keys.OUTBOX_DEAD``);
* an entry whose write failed stays pending and is retried with exponential
  backoff (``retry_ms`` doubling per delivery, at most ``retry_max_ms``);
* an entry pending with a consumer that died is claimed by another consumer
  once it has been idle for its backoff;
* writes are upserts keyed by attempt, so an entry delivered twice (a worker
  killed between the write and the ack) is stored once.

After a record is written, the attempt's Redis keys get a time to live
(``persisted.lua``), so Redis memory does not grow with finished attempts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from . import keys
from .results import ResultStore
from .scripts import Scripts

log = logging.getLogger("examwire.outbox")

Entry = tuple[str, dict[str, str]]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class DrainStats:
    """What one ``drain`` call did."""

    written: int = 0
    rejected: int = 0
    retried: int = 0

    def __add__(self, other: "DrainStats") -> "DrainStats":
        return DrainStats(self.written + other.written, self.rejected + other.rejected, self.retried + other.retried)


def parse_entry(fields: dict[str, str]) -> dict[str, Any]:
    """The record of one outbox entry, with its events and proctor actions (oldest first); raises ValueError if malformed."""
    record = json.loads(fields["record"])
    if not isinstance(record, dict) or record.get("attempt") != fields.get("attempt"):
        raise ValueError("record does not match its attempt")
    events = json.loads(fields.get("events") or "[]")
    record["events"] = [_event(e) for e in reversed(events) if isinstance(e, dict)]
    actions = json.loads(fields.get("actions") or "[]")
    record["actions"] = [_event(a) for a in actions if isinstance(a, dict)]
    return record


def _event(entry: dict[str, Any]) -> dict[str, Any]:
    """An event entry with nested values as JSON text, so no user-chosen key reaches the store."""
    return {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v) for k, v in entry.items()}


class Observer(Protocol):
    """What a drain reports as it goes (``services.metrics.WorkerMetrics`` records it)."""

    def store_write(self, seconds: float, records: int) -> None: ...

    def dead_lettered(self, count: int) -> None: ...


class Outbox:
    """One consumer of the outbox stream (one per worker process); ``observer`` is told of each store write and dead letter."""

    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        store: ResultStore,
        *,
        consumer: str,
        batch: int = 100,
        retry_ms: int = 1000,
        retry_max_ms: int = 60_000,
        max_deliveries: int = 50,
        persisted_ttl_ms: int = 3_600_000,
        clock: Callable[[], int] = _now_ms,
        observer: Observer | None = None,
    ) -> None:
        self._redis = redis
        self._s = scripts
        self._store = store
        self.consumer = consumer
        self._batch = batch
        self._retry_ms = retry_ms
        self._retry_max_ms = retry_max_ms
        self._max_deliveries = max_deliveries
        self._ttl_ms = persisted_ttl_ms
        self._clock = clock
        self._observer = observer
        self._grouped = False

    def backoff_ms(self, deliveries: int) -> int:
        """How long an entry delivered ``deliveries`` times waits before its next try."""
        return min(self._retry_max_ms, self._retry_ms * 2 ** max(0, deliveries - 1))

    async def drain(self, *, budget_s: float = 10.0) -> DrainStats:
        """Persist what is due: pending entries past their backoff, then new entries.

        Returns when nothing is left to do or after about ``budget_s``.
        Raises ``StoreUnavailable`` (from the store) when a write failed: the
        entries of that batch stay pending and are retried after their backoff.
        """
        await self._ensure_group()
        stats = DrainStats()
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            due = await self._claim_due()
            if due:
                stats += await self._persist(due, retried=True)
                continue
            fresh = await self._read_new()
            if not fresh:
                break
            stats += await self._persist(fresh)
        return stats

    async def pending(self) -> int:
        """Entries delivered but not yet acknowledged."""
        await self._ensure_group()
        info = await self._redis.xpending(keys.OUTBOX, keys.OUTBOX_GROUP)
        return int(info["pending"])

    async def reap_consumers(self, idle_ms: int = 3_600_000) -> int:
        """Forget consumers (dead worker processes) idle for ``idle_ms`` with nothing pending."""
        await self._ensure_group()
        gone = 0
        for c in await self._redis.xinfo_consumers(keys.OUTBOX, keys.OUTBOX_GROUP):
            if c["name"] != self.consumer and int(c["pending"]) == 0 and int(c["idle"]) >= idle_ms:
                await self._redis.xgroup_delconsumer(keys.OUTBOX, keys.OUTBOX_GROUP, c["name"])
                gone += 1
        return gone

    # -- steps ------------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        if self._grouped:
            return
        try:
            await self._redis.xgroup_create(keys.OUTBOX, keys.OUTBOX_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._grouped = True

    async def _claim_due(self) -> list[Entry]:
        """Claim pending entries (anyone's) whose idle time reached their backoff."""
        try:
            pending = await self._redis.xpending_range(
                keys.OUTBOX, keys.OUTBOX_GROUP, min="-", max="+", count=self._batch, idle=self._retry_ms
            )
        except ResponseError as exc:
            return await self._regroup(exc, [])
        due = [p["message_id"] for p in pending if int(p["time_since_delivered"]) >= self.backoff_ms(int(p["times_delivered"]))]
        if not due:
            return []
        claimed = await self._redis.xclaim(keys.OUTBOX, keys.OUTBOX_GROUP, self.consumer, min_idle_time=self._retry_ms, message_ids=due)
        deliveries = {p["message_id"]: int(p["times_delivered"]) + 1 for p in pending}
        out: list[Entry] = []
        for entry_id, fields in claimed:
            if fields is None:  # deleted under us (acked by a slower consumer): forget it
                await self._redis.xack(keys.OUTBOX, keys.OUTBOX_GROUP, entry_id)
                continue
            if deliveries.get(entry_id, 0) > self._max_deliveries:
                await self._dead([(entry_id, fields)], f"not persisted after {self._max_deliveries} deliveries")
                continue
            out.append((entry_id, fields))
        return out

    async def _read_new(self) -> list[Entry]:
        try:
            reply = await self._redis.xreadgroup(keys.OUTBOX_GROUP, self.consumer, {keys.OUTBOX: ">"}, count=self._batch)
        except ResponseError as exc:
            return await self._regroup(exc, [])
        return list(reply[0][1]) if reply else []

    async def _regroup(self, exc: ResponseError, empty: list[Entry]) -> list[Entry]:
        """The group vanished (Redis flushed or restored): recreate it on the next call.

        The group was there (this consumer made or found it): so Redis lost
        data, and with it perhaps final records not yet persisted. Said as an
        error, never silently (docs/protocol.md, "Loss is detected, never silent").
        """
        if "NOGROUP" not in str(exc):
            raise exc
        if self._grouped:
            log.error(json.dumps({"event": "outbox_lost", "consumer": self.consumer,
                                  "detail": "the outbox's consumer group vanished: Redis lost data; final records not yet persisted may be gone"}))
        self._grouped = False
        await self._ensure_group()
        return empty

    async def _persist(self, entries: list[Entry], *, retried: bool = False) -> DrainStats:
        records: dict[str, tuple[str, dict[str, Any]]] = {}
        bad: list[tuple[Entry, str]] = []
        for entry_id, fields in entries:
            try:
                record = parse_entry(fields)
            except (KeyError, ValueError, TypeError) as exc:
                bad.append(((entry_id, fields), f"malformed entry: {exc}"))
                continue
            records[entry_id] = (record["attempt"], record)
        rejected = await self._put([r for _, r in records.values()]) if records else {}
        written = [(eid, aid) for eid, (aid, _) in records.items() if aid not in rejected]
        now = self._clock()
        await asyncio.gather(*(self._s.persisted(keys=list(keys.attempt_keys(aid)), args=[self._ttl_ms, now]) for _, aid in written))
        by_id = dict(entries)
        for eid, (aid, _) in records.items():
            if aid in rejected:
                bad.append(((eid, by_id[eid]), rejected[aid]))
        for entry, reason in bad:
            await self._dead([entry], reason)
        if written:
            ids = [eid for eid, _ in written]
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(keys.OUTBOX, keys.OUTBOX_GROUP, *ids)
                pipe.xdel(keys.OUTBOX, *ids)
                await pipe.execute()
        return DrainStats(written=len(written), rejected=len(bad), retried=len(entries) if retried else 0)

    async def _put(self, records: list[dict[str, Any]]) -> dict[str, str]:
        """Write ``records`` to the store (timed for the observer); the ones it rejected for good, with why."""
        t0 = time.perf_counter()
        rejected = await self._store.put_results(records)
        if self._observer is not None:
            self._observer.store_write(time.perf_counter() - t0, len(records))
        return rejected

    async def _dead(self, entries: list[Entry], reason: str) -> None:
        """Move entries the store will never take to the dead-letter stream, loudly."""
        if self._observer is not None:
            self._observer.dead_lettered(len(entries))
        for entry_id, fields in entries:
            log.error(json.dumps({"event": "outbox_dead", "entry": entry_id, "attempt": fields.get("attempt"), "reason": reason}))
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xadd(keys.OUTBOX_DEAD, {**fields, "reason": reason, "entry": entry_id})
                pipe.xack(keys.OUTBOX, keys.OUTBOX_GROUP, entry_id)
                pipe.xdel(keys.OUTBOX, entry_id)
                await pipe.execute()


async def dead_letters(redis: Redis, limit: int = 100) -> list[dict[str, str]]:
    """The oldest ``limit`` dead-lettered entries: ``id``, ``attempt``, ``entry`` (its outbox id) and ``reason``."""
    out = []
    for entry_id, fields in await redis.xrange(keys.OUTBOX_DEAD, count=limit):
        out.append({"id": entry_id, "attempt": fields.get("attempt", ""), "entry": fields.get("entry", ""), "reason": fields.get("reason", "")})
    return out


async def requeue_dead(scripts: Scripts, limit: int = 10_000) -> int:
    """Move up to ``limit`` dead-lettered entries back to the outbox (after their cause was fixed); return how many."""
    return int(await scripts.requeue_dead(keys=[keys.OUTBOX_DEAD, keys.OUTBOX], args=[limit]))

