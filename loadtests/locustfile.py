"""Locust load test of an Examwire engine: candidates taking the exam, and a proctor watching.

Run it from the Locust venv (``.venv-locust``, ``pip install -e '.[load]'``),
never from the test venv::

    EXAMWIRE_JWT_SECRET=... .venv-locust/bin/locust -f loadtests/locustfile.py \\
        --headless -u 200 -r 20 -t 5m --host http://127.0.0.1:8000

``docs/load-testing.md`` describes every option, the request types and
the distributed modes. In short:

``ExamCandidate`` gets an identity (a token minted with the engine's HS256
secret, or the next line of ``--tokens-file``), connects to
``/v1/exams/{exam}/attempt``, says ``hello``, sends ``start`` (at one shared
instant with ``--sync-start``), then, once every ``--answer-interval``
seconds (constant pacing, each candidate at its own random phase within the
interval unless ``--answer-phase aligned``), moves to the next question of its own order
(``goto``) and answers it with a valid value for its type. With probability
``--drop-rate`` per answer it kills the socket right after sending the
answer, reconnects, checks that ``welcome`` kept every acknowledged answer,
and resends every unacknowledged request with its original ``id`` (the ack
must say ``dup: true`` exactly when the id is at most ``welcome.last_id``).
After the last question it submits, waits for the ``result``, and starts over
with a fresh identity (``--after-submit new``, the default) or stops
(``--after-submit stop``).

``Proctor`` (``--proctors``, default one per run) watches the exam, counts
``update``s, pings every ``--proctor-ping-interval`` seconds and, with
``--proctor-extend``, extends every attempt by 1 s at each ping.

Every step is reported as request type ``WS``; any protocol error (an
``error`` reply, an unexpected close, a timeout, a malformed frame) fails the
step it happened in.

Every process also watches itself (``HealthMonitor``): its CPU use and its
scheduling lag (how late a due greenlet runs, which every response time it
measures includes). It warns when either passes ``--harness-cpu-warn`` /
``--harness-lag-warn-ms`` and prints a verdict, with exact answer and goto
percentiles, after Locust's final tables.
"""

from __future__ import annotations

import gc
import logging
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import gevent
import websocket
from gevent.event import Event
from gevent.queue import Empty, Queue
from locust import User, constant, events, task
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

try:  # Locust puts this file's directory on sys.path while importing it
    import locust_support as ls
except ImportError:  # imported as part of the ``loadtests`` package
    from loadtests import locust_support as ls

log = logging.getLogger("examwire.locust")

REQUEST_TYPE = "WS"
# request names (the Locust statistics rows)
CONNECT = "connect"
HELLO = "hello→welcome"
START = "start→first batch"
GOTO = "goto→ack"
ANSWER = "answer→ack"
PREFETCH = "prefetch delivery"
RECONNECT = "reconnect→welcome"
SUBMIT = "submit→result"
SYNC = "sync-start barrier"
P_SNAPSHOT = "proctor hello→snapshot"
P_UPDATE = "proctor update"
P_PING = "proctor ping→pong"
P_EXTEND = "proctor extend→ack"

NAME_OF_KIND = {"answer": ANSWER, "goto": GOTO, "start": START, "submit": SUBMIT}
FINAL_STATES = {"submitted", "expired", "terminated"}
MAX_FAILURES_PER_IDENTITY = 5
SYNC_MESSAGE = "examwire_sync_start"  # master -> workers: {"at": epoch seconds}


# ------------------------------------------------------------------ command line


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    g = parser  # Locust's own parser: these show in --help and in the web UI's start form
    g.add_argument("--exam", default="demo", help="exam id (default: demo)")
    g.add_argument("--encoding", choices=ls.ENCODINGS, default="msgpack", help="frame encoding (default: msgpack)")
    g.add_argument("--answer-interval", type=float, default=5.0, help="seconds between a candidate's answers (constant pacing; default 5)")
    g.add_argument(
        "--answer-phase",
        choices=ls.ANSWER_PHASES,
        default="auto",
        help="when in its interval a candidate answers: random (each its own phase, so answers are spread evenly), "
        "aligned (in step with the users spawned with it: bursts of --spawn-rate candidates), "
        "auto (default: aligned with --sync-start, else random)",
    )
    g.add_argument(
        "--drop-rate", type=float, default=0.02, help="probability per answer of dropping the socket and resuming (default 0.02)"
    )
    g.add_argument(
        "--ws-timeout", type=float, default=10.0, help="seconds to wait for any expected reply before failing the step (default 10)"
    )
    g.add_argument("--jwt-secret-file", default="", help="file holding the engine's HS256 secret (else $EXAMWIRE_JWT_SECRET)")
    g.add_argument("--jwt-audience", default="examwire", help="aud claim of minted tokens (default: examwire)")
    g.add_argument(
        "--tokens-file",
        default="",
        help="pre-minted candidate tokens, one per line, each used for one attempt (shared out across processes)",
    )
    g.add_argument(
        "--proctor-token", default="", is_secret=True, env_var="EXAMWIRE_PROCTOR_TOKEN", help="proctor token (else minted with the secret)"
    )
    g.add_argument("--answers-per-attempt", type=int, default=0, help="submit after this many answers (default 0: every question)")
    g.add_argument(
        "--after-submit",
        choices=("new", "stop"),
        default="new",
        help="after the result: start a fresh attempt with a new identity (default) or stop the user",
    )
    g.add_argument(
        "--sync-start", action="store_true", default=False, help="every candidate waits at a barrier and sends start at one instant"
    )
    g.add_argument(
        "--start-at",
        type=float,
        default=0.0,
        help="the sync-start instant as Unix epoch seconds (implies --sync-start; default: announced by the master)",
    )
    g.add_argument(
        "--sync-timeout",
        type=float,
        default=120.0,
        help="longest a candidate waits for the sync-start instant to be announced (default 120)",
    )
    g.add_argument("--proctors", type=int, default=1, help="proctor users per run (fixed_count; 0 for none; default 1)")
    g.add_argument("--proctor-ping-interval", type=float, default=30.0, help="seconds between a proctor's pings (default 30)")
    g.add_argument(
        "--proctor-extend",
        action="store_true",
        default=False,
        help="at each ping the proctor also extends every attempt by 1 s (extend all:true)",
    )
    g.add_argument(
        "--harness-cpu-warn",
        type=float,
        default=ls.HEALTH_CPU_WARN,
        env_var="EXAMWIRE_LOCUST_CPU_WARN",
        help=f"warn when a Locust process uses this fraction of one core over a health window (default {ls.HEALTH_CPU_WARN:g}; 0: off)",
    )
    g.add_argument(
        "--harness-lag-warn-ms",
        type=float,
        default=ls.HEALTH_LAG_WARN_MS,
        env_var="EXAMWIRE_LOCUST_LAG_WARN_MS",
        help=f"warn when a Locust process's scheduling lag p99 over a health window reaches this (default {ls.HEALTH_LAG_WARN_MS:g} ms; 0: off)",
    )
    g.add_argument(
        "--harness-window",
        type=float,
        default=ls.HEALTH_WINDOW_S,
        env_var="EXAMWIRE_LOCUST_HEALTH_WINDOW",
        help=f"seconds per health window (default {ls.HEALTH_WINDOW_S:g})",
    )


