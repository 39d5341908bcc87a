"""Proctor update latency: ``python -m loadtests.proctor_latency [options]``.

Measures the time from a candidate sending an ``answer`` to the proctor
receiving the ``update`` that reflects it, with ``--candidates`` candidates
answering ``--rate`` times a second each, spread round-robin over ``--nodes``
engine nodes, and one proctor watching on the first node (node A).

Setup (``run``), all on this machine: a private redis-server
(``EmbeddedRedis``, no AOF); ``--nodes`` processes of ``python -m examwire
serve`` on free ports sharing it (random secrets, no embedded worker, rate
limit 1000/s burst 2000, so the limiter never interferes); the exam ``lat``
(``make_exam`` of the e2e tests: single-choice questions ``x01..xNN``, N =
ceil(duration * rate) + 5, no shuffle) loaded with ``PUT /v1/exams/lat``.
Every process is stopped on exit, error or Ctrl-C. The logs stay in a temp
directory, which is removed after a clean run and kept (its logs' tails
printed) after a failed one or with ``--keep-logs``.

Measurement (``measure``, usable against nodes that are already running):

- The proctor connects first and reads every frame for the whole run.
- Candidates (fresh users, so fresh attempts) connect 50 at a time, each
  ``hello`` then ``start`` and its ``ack``. All frames are MessagePack; both
  sides are ``examwire.client`` (``ProctorClient``, ``ExamClient``).
- The window opens 0.5 s after the last candidate has started and lasts
  ``duration`` s. Each candidate answers a new question every ``1/rate`` s from
  a random phase, one answer in flight at a time; an answer due while the
  previous one awaits its ack is sent as soon as that ack arrives (the schedule
  is not shifted, and ``send_lag_ms`` says how late answers went out).
- The k-th answer of an attempt (k = the attempt's ``answered`` count once it is
  applied) is matched by the first proctor ``update`` of that attempt with
  ``answered >= k``; updates are coalesced per attempt, so one update may match
  several answers. Latency = receive time - send time, both
  ``time.perf_counter()`` in this process, so it includes this client's own
  event-loop delay. An answer the server refuses is not expected at the
  proctor and is counted in ``refused``. Answers not matched by the later of
  the window's end and the last ack, plus 2 s, are ``unmatched``.
- Also reported: answer -> ack latency, answers sent per second, and the
  proctor updates received during the window.

Output: a text block printed and appended to ``--out``; ``--json PATH``
writes the ``measure`` figures as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import jwt

from examwire.client import Closed, ExamClient, Message, ProctorClient, attempt_url, proctor_url
from examwire.redis_server import EmbeddedRedis
from testkit import REPO_ROOT, free_port, http_json, make_exam, Node, node_env, tail


EXAM_ID = "lat"
ANSWER_VALUE = "c"  # an option of every question of make_exam(types_=("single",))
RAMP_BATCH = 50
LEAD_S = 0.5
SETTLE_S = 2.0
JOIN_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 30.0
NODE_NAMES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

TokenFactory = Callable[[str, str], str]
"""``tokens(sub, role) -> JWT``: a token the nodes accept for the exam under test."""

T = TypeVar("T")


def hs256_tokens(secret: str, exam_id: str, ttl_s: int = 3600) -> TokenFactory:
    """HS256 tokens for ``exam_id`` signed with ``secret`` (audience ``examwire``)."""

    def make(sub: str, role: str) -> str:
        claims = {"sub": sub, "role": role, "aud": "examwire", "exp": int(time.time()) + ttl_s, "name": sub, "exams": [exam_id]}
        return jwt.encode(claims, secret, algorithm="HS256")

    return make


# ------------------------------------------------------------------ client side


class ProtocolError(RuntimeError):
    """The server answered something this client did not expect."""


@dataclass
class _Candidate:
    client: ExamClient
    attempt: str
    answered: int
    todo: deque[str]  # question ids still unanswered, in answering order


async def _join(url: str, token: str, question_ids: Sequence[str]) -> _Candidate:
    """A candidate connected to ``url`` whose attempt is started (MessagePack, one request in flight)."""
    c = ExamClient(url, token, encoding="msgpack", background=False, keep=False, reply_timeout=REPLY_TIMEOUT_S,
                   open_timeout=JOIN_TIMEOUT_S)
    try:
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            await c.connect()
            welcome = await c.hello()
            reply = await c.start()
        if reply["t"] != "ack":
            raise ProtocolError(f"{url}: start refused: {reply!r}")
    except BaseException:
        await c.close()
        raise
    done = welcome.get("answers") or {}
    return _Candidate(c, welcome["attempt"], len(done), deque(q for q in question_ids if q not in done))


class _Matcher:
    """Answers awaiting the proctor, per attempt, in order of their answered count."""

    def __init__(self) -> None:
        self.pending: dict[str, deque[tuple[int, float]]] = {}
        self.latencies: list[float] = []

    def sent(self, attempt: str, k: int, at: float) -> None:
        self.pending.setdefault(attempt, deque()).append((k, at))

    def refused(self, attempt: str, k: int) -> None:
        queue = self.pending[attempt]
        if queue and queue[-1][0] == k:
            queue.pop()

    def seen(self, attempt: str, answered: int, at: float) -> None:
        queue = self.pending.get(attempt)
        while queue and queue[0][0] <= answered:
            self.latencies.append(at - queue.popleft()[1])

    def unmatched(self) -> int:
        return sum(len(queue) for queue in self.pending.values())


@dataclass
class _Tally:
    send_lag: list[float] = field(default_factory=list)  # one per answer sent
    ack: list[float] = field(default_factory=list)  # one per reply (ack or error)
    refused: Counter[str] = field(default_factory=Counter)  # error code -> count
    dropped: Counter[str] = field(default_factory=Counter)  # close code -> candidates


def _watcher(matcher: _Matcher, update_times: list[float]) -> Callable[[Message], None]:
    """The proctor's ``on_push``: time every ``update`` as it is read, matching ``answered`` counts."""

    def seen(message: Message) -> None:
        if message.get("t") != "update":
            return
        at = time.perf_counter()
        update_times.append(at)
        answered = message.get("answered")
        if answered is not None:
            matcher.seen(message["attempt"], answered, at)

    return seen


