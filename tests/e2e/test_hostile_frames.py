"""Hostile frames and handshakes against a real engine node (docs/protocol.md, *Transport and framing*).

Raw ``websockets`` client, JSON text frames and MessagePack binary frames built
by hand. Every message the server sends in a test is collected, and at teardown
no ``error`` may leak internals (tracebacks, exception reprs, Redis, file paths).
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Iterator

import msgpack
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.e2e

EXAM = "sample"
RECV_TIMEOUT = 5.0
SMALL_FRAME_LIMIT = 4096
LEAK_MARKERS = ("Traceback", "Error(", "redis", "Redis", 'File "', "Exception", "/site-packages/", ".py\"", "line ")

# every message any server sent during the current test (checked for leaks at teardown)
_SEEN: list[dict[str, Any]] = []


@pytest.fixture(autouse=True)
def no_internal_error_text_leaks() -> Iterator[None]:
    _SEEN.clear()
    yield
    leaks = []
    for msg in _SEEN:
        if msg.get("t") != "error":
            continue
        text = str(msg.get("message", "")) + " " + str(msg.get("code", ""))
        if any(marker in text for marker in LEAK_MARKERS):
            leaks.append(msg)
    assert not leaks, f"internal error text leaked to the client: {leaks!r}"


# ---------------------------------------------------------------------------
# a tiny raw client
# ---------------------------------------------------------------------------


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code} {reason!r}")
        self.code = code
        self.reason = reason


class Client:
    """One candidate connection; ``binary`` selects MessagePack frames."""

    def __init__(self, node: Any, token: str | None, *, binary: bool = False, exam: str = EXAM, headers: dict[str, str] | None = None) -> None:
        self.binary = binary
        self.ws: ClientConnection = connect(
            f"{node.ws_url}/v1/exams/{exam}/attempt", additional_headers=headers, open_timeout=10, max_size=None
        ).__enter__()
        self.inbox: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] | None = None
        if token is not None:
            self.send({"t": "hello", "v": 1, "token": token})
            self.welcome = self.recv()
            assert self.welcome["t"] == "welcome", self.welcome

    # -- raw ---------------------------------------------------------------
    def encode(self, msg: dict[str, Any]) -> str | bytes:
        return msgpack.packb(msg) if self.binary else json.dumps(msg)

    def send_raw(self, frame: str | bytes) -> None:
        try:
            self.ws.send(frame)
        except ConnectionClosed as exc:
            raise Closed(exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else "") from None

    def send(self, msg: dict[str, Any]) -> None:
        self.send_raw(self.encode(msg))

    def recv(self, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        try:
            raw = self.ws.recv(timeout=timeout)
        except ConnectionClosed as exc:
            raise Closed(exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else "") from None
        if self.binary:
            assert isinstance(raw, bytes), f"binary client got a text frame: {raw!r}"
            msg = msgpack.unpackb(raw)
        else:
            assert isinstance(raw, str), f"JSON client got a binary frame: {raw!r}"
            msg = json.loads(raw)
        assert isinstance(msg, dict) and isinstance(msg.get("t"), str), msg
        _SEEN.append(msg)
        self.inbox.append(msg)
        return msg

    # -- protocol ----------------------------------------------------------
    def next_reply(self, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        """The next ack/error/pong, skipping unsolicited pushes (batch, time, state, ...)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(timeout=max(0.01, deadline - time.monotonic()))
            if msg["t"] in ("ack", "error", "pong"):
                return msg

    def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.send(msg)
        reply = self.next_reply()
        if "id" in msg and isinstance(msg["id"], int) and reply.get("id") is not None:
            assert reply.get("id") == msg["id"], f"reply to {msg!r} carries another id: {reply!r}"
        return reply

    def ping(self, ct: int = 42) -> None:
        self.send({"t": "ping", "ct": ct})
        reply = self.next_reply()
        assert reply["t"] == "pong" and reply["ct"] == ct, f"expected pong, got {reply!r}"

    def wait_closed(self, timeout: float = RECV_TIMEOUT) -> int | None:
        """Read everything until the server closes; return the close code."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"server did not close within {timeout} s; last messages {self.inbox[-5:]!r}")
            try:
                self.recv(timeout=left)
            except TimeoutError:
                continue
            except Closed as closed:
                return closed.code

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def started(node: Any, token: str, *, binary: bool = False) -> Client:
    client = Client(node, token, binary=binary)
    ack = client.request({"t": "start", "id": 1})
    assert ack["t"] == "ack" and ack["id"] == 1, ack
    return client


def assert_answer_kept(node: Any, token: str, qid: str, value: Any, acked_id: int, *, binary: bool = False) -> None:
    """Reconnect: the acknowledged answer survived the abuse and the node still serves."""
    with Client(node, token, binary=binary) as again:
        welcome = again.welcome
        assert welcome is not None
        assert welcome["answers"].get(qid) == value, f"acked answer {qid}={value!r} lost: {welcome!r}"
        assert welcome["last_id"] >= acked_id, welcome
        again.ping()


def assert_http_403(node: Any, origin: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        with connect(f"{node.ws_url}/v1/exams/{EXAM}/attempt", additional_headers={"Origin": origin}, open_timeout=10):
            pass
    assert info.value.response.status_code == 403, f"Origin {origin!r}: HTTP {info.value.response.status_code}"


@pytest.fixture
def node(make_node: Callable[..., Any], put_exam: Callable[..., Any], sample_exam: dict[str, Any]) -> Any:
    n = make_node()
    put_exam(n, sample_exam)
    return n


@pytest.fixture
def small_node(make_node: Callable[..., Any], put_exam: Callable[..., Any], sample_exam: dict[str, Any]) -> Any:
    n = make_node(EXAMWIRE_MAX_FRAME_BYTES=str(SMALL_FRAME_LIMIT))
    put_exam(n, sample_exam)
    return n


# ---------------------------------------------------------------------------
# Origin
# ---------------------------------------------------------------------------


def test_default_origin_policy(node: Any, make_token: Callable[..., str]) -> None:
    # no Origin (non-browser client) and the engine's own origin are accepted
    with Client(node, make_token("no-origin")) as c:
        c.ping()
    with Client(node, make_token("own-origin"), headers={"Origin": f"http://127.0.0.1:{node.port}"}) as c:
        c.ping()
    for origin in [
        "https://evil.example",
        "null",
        f"http://127.0.0.1:{node.port + 1}",
        f"http://127.0.0.1:{node.port}.evil.example",
        f"http://evil.example#127.0.0.1:{node.port}",
        f"http://user@127.0.0.1:{node.port}",
        f"ws://127.0.0.1:{node.port}",
        "http://[::1",
        "",
    ]:
        assert_http_403(node, origin)
    with Client(node, make_token("after")) as c:  # still serving
        c.ping()


def test_configured_allowed_origins(make_node: Callable[..., Any], put_exam: Callable[..., Any], sample_exam: dict[str, Any], make_token: Callable[..., str]) -> None:
    n = make_node(EXAMWIRE_ALLOWED_ORIGINS="https://exams.example.org")
    put_exam(n, sample_exam)
    with Client(n, make_token("listed"), headers={"Origin": "https://exams.example.org"}) as c:
        c.ping()
    for origin in [
        "https://evil.example",
        "http://exams.example.org",
        "https://exams.example.org.evil.example",
        "https://exams.example.org:8443",
        "https://sub.exams.example.org",
        f"http://127.0.0.1:{n.port}",  # with an explicit list, the own origin is no longer implied
        "null",
    ]:
        assert_http_403(n, origin)


# ---------------------------------------------------------------------------
# frame size
# ---------------------------------------------------------------------------


def _json_ping_of_size(size: int, ct: int) -> str:
    """A JSON ``ping`` padded (with an extra, ignored field) to exactly ``size`` bytes."""
    base = {"t": "ping", "ct": ct, "pad": ""}
    frame = json.dumps({**base, "pad": "x" * (size - len(json.dumps(base)))})
    assert len(frame.encode()) == size
    return frame


def _msgpack_ping_of_size(size: int, ct: int) -> bytes:
    """A MessagePack ``ping`` padded to exactly ``size`` bytes."""
    pad = size
    while True:
        frame = msgpack.packb({"t": "ping", "ct": ct, "pad": "x" * pad})
        if len(frame) == size:
            return frame
        pad -= max(1, len(frame) - size) if len(frame) > size else -1


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_frame_above_limit_closes_1009_and_keeps_acked_data(small_node: Any, make_token: Callable[..., str], binary: bool) -> None:
    token = make_token(f"big-{binary}")
    build = _msgpack_ping_of_size if binary else _json_ping_of_size
    with started(small_node, token, binary=binary) as c:
        ack = c.request({"t": "answer", "id": 2, "q": "q1", "value": "b"})
        assert ack["t"] == "ack", ack
        # just under and exactly at the limit: served
        for ct, size in [(3, SMALL_FRAME_LIMIT - 100), (4, SMALL_FRAME_LIMIT - 1), (5, SMALL_FRAME_LIMIT)]:
            c.send_raw(build(size, ct))
            reply = c.next_reply()
            assert reply["t"] == "pong" and reply["ct"] == ct, f"{size}-byte frame (limit {SMALL_FRAME_LIMIT}): {reply!r}"
        c.ping()
        # one byte over: 1009
        try:
            c.send_raw(build(SMALL_FRAME_LIMIT + 1, 5))
        except Closed as closed:  # the close may race the send
            code = closed.code
        else:
            code = c.wait_closed()
        assert code == 1009, f"close code {code}"
    assert_answer_kept(small_node, token, "q1", "b", 2, binary=binary)
    # a much larger frame too
    with started(small_node, token, binary=binary) as c:
        try:
            c.send_raw(build(SMALL_FRAME_LIMIT * 4, 6))
            code = c.wait_closed()
        except Closed as closed:
            code = closed.code
        assert code == 1009, f"close code {code}"
    assert_answer_kept(small_node, token, "q1", "b", 2, binary=binary)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_oversized_hello_closes_1009(small_node: Any, make_token: Callable[..., str], binary: bool) -> None:
    hello = {"t": "hello", "v": 1, "token": make_token("big-hello"), "client": "x" * (SMALL_FRAME_LIMIT * 2)}
    c = Client(small_node, None, binary=binary)
    try:
        c.send(hello)
        code = c.wait_closed()
    except Closed as closed:
        code = closed.code
    assert code == 1009, code
    assert not any(m["t"] == "welcome" for m in c.inbox), c.inbox
    c.close()


# ---------------------------------------------------------------------------
# undecodable frames
# ---------------------------------------------------------------------------

DEPTH = 5000

JSON_BAD_FRAMES: list[tuple[str, str]] = [
    ("invalid json", "{not json"),
    ("truncated json", '{"t": "ping", "ct": 1'),
    ("json array", '[{"t": "ping", "ct": 1}]'),
    ("json string", '"ping"'),
    ("json number", "42"),
    ("json null", "null"),
    ("t not a string", '{"t": 5}'),
    ("t missing", '{"ct": 1}'),
    ("t null", '{"t": null, "id": 3}'),
    ("t a list", '{"t": ["ping"]}'),
    ("NaN", '{"t": "ping", "ct": NaN}'),
    ("Infinity", '{"t": "ping", "ct": -Infinity}'),
    ("deeply nested array", '{"t": "ping", "ct": 1, "x": ' + "[" * DEPTH + "]" * DEPTH + "}"),
    ("deeply nested object", '{"t": "ping", "ct": 1, "x": ' + '{"a":' * 2000 + "1" + "}" * 2000 + "}"),
    ("unterminated deep nesting", "[" * 20000),
    ("empty", ""),
]

MSGPACK_BAD_FRAMES: list[tuple[str, bytes]] = [
    ("invalid msgpack", b"\xc1\xc1\xc1"),
    ("truncated msgpack", msgpack.packb({"t": "ping", "ct": 1})[:-3]),
    ("trailing garbage", msgpack.packb({"t": "ping", "ct": 1}) + b"\xc1"),
    ("msgpack list", msgpack.packb([{"t": "ping", "ct": 1}])),
    ("msgpack int", msgpack.packb(7)),
    ("msgpack ext top-level", msgpack.packb(msgpack.ExtType(5, b"abc"))),
    ("msgpack ext in map", msgpack.packb({"t": "ping", "ct": msgpack.ExtType(42, b"\x00" * 8)})),
    ("msgpack timestamp ext", msgpack.packb({"t": "ping", "ct": msgpack.Timestamp(1, 0)})),
    ("msgpack t as bytes", msgpack.packb({"t": b"ping", "ct": 1}, use_bin_type=True)),
    ("msgpack t not a string", msgpack.packb({"t": 5})),
    ("msgpack deeply nested", b"\x82" + msgpack.packb("t") + msgpack.packb("ping") + msgpack.packb("x") + b"\x91" * DEPTH + b"\xc0"),
    ("msgpack declares huge array", b"\xdd\xff\xff\xff\xff"),
    ("msgpack declares huge str", b"\x81\xa1t\xdb\xff\xff\xff\xff"),
    ("empty binary", b""),
]


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_undecodable_frames_get_bad_frame_and_connection_stays_open(node: Any, make_token: Callable[..., str], binary: bool) -> None:
    cases = MSGPACK_BAD_FRAMES if binary else JSON_BAD_FRAMES
    failures = []
    # at most 5 bad frames per connection: well inside the bad-frame budget (burst 10)
    for n, chunk in enumerate(_chunks(cases, 5)):
        with Client(node, make_token(f"bad-{binary}-{n}"), binary=binary) as c:
            for name, frame in chunk:
                try:
                    c.send_raw(frame)
                    reply = c.next_reply()
                except (Closed, TimeoutError) as exc:
                    failures.append(f"{name}: {exc!r}")
                    break
                if reply["t"] != "error" or reply.get("code") != "bad_frame":
                    failures.append(f"{name}: {reply!r}")
                try:
                    c.ping()
                except (Closed, TimeoutError, AssertionError) as exc:
                    failures.append(f"{name}: no pong afterwards: {exc!r}")
                    break
    assert not failures, "undecodable frames not answered with bad_frame:\n" + "\n".join(failures)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_unknown_type_echoes_id(node: Any, make_token: Callable[..., str], binary: bool) -> None:
    with Client(node, make_token("nope"), binary=binary) as c:
        reply = c.request({"t": "nope", "id": 7})
        assert reply["t"] == "error" and reply["code"] == "unknown_type" and reply.get("id") == 7, reply
        reply = c.request({"t": "NOPE"})
        assert reply["t"] == "error" and reply["code"] == "unknown_type", reply
        reply = c.request({"t": "x" * 500, "id": 8})
        assert reply["t"] == "error" and reply["code"] in ("unknown_type", "bad_frame"), reply
        c.ping()


# ---------------------------------------------------------------------------
# ill-typed fields
# ---------------------------------------------------------------------------

# (label, request, accepted codes, expected id in the error or None when the id itself is invalid)
ILL_TYPED: list[tuple[str, dict[str, Any], set[str], int | None]] = [
    ("id a string", {"t": "answer", "id": "3", "q": "q1", "value": "b"}, {"bad_request"}, None),
    ("id zero", {"t": "answer", "id": 0, "q": "q1", "value": "b"}, {"bad_request"}, None),
    ("id negative", {"t": "answer", "id": -4, "q": "q1", "value": "b"}, {"bad_request"}, None),
    ("id a float", {"t": "answer", "id": 3.5, "q": "q1", "value": "b"}, {"bad_request"}, None),
    ("id a bool", {"t": "answer", "id": True, "q": "q1", "value": "b"}, {"bad_request"}, None),
    ("missing q", {"t": "answer", "id": 10, "value": "b"}, {"bad_request"}, 10),
    ("q an int", {"t": "answer", "id": 11, "q": 1, "value": "b"}, {"bad_request", "unknown_question"}, 11),
    ("missing value", {"t": "answer", "id": 12, "q": "q1"}, {"bad_request", "bad_value"}, 12),
    ("value a dict", {"t": "answer", "id": 13, "q": "q1", "value": {"$gt": ""}}, {"bad_value", "bad_request"}, 13),
    ("value 2**64-1", {"t": "answer", "id": 14, "q": "q4", "value": 2**64 - 1}, {"bad_value", "bad_request"}, 14),
    ("multiple with ints", {"t": "answer", "id": 15, "q": "q2", "value": [1, 2]}, {"bad_value", "bad_request"}, 15),
    ("single with a list", {"t": "answer", "id": 16, "q": "q1", "value": ["b"]}, {"bad_value", "bad_request"}, 16),
    ("true_false with a string", {"t": "answer", "id": 17, "q": "q3", "value": "true"}, {"bad_value", "bad_request"}, 17),
    ("numeric with a string", {"t": "answer", "id": 18, "q": "q4", "value": "3.14"}, {"bad_value", "bad_request"}, 18),
    ("flag on a string", {"t": "flag", "id": 19, "q": "q1", "on": "yes"}, {"bad_request"}, 19),
    ("goto index a string", {"t": "goto", "id": 20, "index": "2"}, {"bad_request"}, 20),
    ("fetch from missing", {"t": "fetch", "id": 21, "count": 3}, {"bad_request"}, 21),
    ("event kind a dict", {"t": "event", "id": 22, "kind": {"x": 1}}, {"bad_request"}, 22),
    ("start id a list", {"t": "start", "id": [1]}, {"bad_request"}, None),
]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_ill_typed_fields_are_refused_with_their_id(node: Any, make_token: Callable[..., str], binary: bool) -> None:
    token = make_token(f"types-{binary}")
    with started(node, token, binary=binary) as c:
        ack = c.request({"t": "answer", "id": 2, "q": "q5", "value": "Paris"})
        assert ack["t"] == "ack", ack
    failures = []
    for chunk in _chunks(ILL_TYPED, 5):
        with Client(node, token, binary=binary) as c:
            for label, request, codes, expected_id in chunk:
                try:
                    reply = c.request(request)
                except (Closed, TimeoutError) as exc:
                    failures.append(f"{label}: sent {request!r}: {exc!r}")
                    break
                ok = reply["t"] == "error" and reply.get("code") in codes
                if expected_id is not None:
                    ok = ok and reply.get("id") == expected_id
                else:
                    ok = ok and reply.get("id") in (None, request.get("id")) and not isinstance(reply.get("id"), bool)
                if not ok:
                    failures.append(f"{label}: sent {request!r}, got {reply!r} (want error {sorted(codes)} id={expected_id})")
            try:
                c.ping()
            except (Closed, TimeoutError, AssertionError) as exc:
                failures.append(f"connection did not survive {[x[0] for x in chunk]}: {exc!r}")
    # nothing was changed by the refused requests
    with Client(node, token, binary=binary) as c:
        assert c.welcome is not None
        assert c.welcome["answers"] == {"q5": "Paris"}, c.welcome
        assert c.welcome["flags"] == [], c.welcome
    assert not failures, "ill-typed requests not refused as the protocol says:\n" + "\n".join(failures)


def test_huge_integer_value_is_refused_with_its_id(node: Any, make_token: Callable[..., str]) -> None:
    """JSON ``value: 2**80`` on a request with a valid id: the error must carry that id.

    (MessagePack cannot encode 2**80; its largest integer, 2**64-1, is covered
    by ``test_ill_typed_fields_are_refused_with_their_id[msgpack]``.)
    """
    token = make_token("huge-int")
    with started(node, token) as c:
        reply = c.request({"t": "answer", "id": 2, "q": "q4", "value": 2**80})
        assert reply["t"] == "error", reply
        assert reply.get("id") == 2 and reply.get("code") in ("bad_value", "bad_request"), (
            f"sent answer id=2 value=2**80, got {reply!r}: a request with a valid id must be answered with that id"
        )
        c.ping()


def test_huge_text_value_inside_frame_limit_is_bad_value(make_node: Callable[..., Any], put_exam: Callable[..., Any], sample_exam: dict[str, Any], make_token: Callable[..., str]) -> None:
    n = make_node(EXAMWIRE_MAX_FRAME_BYTES=str(4 * 1024 * 1024))
    put_exam(n, sample_exam)
    token = make_token("huge-text")
    with started(n, token) as c:
        reply = c.request({"t": "answer", "id": 2, "q": "q5", "value": "x" * 1_000_000})
        assert reply["t"] == "error" and reply["code"] == "bad_value" and reply.get("id") == 2, reply
        reply = c.request({"t": "answer", "id": 3, "q": "q2", "value": ["a"] * 5000})
        assert reply["t"] == "error" and reply["code"] in ("bad_value", "bad_request") and reply.get("id") == 3, reply
        reply = c.request({"t": "event", "id": 4, "kind": "blur", "detail": "y" * 1_000_000})
        assert reply["t"] in ("ack", "error"), reply
        if reply["t"] == "error":
            assert reply["code"] in ("bad_value", "bad_request") and reply.get("id") == 4, reply
        c.ping()
        ack = c.request({"t": "answer", "id": 5, "q": "q5", "value": "Paris"})
        assert ack["t"] == "ack" and ack["id"] == 5, ack
    assert_answer_kept(n, token, "q5", "Paris", 5)


# ---------------------------------------------------------------------------
# abuse budgets
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_repeated_bad_frames_close_1008_and_keep_acked_data(node: Any, make_token: Callable[..., str], binary: bool) -> None:
    token = make_token(f"spam-{binary}")
    with started(node, token, binary=binary) as c:
        ack = c.request({"t": "answer", "id": 2, "q": "q1", "value": "b"})
        assert ack["t"] == "ack", ack
        bad: str | bytes = b"\xc1" if binary else "{nope"
        code = None
        try:
            for _ in range(30):
                c.send_raw(bad)
        except Closed as closed:
            code = closed.code
        # The replies sent before the close may still sit unread in the buffer
        # when the send fails; read them all.
        drained = c.wait_closed()
        code = drained if code is None else code
        assert code == 1008, f"close code {code}; got {c.inbox[-5:]!r}"
        errors = [m for m in c.inbox if m["t"] == "error"]
        assert errors and all(m["code"] == "bad_frame" for m in errors), errors
        assert len(errors) <= 12, f"{len(errors)} bad frames answered before the 1008 close"
    assert_answer_kept(node, token, "q1", "b", 2, binary=binary)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "msgpack"])
def test_ping_flood_is_rate_limited_then_closed_1008(node: Any, make_token: Callable[..., str], binary: bool) -> None:
    token = make_token(f"flood-{binary}")
    with started(node, token, binary=binary) as c:
        ack = c.request({"t": "answer", "id": 2, "q": "q1", "value": "b"})
        assert ack["t"] == "ack", ack
        code = None
        frames = [c.encode({"t": "ping", "ct": i}) for i in range(200)]
        try:
            for frame in frames:
                c.send_raw(frame)
        except Closed as closed:
            code = closed.code
        if code is None:
            code = c.wait_closed()
        else:
            try:
                c.wait_closed()
            except AssertionError:
                pass
        limited = [m for m in c.inbox if m["t"] == "error" and m.get("code") == "rate_limited"]
        pongs = [m for m in c.inbox if m["t"] == "pong"]
        others = [m for m in c.inbox if m["t"] == "error" and m.get("code") != "rate_limited"]
        assert code == 1008, f"close code {code}; {len(pongs)} pongs, {len(limited)} rate_limited"
        assert limited, f"no rate_limited error before the close ({len(pongs)} pongs)"
        assert not others, others
        assert len(pongs) < 200, len(pongs)
    assert_answer_kept(node, token, "q1", "b", 2, binary=binary)


def test_steady_ten_per_second_is_never_limited(node: Any, make_token: Callable[..., str]) -> None:
    token = make_token("steady")
    with started(node, token) as c:
        next_id = 2
        t0 = time.monotonic()
        for i in range(50):
            if i % 2:
                reply = c.request({"t": "answer", "id": next_id, "q": "q5", "value": f"answer {i}"})
                assert reply["t"] == "ack" and reply["id"] == next_id, f"message {i}: {reply!r}"
                next_id += 1
            else:
                c.ping(ct=i)
            # 10 messages per second on a fixed schedule
            delay = t0 + (i + 1) * 0.1 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        assert not [m for m in c.inbox if m["t"] == "error"], [m for m in c.inbox if m["t"] == "error"]
        c.ping()
        last = next_id - 1
    assert_answer_kept(node, token, "q5", "answer 49", last)


def test_rate_limited_requests_carry_their_id_and_are_not_applied(node: Any, make_token: Callable[..., str]) -> None:
    """A burst a little over the budget: refusals carry their id, change nothing, and a retry applies them.

    Default budget: 20/s, burst 40; 48 answers back to back overshoot it by ~10,
    well short of the disconnect threshold (half the burst more).
    """
    token = make_token("burst")
    with started(node, token) as c:
        ids = list(range(2, 50))
        for i in ids:
            c.send({"t": "answer", "id": i, "q": "q5", "value": f"v{i}"})
        replies = {}
        while len(replies) < len(ids):
            reply = c.next_reply()
            assert reply["t"] in ("ack", "error") and reply.get("id") in ids, f"reply without a request id: {reply!r}"
            replies[reply["id"]] = reply
        refused = [i for i in ids if replies[i]["t"] == "error"]
        assert refused, "48 answers in a burst were all accepted (burst is 40)"
        assert all(replies[i]["code"] == "rate_limited" for i in refused), [replies[i] for i in refused]
        acked = [i for i in ids if replies[i]["t"] == "ack"]
        assert acked and not any(replies[i].get("dup") for i in acked), replies
        time.sleep(1.5)  # the refill pays the debt back
        c.ping()
        # the refused requests were not applied: resent with their ids, they apply now (no dup)
        for i in refused:
            reply = c.request({"t": "answer", "id": i, "q": "q5", "value": f"v{i}"})
            if i > max(acked):
                assert reply["t"] == "ack" and not reply.get("dup"), f"retry of rate-limited id {i}: {reply!r}"
    assert_answer_kept(node, token, "q5", f"v{ids[-1]}", ids[-1])
