"""SIGTERM must stop a node within its shutdown bound, whatever its clients and its loops are doing.

Real engine nodes, a real Redis, real sockets (raw TCP for the clients that
misbehave at the byte level, ``ExamClient`` for the well-behaved ones).

``test_sigterm_exits_within_bound_with_clients_in_every_state``: before the
SIGTERM the node holds clients in every state a connection can be in:

(a) WebSocket open, no ``hello`` yet, or half a ``hello`` frame sent;
(b) TCP open with half an HTTP upgrade request;
(c) requests sent, then the client killed (RST / FIN, no close frame) before reading the reply;
(d) flooding until the rate limiter closes them 1008, some reading, some never reading;
(e) never reading while asking for large pushes and pinging on, so the node's
    send buffer fills, its connection task blocks in ``send`` and the
    slow-consumer drop (1013) fires;
(f) idle candidates and an idle proctor, connected and reading.

``test_sigterm_stops_busy_nodes_within_bound``: several nodes with a proctor
and candidates, stopped together.

Both catch the hang this file was written for: on Python 3.11 a cancellation
can be lost inside ``asyncio.wait_for``, which redis-py uses to write every
command (see ``handlers/stopping.py``); a lifespan that cancelled its loops
once and awaited them waited for ever when the sweeper lost its cancellation
in the middle of a Redis round trip. The sweeper runs every 100 ms here: in
step with uvicorn's 100 ms shutdown polling, which is when the lifespan
cancels it, so that the race is hit in a good share of shutdowns rather than
a few percent. ``test_lifespan_stops_a_loop_that_lost_its_cancellation``
hits it every time, in process: it ends the app's lifespan at the one moment
where the sweeper's cancellation is lost.

Every node is given ``EXAMWIRE_SHUTDOWN_TIMEOUT_S=3``; it must exit (any
code) within ``EXIT_BOUND_S`` of the SIGTERM.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Coroutine

import pytest

from tests.e2e.client import ExamClient, attempt_url
from testkit import make_exam

pytestmark = pytest.mark.e2e

EXAM_ID = "shutdown"
SHUTDOWN_TIMEOUT_S = 3
EXIT_BOUND_S = SHUTDOWN_TIMEOUT_S + 7  # uvicorn's graceful bound plus margin for the lifespan and the exit
PROMPT_CHARS = 20_000  # the largest prompt an exam may hold: every batch push is big
QUESTIONS = 30
BUSY_NODES = 6

NODE_ENV = {
    "EXAMWIRE_SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
    "EXAMWIRE_SWEEP_INTERVAL_MS": "100",  # in step with uvicorn's shutdown polling (see the module docstring)
    "EXAMWIRE_TIME_PUSH_INTERVAL_MS": "200",  # ticks reach the inbox of a blocked connection: 1013 drops
    "PYTHONFAULTHANDLER": "1",  # SIGABRT on a hang dumps every thread into the node's log
}


def big_exam() -> dict[str, Any]:
    exam = make_exam(EXAM_ID, QUESTIONS, duration_s=3600, types_=("single",))
    for i, q in enumerate(exam["questions"]):
        q["prompt"] = f"Q{i} " + "x" * (PROMPT_CHARS - 8)
    return exam


# ------------------------------------------------------------------ raw WebSocket over TCP
def ws_frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    """One masked client frame (RFC 6455)."""
    head = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        header = bytes([head, 0x80 | n])
    elif n < 65536:
        header = bytes([head, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([head, 0x80 | 127]) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def msg_frame(message: dict[str, Any]) -> bytes:
    return ws_frame(json.dumps(message, separators=(",", ":")).encode())


class RawClient:
    """A TCP socket speaking just enough WebSocket to misbehave; it never reads after the upgrade."""

    def __init__(self, port: int, *, rcvbuf: int | None = 4096) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the advertised window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.stalled = False  # a send timed out: the node stopped reading us

    def upgrade_request(self) -> bytes:
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            f"GET /v1/exams/{EXAM_ID}/attempt HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()

    def upgrade(self) -> "RawClient":
        self.sock.sendall(self.upgrade_request())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "connection closed during the upgrade"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head[:200]
        return self

    def send(self, data: bytes, timeout: float = 0.3) -> bool:
        """Send without blocking the test for long; False (and ``stalled``) once the node stops reading."""
        if self.stalled:
            return False
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
            return True
        except (socket.timeout, OSError):
            self.stalled = True
            return False

    def request(self, t: str, rid: int, **fields: Any) -> bool:
        return self.send(msg_frame({"t": t, "id": rid, **fields}))

    def kill_rst(self) -> None:
        """Die like a killed process with unread data: RST, no close frame."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.sock.close()

    def close(self) -> None:
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.sock.close()


