"""Prometheus metrics: the catalogue of every metric Examwire exports, and the objects that record them.

``CATALOGUE`` names each metric once: its name (``examwire_`` prefix,
``_total`` counters, ``_seconds`` and ``_bytes`` in base units), type, help,
labels and buckets, and which processes export it. Labels are low-cardinality
only, each with a bounded set of values (``LABEL_VALUES``): never an attempt,
a user or an exam.

Recording goes through a ``Metrics`` object: this base class records
nothing (metrics off, ``EXAMWIRE_METRICS=false``, and what a ``Core`` holds
unless given one), ``NodeMetrics`` records an engine node's into a
``CollectorRegistry`` its app owns, ``WorkerMetrics`` a Celery worker's.
Handlers, services and tasks call the same methods either way; none touches
``prometheus_client``.

Where the numbers come from:

* per-event counters and histograms are recorded where the event happens
  (``handlers.connection``, ``services.commits``, ``services.expiry``,
  ``handlers.live``, ``tasks.jobs``, ``storage.outbox``'s observer); the three
  updated on every answer are plain numbers of the event loop's
  (``_LoopCollector``), the rest ``prometheus_client``'s own objects;
* ``examwire_connections`` and ``examwire_attempts_live`` are counted when
  Prometheus scrapes, from the node's open connections (a custom collector):
  nothing per message;
* the deployment's shared facts (outbox, dead letters, worker heartbeat,
  sweeper lag, Redis memory) are read by ``refresh_shared`` every
  ``EXAMWIRE_METRICS_REFRESH_MS`` in one pipeline (``storage.health.read_shared``)
  and held as gauges: a scrape never waits for Redis, and however often nodes
  are scraped Redis sees one round trip per node per interval.

A worker runs Celery's prefork pool: its tasks run in child processes that
the pool forks and replaces. ``WorkerMetrics`` therefore uses
``prometheus_client``'s multiprocess mode: every process writes its values to
files in a private directory (``PROMETHEUS_MULTIPROC_DIR``, made empty by
``examwire worker`` for each run) and one exporter in the worker's main
process sums them on each scrape (``MultiProcessCollector``). One port per
worker container, whatever the concurrency and however often children are
replaced; counters of a replaced child keep counting. The alternative, one
exporter per child, would need a port per child and a scrape target that
moves whenever the pool replaces one.
"""

from __future__ import annotations

import asyncio
import logging
import math
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client import generate_latest, start_http_server
from prometheus_client import values as _values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from redis.asyncio import Redis

from storage import health
from storage.scripts import Scripts

log = logging.getLogger("examwire.metrics")

#: answer→ack: fit for 0.5 ms to 250 ms, with room above for the bad minutes
ACK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
REDIS_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LOOP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
EXPIRY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DRAIN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

ROLES = ("candidate", "proctor")
#: every request type of both protocols (``protocol.candidate``, ``protocol.proctor``); anything else is ``other``
REQUEST_TYPES = frozenset({"hello", "start", "answer", "flag", "goto", "fetch", "event", "submit", "ping",
                           "extend", "pause", "resume", "terminate", "message"})  # fmt: skip
ATTEMPT_STATES = ("ready", "active", "paused", "submitted", "expired", "terminated")
ENDED_STATES = ("submitted", "expired", "terminated")
ERROR_CODES = ("bad_frame", "unknown_type", "bad_request", "not_started", "not_active", "time_up", "unknown_question",
               "bad_value", "navigation", "rate_limited", "forbidden", "internal", "not_found")  # fmt: skip
CLOSE_CODES = ("1000", "1001", "1006", "1008", "1009", "1011", "1012", "1013", "4400", "4401", "4403", "4404", "4408",
               "4409", "other")  # fmt: skip

#: every label's possible values: bounded sets, so a label never holds an id
LABEL_VALUES: dict[str, tuple[str, ...]] = {
    "role": ROLES,
    "type": (*sorted(REQUEST_TYPES), "other"),
    "outcome": ("applied", "duplicate", "refused"),
    "code": ("", *ERROR_CODES, *CLOSE_CODES),  # a request's error code, or a close code
    "result": ("ok", *CLOSE_CODES),
    "state": ATTEMPT_STATES,
    "action": ("refused", "closed"),
    "script": tuple(name for name in Scripts.__dataclass_fields__ if name != "batcher"),  # the Lua scripts
}