@dataclass(frozen=True)
class Options:
    exam: str = "demo"
    encoding: str = "msgpack"
    answer_interval: float = 5.0
    answer_phase: str = "auto"
    drop_rate: float = 0.02
    ws_timeout: float = 10.0
    jwt_secret_file: str = ""
    jwt_audience: str = "examwire"
    tokens_file: str = ""
    proctor_token: str = ""
    answers_per_attempt: int = 0
    after_submit: str = "new"
    sync_start: bool = False
    start_at: float = 0.0
    sync_timeout: float = 120.0
    proctors: int = 1
    proctor_ping_interval: float = 30.0
    proctor_extend: bool = False
    harness_cpu_warn: float = ls.HEALTH_CPU_WARN
    harness_lag_warn_ms: float = ls.HEALTH_LAG_WARN_MS
    harness_window: float = ls.HEALTH_WINDOW_S

    @classmethod
    def of(cls, environment: Any) -> Options:
        """Read from ``parsed_options`` (on a worker these are the master's, forwarded with the spawn)."""
        parsed = getattr(environment, "parsed_options", None)
        values = {name: getattr(parsed, name) for name in cls.__dataclass_fields__ if parsed is not None and hasattr(parsed, name)}
        opts = cls(**values)
        if opts.start_at:
            opts = cls(**{**values, "sync_start": True})
        return opts


# ------------------------------------------------------------------ per-process state


class _Barrier:
    """The synchronized start of one test run, in this process."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.at: float | None = None  # epoch seconds
        self.announced = Event()
        self.on_time = self.late = self.timed_out = 0

    def announce(self, at: float) -> None:
        if self.at is None:
            self.at = at
            self.announced.set()


BARRIER = _Barrier()


class _Identities:
    """Candidate identities of this process: minted ``sub``s, or this process's share of ``--tokens-file``."""

    def __init__(self) -> None:
        self.prefix: str | None = None
        self.serial = 0
        self.tokens: list[str] | None = None
        self.exhausted_logged = False

    def secret(self, opts: Options) -> str | None:
        return ls.read_secret(opts.jwt_secret_file)

    def next_candidate(self, environment: Any, opts: Options) -> tuple[str, str] | None:
        """``(token, sub)``, or None when the tokens file is used up. Raises ValueError when nothing can make tokens."""
        if opts.tokens_file:
            if self.tokens is None:
                runner = environment.runner
                index = getattr(runner, "worker_index", 0) or 0
                workers = opts_expect_workers(environment) if isinstance(runner, WorkerRunner) else 1
                self.tokens = ls.read_tokens(opts.tokens_file, index, workers)
                self.tokens.reverse()
                log.info("tokens file %s: %d tokens for this process (index %d of %d)", opts.tokens_file, len(self.tokens), index, workers)
            if not self.tokens:
                if not self.exhausted_logged:
                    self.exhausted_logged = True
                    log.warning("tokens file %s is used up in this process: candidates stop", opts.tokens_file)
                return None
            token = self.tokens.pop()
            return token, ls.token_subject(token)
        secret = self.secret(opts)
        if secret is None:
            raise ValueError("no token source: set EXAMWIRE_JWT_SECRET, --jwt-secret-file or --tokens-file")
        return self._mint(secret, opts, "candidate")

    def proctor(self, opts: Options) -> str:
        if opts.proctor_token:
            return opts.proctor_token
        secret = self.secret(opts)
        if secret is None:
            raise ValueError("no proctor token: set --proctor-token, EXAMWIRE_JWT_SECRET or --jwt-secret-file")
        return self._mint(secret, opts, "proctor")[0]

    def _mint(self, secret: str, opts: Options, role: str) -> tuple[str, str]:
        if self.prefix is None:  # after any --processes fork, so every process differs
            self.prefix = ls.identity_prefix()
        self.serial += 1
        sub = f"{self.prefix}-{role[0]}{self.serial}"
        return ls.mint(secret, sub=sub, role=role, exam=opts.exam, audience=opts.jwt_audience), sub


IDENTITIES = _Identities()


def opts_expect_workers(environment: Any) -> int:
    parsed = environment.parsed_options
    return max(1, int(getattr(parsed, "expect_workers", 1) or 1))


