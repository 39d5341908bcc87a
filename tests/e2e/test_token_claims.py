"""Correctly signed tokens with claims that break the rules (docs/protocol.md, "Tokens: precise rules").

A signature makes a token authentic, not well-formed. Every hostile claim is
refused like a bad signature: the WebSocket closes with 4401 and a reason
naming the claim, an HTTP bearer gets 401 with the same message; never a 1011
and a traceback. After each attack the node still welcomes a good candidate.
Tokens are signed here with PyJWT or by hand, the connections are raw
``websockets`` clients: nothing of the engine's own client is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Callable

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from testkit import http_json

pytestmark = pytest.mark.e2e

EXAM = "sample"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(secret: str, payload: dict[str, Any]) -> str:
    """An HS256 token over exactly ``payload`` (JSON as Python writes it: a lone surrogate becomes an escape such as ``\\ud800``)."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(payload).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


def claims(**extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"sub": "mallory", "role": "candidate", "aud": "examwire", "exp": int(time.time()) + 600}
    payload.update(extra)
    return {k: v for k, v in payload.items() if v is not ...}


def hello(node: Any, token: str | None, *, headers: dict[str, str] | None = None, wait: float = 5.0, exam: str = EXAM) -> tuple[int | None, str, list[dict[str, Any]]]:
    """Connect, send ``hello``; ``(close code, close reason, messages)``; code None: still open after ``wait``."""
    received: list[dict[str, Any]] = []
    message: dict[str, Any] = {"t": "hello", "v": 1}
    if token is not None:
        message["token"] = token
    with connect(f"{node.ws_url}/v1/exams/{exam}/attempt", additional_headers=headers, open_timeout=10) as ws:
        try:
            ws.send(json.dumps(message))
            deadline = time.monotonic() + wait
            while (left := deadline - time.monotonic()) > 0:
                try:
                    received.append(json.loads(ws.recv(timeout=left)))
                except TimeoutError:
                    break
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason, received) if exc.rcvd else (None, "", received)
    return None, "", received


def welcomed(node: Any, token: str) -> bool:
    code, _, received = hello(node, token, wait=1.0)
    return code is None and bool(received) and received[0]["t"] == "welcome"


@pytest.fixture
def node(make_node: Callable[..., Any], put_exam: Callable[..., Any], sample_exam: dict[str, Any]) -> Any:
    n = make_node()
    put_exam(n, sample_exam)
    return n


YEAR = 365 * 86400


def hostile(now: int) -> dict[str, tuple[dict[str, Any], str]]:
    """case -> (payload, the word the refusal's reason must hold)."""
    return {
        "lone surrogate in name": (claims(name="Mal\ud800lory"), "name"),
        "lone low surrogate in name": (claims(name="\udc00"), "name"),
        "lone surrogate in sub": (claims(sub="mal\udfffory"), "sub"),
        "line feed in sub": (claims(sub="mal\nlory"), "sub"),
        "NUL in name": (claims(name="Mal\x00"), "name"),
        "bidi override in name": (claims(name="Mal\u202elory"), "name"),
        "line separator in name": (claims(name="Mal\u2028lory"), "name"),
        "blank sub": (claims(sub="   "), "sub"),
        "name a list": (claims(name=["Mallory"]), "name"),
        "name a number": (claims(name=7), "name"),
        "name too long": (claims(name="n" * 201), "name"),
        "exams with a dot segment": (claims(exams=[EXAM, ".."]), "exams"),
        "exams with a path": (claims(exams=[EXAM, "../../x"]), "exams"),
        "exams with a trailing newline": (claims(exams=[EXAM + "\n"]), "exams"),
        "exams with braces": (claims(exams=[EXAM, "{x}"]), "exams"),
        "exams an object": (claims(exams={EXAM: True}), "exams"),
        "exams too many": (claims(exams=[EXAM] + [f"e{i}" for i in range(1000)]), "exams"),
        "exp a numeric string": (claims(exp=str(now + 600)), "exp"),
        "exp a boolean": (claims(exp=True), "exp"),
        "exp a thousand years out": (claims(exp=now + 1000 * YEAR), "lifetime"),
        "exp two days after iat": (claims(iat=now, exp=now + 2 * 86400), "lifetime"),
        "iat long ago, exp near": (claims(iat=now - 3 * 86400, exp=now + 600), "lifetime"),
        "nbf a string": (claims(nbf=str(now - 10)), "nbf"),
        "iat a string": (claims(iat=str(now)), "iat"),
    }


