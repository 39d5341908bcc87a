"""The live side of one engine node: its candidates' presence, and the exams its proctors watch.

``Presence`` counts the candidate connections this node holds, by exam and
attempt, and heartbeats them into Redis every ``presence_interval_ms``.

``Feed`` is the node's one subscription to the exams' live channels: one Redis
pub/sub connection however many exams the node's proctors watch (at most
``max_watched_exams``; a proctor of one more exam is refused with
``WatchLimit``, never left waiting for a connection). It SUBSCRIBEs to an
exam's channel when the node starts watching the exam, UNSUBSCRIBEs when the
watch stops, and hands each message to the ``Watch`` of its channel.
SUBSCRIBE of the watched channels, not PSUBSCRIBE of ``ew:live:*``: with a
pattern every node would receive, and decode, every commit of every exam of
the deployment, watched on that node or not, so what a node reads would grow
with the whole deployment's traffic instead of with what its own proctors
watch; an exam nobody watches should cost a ``PUBLISH`` to no one. Exact
channels also keep to one channel per exam slot (``{E}``), what Redis
Cluster's sharded SSUBSCRIBE would need.

A watch loads its view only once Redis has confirmed its subscription
(messages that arrive meanwhile are held and applied after the load), so
nothing falls in between. A lost connection is re-established with backoff
(0.1 s, doubling, at most 5 s) and every watched channel subscribed again;
each confirmation makes that exam's watch reload its view, so proctors then
get what changed meanwhile.

``Watch`` is one exam watched from this node: one in-memory view (a row per
attempt), shared by every proctor connection on the node. Changes are
coalesced per attempt: an attempt's row is sent at most once every
``proctor_update_ms`` (its events are never dropped), so a proctor of
thousands of candidates gets a bounded stream. Every
``presence_interval_ms`` the watch reaps the attempts whose node stopped
beating. A watch without proctors lingers ``LINGER_S`` (a reconnecting
dashboard finds it warm), unless its place is needed for another exam.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import Counter
from typing import Any, Protocol

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

import engine
from storage import keys
from storage.attempts import from_record
from storage.health import connection_lost
from storage.live import LiveStore, parse_message
from services.core import Core
from storage.results import StoreUnavailable, all_results

from .stopping import stop_tasks

log = logging.getLogger("examwire.live")

#: How long a watch outlives its last proctor (a reconnecting dashboard finds it warm).
LINGER_S = 10.0
#: Channels per SUBSCRIBE or UNSUBSCRIBE command (a resubscription after a loss names them all).
_SUBSCRIBE_CHUNK = 500
#: Live messages held for one watch while it (re)loads; past this they are dropped and the view loaded again.
_HELD_MAX = 10_000
#: Attempts new to a watch, read from Redis in one pipeline.
_FETCH_CHUNK = 500


class LiveSettings(Protocol):
    """The settings of presence and the proctor feed."""

    @property
    def presence_interval_ms(self) -> int: ...
    @property
    def presence_stale_ms(self) -> int: ...
    @property
    def proctor_update_ms(self) -> int: ...
    @property
    def max_watched_exams(self) -> int: ...


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


class WatchLimit(Exception):
    """The node watches ``limit`` exams already, each with a proctor: another exam is refused."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"this node watches its maximum of {limit} exams")
        self.limit = limit


