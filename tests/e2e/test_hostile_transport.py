"""Hostile transports against a real engine node: what a client without a token can make a node hold.

Raw sockets speak HTTP and WebSocket framing by hand, so nothing in between
answers pings or reads on the client's behalf. The node's memory is read from
``/proc/<pid>/status`` (its resident set) while the abuse goes on. README,
"Configuration": ``EXAMWIRE_MAX_HEADER_BYTES``, ``EXAMWIRE_HEADER_TIMEOUT_S``,
``EXAMWIRE_MAX_PIPELINED``, ``EXAMWIRE_SEND_TIMEOUT_S`` and the message budget
(``EXAMWIRE_RATE_*``), whose size control frames have a budget of too.
"""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import struct
import threading
import time
from typing import Any, Callable

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from testkit import wait_until

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
#: how much a node's resident set may grow while one client abuses it
RSS_BOUND = 20 * MIB
PATH = "/v1/exams/sample/attempt"


def rss(node: Any) -> int:
    """The node's resident set size in bytes."""
    with open(f"/proc/{node.proc.pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """Samples a node's resident set every 50 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.base = rss(node)
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss(self.node))

    def stop(self) -> int:
        """Stop sampling; the growth over the baseline, in bytes."""
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss(self.node))
        return self.peak - self.base


def frame(opcode: int, payload: bytes = b"") -> bytes:
    """One client frame (FIN set, masked with a zero key, so the payload goes as it is); payload < 126 bytes."""
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


PING = 0x9


def upgraded(node: Any, *, rcvbuf: int | None = None, path: str = PATH) -> socket.socket:
    """A raw socket past the WebSocket upgrade of ``path`` (the 101 read, nothing after it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect, so the advertised window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", node.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: read the response head and not one byte of what follows
        assert chunk, f"closed during the upgrade: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


class Pinger:
    """Sends pings on a non-blocking socket and never reads; frames stay whole across partial sends."""

    def __init__(self, sock: socket.socket, burst: bytes) -> None:
        sock.setblocking(False)
        self.sock, self.burst = sock, burst
        self.pending = memoryview(b"")
        self.sent = 0

    def step(self) -> bool:
        """Send what the socket takes now; False once the node has dropped the connection."""
        if not self.pending:
            self.pending = memoryview(self.burst)
        try:
            n = self.sock.send(self.pending)
        except BlockingIOError:
            return True
        except OSError:
            return False
        self.pending = self.pending[n:]
        self.sent += n
        return True

    def dropped_within(self, timeout: float) -> bool:
        """Keep sending (a burst every 10 ms) until the node drops the connection (True) or ``timeout`` s pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.step():
                return True
            time.sleep(0.01)
        return False


def abort(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), as a client that vanishes does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class RoundTrips:
    """Another client, measuring WebSocket ping -> pong round trips (10 a second) in a thread."""

    def __init__(self, node: Any) -> None:
        self._opened = connect(f"{node.ws_url}{PATH}", open_timeout=10, ping_interval=None)
        self.ws = self._opened.__enter__()
        self.rtts: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            answered = self.ws.ping().wait(10)
            self.rtts.append(time.monotonic() - started if answered else float("inf"))
            self._stop.wait(0.1)

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        self._opened.__exit__(None, None, None)
        return self.rtts