@dataclass(frozen=True, slots=True)
class Spec:
    name: str  #: as exposed (counters with their ``_total``)
    kind: str  #: ``counter``, ``gauge`` or ``histogram``
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    #: who exports it: ``node`` (every engine node), ``worker`` (every worker's exporter), ``both``
    where: str = "node"
    #: ``event``: recorded as it happens; ``scrape``: counted at scrape time; ``shared``: refreshed from Redis
    source: str = "event"


CATALOGUE: tuple[Spec, ...] = (
    # -- connections (handlers/connection.py)
    Spec("examwire_connections", "gauge", "WebSocket connections open on this node, by role.", ("role",), source="scrape"),
    Spec("examwire_attempts_live", "gauge",
         "Attempts held by this node's candidate connections, by the attempt's state.", ("state",), source="scrape"),
    Spec("examwire_hellos_total", "counter",
         "Connections that ended their hello: result ok (welcome sent) or the close code that refused them.", ("role", "result")),
    Spec("examwire_closes_total", "counter", "Connections closed, by close code (1006: gone without a close frame).",
         ("role", "code")),
    Spec("examwire_requests_total", "counter",
         "Requests after hello, by type and outcome (applied, duplicate, refused with its error code).",
         ("type", "outcome", "code")),
    Spec("examwire_answer_ack_seconds", "histogram",
         "From an answer frame read off the socket to its ack written (applied or duplicate).", buckets=ACK_BUCKETS),
    Spec("examwire_bad_frames_total", "counter", "Frames that did not decode to a message (answered bad_frame).", ("role",)),
    Spec("examwire_frames_too_large_total", "counter",
         "Connections closed 1009: a frame over EXAMWIRE_MAX_FRAME_BYTES.", ("role",)),
    Spec("examwire_rate_limited_total", "counter",
         "Rate-limit hits: a request refused rate_limited, or a connection closed 1008 past its budget.", ("role", "action")),
    Spec("examwire_slow_clients_dropped_total", "counter",
         "Connections dropped (1013) because their inbox was full: a client that did not keep up.", ("role",)),
    Spec("examwire_proctor_updates_sent_total", "counter", "update messages delivered to proctor connections."),
    Spec("examwire_proctor_updates_coalesced_total", "counter",
         "Attempt changes folded into an update that was already waiting (EXAMWIRE_PROCTOR_UPDATE_MS)."),
    Spec("examwire_event_loop_lag_seconds", "histogram",
         "How late the node's event loop ran a timer (sampled every EXAMWIRE_LOOP_LAG_INTERVAL_MS).", buckets=LOOP_BUCKETS),
    # -- attempts (services/commits.py, services/expiry.py): engine nodes and workers (its sweeps) alike
    Spec("examwire_attempts_started_total", "counter", "Attempts started.", where="both"),
    Spec("examwire_attempts_ended_total", "counter", "Attempts ended, by final state.", ("state",), where="both"),
    Spec("examwire_commit_conflicts_total", "counter",
         "Commits that lost a race to another writer and were recomputed.", where="both"),
    Spec("examwire_redis_script_seconds", "histogram", "Redis script calls, call to reply (the Batcher's tick included).",
         ("script",), REDIS_BUCKETS, where="both"),
    Spec("examwire_expiry_lag_seconds", "histogram", "From an attempt's due time (deadline + grace) to its expiry commit.",
         buckets=EXPIRY_BUCKETS, where="both"),
    # -- the deployment's shared facts (storage.health.read_shared), refreshed by every node
    Spec("examwire_outbox_entries", "gauge", "Final records waiting for the results store.", source="shared"),
    Spec("examwire_outbox_pending", "gauge", "Outbox entries delivered to a worker and not yet acknowledged.",
         source="shared"),
    Spec("examwire_outbox_oldest_age_seconds", "gauge", "Age of the oldest outbox entry (0: empty).", source="shared"),
    Spec("examwire_outbox_dead_letters", "gauge", "Records the store refused for good (`examwire outbox dead`).",
         source="shared"),
    Spec("examwire_worker_heartbeat_age_seconds", "gauge",
         "Age of the newest worker heartbeat (+Inf: no worker has one).", source="shared"),
    Spec("examwire_sweeper_lag_seconds", "gauge", "How far the earliest due deadline is overdue (0: none).",
         source="shared"),
    Spec("examwire_attempts_scheduled", "gauge", "Attempts in the deadline set: started and not yet ended.",
         source="shared"),
    Spec("examwire_attempts_lost", "gauge", "Attempts found to have lost acknowledged work since Redis last lost its data.",
         source="shared"),
    Spec("examwire_redis_up", "gauge", "1 when this node's last read of the shared facts got an answer from Redis.",
         source="shared"),
    Spec("examwire_redis_used_memory_bytes", "gauge", "Redis used_memory.", source="shared"),
    Spec("examwire_redis_maxmemory_bytes", "gauge", "Redis maxmemory (0: no limit).", source="shared"),
    Spec("examwire_shared_refresh_timestamp_seconds", "gauge",
         "When this node last read the shared facts successfully (Unix time).", source="shared"),
    # -- a worker's outbox drain (tasks/jobs.py, storage/outbox.py)
    Spec("examwire_worker_records_written_total", "counter", "Final records written to the results store.", where="worker"),
    Spec("examwire_worker_records_retried_total", "counter",
         "Outbox entries delivered again: after a failed write, or claimed from a dead consumer.", where="worker"),
    Spec("examwire_worker_records_dead_lettered_total", "counter", "Outbox entries moved to the dead letters.",
         where="worker"),
    Spec("examwire_worker_store_unavailable_total", "counter", "Drains that found the results store unavailable.",
         where="worker"),
    Spec("examwire_worker_store_write_seconds", "histogram", "One write of a batch of records to the results store.",
         buckets=STORE_BUCKETS, where="worker"),
    Spec("examwire_worker_drain_seconds", "histogram", "One examwire.drain task.", buckets=DRAIN_BUCKETS, where="worker"),
)  # fmt: skip