class Feed:
    """The node's one pub/sub connection to the live channels of the watched exams (see the module docstring)."""

    def __init__(self, live: LiveStore) -> None:
        self._live = live
        self._watches: dict[bytes, Watch] = {}  # channel -> the watch it feeds
        # channel -> the watch it was subscribed for on the current connection (None: for no watch)
        self._sent: dict[bytes, Watch | None] = {}
        self._changed = asyncio.Event()

    def add(self, watch: "Watch") -> None:
        self._watches[watch.channel] = watch
        self._changed.set()

    def remove(self, watch: "Watch") -> None:
        if self._watches.get(watch.channel) is watch:
            del self._watches[watch.channel]
            self._changed.set()

    async def run(self) -> None:
        """Hold the subscriptions the watches need until cancelled; none (and no connection) while there are none."""
        backoff = 0.1
        lost = False  # logged once per loss, not on every retry
        while True:
            while not self._watches:
                self._changed.clear()
                await self._changed.wait()
            failed = False
            ps = self._live.subscribe(confirmations=True)
            reader: asyncio.Task[None] | None = None
            self._sent = {}
            try:
                self._changed.clear()
                await self._sync(ps)
                if lost:
                    log.info(json.dumps({"event": "live_feed_restored", "exams": len(self._watches)}))
                backoff, lost = 0.1, False
                reader = asyncio.create_task(self._read(ps), name="live-feed-reader")
                while self._watches:
                    waiter = asyncio.ensure_future(self._changed.wait())
                    try:
                        await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
                    if reader.done():
                        reader.result()  # raises what ended it
                        raise ConnectionError("the live feed stopped reading")
                    self._changed.clear()
                    await self._sync(ps)
            except (RedisError, OSError) as exc:
                failed = True
                if not lost:
                    log.warning(json.dumps({"event": "live_feed_lost", "exams": len(self._watches), "error": type(exc).__name__}))
                lost = True
            except Exception:  # a bug must not silence every proctor of the node: log, subscribe again
                failed = lost = True
                log.exception("live feed failed")
            finally:
                if reader is not None:
                    await stop_tasks([reader], what="live feed reader")
                self._sent = {}
                try:
                    await ps.aclose()
                except (RedisError, OSError):
                    pass
            if failed:  # every watch reloads once its channel is confirmed on the next connection
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _sync(self, ps: PubSub) -> None:
        """Bring the connection's subscriptions to what the watches need.

        New channels are subscribed before old ones are unsubscribed, and with
        no watch left nothing is unsubscribed (``run`` closes the connection):
        so the connection never drops to no subscription while it is read,
        which would make the client library's next SUBSCRIBE read a health
        check reply on the reader's socket.
        """
        if not self._watches:
            return
        for channel, watch in self._watches.items():
            if self._sent.get(channel, watch) is not watch:
                # subscribed for an earlier watch of the exam (stopped, then started again): this one loads now
                self._sent[channel] = watch
                watch.subscribed()
        new = [c for c in self._watches if c not in self._sent]
        for lo in range(0, len(new), _SUBSCRIBE_CHUNK):
            chunk = new[lo : lo + _SUBSCRIBE_CHUNK]
            await ps.subscribe(*chunk)  # each watch loads when Redis confirms its channel (``_read``)
            for channel in chunk:
                self._sent[channel] = self._watches.get(channel)
        gone = [c for c in self._sent if c not in self._watches]
        for lo in range(0, len(gone), _SUBSCRIBE_CHUNK):
            chunk = gone[lo : lo + _SUBSCRIBE_CHUNK]
            for channel in chunk:
                self._sent.pop(channel, None)
            await ps.unsubscribe(*chunk)

    async def _read(self, ps: PubSub) -> None:
        """Dispatch every message to the watch of its channel; a confirmed subscription (re)loads that watch."""
        watches = self._watches
        while True:
            msg = await ps.get_message(timeout=None)
            if msg is None:
                continue
            kind, channel = msg["type"], msg["channel"]
            if kind == "message":
                watch = watches.get(channel)
                if watch is not None:
                    message = parse_message(msg["data"])
                    if message is not None:
                        watch.receive(message)
            elif kind == "subscribe":
                watch = watches.get(channel)
                if watch is not None:
                    watch.subscribed()
                else:  # no longer wanted (or subscribed again by the client library after a reconnect): drop it
                    self._sent.setdefault(channel, None)
                    self._changed.set()