# ------------------------------------------------------------------ an event loop for ExamClients
class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="clients", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(cancel_all(), timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()


# ------------------------------------------------------------------ the clients, state by state
def mid_hello(port: int, raws: list[RawClient]) -> None:
    """(a) upgraded and silent; upgraded with half a hello frame."""
    for _ in range(3):
        raws.append(RawClient(port, rcvbuf=None).upgrade())
    for i in range(3):
        c = RawClient(port, rcvbuf=None).upgrade()
        frame = msg_frame({"t": "hello", "v": 1, "token": "x" * 200})
        c.send(frame[: 10 + i * 20])
        raws.append(c)


def half_upgrade(port: int, raws: list[RawClient]) -> None:
    """(b) TCP open, half an HTTP upgrade request."""
    for cut in (5, 40, 120):
        c = RawClient(port, rcvbuf=None)
        c.send(c.upgrade_request()[:cut])
        raws.append(c)


def killed_mid_request(port: int, token: Callable[[str], str]) -> None:
    """(c) hello, start, a burst of requests, then killed before reading any reply."""
    for i in range(6):
        c = RawClient(port).upgrade()
        c.send(msg_frame({"t": "hello", "v": 1, "token": token(f"killed-{i}")}))
        c.request("start", 1)
        c.request("answer", 2, q="x01", value="c")
        c.request("fetch", 3, **{"from": 0, "count": 100})
        c.request("flag", 4, q="x02", on=True)
        c.send(msg_frame({"t": "ping", "ct": 1}))
        if i % 2:
            c.kill_rst()
        else:
            c.sock.close()  # FIN (the kernel turns it into RST if replies are unread)


def flooders_never_reading(port: int, token: Callable[[str], str], raws: list[RawClient]) -> None:
    """(d) flood pings and never read: the rate limiter closes them 1008 (or the inbox fills)."""
    for i in range(3):
        c = RawClient(port).upgrade()
        c.send(msg_frame({"t": "hello", "v": 1, "token": token(f"flood-deaf-{i}")}))
        c.send(b"".join(msg_frame({"t": "ping", "ct": n}) for n in range(150)))
        raws.append(c)


async def flooders_reading(url: str, token: Callable[[str], str]) -> list[ExamClient]:
    """(d) flood pings and read: each is closed 1008 by the rate limiter."""
    clients = []
    for i in range(3):
        c = ExamClient(url, token(f"flood-{i}"))
        await c.connect()
        await c.hello()
        for n in range(150):
            try:
                await c.send_raw({"t": "ping", "ct": n})
            except Exception:  # noqa: BLE001 - closed by the node mid-flood
                break
        clients.append(c)
    for c in clients:
        await c.wait_closed(10)
    return clients


def never_reading(port: int, token: Callable[[str], str], raws: list[RawClient]) -> None:
    """(e) big pushes asked for and never read, then pings until the node stops reading us."""
    for i in range(4):
        c = RawClient(port).upgrade()
        c.send(msg_frame({"t": "hello", "v": 1, "token": token(f"deaf-{i}")}))
        c.request("start", 1)
        for rid in range(2, 12):
            c.request("fetch", rid, **{"from": 0, "count": 100})
        raws.append(c)
    # keep talking: pings pile up in the inbox behind the blocked task, then in TCP
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not all(c.stalled for c in raws[-4:]):
        for c in raws[-4:]:
            c.send(b"".join(msg_frame({"t": "ping", "ct": n}) for n in range(50)), timeout=0.05)


async def idle_candidates(url: str, token: Callable[[str], str]) -> list[ExamClient]:
    """(f) connected, started, reading, doing nothing."""
    clients = []
    for i in range(4):
        c = ExamClient(url, token(f"idle-{i}"))
        await c.connect()
        await c.hello()
        if i % 2:
            await c.start()
        clients.append(c)
    return clients



async def idle_proctor(node: Any, token: str) -> ExamClient:
    """(f) a proctor watching the exam (the node runs a live view for it), reading."""
    p = ExamClient(f"{node.ws_url}/v1/exams/{EXAM_ID}/proctor", token)
    await p.connect()
    await p.hello()
    await p.wait_for("snapshot", 5)
    return p


# ------------------------------------------------------------------ SIGTERM and the bound
def sigterm_and_wait(node: Any) -> tuple[int, float]:
    """SIGTERM ``node`` and wait up to ``EXIT_BOUND_S``: ``(exit code, seconds taken)``, or fail with its log."""
    sent = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    return wait_exit(node, sent)


def wait_exit(node: Any, sent: float) -> tuple[int, float]:
    try:
        code = node.proc.wait(timeout=max(0.0, sent + EXIT_BOUND_S - time.monotonic()))
    except subprocess.TimeoutExpired:
        node.proc.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: every thread's stack into the log
        try:
            node.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            node.kill()
        pytest.fail(f"node pid {node.proc.pid} still running {EXIT_BOUND_S} s after SIGTERM; its log ends:\n{node.log_text()[-6000:]}")
    return code, time.monotonic() - sent


# ------------------------------------------------------------------ the tests
def test_sigterm_exits_within_bound_with_clients_in_every_state(
    make_node: Callable[..., Any], put_exam: Callable[..., Any], make_token: Callable[..., str]
) -> None:
    node = make_node(**NODE_ENV)
    put_exam(node, big_exam())
    url = attempt_url(node.ws_url, EXAM_ID)

    def token(sub: str) -> str:
        return make_token(sub, exams=[EXAM_ID])

    raws: list[RawClient] = []
    loop = LoopThread()
    try:
        idle = loop.run(idle_candidates(url, token))
        idle.append(loop.run(idle_proctor(node, make_token("proctor", "proctor", exams=[EXAM_ID]))))
        mid_hello(node.port, raws)
        half_upgrade(node.port, raws)
        killed_mid_request(node.port, token)
        never_reading(node.port, token, raws)
        flooders_never_reading(node.port, token, raws)
        flooded = loop.run(flooders_reading(url, token))
        assert {c.close_code for c in flooded} <= {1008, 1013}, [c.close_code for c in flooded]
        assert 1008 in {c.close_code for c in flooded}, [c.close_code for c in flooded]
        time.sleep(0.5)  # let ticks reach the blocked connections (slow-consumer drops)
        assert node.proc.poll() is None, f"node died before the SIGTERM:\n{node.log_text()[-3000:]}"
        assert not any(c.closed.is_set() for c in idle)

        code, took = sigterm_and_wait(node)
        print(f"node exited with code {code} {took:.2f} s after SIGTERM")

        async def all_closed() -> None:  # the well-behaved clients were let go (1012), not left hanging
            await asyncio.wait_for(asyncio.gather(*(c.closed.wait() for c in idle)), 5)

        loop.run(all_closed())
    finally:
        for c in raws:
            c.close()
        loop.stop()


def test_sigterm_stops_busy_nodes_within_bound(
    make_node: Callable[..., Any], put_exam: Callable[..., Any], make_token: Callable[..., str]
) -> None:
    with ThreadPoolExecutor(BUSY_NODES) as pool:
        nodes = list(pool.map(lambda _: make_node(**NODE_ENV), range(BUSY_NODES)))
    put_exam(nodes[0], make_exam(EXAM_ID, 12))  # the exams are in the shared Redis: every node serves it
    loop = LoopThread()
    try:
        proctor = make_token("proctor", "proctor", exams=[EXAM_ID])

        async def populate(node: Any, n: int) -> list[ExamClient]:
            clients = [await idle_proctor(node, proctor)]
            for i in range(2):
                c = ExamClient(attempt_url(node.ws_url, EXAM_ID), make_token(f"busy-{n}-{i}", exams=[EXAM_ID]))
                await c.connect()
                await c.hello()
                await c.start()
                clients.append(c)
            return clients

        for n, node in enumerate(nodes):
            loop.run(populate(node, n))
        time.sleep(0.3)
        sent = time.monotonic()
        for node in nodes:
            node.proc.send_signal(signal.SIGTERM)
        codes = [wait_exit(node, sent) for node in nodes]
        print("exit codes and seconds:", [(code, round(took, 2)) for code, took in codes])
    finally:
        loop.stop()


def test_lifespan_stops_a_loop_that_lost_its_cancellation(redis_url: str, secrets: Any, tmp_path: Path, arun: Callable[..., Any]) -> None:
    """The app's lifespan ends while the sweeper is between the write of a Redis command and its own wakeup.

    redis-py wraps that write in ``asyncio.wait_for``; on Python 3.11 a
    cancellation arriving then is swallowed (the write is returned, the
    sweeper goes on sweeping). The lifespan must stop it all the same, within
    its bound. The moment is picked by awaiting the write task itself: a
    task awaiting it resumes right after ``wait_for`` is told the write is
    done and before the sweeper resumes. Real app, real Redis; nothing
    replaced.
    """
    from examwire.app import create_app
    from examwire.settings import Settings

    settings = Settings.from_env(
        {
            "EXAMWIRE_REDIS_URL": redis_url,
            "EXAMWIRE_JWT_SECRET": secrets.jwt_secret,
            "EXAMWIRE_SECRET": secrets.secret,
            "EXAMWIRE_SWEEP_INTERVAL_MS": "10",
        },
        data_dir=tmp_path,
    )
    app = create_app(settings)

    async def write_under_wait_for(task: asyncio.Task[Any]) -> asyncio.Task[Any] | None:
        """The task ``wait_for`` runs for ``task``'s current Redis write, once there is one (None: never)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            coro: Any = task.get_coro()
            while coro is not None and hasattr(coro, "cr_frame"):
                frame = coro.cr_frame
                if frame is not None and frame.f_code is asyncio.wait_for.__code__:
                    inner = frame.f_locals.get("fut")
                    if isinstance(inner, asyncio.Task) and not inner.done():
                        return inner
                coro = coro.cr_await
            await asyncio.sleep(0)
        return None

    async def scenario() -> tuple[bool, float]:
        async with app.router.lifespan_context(app):
            sweeper = next(t for t in asyncio.all_tasks() if t.get_name() == "sweeper")
            write = await write_under_wait_for(sweeper)
            if write is None:
                why = "redis-py no longer writes commands through asyncio.wait_for (or this Python's wait_for has no such task)"
                if os.environ.get("CI"):  # the race is gone: say so loudly, so that its workaround is reviewed
                    pytest.fail(f"{why}: the lost cancellation cannot be staged; review handlers/stopping.py", pytrace=False)
                pytest.skip(why)
            await write  # resumes before the sweeper: the lifespan's cancellation lands in wait_for's hole
            began = time.monotonic()
        return sweeper.done(), time.monotonic() - began

    try:
        stopped, took = arun(scenario(), timeout=10)
    except TimeoutError:
        pytest.fail("the lifespan did not end within 10 s: it waits for a loop that lost its cancellation")
    assert stopped
    assert took < 3.5, took