BY_NAME = {spec.name: spec for spec in CATALOGUE}


class Tracked(Protocol):
    """An open connection, as the scrape-time collector reads it (``handlers.connection.Connection``)."""

    role: str

    def attempt_state(self) -> str | None: ...


class Metrics:
    """Records nothing. The base of ``NodeMetrics`` and ``WorkerMetrics``, and the object used with metrics off.

    Every recording method of either is here, so callers never ask which one
    they hold. ``enabled`` lets a hot path skip even the call.
    """

    enabled = False

    # connections
    def track(self, conn: Tracked) -> None: ...
    def untrack(self, conn: Tracked) -> None: ...
    def hello(self, role: str, result: str) -> None: ...
    def closed(self, role: str, code: int | None) -> None: ...
    def request(self, kind: str, outcome: str, code: str = "") -> None: ...
    def answer_acked(self, seconds: float, duplicate: bool = False) -> None: ...
    def bad_frame(self, role: str) -> None: ...
    def frame_too_large(self, role: str) -> None: ...
    def rate_limited(self, role: str, closed: bool) -> None: ...
    def slow_client(self, role: str) -> None: ...
    def proctor_updates(self, count: int) -> None: ...
    def proctor_coalesced(self, count: int = 1) -> None: ...
    def loop_lag(self, seconds: float) -> None: ...
    # attempts
    def attempt_started(self) -> None: ...
    def attempt_ended(self, state: str) -> None: ...
    def commit_conflict(self) -> None: ...
    def script_call(self, script: str, seconds: float) -> None: ...
    def expired(self, lag_s: float) -> None: ...
    # shared facts
    def shared(self, facts: health.Shared) -> None: ...
    def redis_down(self) -> None: ...
    # the worker's drain
    def drained(self, written: int, retried: int) -> None: ...
    def store_write(self, seconds: float, records: int) -> None: ...
    def dead_lettered(self, count: int) -> None: ...
    def store_unavailable(self) -> None: ...
    def drain_took(self, seconds: float) -> None: ...

    def render(self) -> tuple[bytes, str]:
        """The text exposition of everything recorded, and its content type."""
        return b"", CONTENT_TYPE_LATEST


def _make(spec: Spec, registry: CollectorRegistry | None) -> Any:
    kinds = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}
    kw: dict[str, Any] = {"registry": registry}
    if spec.buckets:
        kw["buckets"] = spec.buckets
    name = spec.name[: -len("_total")] if spec.kind == "counter" else spec.name
    return kinds[spec.kind](name, spec.help, spec.labels, **kw)