async def _answer(c: _Candidate, matcher: _Matcher, tally: _Tally, first: float, end: float, period: float) -> None:
    """Answer one question every ``period`` s from ``first`` until ``end`` (or out of questions)."""
    due = first
    try:
        while due < end and c.todo:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            k = c.answered + 1
            sent = time.perf_counter()
            matcher.sent(c.attempt, k, sent)
            tally.send_lag.append(max(0.0, sent - due))
            reply = await c.client.answer(c.todo.popleft(), ANSWER_VALUE)
            tally.ack.append(time.perf_counter() - sent)
            if reply["t"] == "ack":
                c.answered = k
            else:
                matcher.refused(c.attempt, k)
                tally.refused[str(reply.get("code"))] += 1
            due += period
    except Closed as exc:
        tally.dropped[str(exc.code)] += 1


def _summary_ms(seconds: list[float]) -> dict[str, float] | None:
    """p50/p90/p99 (nearest rank), max and mean of ``seconds``, in ms."""
    if not seconds:
        return None
    xs = sorted(seconds)

    def rank(p: float) -> float:
        return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]

    figures = {"p50": rank(50), "p90": rank(90), "p99": rank(99), "max": xs[-1], "mean": sum(xs) / len(xs)}
    return {name: round(value * 1000, 2) for name, value in figures.items()}