def test_hostile_claims_close_4401_with_a_reason_and_the_node_keeps_serving(node: Any, secrets: Any, make_token: Callable[..., str]) -> None:
    failures = []
    for case, (payload, word) in hostile(int(time.time())).items():
        code, reason, received = hello(node, signed(secrets.jwt_secret, payload))
        if code != 4401 or word not in reason or any(m.get("t") == "welcome" for m in received):
            failures.append(f"{case}: close {code} {reason!r}, received {received!r}")
    assert not failures, "\n".join(failures) + f"\n(node log: {node.log_path})"
    assert "Traceback" not in node.log_path.read_text()
    assert welcomed(node, make_token("alice"))


def test_hostile_claims_in_a_bearer_header_are_refused_too(node: Any, secrets: Any) -> None:
    now = int(time.time())
    for case in ("lone surrogate in name", "lone surrogate in sub", "exp a thousand years out", "exams with a dot segment"):
        payload, word = hostile(now)[case]
        token = signed(secrets.jwt_secret, payload)
        # on the WebSocket upgrade
        code, reason, _ = hello(node, None, headers={"Authorization": f"Bearer {token}"})
        assert code == 4401 and word in reason, (case, code, reason)
        # on HTTP, as staff and as a candidate
        for role in ("candidate", "admin"):
            token = signed(secrets.jwt_secret, {**payload, "role": role})
            status, body = http_json("GET", f"{node.base_url}/v1/exams/{EXAM}", token=token)
            assert status == 401 and body["error"] == "unauthorized" and word in body["message"], (case, role, status, body)
    assert "Traceback" not in node.log_path.read_text()


def test_a_good_name_sub_and_lifetime_are_welcomed(node: Any, secrets: Any) -> None:
    now = int(time.time())
    for payload in (
        claims(sub="zoë", name="Zoë Ł. 山田\u200d", exams=[EXAM, "net-101"]),
        claims(name="   "),  # blank: no name, the sub is shown
        claims(iat=now, exp=now + 86400),  # exactly the default maximum lifetime
        claims(exp=now + 86400),
        claims(exp=float(now + 600), nbf=now - 10.5, iat=now - 10),
    ):
        assert welcomed(node, signed(secrets.jwt_secret, payload)), payload


def test_the_maximum_lifetime_is_a_setting(make_node: Callable[..., Any], put_exam: Callable[..., Any], sample_exam: dict[str, Any], secrets: Any) -> None:
    n = make_node(EXAMWIRE_MAX_TOKEN_LIFETIME_S="3600")
    put_exam(n, sample_exam)
    now = int(time.time())
    assert welcomed(n, signed(secrets.jwt_secret, claims(exp=now + 1800)))
    code, reason, _ = hello(n, signed(secrets.jwt_secret, claims(exp=now + 7200)))
    assert code == 4401 and "lifetime over 3600 s" in reason, (code, reason)


def test_a_token_that_expires_during_the_exam_keeps_its_connection_a_reconnect_needs_a_fresh_one(node: Any, secrets: Any) -> None:
    """The token authenticates the hello: an open connection outlives it; a new connection is refused with it."""
    token = signed(secrets.jwt_secret, claims(sub="kim", exp=int(time.time()) + 2))
    with connect(f"{node.ws_url}/v1/exams/{EXAM}/attempt", open_timeout=10) as ws:
        ws.send(json.dumps({"t": "hello", "v": 1, "token": token}))
        assert json.loads(ws.recv(timeout=5))["t"] == "welcome"
        time.sleep(8.5)  # past exp and the 5 s leeway
        ws.send(json.dumps({"t": "start", "id": 1}))
        while (m := json.loads(ws.recv(timeout=5)))["t"] != "ack":
            pass
        assert m["id"] == 1 and "deadline" in m, m
    code, reason, _ = hello(node, token)
    assert code == 4401 and "expired" in reason, (code, reason)