class Watch:
    """One exam's live view on this node (see the module docstring)."""

    def __init__(self, core: Core, settings: LiveSettings, exam_id: str) -> None:
        self.core = core
        self.settings = settings
        self.exam_id = exam_id
        self.channel = keys.live(exam_id).encode()
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
        self._subscribed = asyncio.Event()  # set by the feed when Redis confirms the subscription: (re)load
        self._held: list[dict[str, Any]] | None = []  # messages held while (re)loading; None: applied as they come
        self._unknown: dict[str, list[dict[str, Any]]] = {}  # attempts new to the view -> their messages, to fetch
        self._fetcher: asyncio.Task[None] | None = None

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

    def subscribed(self) -> None:
        """Redis confirmed the subscription (again): hold what arrives and (re)load the view."""
        if self._held is None:
            self._held = []
        self._subscribed.set()

    def receive(self, message: dict[str, Any]) -> None:
        """One live message from the feed: applied now, or held until the load under way has finished."""
        held = self._held
        if held is None:
            self.apply(message)
            return
        if len(held) >= _HELD_MAX:  # a load that takes this long: drop them, and read the view again after it
            held.clear()
            self._subscribed.set()
        held.append(message)

    async def run(self) -> None:
        """Load the view whenever the feed confirms the subscription, and flush it, until cancelled."""
        flusher = asyncio.create_task(self._flush_loop())
        reaper = asyncio.create_task(self._reap_loop())
        try:
            backoff = 0.1
            while True:
                await self._subscribed.wait()
                self._subscribed.clear()
                try:
                    await self._load()
                except asyncio.CancelledError:
                    raise
                except (RedisError, OSError, StoreUnavailable) as exc:
                    log.warning(json.dumps({"event": "watch_load_failed", "exam": self.exam_id, "error": type(exc).__name__}))
                except Exception:  # a bug must not silence every proctor of the exam: log, load again
                    log.exception("watch of %s failed", self.exam_id)
                else:
                    self.ready.set()
                    backoff = 0.1
                    continue
                self._subscribed.set()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        finally:
            fetcher = [self._fetcher] if self._fetcher is not None else []
            await stop_tasks([flusher, reaper, *fetcher], what=f"watch of {self.exam_id}")

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
                # an attempt this view has not seen yet (created after the load): fetch it, with the others
                # new meanwhile, in one pipeline (one task per watch, not one per attempt)
                self._unknown.setdefault(aid, []).append(message)
                if self._fetcher is None or self._fetcher.done():
                    self._fetcher = asyncio.get_running_loop().create_task(self._fetch_unknown())
            return
        if isinstance(message.get("c"), bool):
            row["connected"] = message["c"]
        event = message.get("e")
        if isinstance(event, dict):
            self._events.setdefault(aid, []).append(event)
        self._mark(aid)

    def _mark(self, aid: str) -> None:
        """``aid`` has changes to send: wake the flusher when it is due now, or when nothing else was waiting."""
        idle = not self._dirty
        if aid in self._dirty:  # folded into the update already waiting (services.metrics)
            self.core.metrics.proctor_coalesced()
        self._dirty.add(aid)
        if not self._wake.is_set() and (idle or self._next.get(aid, 0.0) <= asyncio.get_running_loop().time()):
            self._wake.set()  # the flusher runs once this batch of messages has been read

    async def _fetch_unknown(self) -> None:
        """Read the attempts new to the view from Redis, a pipeline of up to ``_FETCH_CHUNK`` at a time."""
        while self._unknown:
            batch = dict(itertools.islice(self._unknown.items(), _FETCH_CHUNK))
            for aid in batch:
                del self._unknown[aid]
            try:
                snaps = await self.core.attempts.load_many(list(batch))
                for aid, messages in batch.items():
                    snap = snaps.get(aid)
                    if snap is None or snap.attempt.exam_id != self.exam_id:
                        continue
                    row = await self._row(snap.attempt, snap.result)
                    if aid not in self.rows:
                        self._vers[aid] = snap.ver
                        self.rows[aid] = {**row, "connected": bool(messages[0].get("c"))}
                    for message in messages:
                        self.apply(message)
            except (RedisError, OSError, StoreUnavailable):
                pass  # the next reload of the view reads them

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
            self._wake.set()
        else:  # the first load: viewers get it as their snapshot
            self._sent = {aid: dict(row) for aid, row in rows.items()}
            self._loaded = True
        # what arrived during the load, in order (versions keep an older summary from overwriting a newer row);
        # when another load is due already, what arrives from now on waits for that one
        held = self._held or []
        self._held = [] if self._subscribed.is_set() else None
        for message in held:
            self.apply(message)

    async def _archived(self, ids: set[str]) -> list[dict[str, Any]]:
        """The stored records of ``ids``: one lookup each when few, else one pass over the exam's results."""
        store = self.core.results
        if len(ids) <= 20:
            found = [await store.get_result(aid) for aid in sorted(ids)]
            return [r for r in found if r is not None and r.get("exam") == self.exam_id]
        return [r async for r in all_results(store, self.exam_id) if r.get("attempt") in ids]

    async def _flush_loop(self) -> None:
        """Flush as soon as a change is due (woken by ``apply``), and every 50 ms while some are held back."""
        loop = asyncio.get_running_loop()
        gap = self.settings.proctor_update_ms / 1000
        tick = min(0.05, gap) if gap > 0 else 0.02
        while True:
            if self._dirty:  # rows held back: look again in ``tick``
                try:
                    async with asyncio.timeout(tick):  # not wait_for: it can lose a cancellation (handlers.stopping)
                        await self._wake.wait()
                except TimeoutError:
                    pass
            else:  # nothing to send: sleep until a change (an idle watch costs no timer)
                await self._wake.wait()
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
    """The exams watched from this node: one ``Watch`` each, started on demand, stopped when idle, fed by one ``Feed``."""

    def __init__(self, core: Core, settings: LiveSettings) -> None:
        self.core = core
        self.settings = settings
        self.feed = Feed(core.live)
        self._by_exam: dict[str, Watch] = {}
        self._retired: set[asyncio.Task[None]] = set()  # idle watches cancelled, until they have ended

    async def join(self, exam_id: str, viewer: Viewer, timeout: float = 10.0) -> Watch:
        """The exam's watch with ``viewer`` added, once its view is loaded.

        ``WatchLimit`` when the node watches ``max_watched_exams`` other exams,
        each with a proctor (a lingering watch without one makes room).
        """
        watch = self._by_exam.get(exam_id)
        if watch is None or watch.task is None or watch.task.done():
            if watch is not None:
                self._retire(exam_id, watch)
            self._make_room()
            watch = Watch(self.core, self.settings, exam_id)
            watch.task = asyncio.create_task(watch.run(), name=f"watch:{exam_id}")
            self._by_exam[exam_id] = watch
            self.feed.add(watch)
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

    def _make_room(self) -> None:
        """Room for one more watch: stop the longest idle one if the node is at its limit, else ``WatchLimit``."""
        limit = self.settings.max_watched_exams
        if len(self._by_exam) < limit:
            return
        idle = [(w.idle_since, exam_id) for exam_id, w in self._by_exam.items() if w.idle_since is not None]
        if not idle:
            raise WatchLimit(limit)
        _, exam_id = min(idle)
        self._retire(exam_id, self._by_exam[exam_id])

    def _retire(self, exam_id: str, watch: Watch) -> None:
        if self._by_exam.get(exam_id) is watch:
            del self._by_exam[exam_id]
        self.feed.remove(watch)
        if watch.task is not None:
            watch.task.cancel()
            self._retired.add(watch.task)

    async def run(self) -> None:
        """Run the feed; stop watches that have had no viewer for ``LINGER_S``; on cancel, stop them all."""
        feed = asyncio.create_task(self.feed.run(), name="live-feed")
        try:
            while True:
                await asyncio.sleep(LINGER_S / 2)
                now = asyncio.get_running_loop().time()
                for exam_id, watch in list(self._by_exam.items()):
                    if watch.idle_since is not None and now - watch.idle_since >= LINGER_S:
                        self._retire(exam_id, watch)
                # a cancellation can be lost (handlers.stopping): cancel again until they have ended
                self._retired = {t for t in self._retired if not t.done()}
                for task in self._retired:
                    task.cancel()
        finally:
            tasks = [feed] + [w.task for w in self._by_exam.values() if w.task is not None] + list(self._retired)
            await stop_tasks(tasks, what="watches")
            self._by_exam.clear()
            self._retired.clear()