class _Recorder(Metrics):
    """The metrics of ``where`` (plus ``both``), created from the catalogue into ``registry`` (but those in ``own``)."""

    enabled = True

    def __init__(self, where: str, registry: CollectorRegistry | None, own: frozenset[str] = frozenset()) -> None:
        self.m = {s.name: _make(s, registry) for s in CATALOGUE
                  if s.where in (where, "both") and s.source != "scrape" and s.name not in own}  # fmt: skip
        self._started = self.m["examwire_attempts_started_total"]
        self._ended = {s: self.m["examwire_attempts_ended_total"].labels(s) for s in ENDED_STATES}
        self._conflicts = self.m["examwire_commit_conflicts_total"]
        self._scripts: dict[str, Any] = {}
        self._expiry = self.m["examwire_expiry_lag_seconds"]

    def attempt_started(self) -> None:
        self._started.inc()

    def attempt_ended(self, state: str) -> None:
        child = self._ended.get(state)
        if child is not None:
            child.inc()

    def commit_conflict(self) -> None:
        self._conflicts.inc()

    def script_call(self, script: str, seconds: float) -> None:
        child = self._scripts.get(script)
        if child is None:
            if script not in LABEL_VALUES["script"]:
                return
            child = self._scripts[script] = self.m["examwire_redis_script_seconds"].labels(script)
        child.observe(seconds)

    def expired(self, lag_s: float) -> None:
        self._expiry.observe(max(0.0, lag_s))