# ------------------------------------------------------------------ event hooks


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    opts = Options.of(environment)
    # the proctor count decides dispatch, which the master (or the lone local runner) does
    if opts.proctors <= 0:
        environment.user_classes[:] = [u for u in environment.user_classes if u is not Proctor]
    else:
        Proctor.fixed_count = opts.proctors
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        # workers learn the instant from the master (their --sync-start comes with the spawn message)
        runner.register_message(SYNC_MESSAGE, _on_sync_message)


def _on_sync_message(environment: Any, msg: Any, **_kw: Any) -> None:
    at = float(msg.data["at"])
    BARRIER.announce(at)
    log.info("sync-start: the master announced %s (in %.1f s)", _iso(at), at - time.time())


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kw: Any) -> None:
    BARRIER.reset()
    opts = Options.of(environment)
    if opts.start_at:
        BARRIER.announce(opts.start_at)
        if not isinstance(environment.runner, WorkerRunner):
            log.info("sync-start: every candidate sends start at %s (--start-at)", _iso(opts.start_at))
    if not isinstance(environment.runner, WorkerRunner):
        if opts.answer_phase == "aligned" or (opts.answer_phase == "auto" and opts.sync_start):
            log.info(
                "answers aligned (--answer-phase %s): candidates started together answer in step, one burst per interval; "
                "response times include the wait behind that burst",
                opts.answer_phase,
            )


@events.spawning_complete.add_listener
def _on_spawning_complete(user_count: int, **_kw: Any) -> None:
    """Master or local runner: every user is spawned, so announce the start instant (once per run)."""
    environment = _ENV.get("environment")
    if environment is None or isinstance(environment.runner, WorkerRunner):
        return
    opts = Options.of(environment)
    if not opts.sync_start or opts.start_at or BARRIER.at is not None:
        return
    at = ls.sync_instant(time.time())
    BARRIER.announce(at)
    if isinstance(environment.runner, MasterRunner):
        environment.runner.send_message(SYNC_MESSAGE, {"at": at})
    log.info("sync-start: %d users spawned; every candidate sends start at %s (in %.1f s)", user_count, _iso(at), at - time.time())


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_kw: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        return
    b = BARRIER
    if b.on_time or b.late or b.timed_out:
        log.info(
            "sync-start in this process: %d candidates started at the instant, %d late (not ready by then), %d never got the instant",
            b.on_time,
            b.late,
            b.timed_out,
        )


_ENV: dict[str, Any] = {}


@events.init.add_listener
def _keep_environment(environment: Any, **_kw: Any) -> None:
    _ENV["environment"] = environment


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


# ------------------------------------------------------------------ the harness's own health

HEALTH_REPORT_KEY = "examwire_harness"  # worker -> master, in the stats reports
WARN_EVERY_S = 30.0  # after the first warning, at most one log line per this many seconds (every window is counted)