# ---------------------------------------------------------------------------
# control frames
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [PATH, "/v1/exams/sample/proctor"])
def test_a_ping_flood_that_never_reads_is_dropped_and_costs_no_memory(make_node: Callable[..., Any], path: str) -> None:
    node = make_node(EXAMWIRE_HELLO_TIMEOUT_MS="60000")  # no token needed: the flood comes before any hello
    other = RoundTrips(node)
    time.sleep(0.5)
    memory = PeakRss(node)
    flooder = upgraded(node, path=path)
    pinger = Pinger(flooder, frame(PING, b"p" * 125) * 512)  # 67 KiB of pings at a time
    cut_off, started = False, time.monotonic()
    while pinger.sent < 100 * MIB and time.monotonic() - started < 60:
        if not pinger.step():
            cut_off = True
            break
        if pinger.pending:
            time.sleep(0.001)  # the node is not reading just now: it must drop the socket (below)
    cut_off = cut_off or pinger.dropped_within(30)
    sent = pinger.sent
    time.sleep(0.5)
    growth = memory.stop()
    rtts = other.stop()
    abort(flooder)
    print(f"ping flood: {sent / MIB:.1f} MiB sent, cut off {cut_off}, RSS +{growth / MIB:.1f} MiB, worst round trip {max(rtts):.3f} s")
    assert cut_off, f"the node still holds a connection that sent {sent / MIB:.0f} MiB of pings and read none of the pongs"
    assert sent < 10 * MIB, f"the node read {sent / MIB:.0f} MiB of pings before dropping the flooder"
    assert growth < RSS_BOUND, f"the node's memory grew by {growth / MIB:.0f} MiB under one client's ping flood"
    assert rtts and max(rtts) < 1.0, f"another client's round trips during the flood: worst {max(rtts):.2f} s"
    with connect(f"{node.ws_url}{PATH}", open_timeout=10) as ws:  # and the node still serves
        assert ws.ping().wait(5)


def test_a_flood_of_empty_fragments_is_dropped_and_costs_no_memory(make_node: Callable[..., Any]) -> None:
    # a text message begun and never finished: empty continuation frames, none of them final
    node = make_node(EXAMWIRE_HELLO_TIMEOUT_MS="60000")
    memory = PeakRss(node)
    sock = upgraded(node)
    sock.sendall(bytes([0x01, 0x80]) + b"\0\0\0\0")  # TEXT, FIN clear, empty
    pinger = Pinger(sock, (bytes([0x00, 0x80]) + b"\0\0\0\0") * 10_000)  # 60 KB of continuation frames at a time
    cut_off, started = False, time.monotonic()
    while pinger.sent < 32 * MIB and time.monotonic() - started < 60:
        if not pinger.step():
            cut_off = True
            break
        if pinger.pending:
            time.sleep(0.001)
    cut_off = cut_off or pinger.dropped_within(10)
    growth = memory.stop()
    abort(sock)
    print(f"fragment flood: {pinger.sent / MIB:.1f} MiB sent, cut off {cut_off}, RSS +{growth / MIB:.1f} MiB")
    assert cut_off, f"the node still holds a connection that sent {pinger.sent / MIB:.0f} MiB of empty fragments"
    assert growth < RSS_BOUND, f"the node's memory grew by {growth / MIB:.0f} MiB under a flood of empty fragments"


def test_a_peer_that_reads_nothing_is_dropped_even_within_its_budget(make_node: Callable[..., Any]) -> None:
    # a budget so large it never binds: what drops the peer is that its pongs are not read
    node = make_node(
        EXAMWIRE_HELLO_TIMEOUT_MS="60000", EXAMWIRE_RATE_PER_S="100000", EXAMWIRE_RATE_BURST="100000",
        EXAMWIRE_SEND_TIMEOUT_S="2",
    )  # fmt: skip
    memory = PeakRss(node)
    peer = upgraded(node, rcvbuf=4096)
    pinger = Pinger(peer, frame(PING, b"q" * 125) * 64)  # 8 KiB every 10 ms: 800 KiB/s, for 25 s at most
    started = time.monotonic()
    cut_off = pinger.dropped_within(25)
    elapsed, sent = time.monotonic() - started, pinger.sent
    growth = memory.stop()
    abort(peer)
    print(f"silent peer: {sent / MIB:.1f} MiB sent, cut off {cut_off} after {elapsed:.1f} s, RSS +{growth / MIB:.1f} MiB")
    assert cut_off, f"a peer that read none of {sent / MIB:.1f} MiB worth of pongs was still connected after {elapsed:.0f} s"
    assert elapsed < 15, f"dropped only after {elapsed:.1f} s (send timeout 2 s)"
    assert growth < RSS_BOUND, f"the node's memory grew by {growth / MIB:.0f} MiB"