class _LoopHistogram:
    """A histogram only the event loop's thread touches: an observation is a bisect and two additions, no lock."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, int]]:
        out, total = [], 0
        for bound, n in zip((*self.bounds, math.inf), self.counts):
            total += n
            out.append(("+Inf" if bound == math.inf else repr(float(bound)), total))
        return out


class _LoopCollector:
    """The answer path's metrics of one node, kept in plain numbers by the loop and turned into families when scraped.

    ``prometheus_client``'s own counters and histograms take a lock per
    update (per bucket, for a histogram): about 0.5 µs each, three or four per
    answer. These three are updated on every answer, always from the event
    loop's thread, and read on it too (``/metrics`` on the main port, or the
    listener of ``examwire.exporter``, both on the loop): so a dict and a list
    of integers do, at a fifth of the cost.
    """

    NAMES = frozenset({"examwire_requests_total", "examwire_answer_ack_seconds", "examwire_redis_script_seconds"})

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.ack = _LoopHistogram(BY_NAME["examwire_answer_ack_seconds"].buckets)
        self.scripts: dict[str, _LoopHistogram] = {}

    def describe(self) -> Iterable[Any]:
        return self.collect()

    def collect(self) -> Iterable[Any]:
        spec = BY_NAME["examwire_requests_total"]
        requests = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
        for labels, n in list(self.requests.items()):
            requests.add_metric(list(labels), n)
        yield requests
        spec = BY_NAME["examwire_answer_ack_seconds"]
        ack = HistogramMetricFamily(spec.name, spec.help)
        ack.add_metric([], self.ack.buckets(), self.ack.sum)
        yield ack
        spec = BY_NAME["examwire_redis_script_seconds"]
        scripts = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
        for name, hist in list(self.scripts.items()):
            scripts.add_metric([name], hist.buckets(), hist.sum)
        yield scripts


_ANSWER_OK = ("answer", "applied", "")
_ANSWER_DUP = ("answer", "duplicate", "")


class NodeMetrics(_Recorder):
    """An engine node's metrics, in ``registry``: a fresh one of its own unless given (never the module-global
    ``prometheus_client.REGISTRY``). Each app's lifespan builds one (``examwire.app``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = CollectorRegistry() if registry is None else registry
        super().__init__("node", registry, own=_LoopCollector.NAMES)
        self.registry = registry
        self._open: set[Tracked] = set()
        registry.register(_LiveCollector(self._open))
        self._loop = loop = _LoopCollector()
        registry.register(loop)
        self._requests = loop.requests
        self._ack = loop.ack
        self._script_hists = loop.scripts
        ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        m = self.m
        self._hellos: dict[tuple[str, str], Any] = {}
        self._closes: dict[tuple[str, str], Any] = {}
        self._bad = {r: m["examwire_bad_frames_total"].labels(r) for r in ROLES}
        self._too_large = {r: m["examwire_frames_too_large_total"].labels(r) for r in ROLES}
        self._limited = {(r, a): m["examwire_rate_limited_total"].labels(r, a) for r in ROLES for a in ("refused", "closed")}
        self._slow = {r: m["examwire_slow_clients_dropped_total"].labels(r) for r in ROLES}
        self._updates = m["examwire_proctor_updates_sent_total"]
        self._coalesced = m["examwire_proctor_updates_coalesced_total"]
        self._lag = m["examwire_event_loop_lag_seconds"]
        for role in ROLES:
            self._hello(role, "ok")
        for key in (_ANSWER_OK, _ANSWER_DUP, ("start", "applied", ""), ("submit", "applied", "")):
            self._requests[key] = 0
        self._script_hists["commit"] = _LoopHistogram(BY_NAME["examwire_redis_script_seconds"].buckets)
        self._shared_gauges = {name: m[name] for name, spec in BY_NAME.items() if spec.source == "shared"}
        self._shared_gauges["examwire_worker_heartbeat_age_seconds"].set(math.inf)  # until the first read says otherwise

    # -- connections
    def track(self, conn: Tracked) -> None:
        self._open.add(conn)

    def untrack(self, conn: Tracked) -> None:
        self._open.discard(conn)

    def _hello(self, role: str, result: str) -> Any:
        child = self._hellos.get((role, result))
        if child is None:
            child = self._hellos[(role, result)] = self.m["examwire_hellos_total"].labels(role, result)
        return child

    def hello(self, role: str, result: str) -> None:
        self._hello(role, result if result == "ok" or result in CLOSE_CODES else "other").inc()

    def closed(self, role: str, code: int | None) -> None:
        label = "other" if code is None else str(code)  # None: cancelled (the node stopping)
        if label not in CLOSE_CODES:
            label = "other"
        child = self._closes.get((role, label))
        if child is None:
            child = self._closes[(role, label)] = self.m["examwire_closes_total"].labels(role, label)
        child.inc()

    def request(self, kind: str, outcome: str, code: str = "") -> None:
        """``kind``: the message's ``t`` (any other than ``REQUEST_TYPES`` counts as ``other``)."""
        if kind not in REQUEST_TYPES:
            kind = "other"
        if code and code not in ERROR_CODES:
            code = "internal"
        key = (kind, outcome if outcome in ("applied", "duplicate") else "refused", code)
        requests = self._requests
        requests[key] = requests.get(key, 0) + 1

    def script_call(self, script: str, seconds: float) -> None:
        hist = self._script_hists.get(script)
        if hist is None:
            if script not in LABEL_VALUES["script"]:
                return
            hist = self._script_hists[script] = _LoopHistogram(BY_NAME["examwire_redis_script_seconds"].buckets)
        hist.observe(seconds)

    def answer_acked(self, seconds: float, duplicate: bool = False) -> None:
        """An answer's ack is written: its latency, and the request counted (``applied`` or ``duplicate``)."""
        self._ack.observe(seconds)
        self._requests[_ANSWER_DUP if duplicate else _ANSWER_OK] += 1

    def bad_frame(self, role: str) -> None:
        self._bad[role].inc()

    def frame_too_large(self, role: str) -> None:
        self._too_large[role].inc()

    def rate_limited(self, role: str, closed: bool) -> None:
        self._limited[(role, "closed" if closed else "refused")].inc()

    def slow_client(self, role: str) -> None:
        self._slow[role].inc()

    def proctor_updates(self, count: int) -> None:
        self._updates.inc(count)

    def proctor_coalesced(self, count: int = 1) -> None:
        self._coalesced.inc(count)

    def loop_lag(self, seconds: float) -> None:
        self._lag.observe(max(0.0, seconds))

    # -- shared facts
    def shared(self, facts: health.Shared) -> None:
        p, g = facts.persistence, self._shared_gauges
        g["examwire_outbox_entries"].set(p.outbox)
        g["examwire_outbox_pending"].set(p.pending)
        g["examwire_outbox_oldest_age_seconds"].set((p.oldest_age_ms or 0) / 1000)
        g["examwire_outbox_dead_letters"].set(p.dead)
        age = p.worker_age_ms
        g["examwire_worker_heartbeat_age_seconds"].set(math.inf if age is None else age / 1000)
        g["examwire_sweeper_lag_seconds"].set(facts.sweeper_lag_ms / 1000)
        g["examwire_attempts_scheduled"].set(facts.scheduled)
        g["examwire_attempts_lost"].set(p.lost)
        g["examwire_redis_up"].set(1)
        if facts.used_memory is not None:
            g["examwire_redis_used_memory_bytes"].set(facts.used_memory)
        if facts.maxmemory is not None:
            g["examwire_redis_maxmemory_bytes"].set(facts.maxmemory)
        g["examwire_shared_refresh_timestamp_seconds"].set(p.now_ms / 1000)

    def redis_down(self) -> None:
        self._shared_gauges["examwire_redis_up"].set(0)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _LiveCollector:
    """``examwire_connections`` and ``examwire_attempts_live``, counted from the open connections when scraped."""

    def __init__(self, open_: set[Tracked]) -> None:
        self._open = open_

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families({}, {})

    def collect(self) -> Iterable[GaugeMetricFamily]:
        roles = dict.fromkeys(ROLES, 0)
        states = dict.fromkeys(ATTEMPT_STATES, 0)
        for conn in list(self._open):  # a copy: the event loop may change the set meanwhile (a scrape thread)
            roles[conn.role] = roles.get(conn.role, 0) + 1
            state = conn.attempt_state()
            if state in states:
                states[state] += 1
        return self._families(roles, states)

    @staticmethod
    def _families(roles: dict[str, int], states: dict[str, int]) -> Iterator[GaugeMetricFamily]:
        for name, label, counts in (("examwire_connections", "role", roles), ("examwire_attempts_live", "state", states)):
            family = GaugeMetricFamily(name, BY_NAME[name].help, labels=[label])
            for value, n in counts.items():
                family.add_metric([value], n)
            yield family


