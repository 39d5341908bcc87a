"""Helpers of the Locust harness (``loadtests/locustfile.py``) that need neither Locust nor gevent.

Kept apart so they can be read and unit-tested on their own: frame encoding
and checking, tokens (minted or read from a file), answer values by question
type, URLs, the synchronized-start instant, pacing and the answer phase, and
the harness's view of its own health (CPU, scheduling lag, run-queue wait,
collector pauses) that says when its figures are not the engine's. Only ``msgpack`` and ``PyJWT``
(both dependencies of the project) are imported; nothing from ``examwire``,
so the harness runs against any Examwire node from a venv that holds only
``.[load]``.

The harness does not use ``examwire.client`` (the project's protocol client):
that client is asyncio over ``websockets``, and a Locust user is a gevent
greenlet doing blocking reads and writes on a ``websocket-client`` socket,
timestamped at the socket. An asyncio loop inside each greenlet would block
gevent's hub while it runs, and the figures would then time the bridge, not
the engine.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
import msgpack

# WebSocket opcodes (RFC 6455), as websocket-client reports them
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8

ENCODINGS = ("msgpack", "json")
SYNC_GRID_S = 10.0  # --sync-start without --start-at: the next multiple of this many seconds ...
SYNC_MIN_LEAD_S = 3.0  # ... at least this long after spawning completed


class ProtocolError(Exception):
    """The server did something the protocol does not allow here (or refused a request)."""


class RequestRefused(ProtocolError):
    """An ``error`` reply to one of our requests."""

    def __init__(self, code: str, message: str, rid: int | None = None) -> None:
        super().__init__(f"error {code}: {message}" + (f" (id {rid})" if rid is not None else ""))
        self.code = code
        self.rid = rid


class UnexpectedClose(ProtocolError):
    """The server closed the connection (a close frame) when the client did not expect it."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"connection closed by server: {code}" + (f" {reason}" if reason else ""))
        self.code = code


class MalformedFrame(ProtocolError):
    """A frame that does not decode to a map with a string ``t``, or of the wrong frame type."""


# ------------------------------------------------------------------ frames


def encode(message: dict[str, Any], encoding: str) -> tuple[bytes | str, int]:
    """``(payload, opcode)`` of one message: a MessagePack binary frame or a JSON text frame."""
    if encoding == "msgpack":
        return msgpack.packb(message, use_bin_type=True), OPCODE_BINARY
    return json.dumps(message, separators=(",", ":")), OPCODE_TEXT