def test_pings_past_the_budget_close_an_authenticated_connection_too(
    make_node: Callable[..., Any], put_exam: Callable[..., Any], sample_exam: dict[str, Any], make_token: Callable[..., str]
) -> None:
    node = make_node()
    put_exam(node, sample_exam)
    with connect(f"{node.ws_url}{PATH}", open_timeout=10, ping_interval=None) as ws:
        ws.send(json.dumps({"t": "hello", "v": 1, "token": make_token("pinger", exams=["sample"])}))
        assert json.loads(ws.recv(timeout=10))["t"] == "welcome"
        for _ in range(60):  # the default budget: 40 at once, 20 a second
            try:
                ws.ping()
            except ConnectionClosed:
                break
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
    # 1008, unless pings still on their way made the node's close a reset that overtook its close frame
    rcvd = closed.value.rcvd
    assert rcvd is None or rcvd.code == 1008, closed.value
    with connect(f"{node.ws_url}{PATH}", open_timeout=10) as ws:  # a client within the budget is served
        for _ in range(10):
            assert ws.ping().wait(5)


# ---------------------------------------------------------------------------
# the log stays JSON lines when a backed-up client meets the hello timeout
# ---------------------------------------------------------------------------


def test_a_backed_up_client_at_its_hello_timeout_leaves_no_traceback(make_node: Callable[..., Any]) -> None:
    node = make_node(
        EXAMWIRE_HELLO_TIMEOUT_MS="1500", EXAMWIRE_RATE_PER_S="100000", EXAMWIRE_RATE_BURST="100000",
    )  # fmt: skip
    peer = upgraded(node, rcvbuf=4096)
    # its receive window fills, then the node's buffers; the hello timeout fires meanwhile
    Pinger(peer, frame(PING, b"r" * 125) * 512).dropped_within(5)
    abort(peer)  # then it goes away

    def disconnects() -> list[dict[str, Any]]:
        return [d for d in map(_json_or_none, node.log_text().splitlines()) if d and d.get("event") == "disconnect"]

    wait_until(disconnects, 10, lambda: f"the node's disconnect line\n{node.log_text()[-3000:]}")
    time.sleep(0.5)
    text = node.log_text()
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text[-4000:]
    for line in text.splitlines():
        if line.strip() and not line.startswith("examwire: "):  # stdout's few lines for a person
            assert _json_or_none(line) is not None, f"not a JSON log line: {line!r}"


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