class _Health:
    """This process's health monitor (CPU, scheduling lag) and exact answer/goto response times."""

    def __init__(self) -> None:
        self.monitor: ls.HealthMonitor | None = None
        self.greenlet: gevent.Greenlet | None = None
        self.latency = ls.LatencySamples((ANSWER, GOTO))
        self.stopped = False
        self.last_warning = -1e9
        self.suppressed = 0
        self.new_flags: list[str] = []  # flagged windows not yet forwarded to the master
        self.workers: dict[str, dict[str, Any]] = {}  # master: final summaries by worker
        self._gc_started = 0.0

    def start(self, opts: Options) -> None:
        self.stop()
        self.monitor = ls.HealthMonitor(cpu_warn=opts.harness_cpu_warn, lag_warn_ms=opts.harness_lag_warn_ms, window_s=opts.harness_window)
        self.latency = ls.LatencySamples((ANSWER, GOTO))
        self.stopped = False
        self.greenlet = gevent.spawn(self._loop, self.monitor)
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, _info: dict[str, Any]) -> None:
        """``gc.callbacks``: time every collection (a pause of every greenlet) into the current window."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self.monitor is not None and self._gc_started:
            self.monitor.note_gc((time.perf_counter() - self._gc_started) * 1000.0)
            self._gc_started = 0.0

    def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self.greenlet is not None:
            self.greenlet.kill(block=True)
            self.greenlet = None
            if self.monitor is not None:
                self._judge(self.monitor.close(min_seconds=1.0))
            self.stopped = True

    def _loop(self, monitor: ls.HealthMonitor) -> None:
        tick = ls.HEALTH_TICK_S
        while True:
            t0 = time.perf_counter()
            gevent.sleep(tick)
            monitor.sample_lag(time.perf_counter() - t0 - tick)
            if monitor.due():
                self._judge(monitor.close())

    def _judge(self, w: ls.HealthWindow | None) -> None:
        if w is None or w.reliable:
            return
        self.new_flags.append("; ".join(w.reasons))
        now = time.perf_counter()
        if now - self.last_warning < WARN_EVERY_S:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more such windows since the last warning)" if self.suppressed else ""
        self.last_warning, self.suppressed = now, 0
        machine = "" if w.machine_busy is None else f", machine {w.machine_busy:.0%} busy"
        if w.run_queue is not None:
            machine += f", waited {w.run_queue * w.seconds * 1000:.0f} ms for a core"
        if w.gc_ms:
            machine += f", GC {w.gc_ms:.0f} ms"
        log.warning(
            "harness overloaded for %.0f s: %s (its CPU %.0f%% of a core%s)%s; %s. Response times measured meanwhile "
            "include up to %.0f ms of the harness's own delay",
            w.seconds,
            "; ".join(w.reasons),
            w.cpu * 100,
            machine,
            more,
            ls.advice(w, cpu_warn=self.monitor.cpu_warn if self.monitor else 0.0),
            w.lag_max_ms or 0.0,
        )

    def summary(self) -> dict[str, Any] | None:
        if self.monitor is None:
            return None
        return {**self.monitor.summary(), "latency": self.latency.summary()}


HEALTH = _Health()


@events.test_start.add_listener
def _start_health(environment: Any, **_kw: Any) -> None:
    if not isinstance(environment.runner, MasterRunner):
        # what exists before the first user (Locust, gevent, every imported module: ~75,000 objects) lives as long
        # as the process: out of the collector's way, so a full collection walks only the users' own objects
        gc.collect()
        gc.freeze()
        HEALTH.start(Options.of(environment))


@events.test_stop.add_listener
def _stop_health(environment: Any, **_kw: Any) -> None:
    if not isinstance(environment.runner, MasterRunner):
        HEALTH.stop()


@events.report_to_master.add_listener
def _health_to_master(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    report: dict[str, Any] = {"flags": HEALTH.new_flags}
    HEALTH.new_flags = []
    if HEALTH.stopped:  # the final report, after test_stop: the whole run's summary
        report["summary"] = HEALTH.summary()
    data[HEALTH_REPORT_KEY] = report


@events.worker_report.add_listener
def _health_from_worker(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    report = data.get(HEALTH_REPORT_KEY)
    if not report:
        return
    for flag in report.get("flags", []):
        log.warning("worker %s: harness overloaded: %s (its response times include its own delay)", client_id, flag)
    if report.get("summary"):
        HEALTH.workers[client_id] = report["summary"]


@events.quit.add_listener
def _health_report(**_kw: Any) -> None:
    """After Locust's final tables: was the harness itself fast enough for its figures to be the engine's?"""
    environment = _ENV.get("environment")
    if environment is None:
        return
    if isinstance(environment.runner, MasterRunner):
        summaries = sorted(HEALTH.workers.items())
    else:
        s = HEALTH.summary()
        summaries = [("this process", s)] if s and s.get("windows") else []
    for who, s in summaries:
        reliable, line = ls.health_verdict(s)
        lat = " ".join(
            f"{name} n={v['n']} p50 {v['p50']} ms p99 {v['p99']} ms;" for name, v in (s.get("latency") or {}).items() if v.get("n")
        )
        if reliable:
            log.info("harness health (%s): %s. Exact: %s", who, line, lat or "no samples")
        else:
            log.warning(
                "harness health (%s): UNRELIABLE for %s s of %s s: %s. Its response times include its own delay; "
                "compare with an independent client (python -m loadtests.probe). Exact: %s",
                who,
                s.get("unreliable_seconds"),
                s.get("seconds"),
                line,
                lat or "no samples",
            )


# ------------------------------------------------------------------ candidate


class StepFailed(Exception):
    """A step failed and was reported; the connection is abandoned (and resumed on the next step)."""


# what a broken exchange raises: protocol violations, timeouts, closed or reset sockets
BROKEN = (ls.ProtocolError, TimeoutError, websocket.WebSocketException, OSError)


@dataclass
class Attempt:
    """One identity's attempt, as the client knows it: kept across drops and reconnects."""

    token: str
    sub: str
    next_id: int = 1
    pending: dict[int, ls.Pending] = field(default_factory=dict)  # unacknowledged, in id order
    replies: dict[int, dict[str, Any]] = field(default_factory=dict)  # ack/error of start and submit
    # position -> (question id, the value to answer, or the ProtocolError answer_value raised): only what the
    # candidate needs, not the delivered dicts (with 600 candidates holding their questions' dicts, options and
    # prompts, every full garbage collection walked >100,000 objects: 35-70 ms with every greenlet paused)
    questions: dict[int, tuple[str, Any]] = field(default_factory=dict)
    total: int | None = None
    batch_size: int | None = None
    show_result: bool = True
    cursor: int = 0  # next position to answer
    acked: dict[str, Any] = field(default_factory=dict)  # qid -> value the server acknowledged
    max_acked_id: int = 0
    state: str | None = None
    started: bool = False
    server_index: int = 0
    welcomed: bool = False  # a welcome arrived once: later connections are reconnects
    failures: int = 0
    submitting: bool = False
    result: dict[str, Any] | None = None
    result_at: float = 0.0
    result_len: int = 0
    batch_at: dict[int, tuple[float, int]] = field(default_factory=dict)  # batch from -> (arrival, frame bytes)
    prefetch: tuple[int, float] | None = None  # (position expected, when the triggering request went out)

    def new_id(self) -> int:
        rid = self.next_id
        self.next_id += 1
        return rid

    def held_hi(self) -> int:
        """End of the run of positions held from 0."""
        i = 0
        while i in self.questions:
            i += 1
        return i


