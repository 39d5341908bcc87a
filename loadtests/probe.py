"""An independent latency probe: a few candidates on their own asyncio client, beside a load test.

``python -m loadtests.probe --host http://127.0.0.1:8000 --jwt-secret-file SECRET [--connections 4]
[--interval 2] [--duration 60] [--json out.json]``

Run it while Locust (``loadtests/locustfile.py``) loads the same engine: its
figures are what one more candidate sees at that moment, measured by a
process that is not the load generator, so they show how much of the
harness's ``answer→ack`` is the engine and how much is the harness itself
(``docs/load-testing.md``, "How far to trust the harness").

Each connection takes its own identity (a token minted with the engine's
HS256 secret, ``--jwt-secret-file`` or ``EXAMWIRE_JWT_SECRET``, or the next
line of ``--tokens-file``), says ``hello``, ``start``s, and then once every
``--interval`` seconds (random phase per connection) does what a Locust
candidate does: ``goto`` the next question and, without waiting for that ack,
``answer`` it with a valid value (``--no-goto``: the answer alone). It times
``answer→ack`` and ``goto→ack`` from just before the frame is written to just
after its ack is read (``time.perf_counter``), one reader task per
connection, so an ack is timed the moment it is read. After the last
question it submits and starts over with a new identity.

It also reports its own health: event-loop lag (how late a 10 ms timer
fires) and CPU use, so a probe that is itself starved says so.

Only ``websockets``, ``msgpack`` and ``PyJWT`` are needed (both venvs have
them); it imports ``loadtests.locust_support`` for frames, tokens and answer
values, and nothing from ``examwire``, ``tests`` or Locust.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from websockets.asyncio.client import ClientConnection, connect

try:
    from loadtests import locust_support as ls
except ImportError:  # run as a script from loadtests/
    import locust_support as ls  # type: ignore[no-redef]


def percentiles(samples_s: Sequence[float], qs: Sequence[float] = (50, 90, 99)) -> dict[str, float | None]:
    """Nearest-rank percentiles of ``samples_s`` (seconds), in milliseconds with 3 decimals."""
    if not samples_s:
        return {f"p{q:g}": None for q in qs}
    xs = sorted(samples_s)
    out: dict[str, float | None] = {}
    for q in qs:
        k = max(0, min(len(xs) - 1, int(round(q / 100 * len(xs) + 0.5)) - 1))
        out[f"p{q:g}"] = round(xs[k] * 1000, 3)
    return out


@dataclass
class Stats:
    answer: list[float] = field(default_factory=list)
    goto: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)
    attempts: int = 0


class ProbeCandidate:
    """One connection: hello, start, then goto+answer every ``interval`` until the end; then submit and start over."""

    def __init__(self, args: argparse.Namespace, n: int, stats: Stats, tokens: list[str], secret: str | None) -> None:
        self.a, self.n, self.stats, self.tokens, self.secret = args, n, stats, tokens, secret
        self.url = f"{ls.ws_base(args.host)}/v1/exams/{args.exam}/attempt"
        self.prefix = f"probe-{secrets.token_hex(3)}-{os.getpid()}-{n}"
        self.serial = 0

    def _token(self) -> str:
        if self.tokens:
            return self.tokens.pop()
        if self.secret is None:
            raise SystemExit("probe: out of tokens (give --jwt-secret-file, EXAMWIRE_JWT_SECRET or more --tokens-file lines)")
        self.serial += 1
        return ls.mint(self.secret, sub=f"{self.prefix}-{self.serial}", role="candidate", exam=self.a.exam, audience=self.a.jwt_audience)

    async def run(self, start: float, end: float) -> None:
        # one schedule per connection, kept across attempts: answers every ``interval`` from a (random) phase
        self.t_next = start + (0.0 if self.a.aligned else random.random() * self.a.interval)
        self.end = end
        while self.t_next < end:
            try:
                await self._attempt()
            except Exception as exc:  # noqa: BLE001 - counted, then a new identity
                self.stats.errors.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1.0)
                self.t_next = max(self.t_next, time.perf_counter())

    async def _attempt(self) -> None:
        enc = self.a.encoding
        ws: ClientConnection = await connect(self.url, compression=None, ping_interval=None, max_size=None, proxy=None,
                                             open_timeout=30, close_timeout=2)
        self.stats.attempts += 1
        replies: dict[int, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        questions: dict[int, dict[str, Any]] = {}
        got_question = asyncio.Event()
        welcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def reader() -> None:
            why: BaseException = ConnectionError("the connection closed")
            try:
                async for frame in ws:
                    at = time.perf_counter()  # replies are timed to here: the frame is read, not yet decoded
                    opcode = ls.OPCODE_BINARY if isinstance(frame, bytes) else ls.OPCODE_TEXT
                    m = ls.decode(opcode, frame, enc)
                    t = m["t"]
                    if t in ("ack", "error") and isinstance(m.get("id"), int):
                        fut = replies.pop(m["id"], None)
                        if fut is not None and not fut.done():
                            fut.set_result((at, m))
                    elif t == "batch":
                        for q in m["questions"]:
                            questions[q["index"]] = q
                        got_question.set()
                    elif t == "welcome" and not welcome.done():
                        welcome.set_result(m)
            except Exception as exc:  # noqa: BLE001 - handed to whoever waits
                why = exc
            # nothing more will come: fail what still waits rather than let it time out
            for fut in [*replies.values(), welcome]:
                if not fut.done():
                    fut.set_exception(why)
            replies.clear()

        async def send(m: dict[str, Any]) -> float:
            payload, _ = ls.encode(m, enc)
            t0 = time.perf_counter()
            await ws.send(payload)
            return t0

        next_id = 1

        def request(m: dict[str, Any]) -> tuple[int, asyncio.Future[tuple[float, dict[str, Any]]]]:
            nonlocal next_id
            rid = next_id
            next_id += 1
            m["id"] = rid
            fut = asyncio.get_running_loop().create_future()
            replies[rid] = fut
            return rid, fut

        async def reply(fut: asyncio.Future[tuple[float, dict[str, Any]]]) -> tuple[float, dict[str, Any]]:
            at, m = await asyncio.wait_for(fut, self.a.ws_timeout)
            if m["t"] == "error":
                raise ls.RequestRefused(str(m.get("code")), str(m.get("message")), m.get("id"))
            return at, m

        rtask = asyncio.create_task(reader())
        try:
            await send({"t": "hello", "token": self._token(), "v": 1, "client": "examwire-probe"})
            w = await asyncio.wait_for(welcome, self.a.ws_timeout)
            next_id = int(w["last_id"]) + 1
            total = int(w["exam"]["total"])
            limit = min(total, self.a.answers_per_attempt) if self.a.answers_per_attempt > 0 else total
            m = {"t": "start"}
            _, fut = request(m)
            await send(m)
            await reply(fut)
            index = 0
            for i in range(limit):
                if self.t_next >= self.end:
                    return
                delay = self.t_next - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.t_next += self.a.interval
                deadline = time.perf_counter() + self.a.ws_timeout
                while i not in questions:
                    got_question.clear()
                    await asyncio.wait_for(got_question.wait(), max(0.001, deadline - time.perf_counter()))
                q = questions[i]
                gfut = None
                if self.a.goto and index != i:
                    g = {"t": "goto", "index": i}
                    _, gfut = request(g)
                    tg = await send(g)
                    index = i
                am = {"t": "answer", "q": q["id"], "value": ls.answer_value(q)}
                _, afut = request(am)
                ta = await send(am)
                at, _ = await reply(afut)
                self.stats.answer.append(at - ta)
                if gfut is not None:
                    gat, _ = await reply(gfut)
                    self.stats.goto.append(gat - tg)
            m = {"t": "submit"}
            _, fut = request(m)
            await send(m)
            await reply(fut)
        finally:
            rtask.cancel()
            await ws.close()
            try:
                await rtask
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing anyway
                pass


async def _lag_monitor(stats: Stats, end: float, every: float = 0.01) -> None:
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        await asyncio.sleep(every)
        stats.lag.append(time.perf_counter() - t0 - every)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    secret = ls.read_secret(args.jwt_secret_file)
    tokens: list[str] = []
    if args.tokens_file:
        tokens = [t for t in (line.strip() for line in Path(args.tokens_file).read_text().splitlines()) if t and not t.startswith("#")]
        tokens.reverse()
    if secret is None and not tokens:
        raise SystemExit("probe: no token source: --jwt-secret-file, EXAMWIRE_JWT_SECRET or --tokens-file")
    stats = Stats()
    wall0, t0 = time.time(), time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    m0 = ls.system_cpu_times()
    start = t0 + 0.5
    end = start + args.duration
    cands = [ProbeCandidate(args, n, stats, tokens, secret) for n in range(args.connections)]
    await asyncio.gather(_lag_monitor(stats, end), *(c.run(start, end) for c in cands))
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    m1 = ls.system_cpu_times()
    elapsed = time.perf_counter() - t0
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {
        "started_at": wall0,
        "seconds": round(elapsed, 1),
        "connections": args.connections,
        "interval_s": args.interval,
        "answer_ack_ms": {"n": len(stats.answer), **percentiles(stats.answer)},
        "goto_ack_ms": {"n": len(stats.goto), **percentiles(stats.goto)},
        "errors": len(stats.errors),
        "first_errors": stats.errors[:5],
        "attempts": stats.attempts,
        "probe_cpu_fraction": round(cpu / elapsed, 3),
        "probe_loop_lag_ms": percentiles(stats.lag, (50, 99)),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "machine_busy": round((m1[0] - m0[0]) / (m1[1] - m0[1]), 3) if m0 and m1 and m1[1] > m0[1] else None,
        "cores": os.cpu_count(),
    }


def _fmt(d: dict[str, Any]) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    a, g = d["answer_ack_ms"], d["goto_ack_ms"]
    return (
        f"probe: {d['connections']} connections, {d['seconds']} s, load average {d['loadavg'][0]:.2f}, "
        f"machine {'-' if d['machine_busy'] is None else format(d['machine_busy'], '.0%')} busy ({d['cores']} cores)\n"
        f"probe: answer→ack n={a['n']} p50 {ms(a['p50'])} ms, p90 {ms(a['p90'])} ms, p99 {ms(a['p99'])} ms\n"
        f"probe: goto→ack   n={g['n']} p50 {ms(g['p50'])} ms, p90 {ms(g['p90'])} ms, p99 {ms(g['p99'])} ms\n"
        f"probe: errors {d['errors']}; own CPU {d['probe_cpu_fraction']:.1%} of a core, "
        f"loop lag p50 {ms(d['probe_loop_lag_ms']['p50'])} ms p99 {ms(d['probe_loop_lag_ms']['p99'])} ms"
        + (f"\nprobe: first error: {d['first_errors'][0]}" if d["first_errors"] else "")
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="http://127.0.0.1:8000", help="the engine (http(s):// or ws(s)://)")
    p.add_argument("--exam", default="demo")
    p.add_argument("--encoding", choices=ls.ENCODINGS, default="msgpack")
    p.add_argument("--jwt-secret-file", default="", help="the engine's HS256 secret (else $EXAMWIRE_JWT_SECRET)")
    p.add_argument("--jwt-audience", default="examwire")
    p.add_argument("--tokens-file", default="", help="pre-minted candidate tokens, one per line")
    p.add_argument("--connections", type=int, default=4, help="probe candidates (default 4)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between one connection's answers (default 2)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds to measure (default 60)")
    p.add_argument("--answers-per-attempt", type=int, default=0, help="submit after this many answers (0: every question)")
    p.add_argument("--no-goto", dest="goto", action="store_false", help="send the answer alone (default: goto, then answer, as Locust does)")
    p.add_argument("--aligned", action="store_true",
                   help="every connection answers at the same instant (a burst, as candidates spawned together by Locust "
                        "used to); default: a random phase per connection")
    p.add_argument("--ws-timeout", type=float, default=10.0)
    p.add_argument("--json", default="", help="also write the figures to this file")
    args = p.parse_args(argv)
    res = asyncio.run(run(args))
    print(_fmt(res), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 1 if res["errors"] and not res["answer_ack_ms"]["n"] else 0


if __name__ == "__main__":
    sys.exit(main())