# ---------------------------------------------------------------------------
# HTTP request heads
# ---------------------------------------------------------------------------


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the node closed this socket (EOF or reset); reads and discards what it sent before."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slow_request_heads_are_closed_within_the_header_timeout(make_node: Callable[..., Any]) -> None:
    node = make_node(EXAMWIRE_HEADER_TIMEOUT_S="2")
    silent, dribbling = [], []
    for i in range(40):
        sock = socket.create_connection(("127.0.0.1", node.port), timeout=10)
        if i % 2:
            # an upgrade request that never ends: one more header line every half second
            sock.sendall(f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n".encode())
            dribbling.append(sock)
        else:
            silent.append(sock)  # connects and says nothing
        sock.setblocking(False)
    started = time.monotonic()
    open_ = set(silent + dribbling)
    while open_ and time.monotonic() - started < 15:
        for sock in list(open_):
            if _closed_by_peer(sock):
                open_.discard(sock)
            elif sock in dribbling:
                try:
                    sock.send(b"X-Slow: 1\r\n")
                except BlockingIOError:
                    pass
                except OSError:
                    open_.discard(sock)
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    print(f"slow heads: {len(open_)} of 40 open after {elapsed:.1f} s")
    for sock in silent + dribbling:
        sock.close()
    assert not open_, f"{len(open_)} of 40 unfinished request heads still open after {elapsed:.0f} s (header timeout 2 s)"
    # and a request that is not slow is served as before
    with connect(f"{node.ws_url}{PATH}", open_timeout=10) as ws:
        assert ws.ping().wait(5)


def test_a_huge_request_head_is_refused_without_memory(make_node: Callable[..., Any]) -> None:
    node = make_node()
    memory = PeakRss(node)
    answers = []
    for request_line in (f"GET {PATH} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", "GET /healthz HTTP/1.1\r\n", "GET / HTTP/1.1\r\n"):
        sock = socket.create_connection(("127.0.0.1", node.port), timeout=10)
        sock.sendall(f"{request_line}Host: 127.0.0.1\r\nX-Huge: ".encode())
        filler = b"a" * MIB
        sent = 0
        try:
            while sent < 64 * MIB:
                sock.sendall(filler)
                sent += len(filler)
            sock.sendall(b"\r\n\r\n")
        except OSError:
            pass  # refused and closed mid-send: what we want
        sock.settimeout(10)
        answer = b""
        try:
            while len(answer) < 4096:
                data = sock.recv(4096)
                if not data:
                    break
                answer += data
        except OSError:
            pass
        sock.close()
        answers.append((sent, answer[:80]))
    growth = memory.stop()
    print(f"huge heads: RSS +{growth / MIB:.1f} MiB, {[(round(n / MIB), a[:20]) for n, a in answers]}")
    assert growth < RSS_BOUND, f"three 64 MiB request heads grew the node by {growth / MIB:.0f} MiB"
    for sent, answer in answers:
        assert sent < 64 * MIB, f"the node read a 64 MiB request head to the end (answer {answer!r})"
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer
    with connect(f"{node.ws_url}{PATH}", open_timeout=10) as ws:  # still serving
        assert ws.ping().wait(5)


def test_a_body_nobody_reads_cannot_hold_the_connection(make_node: Callable[..., Any]) -> None:
    # answered at once (a route that reads no body); then the client trickles a body it announced
    node = make_node(EXAMWIRE_HEADER_TIMEOUT_S="2")
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n0123456789")
    assert sock.recv(4096).startswith(b"HTTP/1.1 200"), "no answer to the request"
    sock.setblocking(False)
    started, closed = time.monotonic(), False
    while time.monotonic() - started < 15 and not closed:
        try:
            sock.send(b"x" * 10)
        except BlockingIOError:
            pass
        except OSError:
            closed = True
        closed = closed or _closed_by_peer(sock)
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    sock.close()
    print(f"trickled body: closed {closed} after {elapsed:.1f} s")
    assert closed, f"a body trickled after the response held the connection for {elapsed:.0f} s (header timeout 2 s)"


def _unread_requests(node: Any, per_step: int, seconds: float) -> tuple[bool, float]:
    """Send ``per_step`` requests for a page asset every 50 ms and read no response; (dropped, after how long)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", node.port))
    sock.setblocking(False)
    request = b"GET /static/exam.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"  # no token needed
    pending, started, closed = memoryview(b""), time.monotonic(), False
    while time.monotonic() - started < seconds and not closed:
        try:
            pending = pending[sock.send(pending or memoryview(request * per_step)):]
        except BlockingIOError:
            pass
        except OSError:
            closed = True
        time.sleep(0.05)
    abort(sock)
    return closed, time.monotonic() - started


def test_a_client_that_reads_no_responses_is_dropped_after_the_send_timeout(make_node: Callable[..., Any]) -> None:
    node = make_node(EXAMWIRE_SEND_TIMEOUT_S="2")
    memory = PeakRss(node)
    closed, elapsed = _unread_requests(node, 4, 25)  # a few at a time: the node answers each, into a full socket
    growth = memory.stop()
    print(f"unread responses: closed {closed} after {elapsed:.1f} s, RSS +{growth / MIB:.1f} MiB")
    assert closed, f"a client that read no responses was still connected after {elapsed:.0f} s (send timeout 2 s)"
    assert elapsed < 15, f"dropped only after {elapsed:.1f} s (send timeout 2 s)"
    assert growth < RSS_BOUND, f"the node's memory grew by {growth / MIB:.0f} MiB"


def test_a_client_far_ahead_of_its_answers_is_dropped(make_node: Callable[..., Any]) -> None:
    node = make_node()
    memory = PeakRss(node)
    closed, elapsed = _unread_requests(node, 2000, 25)  # 2000 pipelined requests at a time
    growth = memory.stop()
    print(f"pipelined: closed {closed} after {elapsed:.1f} s, RSS +{growth / MIB:.1f} MiB")
    assert closed, f"a client 2000 requests ahead of its answers was still connected after {elapsed:.0f} s"
    assert growth < RSS_BOUND / 4, f"the node's memory grew by {growth / MIB:.1f} MiB"
    # a WebSocket upgrade among requests past the limit starts nothing either, and logs nothing
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 40
            + f"GET {PATH} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
    time.sleep(0.5)
    text = node.log_text()
    assert "Traceback" not in text and '"level": "error"' not in text, text[-3000:]