def decode(opcode: int, data: bytes | str, encoding: str) -> dict[str, Any]:
    """Decode one data frame; the server must answer in the frame type of our ``hello``."""
    want = OPCODE_BINARY if encoding == "msgpack" else OPCODE_TEXT
    if opcode != want:
        raise MalformedFrame(f"{'binary' if opcode == OPCODE_BINARY else 'text'} frame on a {encoding} connection")
    try:
        if encoding == "msgpack":
            obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
        else:
            obj = json.loads(data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:  # any decoder failure is the server's fault here
        raise MalformedFrame(f"frame does not decode as {encoding}: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise MalformedFrame(f"frame is not a map with a string 't': {str(obj)[:200]}")
    return obj


def close_code(data: bytes | None) -> tuple[int | None, str]:
    """Status code and reason of a close frame's payload."""
    if not data or len(data) < 2:
        return None, ""
    return int.from_bytes(data[:2], "big"), data[2:].decode("utf-8", "replace")


# ------------------------------------------------------------------ answers


def answer_value(question: dict[str, Any]) -> Any:
    """A valid value for a delivered question (``single`` and ``multiple`` use its first option)."""
    kind = question.get("type")
    options = question.get("options") or []
    if kind == "single":
        if not options:
            raise ProtocolError(f"single-choice question {question.get('id')!r} has no options")
        return options[0]["id"]
    if kind == "multiple":
        if not options:
            raise ProtocolError(f"multiple-choice question {question.get('id')!r} has no options")
        return [options[0]["id"]]
    if kind == "true_false":
        return True
    if kind == "numeric":
        return 1
    if kind == "text":
        return "answer"
    raise ProtocolError(f"question {question.get('id')!r} has unknown type {kind!r}")


# ------------------------------------------------------------------ URLs


def ws_base(host: str) -> str:
    """Locust's ``--host`` (``http://h:p`` or ``ws://h:p``, any path prefix kept) as a WebSocket base URL."""
    if not host:
        raise ValueError("no host: pass --host http://127.0.0.1:8000")
    parts = urlsplit(host if "://" in host else f"http://{host}")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"--host {host!r}: expected http(s):// or ws(s)://")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


# ------------------------------------------------------------------ tokens


def read_secret(secret_file: str | None) -> str | None:
    """The HS256 secret: ``--jwt-secret-file`` when given, else ``EXAMWIRE_JWT_SECRET``, else None."""
    if secret_file:
        value = Path(secret_file).expanduser().read_text().strip()
        if not value:
            raise ValueError(f"{secret_file} is empty")
        return value
    return os.environ.get("EXAMWIRE_JWT_SECRET") or None


def mint(secret: str, *, sub: str, role: str, exam: str, audience: str = "examwire", ttl_s: int = 4 * 3600) -> str:
    """An HS256 token like ``examwire token`` makes: ``sub``, ``role``, ``aud``, ``iat``, ``exp``, ``name``, ``exams``."""
    now = int(time.time())
    claims = {"sub": sub, "role": role, "aud": audience, "iat": now, "exp": now + ttl_s, "name": sub, "exams": [exam]}
    return jwt.encode(claims, secret, algorithm="HS256")


def token_subject(token: str) -> str:
    """The ``sub`` of a token, unverified (for logs and names only)."""
    try:
        return str(jwt.decode(token, options={"verify_signature": False}).get("sub", "?"))
    except jwt.PyJWTError:
        return "?"


def read_tokens(path: str, worker_index: int, workers: int) -> list[str]:
    """This process's share of a tokens file: lines ``worker_index``, ``worker_index + workers``, ...

    Blank lines and lines starting with ``#`` are skipped before sharing out,
    so every process of a run (``--processes`` or ``--worker``) takes tokens
    no other process takes.
    """
    lines = [line.strip() for line in Path(path).expanduser().read_text().splitlines()]
    tokens = [line for line in lines if line and not line.startswith("#")]
    workers = max(1, workers)
    return tokens[worker_index % workers :: workers]


def identity_prefix() -> str:
    """A prefix for minted ``sub``s unique to this process and run (called after any fork)."""
    return f"lt-{secrets.token_hex(4)}-{os.getpid()}"


# ------------------------------------------------------------------ synchronized start


def sync_instant(now: float, *, grid_s: float = SYNC_GRID_S, min_lead_s: float = SYNC_MIN_LEAD_S) -> float:
    """The first wall-clock multiple of ``grid_s`` at least ``min_lead_s`` after ``now`` (epoch seconds)."""
    return math.ceil((now + min_lead_s) / grid_s) * grid_s


# ------------------------------------------------------------------ pacing


ANSWER_PHASES = ("auto", "random", "aligned")


def pacing_wait(step_started: float | None, interval: float, now: float) -> float:
    """Constant pacing: the wait after a step so that steps start ``interval`` apart (0 when the step overran)."""
    if step_started is None:
        return 0.0
    return max(0.0, step_started + interval - now)


def phase_offset(mode: str, *, sync_start: bool, interval: float, rng: Any = None) -> float:
    """The extra wait, once, before a candidate's first answer: its phase within the answer interval.

    Locust starts ``floor(--spawn-rate)`` users at one instant every
    second, and constant pacing keeps each such group in step for the whole
    run: with ``aligned`` every group answers as one burst (and groups spawned
    a multiple of the interval apart burst together). ``random`` spreads the
    candidates uniformly over the interval, which is the load the answer rate
    describes. ``auto`` is ``aligned`` under ``--sync-start`` (everyone starts
    at one instant on purpose) and ``random`` otherwise.
    """
    if mode not in ANSWER_PHASES:
        raise ValueError(f"answer phase {mode!r}: expected one of {', '.join(ANSWER_PHASES)}")
    if mode == "auto":
        mode = "aligned" if sync_start else "random"
    if mode == "aligned" or interval <= 0:
        return 0.0
    return (rng or random).random() * interval


@dataclass
class Pending:
    """A request sent and not yet acknowledged: resent with its original ``id`` after a drop."""

    rid: int
    kind: str  # "answer", "goto", "start", "submit"
    message: dict[str, Any]
    sent_at: float  # time.perf_counter() of the last send
    qid: str | None = None
    value: Any = None
    expect_dup: bool | None = None  # set when resent: the ack must say dup exactly when rid <= welcome.last_id
    reported: bool = False  # already reported as failed (the connection broke before its ack)


# ------------------------------------------------------------------ the harness's own health

# Defaults of the documented settings (docs/load-testing.md, "How far to trust the harness")
HEALTH_CPU_WARN = 0.75  # fraction of one core the Locust process may use before its figures are suspect
HEALTH_LAG_WARN_MS = 10.0  # p99 of the process's scheduling lag (ms) above which they are suspect
HEALTH_WINDOW_S = 5.0  # length of one health window (s)
HEALTH_TICK_S = 0.02  # the lag probe's sleep: it measures how late a due timer actually runs


def system_cpu_times() -> tuple[float, float] | None:
    """``(busy, total)`` jiffies of every core since boot (Linux ``/proc/stat``); None elsewhere."""
    try:
        with open("/proc/stat") as fh:
            fields = [float(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return total - idle, total


def run_queue_wait_s() -> float | None:
    """Seconds the calling thread has spent runnable but waiting for a core (Linux schedstat); None elsewhere.

    Called from the thread that runs gevent's hub (every greenlet), this is
    the time the OS kept the whole harness waiting because other processes had
    the cores.
    """
    try:
        with open("/proc/thread-self/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def percentile(sorted_xs: list[float], q: float) -> float | None:
    """Nearest-rank percentile ``q`` (0-100) of an already sorted list; None when empty."""
    if not sorted_xs:
        return None
    k = max(0, min(len(sorted_xs) - 1, math.ceil(q / 100 * len(sorted_xs)) - 1))
    return sorted_xs[k]


@dataclass
class HealthWindow:
    """One window of the Locust process's own health: CPU used, and how late its timers fired."""

    start: float  # time.time() when the window opened
    seconds: float
    cpu: float  # CPU seconds / wall seconds: 1.0 is one core fully busy
    machine_busy: float | None  # fraction of all the machine's cores busy (every process), when known
    run_queue: float | None  # fraction of the window the process was runnable but waiting for a core, when known
    gc_ms: float  # time spent in the garbage collector (ms, total over the window)
    gc_max_ms: float  # its longest single pause
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    lag_max_ms: float | None
    samples: int
    reasons: list[str]

    @property
    def reliable(self) -> bool:
        return not self.reasons


def assess(cpu: float, lag_p99_ms: float | None, *, cpu_warn: float, lag_warn_ms: float) -> list[str]:
    """Why a window's figures are unreliable (empty: they are fine). A threshold of 0 or less is off."""
    reasons = []
    if cpu_warn > 0 and cpu >= cpu_warn:
        reasons.append(f"CPU {cpu:.0%} of a core (limit {cpu_warn:.0%})")
    if lag_warn_ms > 0 and lag_p99_ms is not None and lag_p99_ms >= lag_warn_ms:
        reasons.append(f"scheduling lag p99 {lag_p99_ms:.1f} ms (limit {lag_warn_ms:g} ms)")
    return reasons


class HealthMonitor:
    """The Locust process's own load, in windows: CPU use and scheduling lag, against two thresholds.

    Scheduling lag is how late a greenlet that is due to run actually runs:
    a timer set for ``HEALTH_TICK_S`` that fires ``lag`` later. A reply that
    arrives while the process is busy waits about that long before its
    candidate reads it, and every response time the harness reports includes
    that wait; CPU near a full core means the wait is growing. The lag samples
    are fed by a greenlet in the locustfile (``sample_lag``); this class only
    counts, so it is testable without gevent. Clocks are injectable.
    """

    def __init__(
        self,
        *,
        cpu_warn: float = HEALTH_CPU_WARN,
        lag_warn_ms: float = HEALTH_LAG_WARN_MS,
        window_s: float = HEALTH_WINDOW_S,
        clock: Any = time.perf_counter,
        cpu_clock: Any = time.process_time,
        wall_clock: Any = time.time,
        machine_clock: Any = system_cpu_times,
        run_queue_clock: Any = run_queue_wait_s,
    ) -> None:
        self.cpu_warn, self.lag_warn_ms, self.window_s = cpu_warn, lag_warn_ms, window_s
        self._clock, self._cpu_clock, self._wall, self._machine = clock, cpu_clock, wall_clock, machine_clock
        self._runq = run_queue_clock
        self.windows: list[HealthWindow] = []
        self.all_lag_ms: list[float] = []  # the run's lag samples (ms), at most max_samples of them
        self.max_samples = 200_000
        self._seen = 0
        self._rng = random.Random()
        self._open()

    def _open(self) -> None:
        self._t0, self._c0, self._w0, self._m0, self._q0 = self._clock(), self._cpu_clock(), self._wall(), self._machine(), self._runq()
        self._lag: list[float] = []
        self._gc_ms = self._gc_max_ms = 0.0

    def note_gc(self, ms: float) -> None:
        """One garbage-collector pause (fed from ``gc.callbacks``)."""
        self._gc_ms += ms
        self._gc_max_ms = max(self._gc_max_ms, ms)

    def sample_lag(self, lag_s: float) -> None:
        ms = max(0.0, lag_s) * 1000.0
        self._lag.append(ms)
        self._seen += 1
        if len(self.all_lag_ms) < self.max_samples:
            self.all_lag_ms.append(ms)
        else:  # a long run: keep a uniform sample of the whole run (reservoir)
            j = self._rng.randrange(self._seen)
            if j < self.max_samples:
                self.all_lag_ms[j] = ms

    def due(self) -> bool:
        return self._clock() - self._t0 >= self.window_s

    def close(self, *, min_seconds: float = 0.5) -> HealthWindow | None:
        """Close the current window (and open the next); None when it was too short to judge."""
        t1, c1, m1, q1 = self._clock(), self._cpu_clock(), self._machine(), self._runq()
        seconds = t1 - self._t0
        lag = sorted(self._lag)
        w0, c0, m0, q0, gc_ms, gc_max_ms = self._w0, self._c0, self._m0, self._q0, self._gc_ms, self._gc_max_ms
        self._open()
        if seconds < min_seconds:
            return None
        cpu = max(0.0, c1 - c0) / seconds
        machine = None
        if m0 is not None and m1 is not None and m1[1] > m0[1]:
            machine = max(0.0, min(1.0, (m1[0] - m0[0]) / (m1[1] - m0[1])))
        run_queue = None if q0 is None or q1 is None else max(0.0, q1 - q0) / seconds
        p99 = percentile(lag, 99)
        window = HealthWindow(
            start=w0,
            seconds=seconds,
            cpu=cpu,
            machine_busy=machine,
            run_queue=run_queue,
            gc_ms=gc_ms,
            gc_max_ms=gc_max_ms,
            lag_p50_ms=percentile(lag, 50),
            lag_p99_ms=p99,
            lag_max_ms=lag[-1] if lag else None,
            samples=len(lag),
            reasons=assess(cpu, p99, cpu_warn=self.cpu_warn, lag_warn_ms=self.lag_warn_ms),
        )
        self.windows.append(window)
        return window

    def summary(self) -> dict[str, Any]:
        """The whole run: windows judged and flagged, CPU (mean, max), lag percentiles over every sample."""
        ws = self.windows
        seconds = sum(w.seconds for w in ws)
        lag = sorted(self.all_lag_ms)
        flagged = [w for w in ws if not w.reliable]
        return {
            "windows": len(ws),
            "unreliable_windows": len(flagged),
            "unreliable_seconds": round(sum(w.seconds for w in flagged), 1),
            "seconds": round(seconds, 1),
            "cpu_mean": round(sum(w.cpu * w.seconds for w in ws) / seconds, 3) if seconds else None,
            "cpu_max": round(max(w.cpu for w in ws), 3) if ws else None,
            "machine_busy_max": max((round(w.machine_busy, 3) for w in ws if w.machine_busy is not None), default=None),
            "run_queue_ms": round(sum(w.run_queue * w.seconds for w in ws if w.run_queue is not None) * 1000, 1),
            "gc_ms": round(sum(w.gc_ms for w in ws), 1),
            "gc_max_ms": round(max((w.gc_max_ms for w in ws), default=0.0), 1),
            "lag_p50_ms": _round(percentile(lag, 50)),
            "lag_p99_ms": _round(percentile(lag, 99)),
            "lag_max_ms": _round(lag[-1] if lag else None),
            "cpu_windows": sum(1 for w in flagged if any(r.startswith("CPU") for r in w.reasons)),
            "lag_windows": sum(1 for w in flagged if any(r.startswith("scheduling lag") for r in w.reasons)),
            "window_s": self.window_s,
            "cpu_warn": self.cpu_warn,
            "lag_warn_ms": self.lag_warn_ms,
        }


RUN_QUEUE_BUSY = 0.01  # waiting for a core 1 % of the window (50 ms in 5 s) is enough to explain a lag p99 of 10 ms


def advice(w: HealthWindow, *, cpu_warn: float) -> str:
    """The likely cause of an unreliable window, and what to do: from the process's CPU, its run-queue wait
    (other processes holding the cores), its garbage-collector pauses and the machine's CPU."""
    if cpu_warn > 0 and w.cpu >= cpu_warn:
        return "this Locust process is CPU-bound: spread the users over more processes (--processes N) or machines"
    lag = w.lag_p99_ms or 0.0
    if w.gc_max_ms and w.gc_max_ms >= 0.5 * lag:
        return f"garbage-collector pauses (longest {w.gc_max_ms:.0f} ms): fewer users per process"
    if (w.run_queue is not None and w.run_queue >= RUN_QUEUE_BUSY) or (w.machine_busy or 0.0) >= 0.9:
        busy = "" if w.machine_busy is None else f" (machine {w.machine_busy:.0%} busy)"
        wait = "" if w.run_queue is None else f" {w.run_queue * w.seconds * 1000:.0f} ms of the window"
        return (
            f"the OS kept the harness waiting for a core{wait}{busy}: other processes (the engine, if it runs here) "
            "hold the CPUs; run the harness on its own machine or at a quieter moment"
        )
    return "the process stalled without being busy or kept off a core (a blocking call?)"


def health_verdict(s: dict[str, Any]) -> tuple[bool, str]:
    """``(reliable, one line)`` for a ``HealthMonitor.summary()`` (also as forwarded by a worker)."""
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} ms"

    cpu = "-" if s.get("cpu_mean") is None else f"{s['cpu_mean']:.0%} mean, {s['cpu_max']:.0%} max"
    line = (
        f"CPU {cpu} of a core; scheduling lag p50 {ms(s.get('lag_p50_ms'))}, p99 {ms(s.get('lag_p99_ms'))}, "
        f"max {ms(s.get('lag_max_ms'))}; waited {s.get('run_queue_ms', 0):.0f} ms for a core; "
        f"GC {s.get('gc_ms', 0):.0f} ms (longest {s.get('gc_max_ms', 0):.0f} ms); "
        f"{s.get('unreliable_windows', 0)} of {s.get('windows', 0)} {s.get('window_s', HEALTH_WINDOW_S):g}-s windows "
        f"over the limits (CPU {s.get('cpu_warn', HEALTH_CPU_WARN):.0%}, lag p99 {s.get('lag_warn_ms', HEALTH_LAG_WARN_MS):g} ms)"
    )
    return not s.get("unreliable_windows"), line


def _round(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(v, nd)


class LatencySamples:
    """Exact response times (ms) of a few request names, for a sub-millisecond summary at the end.

    Locust's own percentiles round to whole milliseconds below 100 ms (and to
    10 ms above), which hides the difference between 0.5 ms and 1.4 ms. At
    most ``cap`` samples per name are kept (reservoir sampling past that).
    """

    def __init__(self, names: tuple[str, ...], cap: int = 200_000, rng: Any = None) -> None:
        self.names = names
        self.cap = cap
        self.seen: dict[str, int] = {n: 0 for n in names}
        self.samples: dict[str, list[float]] = {n: [] for n in names}
        self._rng = rng or random.Random()

    def add(self, name: str, ms: float) -> None:
        xs = self.samples.get(name)
        if xs is None:
            return
        self.seen[name] += 1
        if len(xs) < self.cap:
            xs.append(ms)
        else:
            j = self._rng.randrange(self.seen[name])
            if j < self.cap:
                xs[j] = ms

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        out: dict[str, dict[str, float | int | None]] = {}
        for name in self.names:
            xs = sorted(self.samples[name])
            out[name] = {"n": self.seen[name], **{f"p{q:g}": _round(percentile(xs, q), 3) for q in (50, 90, 99)}}
        return out
