"""The newest connection wins, whatever the interleaving (docs/architecture.md, "Across nodes").

Many connections of one candidate say ``hello`` at the same moment, on one
node or spread over two: exactly one of them stays open, every other one is
closed with 4409 (never 1013, never all of them), and the one that stays can
answer and gets its acks. The candidate's earlier connection, left open or
closed at the same moment, never leaves the attempt without a connection, and
the attempt stays present in the proctors' view while the survivor holds it.

Raw ``websockets`` clients, derived from docs/protocol.md only.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from testkit import make_exam

SUPERSEDED = 4409
#: After the last loser closed, how long the survivor must stay open before it is called the survivor.
SETTLE_S = 0.5


@dataclass
class Conn:
    ws: ClientConnection
    messages: list[dict[str, Any]] = field(default_factory=list)
    welcome: asyncio.Future[dict[str, Any]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    code: int | None = None
    reader: asyncio.Task[None] | None = None

    async def read(self) -> None:
        try:
            async for frame in self.ws:
                message = json.loads(frame)
                self.messages.append(message)
                if message.get("t") == "welcome" and not self.welcome.done():
                    self.welcome.set_result(message)
        except ConnectionClosed:
            pass
        finally:
            self.code = self.ws.close_code
            self.closed.set()

    async def request(self, message: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        """Send a request and wait for the ``ack``/``error`` carrying its id."""
        seen = len(self.messages)
        await self.ws.send(json.dumps(message))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for reply in self.messages[seen:]:
                if reply.get("t") in ("ack", "error") and reply.get("id") == message["id"]:
                    return reply
            if self.closed.is_set():
                raise AssertionError(f"closed ({self.code}) before replying to {message}")
            await asyncio.sleep(0.01)
        raise AssertionError(f"no reply to {message} in {timeout} s")


async def _open(url: str) -> Conn:
    ws = await connect(url, open_timeout=30, ping_interval=None, close_timeout=2, max_size=None, compression=None)
    conn = Conn(ws)
    conn.reader = asyncio.create_task(conn.read())
    return conn


async def _wait_count(conns: list[Conn], closed: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while sum(c.closed.is_set() for c in conns) < closed and time.monotonic() < end:
        await asyncio.sleep(0.02)


async def _race(urls: list[str], token: str, n: int, previous: Conn | None, *, close_previous: bool,
                answer_id: int, timeout: float, opened: list[Conn]) -> Conn:
    """``n`` new connections (round robin over ``urls``) say hello at once; returns the survivor.

    ``previous`` (the survivor of the last round) is either left open, and must
    then be superseded too, or closed by the client at the moment of the hellos.
    Every connection opened is added to ``opened``.
    """
    conns = await asyncio.gather(*(_open(urls[i % len(urls)]) for i in range(n)))
    opened += conns
    hello = json.dumps({"t": "hello", "v": 1, "token": token})
    sends = [c.ws.send(hello) for c in conns]
    if previous is not None and close_previous:
        sends.append(previous.ws.close())
    await asyncio.gather(*sends)

    everyone = [*conns, *([previous] if previous is not None and not close_previous else [])]
    await _wait_count(everyone, len(everyone) - 1, timeout)
    await asyncio.sleep(SETTLE_S)
    open_ = [c for c in conns if not c.closed.is_set()]
    codes = sorted(c.code for c in conns if c.closed.is_set())
    assert len(open_) == 1, f"{len(open_)} of {n} new connections open; close codes of the others: {codes}"
    assert codes == [SUPERSEDED] * (n - 1), f"the losers must all close with 4409: {codes}"
    if previous is not None and not close_previous:
        await asyncio.wait_for(previous.closed.wait(), timeout)
        assert previous.code == SUPERSEDED, previous.code

    survivor = open_[0]
    welcome = await asyncio.wait_for(survivor.welcome, timeout)
    assert welcome["state"] in ("ready", "active"), welcome
    rid = welcome["last_id"] + 1
    if welcome["state"] == "ready":
        assert (await survivor.request({"t": "start", "id": rid}))["t"] == "ack"
        rid += 1
    reply = await survivor.request({"t": "answer", "id": rid, "q": f"x{answer_id % 5 + 1:02d}", "value": "c"})
    assert reply["t"] == "ack" and not reply.get("dup"), reply
    assert not survivor.closed.is_set(), survivor.code
    return survivor


async def _finish(conns: list[Conn]) -> None:
    for c in conns:
        if not c.closed.is_set():
            await c.ws.close()
        if c.reader is not None:
            await c.reader


async def _connected(url: str, token: str, attempt: str) -> bool:
    """Whether a proctor's snapshot shows the attempt connected."""
    async with connect(url, open_timeout=30, ping_interval=None, compression=None) as ws:
        await ws.send(json.dumps({"t": "hello", "v": 1, "token": token}))
        async with asyncio.timeout(15):
            async for frame in ws:
                message = json.loads(frame)
                if message.get("t") == "snapshot":
                    rows = {row["attempt"]: row for row in message["attempts"]}
                    return rows[attempt]["connected"] is True
    raise AssertionError("no snapshot")


