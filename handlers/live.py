"""The live side of one engine node: its candidates' presence, and the exams its proctors watch.

``Presence`` counts the candidate connections this node holds, by exam and
attempt, and heartbeats them into Redis every ``presence_interval_ms``.

``Watch`` is one exam watched from this node: one subscription to the exam's
live channel, one in-memory view (a row per attempt), shared by every proctor
connection on the node. Changes are coalesced per attempt: an attempt's row
is sent at most once every ``proctor_update_ms`` (its events are never
dropped), so a proctor of thousands of candidates gets a bounded stream. A
lost subscription is re-established and the view reloaded; proctors then get
what changed meanwhile. Every ``presence_interval_ms`` the watch reaps the
attempts whose node stopped beating.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import Any, Protocol

from redis.exceptions import RedisError

import engine
from storage import keys
from storage.attempts import from_record
from storage.health import connection_lost
from storage.live import parse_message
from services.core import Core
from storage.results import StoreUnavailable, all_results

from .stopping import stop_tasks

log = logging.getLogger("examwire.live")

#: How long a watch outlives its last proctor (a reconnecting dashboard finds it warm).
LINGER_S = 10.0


class LiveSettings(Protocol):
    """The settings of presence and the proctor feed."""

    @property
    def presence_interval_ms(self) -> int: ...
    @property
    def presence_stale_ms(self) -> int: ...
    @property
    def proctor_update_ms(self) -> int: ...


class Viewer(Protocol):
    conn_id: str

    def deliver(self, item: tuple[Any, ...]) -> None: ...


class Presence:
    """This node's candidate connections, heartbeaten into each exam's presence set."""

    def __init__(self, core: Core, settings: LiveSettings) -> None:
        self.core = core
        self.settings = settings
        self._held: dict[str, Counter[str]] = {}

    def add(self, exam_id: str, attempt_id: str) -> None:
        self._held.setdefault(exam_id, Counter())[attempt_id] += 1

    def remove(self, exam_id: str, attempt_id: str) -> None:
        held = self._held.get(exam_id)
        if held is None:
            return
        held[attempt_id] -= 1
        if held[attempt_id] <= 0:
            del held[attempt_id]
        if not held:
            del self._held[exam_id]

    def holds(self, exam_id: str, attempt_id: str) -> bool:
        return self._held.get(exam_id, {}).get(attempt_id, 0) > 0

    async def beat_once(self) -> None:
        now = self.core.clock()
        for exam_id, held in list(self._held.items()):
            ids = list(held)
            for lo in range(0, len(ids), 1000):
                await self.core.live.beat(exam_id, ids[lo : lo + 1000], now)

    async def run(self) -> None:
        """Beat every ``presence_interval_ms`` until cancelled."""
        interval = self.settings.presence_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.beat_once()
            except (RedisError, OSError) as exc:
                if not connection_lost(exc):
                    log.warning(json.dumps({"event": "presence_beat_failed", "error": type(exc).__name__}))


class Watch:
    """One exam's live view on this node (see the module docstring)."""

    def __init__(self, core: Core, settings: LiveSettings, exam_id: str) -> None:
        self.core = core
        self.settings = settings
        self.exam_id = exam_id
        self.rows: dict[str, dict[str, Any]] = {}
        self._vers: dict[str, int] = {}
        self._sent: dict[str, dict[str, Any]] = {}  # attempt -> row as last sent to the viewers
        self._dirty: set[str] = set()
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._next: dict[str, float] = {}  # attempt -> loop time before which it is not sent again
        self._totals: dict[int, int] = {}  # exam version -> number of questions
        self.viewers: set[Viewer] = set()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.idle_since: float | None = None
        self._loaded = False
        self._wake = asyncio.Event()
        self._side: set[asyncio.Task[None]] = set()

    # -- viewers ------------------------------------------------------------------------

    def add(self, viewer: Viewer) -> None:
        self.viewers.add(viewer)
        self.idle_since = None

    def remove(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        if not self.viewers:
            self.idle_since = asyncio.get_running_loop().time()

    def snapshot(self) -> list[dict[str, Any]]:
        """Every row as it stands now (unsent changes included)."""
        return [{"attempt": aid, **row} for aid, row in sorted(self.rows.items(), key=lambda kv: (kv[1]["name"], kv[0]))]

    # -- the feed -----------------------------------------------------------------------

    async def run(self) -> None:
        """Subscribe, load the view, then apply the feed and flush it until cancelled."""
        backoff = 0.1
        flusher = asyncio.create_task(self._flush_loop())
        reaper = asyncio.create_task(self._reap_loop())
        try:
            while True:
                try:
                    ps = self.core.live.subscribe()
                    try:
                        await ps.subscribe(keys.live(self.exam_id))
                        await self._load()
                        self.ready.set()
                        backoff = 0.1
                        async for msg in ps.listen():
                            if msg.get("type") == "message":
                                message = parse_message(msg["data"])
                                if message is not None:
                                    self.apply(message)
                    finally:
                        await ps.aclose()
                except asyncio.CancelledError:
                    raise
                except (RedisError, OSError, StoreUnavailable) as exc:
                    log.warning(json.dumps({"event": "watch_lost", "exam": self.exam_id, "error": type(exc).__name__}))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                except Exception:  # a bug must not silence every proctor of the exam: log, reload
                    log.exception("watch of %s failed", self.exam_id)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            await stop_tasks([flusher, reaper, *self._side], what=f"watch of {self.exam_id}")

    def apply(self, message: dict[str, Any]) -> None:
        """Fold one live message into the view and mark its attempt for sending."""
        aid = message["a"]
        row = self.rows.get(aid)
        summary = message.get("s")
        if isinstance(summary, dict):
            ver = message.get("v")
            ver = ver if isinstance(ver, int) else 0
            if ver >= self._vers.get(aid, 0):
                self._vers[aid] = ver
                if row is None:
                    row = self.rows[aid] = {"connected": False}
                row.update(summary)
        if row is None:
            if "c" in message or "e" in message:
                # an attempt this view has not seen yet (created after the load): fetch it
                task = asyncio.get_running_loop().create_task(self._load_one(aid, message))
                self._side.add(task)
                task.add_done_callback(self._side.discard)
            return
        if isinstance(message.get("c"), bool):
            row["connected"] = message["c"]
        event = message.get("e")
        if isinstance(event, dict):
            self._events.setdefault(aid, []).append(event)
        self._dirty.add(aid)
        if not self._wake.is_set() and self._next.get(aid, 0.0) <= asyncio.get_running_loop().time():
            self._wake.set()  # the flusher runs once this batch of messages has been read

    async def _load_one(self, aid: str, message: dict[str, Any]) -> None:
        try:
            snaps = await self.core.attempts.load_many([aid])
            if aid in snaps and snaps[aid].attempt.exam_id == self.exam_id:
                snap = snaps[aid]
                row = await self._row(snap.attempt, snap.result)
                if aid not in self.rows:
                    self._vers[aid] = snap.ver
                    self.rows[aid] = {**row, "connected": bool(message.get("c"))}
                self.apply(message)
        except (RedisError, OSError, StoreUnavailable):
            pass

    async def _total(self, version: int) -> int:
        total = self._totals.get(version)
        if total is None:
            exam = await self.core.exams.get(self.exam_id, version)
            total = exam.total if exam is not None else 0
            self._totals[version] = total
        return total

    async def _row(self, attempt: engine.Attempt, result: Any) -> dict[str, Any]:
        total = await self._total(attempt.exam_version)
        return engine.progress(attempt, total, self.core.clock(), result)

    async def _load(self) -> None:
        """Read every attempt of the exam: Redis for the live ones, the results store for the rest."""
        core, settings = self.core, self.settings
        ids = await core.live.roster(self.exam_id)
        seen = await core.live.presence(self.exam_id)
        snaps = await core.attempts.load_many(ids)
        fresh = core.clock() - settings.presence_stale_ms
        rows: dict[str, dict[str, Any]] = {}
        for aid, snap in snaps.items():
            if snap.attempt.exam_id != self.exam_id:
                continue
            rows[aid] = {**await self._row(snap.attempt, snap.result), "connected": seen.get(aid, 0) >= fresh}
            self._vers[aid] = max(self._vers.get(aid, 0), snap.ver)
        archived = {aid for aid in ids if aid not in snaps}  # persisted, and their Redis keys expired
        for record in await self._archived(archived):
            old = from_record(record)
            rows[old.attempt.id] = {**await self._row(old.attempt, old.result), "connected": False}
        self.rows = rows
        if self._loaded:  # a reload after a lost subscription: send what changed meanwhile
            self._dirty.update(rows)
        else:  # the first load: viewers get it as their snapshot
            self._sent = {aid: dict(row) for aid, row in rows.items()}
            self._loaded = True

    async def _archived(self, ids: set[str]) -> list[dict[str, Any]]:
        """The stored records of ``ids``: one lookup each when few, else one pass over the exam's results."""
        store = self.core.results
        if len(ids) <= 20:
            found = [await store.get_result(aid) for aid in sorted(ids)]
            return [r for r in found if r is not None and r.get("exam") == self.exam_id]
        return [r async for r in all_results(store, self.exam_id) if r.get("attempt") in ids]

    async def _flush_loop(self) -> None:
        """Flush as soon as a change is due (woken by ``apply``), else every 50 ms for the held-back ones."""
        loop = asyncio.get_running_loop()
        gap = self.settings.proctor_update_ms / 1000
        tick = min(0.05, gap) if gap > 0 else 0.02
        while True:
            try:
                async with asyncio.timeout(tick):  # not wait_for: it can lose a cancellation (handlers.stopping)
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if self._dirty:
                self.flush(loop.time(), gap)

    def flush(self, now: float, gap: float) -> None:
        """Send the rows due now (each at most once per ``gap`` seconds) to every viewer."""
        due = [aid for aid in self._dirty if self._next.get(aid, 0.0) <= now]
        if not due:
            return
        out: list[dict[str, Any]] = []
        for aid in due:
            self._dirty.discard(aid)
            self._next[aid] = now + gap
            row = self.rows.get(aid)
            if row is None:
                continue
            sent = self._sent.get(aid, {})
            changed = {k: v for k, v in row.items() if k not in sent or sent[k] != v or type(sent[k]) is not type(v)}
            self._sent[aid] = dict(row)
            events = self._events.pop(aid, [])
            if events:
                out.append({"t": "update", "attempt": aid, **changed, "event": events[0]})
                out.extend({"t": "update", "attempt": aid, "events": row["events"], "event": e} for e in events[1:])
            elif changed:
                out.append({"t": "update", "attempt": aid, **changed})
        if out:
            for viewer in list(self.viewers):
                viewer.deliver(("updates", out))

    async def _reap_loop(self) -> None:
        core, settings = self.core, self.settings
        interval = settings.presence_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await core.live.reap(self.exam_id, core.clock() - settings.presence_stale_ms)
            except (RedisError, OSError) as exc:
                if not connection_lost(exc):
                    log.warning(json.dumps({"event": "presence_reap_failed", "error": type(exc).__name__}))


class Watches:
    """The exams watched from this node: one ``Watch`` each, started on demand, stopped when idle."""

    def __init__(self, core: Core, settings: LiveSettings) -> None:
        self.core = core
        self.settings = settings
        self._by_exam: dict[str, Watch] = {}
        self._retired: set[asyncio.Task[None]] = set()  # idle watches cancelled, until they have ended

    async def join(self, exam_id: str, viewer: Viewer, timeout: float = 10.0) -> Watch:
        """The exam's watch with ``viewer`` added, once its view is loaded."""
        watch = self._by_exam.get(exam_id)
        if watch is None or watch.task is None or watch.task.done():
            watch = Watch(self.core, self.settings, exam_id)
            watch.task = asyncio.create_task(watch.run(), name=f"watch:{exam_id}")
            self._by_exam[exam_id] = watch
        watch.add(viewer)
        try:
            async with asyncio.timeout(timeout):
                await watch.ready.wait()
        except BaseException:
            watch.remove(viewer)
            raise
        return watch

    def leave(self, exam_id: str, viewer: Viewer) -> None:
        watch = self._by_exam.get(exam_id)
        if watch is not None:
            watch.remove(viewer)

    async def run(self) -> None:
        """Stop watches that have had no viewer for ``LINGER_S``; on cancel, stop them all."""
        try:
            while True:
                await asyncio.sleep(LINGER_S / 2)
                now = asyncio.get_running_loop().time()
                for exam_id, watch in list(self._by_exam.items()):
                    if watch.idle_since is not None and now - watch.idle_since >= LINGER_S:
                        del self._by_exam[exam_id]
                        if watch.task is not None:
                            self._retired.add(watch.task)
                # a cancellation can be lost (handlers.stopping): cancel again until they have ended
                self._retired = {t for t in self._retired if not t.done()}
                for task in self._retired:
                    task.cancel()
        finally:
            tasks = [w.task for w in self._by_exam.values() if w.task is not None] + list(self._retired)
            await stop_tasks(tasks, what="watches")
            self._by_exam.clear()
            self._retired.clear()