class ExamCandidate(User):
    """One candidate after another: hello, start, answer every question at a steady pace, submit."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.o = Options.of(environment)
        self._step_started: float | None = None  # perf_counter() at the start of the step under way (pacing)
        self._phase = 0.0  # extra wait added once, before the first answer: this candidate's phase in the interval
        self._phased = False
        self.url = f"{ls.ws_base(self.host or '')}/v1/exams/{self.o.exam}/attempt"
        self.ws: websocket.WebSocket | None = None
        self.att: Attempt | None = None
        self.barrier_done = False  # only a user's first attempt waits at the barrier
        self._current: tuple[str, float] | None = None  # the step under way (name, started), for failures

    def wait_time(self) -> float:
        """Constant pacing: one step per ``--answer-interval``, whatever the step took (plus, once, the phase)."""
        extra, self._phase = self._phase, 0.0
        return ls.pacing_wait(self._step_started, self.o.answer_interval, time.perf_counter()) + extra

    def _choose_phase(self) -> None:
        """After a user's first start: wait a part of the interval once (``--answer-phase``), so that the users
        Locust spawned at one instant do not answer in step for the whole run."""
        if not self._phased:
            self._phased = True
            self._phase = ls.phase_offset(self.o.answer_phase, sync_start=self.o.sync_start, interval=self.o.answer_interval)

    # -- reporting -------------------------------------------------------------------

    def _fire(self, name: str, started: float, length: int = 0, exc: BaseException | None = None, ended: float | None = None) -> None:
        end = time.perf_counter() if ended is None else ended
        ms = (end - started) * 1000.0
        if exc is None:
            HEALTH.latency.add(name, ms)
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=ms,
            response_length=length,
            exception=exc,
            context={"sub": self.att.sub if self.att else None},
        )

    def _fail(self, name: str, started: float, exc: BaseException) -> StepFailed:
        self._fire(name, started, 0, exc)
        return StepFailed(f"{name}: {exc}")

    # -- the task --------------------------------------------------------------------

    @task
    def step(self) -> None:
        self._step_started = time.perf_counter()
        a = self.att
        if a is None:
            a = self.att = self._new_identity()
        self._current = None
        try:
            if self.ws is None:
                self._connect(a)
            if a.state in FINAL_STATES and not a.submitting:
                log.info("%s: attempt is %s; taking a new identity", a.sub, a.state)
                self._finish_identity()
            elif not a.started:
                self._start(a)
            elif a.cursor >= self._limit(a):
                self._submit(a)
            else:
                self._answer_next(a)
        except (StepFailed, *BROKEN) as exc:
            if not isinstance(exc, StepFailed):  # e.g. a send on a connection the server closed
                self._report_broken(a, exc, self._current)
            self._close(abrupt=True)
            # start and submit are sent afresh (new ids) by the step that needs them; answers and gotos are resent
            for rid in [rid for rid, p in a.pending.items() if p.kind in ("start", "submit")]:
                del a.pending[rid]
            a.replies.clear()
            a.failures += 1
            if a.failures >= MAX_FAILURES_PER_IDENTITY or a.state in FINAL_STATES:
                log.warning("%s: giving up this identity after %d failures (state %s)", a.sub, a.failures, a.state)
                self._finish_identity()

    def on_stop(self) -> None:
        self._close(abrupt=True)

    def _limit(self, a: Attempt) -> int:
        total = a.total or 0
        n = self.o.answers_per_attempt
        return min(total, n) if n > 0 else total

    def _new_identity(self) -> Attempt:
        try:
            ident = IDENTITIES.next_candidate(self.environment, self.o)
        except (ValueError, OSError) as exc:
            self._fire(CONNECT, time.perf_counter(), 0, exc)
            log.error("%s", exc)
            raise StopUser() from None
        if ident is None:
            raise StopUser()
        return Attempt(token=ident[0], sub=ident[1])

    def _finish_identity(self) -> None:
        self._close(abrupt=False)
        self.att = None
        if self.o.after_submit == "stop":
            raise StopUser()

    # -- wire ------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        payload, opcode = ls.encode(message, self.o.encoding)
        assert self.ws is not None
        self.ws.send(payload, opcode)

    def _request(self, a: Attempt, kind: str, message: dict[str, Any], **extra: Any) -> ls.Pending:
        rid = a.new_id()
        message = {**message, "id": rid}
        payload, opcode = ls.encode(message, self.o.encoding)
        # timed from just before the frame is written (as loadtests/probe.py times it), encoding excluded
        p = ls.Pending(rid=rid, kind=kind, message=message, sent_at=time.perf_counter(), **extra)
        a.pending[rid] = p
        assert self.ws is not None
        self.ws.send(payload, opcode)
        return p

    def _recv(self, a: Attempt, deadline: float) -> dict[str, Any]:
        """One frame (pushes and replies are applied to ``a``); raises on timeout, close or garbage."""
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError(f"no reply within {self.o.ws_timeout:g} s")
        assert self.ws is not None
        self.ws.settimeout(remaining)
        try:
            opcode, data = self.ws.recv_data()
            at = time.perf_counter()  # the frame is read: replies are timed to here, before decoding
        except websocket.WebSocketTimeoutException:
            raise TimeoutError(f"no reply within {self.o.ws_timeout:g} s") from None
        except websocket.WebSocketConnectionClosedException:
            raise ls.UnexpectedClose(None, "socket closed without a close frame") from None
        if opcode == ls.OPCODE_CLOSE:
            raise ls.UnexpectedClose(*ls.close_code(data))
        message = ls.decode(opcode, data, self.o.encoding)
        self._apply(a, message, len(data), at)
        return message

    def _wait(self, a: Attempt, done: Callable[[], bool], name_on_fail: Callable[[], tuple[str, float] | None]) -> None:
        """Read frames until ``done()``.

        On any protocol error every unacknowledged ``answer``/``goto`` fails
        (they stay pending, to be resent after reconnecting), and so does the
        step named by ``name_on_fail()`` unless it is one of those.
        """
        deadline = time.perf_counter() + self.o.ws_timeout
        try:
            while not done():
                self._recv(a, deadline)
        except BROKEN as exc:
            self._report_broken(a, exc, name_on_fail())
            raise StepFailed(str(exc)) from None

    def _report_broken(self, a: Attempt, exc: BaseException, step: tuple[str, float] | None) -> None:
        """Fail every unacknowledged answer/goto, and ``step`` (name, started) unless it is one of those names."""
        reported = set()
        for p in a.pending.values():
            if p.kind in ("answer", "goto") and not p.reported:
                self._fire(NAME_OF_KIND[p.kind], p.sent_at, 0, exc)
                p.reported = True
                reported.add(NAME_OF_KIND[p.kind])
        if step is not None and step[0] not in reported:
            self._fire(step[0], step[1], 0, exc)

    def _apply(self, a: Attempt, m: dict[str, Any], size: int, now: float) -> None:
        """Apply one server message (read at ``now``) to the attempt; raise ProtocolError when it breaks the protocol."""
        t = m["t"]
        if t == "batch":
            self._on_batch(a, m, size, now)
        elif t in ("ack", "error"):
            rid = m.get("id")
            if t == "error" and rid is None:
                raise ls.RequestRefused(str(m.get("code")), str(m.get("message")))
            p = a.pending.pop(rid, None) if isinstance(rid, int) else None
            if p is None:
                raise ls.ProtocolError(f"{t} for id {rid!r}, which is not awaiting a reply")
            expect_dup = p.expect_dup
            if t == "ack" and expect_dup is not None and bool(m.get("dup")) != expect_dup:
                err = ls.ProtocolError(f"resent id {rid}: ack dup={m.get('dup')!r}, expected {'dup' if expect_dup else 'a fresh apply'}")
                self._fire(NAME_OF_KIND[p.kind], p.sent_at, size, err)
                if p.kind in ("start", "submit"):
                    a.replies[rid] = m
                return
            if p.kind in ("start", "submit"):
                a.replies[rid] = m
                if t == "ack":
                    a.max_acked_id = max(a.max_acked_id, rid)
                return
            if t == "error":
                self._fire(NAME_OF_KIND[p.kind], p.sent_at, size, ls.RequestRefused(str(m.get("code")), str(m.get("message")), rid))
                return
            a.max_acked_id = max(a.max_acked_id, rid)
            if p.kind == "answer":
                a.acked[p.qid] = p.value  # type: ignore[index]
            elif p.kind == "goto":
                a.server_index = p.message["index"]
            if not p.reported:
                self._fire(NAME_OF_KIND[p.kind], p.sent_at, size, ended=now)
        elif t == "state":
            a.state = m.get("state")
            if a.state in FINAL_STATES and not a.submitting:
                raise ls.ProtocolError(f"attempt ended unexpectedly: state {a.state} ({m.get('reason')})")
        elif t == "result":
            a.result, a.result_at, a.result_len = m, now, size
        elif t in ("time", "notice", "pong"):
            pass
        elif t == "welcome":
            raise ls.ProtocolError("a second welcome")
        else:
            raise ls.ProtocolError(f"unexpected message type {t!r}")

    def _on_batch(self, a: Attempt, m: dict[str, Any], size: int, now: float) -> None:
        start, questions, total = m.get("from"), m.get("questions"), m.get("total")
        if not (isinstance(start, int) and isinstance(questions, list) and questions and isinstance(total, int)):
            raise ls.MalformedFrame(f"batch without from/questions/total: {str(m)[:200]}")
        for offset, q in enumerate(questions):
            if not isinstance(q, dict) or q.get("index") != start + offset or not isinstance(q.get("id"), str):
                raise ls.MalformedFrame(f"batch from {start}: question {offset} is {str(q)[:200]}")
            try:
                value: Any = ls.answer_value(q)
            except ls.ProtocolError as exc:  # fails that question's answer step, when it comes
                value = exc
            a.questions[start + offset] = (q["id"], value)
        a.total = total
        if start == 0 and a.batch_size is None:
            a.batch_size = len(questions)
        a.batch_at.setdefault(start, (now, size))
        if a.prefetch is not None and start <= a.prefetch[0] < start + len(questions):
            self._fire(PREFETCH, a.prefetch[1], size, ended=now)
            a.prefetch = None

    def _note_position(self, a: Attempt, position: int, sent_at: float) -> None:
        """A goto/answer at ``position`` went out: start timing the prefetch it should trigger (same rule as the engine)."""
        if a.prefetch is not None or not a.total or not a.batch_size:
            return
        hi = a.held_hi()
        if hi < a.total and position >= hi - (a.batch_size + 1) // 2:
            a.prefetch = (hi, sent_at)

    # -- connection ------------------------------------------------------------------

    def _close(self, *, abrupt: bool) -> None:
        ws, self.ws = self.ws, None
        if ws is None:
            return
        try:
            if abrupt:
                if ws.sock is not None:  # RST, like a dead network, rather than a FIN
                    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                ws.shutdown()
            else:
                ws.close(timeout=2)
        except (OSError, websocket.WebSocketException):  # the socket may be gone already
            ws.shutdown()
        if self.att is not None:
            self.att.prefetch = None

    def _connect(self, a: Attempt) -> None:
        """Connect and say hello; on a reconnect check what the server kept and resend what it did not ack."""
        reconnect = a.welcomed
        t0 = time.perf_counter()
        try:
            self.ws = websocket.create_connection(
                self.url, timeout=self.o.ws_timeout, suppress_origin=True, skip_utf8_validation=True, enable_multithread=False
            )
        except (*BROKEN, ValueError) as exc:
            raise self._fail(CONNECT, t0, exc) from None
        self._fire(CONNECT, t0)
        name = RECONNECT if reconnect else HELLO
        t1 = t0 if reconnect else time.perf_counter()
        deadline = time.perf_counter() + self.o.ws_timeout
        try:
            self._send({"t": "hello", "token": a.token, "v": 1, "client": "examwire-locust"})
            assert self.ws is not None
            self.ws.settimeout(max(0.001, deadline - time.perf_counter()))
            try:
                opcode, data = self.ws.recv_data()
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(f"no welcome within {self.o.ws_timeout:g} s") from None
            if opcode == ls.OPCODE_CLOSE:
                raise ls.UnexpectedClose(*ls.close_code(data))
            welcome = ls.decode(opcode, data, self.o.encoding)
            if welcome["t"] == "error":
                raise ls.RequestRefused(str(welcome.get("code")), str(welcome.get("message")))
            if welcome["t"] != "welcome":
                raise ls.ProtocolError(f"expected welcome, got {welcome['t']!r}")
            self._check_welcome(a, welcome, reconnect)
        except (ls.ProtocolError, TimeoutError, websocket.WebSocketException, OSError, KeyError, TypeError) as exc:
            raise self._fail(name, t1, exc) from None
        self._fire(name, t1, len(data))
        a.welcomed = True
        if reconnect and a.pending:
            self._resend(a, welcome["last_id"])

    def _check_welcome(self, a: Attempt, w: dict[str, Any], reconnect: bool) -> None:
        exam = w["exam"]
        a.total = int(exam["total"])
        a.show_result = bool(exam.get("show_result", True))
        a.state = w["state"]
        a.server_index = int(w.get("index") or 0)
        last_id = int(w["last_id"])
        answers = w.get("answers") or {}
        if a.state in ("active", "paused"):
            a.started = True
        elif a.started and a.state == "ready":
            raise ls.ProtocolError("the attempt forgot it was started")
        if last_id < a.max_acked_id:
            raise ls.ProtocolError(f"welcome.last_id {last_id} is below the acknowledged id {a.max_acked_id}")
        lost = {q: v for q, v in a.acked.items() if answers.get(q) != v}
        if lost:
            raise ls.ProtocolError(f"acknowledged answers lost or changed: {sorted(lost)[:5]}")
        a.next_id = max(a.next_id, last_id + 1)

    def _resend(self, a: Attempt, last_id: int) -> None:
        """Resend every unacknowledged request with its original id, in order, and wait for the acks."""
        now = time.perf_counter()
        for p in a.pending.values():
            p.expect_dup = p.rid <= last_id
            p.reported = False
            p.sent_at = now
            self._send(p.message)
        self._wait(a, lambda: not a.pending, lambda: None)

    # -- steps -----------------------------------------------------------------------

    def _start(self, a: Attempt) -> None:
        if self.o.sync_start and not self.barrier_done:
            self.barrier_done = True
            self._barrier()
        t0 = time.perf_counter()
        self._current = (START, t0)
        p = self._request(a, "start", {"t": "start"})
        self._wait(a, lambda: p.rid in a.replies and 0 in a.batch_at, lambda: (START, t0))
        reply = a.replies.pop(p.rid)
        if reply["t"] == "error":
            raise self._fail(START, t0, ls.RequestRefused(str(reply.get("code")), str(reply.get("message")), p.rid))
        if not isinstance(reply.get("deadline"), int):
            raise self._fail(START, t0, ls.ProtocolError(f"start ack without a deadline: {reply}"))
        arrived, size = a.batch_at[0]
        self._fire(START, t0, size, ended=arrived)
        a.started = True
        a.state = "active"
        self._choose_phase()

    def _barrier(self) -> None:
        t0 = time.perf_counter()
        if not BARRIER.announced.wait(timeout=self.o.sync_timeout):
            BARRIER.timed_out += 1
            self._fire(SYNC, t0, 0, TimeoutError(f"no start instant announced within {self.o.sync_timeout:g} s"))
            return
        assert BARRIER.at is not None
        delay = BARRIER.at - time.time()
        if delay > 0:
            BARRIER.on_time += 1
            gevent.sleep(delay)
        else:
            BARRIER.late += 1

    def _answer_next(self, a: Attempt) -> None:
        i = a.cursor
        t0 = time.perf_counter()
        if a.server_index != i:
            self._request(a, "goto", {"t": "goto", "index": i})
            self._note_position(a, i, t0)
        # the question must be held by now (delivered with start or by prefetch)
        self._wait(a, lambda: i in a.questions, lambda: (PREFETCH, a.prefetch[1] if a.prefetch else t0))
        qid, value = a.questions[i]
        if isinstance(value, ls.ProtocolError):
            raise self._fail(ANSWER, t0, value)
        t1 = time.perf_counter()
        self._request(a, "answer", {"t": "answer", "q": qid, "value": value}, qid=qid, value=value)
        self._note_position(a, i, t1)
        a.cursor += 1
        if self.o.drop_rate > 0 and random.random() < self.o.drop_rate:
            self._close(abrupt=True)  # before reading the ack: it stays pending and is resent
            self._current = None
            self._connect(a)
            return
        self._wait(a, lambda: not a.pending, lambda: (ANSWER, t1))

    def _submit(self, a: Attempt) -> None:
        t0 = time.perf_counter()
        self._current = (SUBMIT, t0)
        a.submitting = True
        p = self._request(a, "submit", {"t": "submit"})
        if a.show_result:
            done = lambda: p.rid in a.replies and (a.result is not None or a.replies[p.rid]["t"] == "error")
        else:
            done = lambda: p.rid in a.replies and (a.state in FINAL_STATES or a.replies[p.rid]["t"] == "error")
        try:
            self._wait(a, done, lambda: (SUBMIT, t0))
        finally:
            a.submitting = False
        reply = a.replies.pop(p.rid)
        if reply["t"] == "error":
            raise self._fail(SUBMIT, t0, ls.RequestRefused(str(reply.get("code")), str(reply.get("message")), p.rid))
        if a.state != "submitted":
            raise self._fail(SUBMIT, t0, ls.ProtocolError(f"submit acked but the attempt is {a.state}"))
        if a.result is not None:
            self._fire(SUBMIT, t0, a.result_len, ended=a.result_at)
        else:
            self._fire(SUBMIT, t0)
        self._finish_identity()


# ------------------------------------------------------------------ proctor


class Proctor(User):
    """Watches the exam: welcome, snapshot, then every update; pings (and optionally extends everyone)."""

    fixed_count = 1  # set from --proctors at init
    wait_time = constant(1)  # between connections, after a failure

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.o = Options.of(environment)
        self.url = f"{ls.ws_base(self.host or '')}/v1/exams/{self.o.exam}/proctor"
        self.ws: websocket.WebSocket | None = None
        self.reader: gevent.Greenlet | None = None
        self.token: str | None = None

    def _fire(self, name: str, started: float, length: int = 0, exc: BaseException | None = None, ended: float | None = None) -> None:
        end = time.perf_counter() if ended is None else ended
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE, name=name, response_time=(end - started) * 1000.0, response_length=length, exception=exc, context={}
        )

    def on_stop(self) -> None:
        self._close()

    def _close(self) -> None:
        ws, self.ws = self.ws, None
        if self.reader is not None:
            self.reader.kill(block=False)
            self.reader = None
        if ws is not None:
            ws.shutdown()

    @task
    def watch(self) -> None:
        if self.token is None:
            try:
                self.token = IDENTITIES.proctor(self.o)
            except (ValueError, OSError) as exc:
                self._fire(P_SNAPSHOT, time.perf_counter(), 0, exc)
                log.error("%s", exc)
                raise StopUser() from None
        try:
            self._session()
        finally:
            self._close()

    def _session(self) -> None:
        o = self.o
        t0 = time.perf_counter()
        frames: Queue = Queue()
        try:
            self.ws = websocket.create_connection(
                self.url, timeout=o.ws_timeout, suppress_origin=True, skip_utf8_validation=True, enable_multithread=True
            )
            payload, opcode = ls.encode({"t": "hello", "token": self.token, "v": 1, "client": "examwire-locust-proctor"}, o.encoding)
            self.ws.send(payload, opcode)
            welcome, _ = self._next(self.ws, t0 + o.ws_timeout)
            if welcome["t"] != "welcome":
                raise ls.ProtocolError(f"expected welcome, got {welcome['t']!r}")
            snapshot, size = self._next(self.ws, t0 + o.ws_timeout)
            if snapshot["t"] != "snapshot" or not isinstance(snapshot.get("attempts"), list):
                raise ls.ProtocolError(f"expected snapshot, got {snapshot['t']!r}")
        except BROKEN as exc:
            self._fire(P_SNAPSHOT, t0, 0, exc)
            return
        self._fire(P_SNAPSHOT, t0, size)
        log.info("proctor: snapshot of %d attempts", len(snapshot["attempts"]))

        self.ws.settimeout(None)  # the reader blocks; timeouts are kept below, on the queue
        self.reader = gevent.spawn(self._read, self.ws, frames)
        next_id = 0
        waiting: dict[Any, tuple[str, float]] = {}  # ping ct or request id -> (name, sent)
        next_ping = time.perf_counter() + o.proctor_ping_interval
        while True:
            now = time.perf_counter()
            if now >= next_ping:
                next_ping = now + o.proctor_ping_interval
                ct = int(time.time() * 1000)
                waiting[("ping", ct)] = (P_PING, now)
                if o.proctor_extend:
                    next_id += 1
                    waiting[("id", next_id)] = (P_EXTEND, now)
                try:
                    self._send({"t": "ping", "ct": ct})
                    if o.proctor_extend:
                        self._send({"t": "extend", "id": next_id, "all": True, "seconds": 1})
                except BROKEN as exc:
                    for name, sent in waiting.values():
                        self._fire(name, sent, 0, exc)
                    return
            overdue = [k for k, (_, sent) in waiting.items() if now - sent > o.ws_timeout]
            if overdue:
                for k in overdue:
                    name, sent = waiting.pop(k)
                    self._fire(name, sent, 0, TimeoutError(f"no reply within {o.ws_timeout:g} s"))
                return
            timeout = min(next_ping - now, 1.0)
            try:
                item = frames.get(timeout=max(0.0, timeout))
            except Empty:
                continue
            if isinstance(item, BaseException):
                for name, sent in waiting.values():
                    self._fire(name, sent, 0, item)
                if not waiting:
                    self._fire(P_UPDATE, time.perf_counter(), 0, item)
                return
            at, message, size = item
            t = message["t"]
            if t == "update":
                self._fire(P_UPDATE, at, size, ended=at)
            elif t == "pong":
                entry = waiting.pop(("ping", message.get("ct")), None)
                if entry is not None:
                    self._fire(entry[0], entry[1], size, ended=at)
            elif t in ("ack", "error"):
                entry = waiting.pop(("id", message.get("id")), None)
                name, sent = entry if entry is not None else (P_EXTEND, at)
                exc = None
                if t == "error":
                    exc = ls.RequestRefused(str(message.get("code")), str(message.get("message")), message.get("id"))
                elif entry is None:
                    exc = ls.ProtocolError(f"ack for id {message.get('id')!r}, which is not awaiting a reply")
                self._fire(name, sent, size, exc, ended=at)
            else:
                self._fire(P_UPDATE, at, size, ls.ProtocolError(f"unexpected message type {t!r}"), ended=at)

    def _send(self, message: dict[str, Any]) -> None:
        payload, opcode = ls.encode(message, self.o.encoding)
        assert self.ws is not None
        self.ws.send(payload, opcode)

    def _next(self, ws: websocket.WebSocket, deadline: float) -> tuple[dict[str, Any], int]:
        ws.settimeout(max(0.001, deadline - time.perf_counter()))
        try:
            opcode, data = ws.recv_data()
        except websocket.WebSocketTimeoutException:
            raise TimeoutError(f"no reply within {self.o.ws_timeout:g} s") from None
        if opcode == ls.OPCODE_CLOSE:
            raise ls.UnexpectedClose(*ls.close_code(data))
        message = ls.decode(opcode, data, self.o.encoding)
        if message["t"] == "error":
            raise ls.RequestRefused(str(message.get("code")), str(message.get("message")), message.get("id"))
        return message, len(data)

    def _read(self, ws: websocket.WebSocket, frames: Queue) -> None:
        """Reader greenlet: every frame into ``frames`` as (arrival, message, bytes); an exception ends it."""
        try:
            while True:
                opcode, data = ws.recv_data()
                at = time.perf_counter()
                if opcode == ls.OPCODE_CLOSE:
                    raise ls.UnexpectedClose(*ls.close_code(data))
                frames.put((at, ls.decode(opcode, data, self.o.encoding), len(data)))
        except (ls.ProtocolError, websocket.WebSocketException, OSError) as exc:
            frames.put(exc)