class WorkerMetrics(_Recorder):
    """A Celery worker's metrics, in ``prometheus_client``'s multiprocess mode (see the module docstring).

    The values live in per-process files under ``PROMETHEUS_MULTIPROC_DIR``, not
    in a registry: the metrics are registered nowhere (registering them where
    the exporter's ``MultiProcessCollector`` reads would export them twice).
    ``prometheus_client`` picks its value class when it is first imported, so
    the directory must be in the environment before that (``examwire worker``
    sees to it); anything else is refused here.
    """

    def __init__(self) -> None:
        if not _values.ValueClass._multiprocess:
            raise RuntimeError("WorkerMetrics needs PROMETHEUS_MULTIPROC_DIR set before prometheus_client is imported")
        super().__init__("worker", None)
        m = self.m
        self._written = m["examwire_worker_records_written_total"]
        self._retried = m["examwire_worker_records_retried_total"]
        self._dead = m["examwire_worker_records_dead_lettered_total"]
        self._unavailable = m["examwire_worker_store_unavailable_total"]
        self._write = m["examwire_worker_store_write_seconds"]
        self._drain = m["examwire_worker_drain_seconds"]

    def drained(self, written: int, retried: int) -> None:
        if written:
            self._written.inc(written)
        if retried:
            self._retried.inc(retried)

    def store_write(self, seconds: float, records: int) -> None:
        self._write.observe(seconds)

    def dead_lettered(self, count: int) -> None:
        self._dead.inc(count)

    def store_unavailable(self) -> None:
        self._unavailable.inc()

    def drain_took(self, seconds: float) -> None:
        self._drain.observe(seconds)


def start_worker_exporter(host: str, port: int, path: str) -> Any:
    """Serve the sum of every process's files in ``path`` on ``host:port`` (a thread of the calling process).

    Returns the HTTP server (``shutdown()`` stops it). Raises ``OSError`` when the address is taken.
    """
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


async def refresh_shared(redis: Redis, metrics: Metrics, interval_s: float) -> None:
    """Read the deployment's shared facts every ``interval_s`` (one pipeline) into ``metrics``, until cancelled.

    Redis that does not answer sets ``examwire_redis_up`` to 0 and leaves the
    other gauges at their last values (``examwire_shared_refresh_timestamp_seconds``
    says how old they are); the node's Redis watch logs the outage.
    """
    while True:
        try:
            async with asyncio.timeout(max(1.0, interval_s)):
                facts = await health.read_shared(redis)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # unreachable, or a reply we did not expect: say so in the gauge, keep going
            if not health.connection_lost(exc) and not isinstance(exc, TimeoutError):
                log.warning('{"event":"metrics_refresh_failed","error":"%s"}', type(exc).__name__)
            metrics.redis_down()
        else:
            metrics.shared(facts)
        await asyncio.sleep(interval_s)


async def watch_loop_lag(metrics: Metrics, interval_s: float) -> None:
    """Sleep ``interval_s`` again and again; how much later than asked each wake-up came is the loop's lag."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        metrics.loop_lag(loop.time() - asked)