async def measure(
    ws_bases: Sequence[str],
    proctor_base: str,
    tokens: TokenFactory,
    *,
    candidates: int,
    rate: float,
    duration: float,
    question_ids: Sequence[str],
    exam_id: str = EXAM_ID,
) -> dict[str, Any]:
    """Run the measurement against running nodes and return its figures (see the module docstring).

    ``ws_bases``: ``ws://host:port`` of each node, candidates are spread over
    them round-robin; ``proctor_base``: the node the proctor watches from.
    ``question_ids``: at least ``duration * rate`` single-choice questions of
    ``exam_id`` that accept the value ``"c"``, answered in this order.
    """
    run = secrets.token_hex(4)
    matcher, tally, update_times = _Matcher(), _Tally(), []
    proctor = ProctorClient(proctor_url(proctor_base, exam_id), tokens(f"lat-proctor-{run}", "proctor"), encoding="msgpack",
                            keep=False, on_push=_watcher(matcher, update_times), open_timeout=JOIN_TIMEOUT_S)
    await proctor.connect()
    joined: list[_Candidate] = []
    try:
        await proctor.hello(timeout=JOIN_TIMEOUT_S)
        for lo in range(0, candidates, RAMP_BATCH):
            batch = await asyncio.gather(
                *(
                    _join(attempt_url(ws_bases[i % len(ws_bases)], exam_id), tokens(f"lat-{run}-{i}", "candidate"), question_ids)
                    for i in range(lo, min(lo + RAMP_BATCH, candidates))
                ),
                return_exceptions=True,
            )
            joined += [c for c in batch if isinstance(c, _Candidate)]
            failures = [e for e in batch if isinstance(e, BaseException)]
            if failures:
                raise failures[0]

        period = 1 / rate
        start = time.perf_counter() + LEAD_S
        end = start + duration
        async with asyncio.TaskGroup() as group:
            for c in joined:
                group.create_task(_answer(c, matcher, tally, start + random.uniform(0, period), end, period))
        settle_until = max(end, time.perf_counter()) + SETTLE_S
        while matcher.unmatched() and time.perf_counter() < settle_until and not proctor.closed.is_set():
            await asyncio.sleep(0.05)
        if proctor.closed.is_set():
            raise ProtocolError(f"the proctor connection ended early: {proctor.close_code} {proctor.close_reason}")
    finally:
        await asyncio.gather(proctor.close(), *(c.client.close() for c in joined), return_exceptions=True)

    sent = len(tally.send_lag)
    in_window = sum(1 for at in update_times if start <= at < end)
    return {
        "candidates": candidates,
        "nodes": len(ws_bases),
        "rate_per_candidate": rate,
        "duration_s": duration,
        "answers_sent": sent,
        "answers_per_s": round(sent / duration, 1),
        "refused": dict(tally.refused),
        "dropped": dict(tally.dropped),
        "matched": len(matcher.latencies),
        "unmatched": matcher.unmatched(),
        "proctor_update_ms": _summary_ms(matcher.latencies),
        "ack_ms": _summary_ms(tally.ack),
        "send_lag_ms": _summary_ms(tally.send_lag),
        "proctor_updates": in_window,
        "proctor_updates_per_s": round(in_window / duration, 1),
    }


def _figures(summary: dict[str, float] | None, names: Sequence[str]) -> str:
    if summary is None:
        return "(none)"
    return "  ".join(f"{name} {summary[name]:.1f} ms" for name in names)