def _rounds(urls: list[str], token: str, proctor: tuple[str, str], *, rounds: int, n: int, timeout: float) -> None:
    """Race ``rounds`` times; every round must pass (the failures of all rounds are reported together)."""

    async def body() -> list[str]:
        previous: Conn | None = None
        opened: list[Conn] = []
        failures: list[str] = []
        try:
            for r in range(rounds):
                try:
                    # even rounds: the old tab stays open (and must lose); odd rounds: it closes as the new ones connect
                    survivor = await _race(urls, token, n, previous, close_previous=r % 2 == 1,
                                           answer_id=r, timeout=timeout, opened=opened)
                    attempt = (await survivor.welcome)["attempt"]
                    # the closing of older connections never marks the survivor's attempt absent
                    assert await _connected(*proctor, attempt), "the proctor sees the survivor disconnected"
                    previous = survivor
                except AssertionError as exc:
                    failures.append(f"round {r}: {str(exc).splitlines()[0]}")
                    await _finish(opened)
                    previous = None
        finally:
            await _finish(opened)
        return failures

    failures = asyncio.run(asyncio.wait_for(body(), timeout=rounds * (timeout + 5) + 30))
    assert not failures, f"{len(failures)} of {rounds} rounds failed:\n" + "\n".join(failures)


# A presence heartbeat would re-add an attempt wrongly marked absent: make it slower than the test.
_SLOW_BEAT = {"EXAMWIRE_PRESENCE_INTERVAL_MS": "10000"}


def _setup(make_node, put_exam, make_token, exam_id: str, nodes: int) -> tuple[list[str], str, tuple[str, str]]:
    started = [make_node(**_SLOW_BEAT) for _ in range(nodes)]
    put_exam(started[0], make_exam(exam_id, 5, shuffle_questions=False, types_=("single",)))
    urls = [f"{node.ws_url}/v1/exams/{exam_id}/attempt" for node in started]
    proctor = (f"{started[-1].ws_url}/v1/exams/{exam_id}/proctor", make_token("race-proctor", "proctor"))
    return urls, make_token(f"cand-{exam_id}"), proctor


def test_two_at_once_on_one_node(make_node, put_exam, make_token):
    urls, token, proctor = _setup(make_node, put_exam, make_token, "race1", 1)
    _rounds(urls, token, proctor, rounds=40, n=2, timeout=15)


def test_two_at_once_across_two_nodes(make_node, put_exam, make_token):
    urls, token, proctor = _setup(make_node, put_exam, make_token, "race2", 2)
    _rounds(urls, token, proctor, rounds=40, n=2, timeout=15)


def test_two_hundred_at_once_on_one_node(make_node, put_exam, make_token):
    urls, token, proctor = _setup(make_node, put_exam, make_token, "race3", 1)
    _rounds(urls, token, proctor, rounds=2, n=200, timeout=60)


def test_two_hundred_at_once_across_two_nodes(make_node, put_exam, make_token):
    urls, token, proctor = _setup(make_node, put_exam, make_token, "race4", 2)
    _rounds(urls, token, proctor, rounds=2, n=200, timeout=60)