def report(result: dict[str, Any], command: str, when: datetime) -> str:
    """The text block for one run of ``measure``."""
    lines = [
        (
            f"{when:%Y-%m-%dT%H:%M:%SZ} proctor update latency: {result['candidates']} candidates x "
            f"{result['rate_per_candidate']} answers/s over {result['nodes']} nodes, {result['duration_s']:g} s, proctor on node A"
        ),
        (
            f"  answers sent {result['answers_sent']} ({result['answers_per_s']:g}/s), "
            f"matched {result['matched']}, unmatched {result['unmatched']}"
        ),
        f"  answer -> proctor update: {_figures(result['proctor_update_ms'], ('p50', 'p90', 'p99', 'max'))}",
        f"  answer -> ack:            {_figures(result['ack_ms'], ('p50', 'p90', 'p99', 'max'))}",
        f"  answer send lag vs schedule: {_figures(result['send_lag_ms'], ('p50', 'p99', 'max'))}",
        f"  updates received by the proctor: {result['proctor_updates']} (per second {result['proctor_updates_per_s']:g})",
    ]
    if result["refused"] or result["dropped"]:
        lines.append(f"  refused answers (by code) {result['refused']}, dropped candidates (by close code) {result['dropped']}")
    lines.append(f"  command: {command}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ process management


def _run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when it is installed, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _start_node(workdir: Path, env: dict[str, str], name: str) -> Node:
    data_dir = workdir / f"node-{name}"
    data_dir.mkdir()
    port = free_port()
    argv = [sys.executable, "-m", "examwire", "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    return Node(argv, env, port=port, data_dir=data_dir, cwd=REPO_ROOT)


def _log_events(path: Path) -> Counter[str]:
    """How many lines of a node log carry each ``event`` (``(not JSON)`` for other lines)."""
    counts: Counter[str] = Counter()
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return counts
    for line in lines:
        try:
            event = json.loads(line).get("event", "?")
        except (ValueError, AttributeError):
            event = "(not JSON)"
        counts[str(event)] += 1
    return counts


def run(*, candidates: int, rate: float, duration: float, nodes: int, keep_logs: bool = False) -> dict[str, Any]:
    """Start Redis and ``nodes`` engine nodes, load the exam, ``measure``, stop everything."""
    workdir = Path(tempfile.mkdtemp(prefix="proctor-latency-"))
    redis = EmbeddedRedis(workdir / "redis", appendonly=False)
    started: list[Node] = []
    ok = False
    try:
        jwt_secret = secrets.token_urlsafe(36)  # 48 characters
        env = node_env(
            EXAMWIRE_REDIS_URL=redis.start(),
            EXAMWIRE_JWT_SECRET=jwt_secret,
            EXAMWIRE_SECRET=secrets.token_urlsafe(32),
            EXAMWIRE_EMBEDDED_WORKER="false",
            EXAMWIRE_RATE_PER_S="1000",
            EXAMWIRE_RATE_BURST="2000",
        )
        for name in NODE_NAMES[:nodes]:
            started.append(_start_node(workdir, env, name))
        for node in started:
            node.wait_ready()
        tokens = hs256_tokens(jwt_secret, EXAM_ID)
        exam = make_exam(
            EXAM_ID,
            math.ceil(duration * rate) + 5,
            duration_s=int(duration) + 3600,
            shuffle_questions=False,
            shuffle_options=False,
            types_=("single",),
        )
        status, body = http_json("PUT", f"{started[0].base_url}/v1/exams/{EXAM_ID}", token=tokens("lat-admin", "admin"), body=exam)
        if status != 200:
            raise RuntimeError(f"PUT /v1/exams/{EXAM_ID} -> {status}: {body!r}")
        question_ids = [q["id"] for q in exam["questions"]]
        result = _run_loop(
            measure(
                [node.ws_url for node in started],
                started[0].ws_url,
                tokens,
                candidates=candidates,
                rate=rate,
                duration=duration,
                question_ids=question_ids,
            )
        )
        ok = True
        return result
    finally:
        for node in started:
            node.stop()
        redis.stop()
        if not ok:
            print(f"--- redis ({redis.log_path}), last 20 lines ---\n{tail(redis.log_path, 20)}", file=sys.stderr)
        for name, node in zip(NODE_NAMES, started, strict=False):
            if ok:
                events = ", ".join(f"{event} {count}" for event, count in _log_events(node.log_path).most_common())
                print(f"node {name} log events: {events}", file=sys.stderr)
            else:
                print(f"--- node {name} ({node.log_path}), last 40 lines ---\n{tail(node.log_path, 40)}", file=sys.stderr)
        if ok and not keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.proctor_latency", description=__doc__.split("\n\n")[1])
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--rate", type=float, default=1.0, help="answers per second per candidate")
    parser.add_argument("--duration", type=float, default=30.0, help="measured window, seconds")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("proctor-latency.txt"), help="text report, appended")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir with the node and Redis logs")
    args = parser.parse_args(argv)
    if args.candidates < 1 or args.rate <= 0 or args.duration <= 0:
        parser.error("--candidates, --rate and --duration must be positive")
    if not 1 <= args.nodes <= len(NODE_NAMES):
        parser.error(f"--nodes must be 1 to {len(NODE_NAMES)}")
    if math.ceil(args.duration * args.rate) + 5 > 1000:
        parser.error("duration * rate must be at most 995 (an exam has at most 1000 questions)")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # clean up as on Ctrl-C
    when = datetime.now(UTC)
    result = run(candidates=args.candidates, rate=args.rate, duration=args.duration, nodes=args.nodes, keep_logs=args.keep_logs)
    command = (
        f"python -m loadtests.proctor_latency --candidates {args.candidates} --rate {args.rate} "
        f"--duration {args.duration:g} --nodes {args.nodes}"
    )
    block = report(result, command, when)
    print(block, end="")
    with open(args.out, "a") as fh:
        fh.write(block)
    if args.json:
        args.json.write_text(json.dumps({"at": f"{when:%Y-%m-%dT%H:%M:%SZ}", "command": command, **result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
