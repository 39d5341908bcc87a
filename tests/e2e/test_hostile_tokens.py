"""Hostile tokens and handshakes against a real engine node (docs/protocol.md, *Authentication*).

Every attack is made with the raw ``websockets`` client and hand-forged JWTs;
after each attack the same node must still welcome a well-behaved candidate.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import warnings
from typing import Any, Callable

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

EXAM = "sample"
RECV_TIMEOUT = 5.0


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_jwt(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"", *, hmac_key: bytes | None = None) -> str:
    """A JWT assembled by hand (PyJWT refuses to build the nastier ones)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if hmac_key is not None:
        signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def claims(sub: str = "mallory", role: str = "candidate", **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"sub": sub, "role": role, "aud": "examwire", "exp": int(time.time()) + 3600}
    payload.update(extra)
    return {k: v for k, v in payload.items() if v is not None}


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def close_code(exc: ConnectionClosed) -> int | None:
    return exc.rcvd.code if exc.rcvd is not None else None


def attempt_url(node: Any, exam: str = EXAM) -> str:
    return f"{node.ws_url}/v1/exams/{exam}/attempt"


def run_hello(
    node: Any,
    hello: dict[str, Any] | None,
    *,
    exam: str = EXAM,
    headers: dict[str, str] | None = None,
    first: dict[str, Any] | None = None,
    wait: float = RECV_TIMEOUT,
) -> tuple[int | None, list[dict[str, Any]]]:
    """Connect, optionally send ``first`` then ``hello``; read until the server closes.

    Returns ``(close code or None if still open after ``wait``, messages received)``.
    """
    received: list[dict[str, Any]] = []
    with connect(attempt_url(node, exam), additional_headers=headers, open_timeout=10) as ws:
        try:
            if first is not None:
                ws.send(json.dumps(first))
            if hello is not None:
                ws.send(json.dumps(hello))
            deadline = time.monotonic() + wait
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, received
                try:
                    raw = ws.recv(timeout=left)
                except TimeoutError:
                    return None, received
                received.append(json.loads(raw))
        except ConnectionClosed as exc:
            return close_code(exc), received


def assert_closed_with(node: Any, hello: dict[str, Any] | None, expected: int, **kw: Any) -> list[dict[str, Any]]:
    code, received = run_hello(node, hello, **kw)
    assert code == expected, f"expected close {expected}, got {code}; received {received!r} (node log: {node.log_path})"
    assert not any(m.get("t") == "welcome" for m in received), f"a welcome was sent before close {expected}: {received!r}"
    return received


def assert_good_client_served(node: Any, make_token: Callable[..., str], sub: str = "alice") -> dict[str, Any]:
    """A well-behaved candidate is still welcomed and can start (the node survived the attack)."""
    with connect(attempt_url(node), open_timeout=10) as ws:
        ws.send(json.dumps({"t": "hello", "v": 1, "token": make_token(sub)}))
        welcome = json.loads(ws.recv(timeout=RECV_TIMEOUT))
        assert welcome["t"] == "welcome", welcome
        ws.send(json.dumps({"t": "ping", "ct": 123}))
        while True:
            msg = json.loads(ws.recv(timeout=RECV_TIMEOUT))
            if msg["t"] == "pong":
                assert msg["ct"] == 123
                break
    assert node.proc.poll() is None, "engine node died"
    return welcome


@pytest.fixture
def node(make_node: Callable[..., Any], put_exam: Callable[..., Any], sample_exam: dict[str, Any]) -> Any:
    n = make_node()
    put_exam(n, sample_exam)
    return n


# ---------------------------------------------------------------------------
# 4401: missing, malformed, expired or wrongly signed token
# ---------------------------------------------------------------------------

_KEY = rsa_key()  # one fresh RSA key for the module (2048-bit generation is slow-ish)


def _forge(case: str, secrets: Any) -> Any:
    """The ``token`` field of the attacking hello (``...`` means: leave the field out)."""
    good_secret = secrets.jwt_secret
    if case == "missing":
        return ...
    if case == "null":
        return None
    if case == "number":
        return 12345
    if case == "empty":
        return ""
    if case == "garbage":
        return "this.is-not.a-jwt"
    if case == "garbage_b64":
        return "eyJhbGciOiJIUzI1NiJ9.bm9wZQ.c2ln"
    if case == "alg_none":
        return raw_jwt({"alg": "none", "typ": "JWT"}, claims())
    if case == "alg_none_uppercase":
        return raw_jwt({"alg": "None", "typ": "JWT"}, claims())
    if case == "alg_none_with_valid_sig":
        # the signature part of a genuine HS256 token pasted after an alg:none header
        sig = jwt.encode(claims(), good_secret, algorithm="HS256").rsplit(".", 1)[1]
        return raw_jwt({"alg": "none", "typ": "JWT"}, claims()) + sig
    if case == "hs256_wrong_secret":
        return jwt.encode(claims(), "not-the-secret-but-long-enough-0123456789", algorithm="HS256")
    if case == "hs512_right_secret":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PyJWT warns about the key length for HS512
            return jwt.encode(claims(), good_secret, algorithm="HS512")
    if case == "rs256_fresh_key":
        return jwt.encode(claims(), _KEY, algorithm="RS256")
    if case == "hs_rs_confusion":
        return raw_jwt({"alg": "HS256", "typ": "JWT"}, claims(), hmac_key=public_pem(_KEY))
    if case == "tampered_payload":
        good = jwt.encode(claims(role="candidate"), good_secret, algorithm="HS256")
        head, _, sig = good.split(".")
        return f"{head}.{b64url(json.dumps(claims(role='admin')).encode())}.{sig}"
    if case == "expired":
        return jwt.encode(claims(exp=int(time.time()) - 60), good_secret, algorithm="HS256")
    if case == "wrong_audience":
        return jwt.encode(claims(aud="someone-else"), good_secret, algorithm="HS256")
    if case == "missing_audience":
        return jwt.encode(claims(aud=None), good_secret, algorithm="HS256")
    if case == "missing_exp":
        return jwt.encode(claims(exp=None), good_secret, algorithm="HS256")
    if case == "missing_role":
        return jwt.encode(claims(role=None), good_secret, algorithm="HS256")
    if case == "unknown_role":
        return jwt.encode(claims(role="superuser"), good_secret, algorithm="HS256")
    if case == "missing_sub":
        return jwt.encode(claims(sub=None), good_secret, algorithm="HS256")
    if case == "empty_sub":
        return jwt.encode(claims(sub=""), good_secret, algorithm="HS256")
    if case == "exams_not_a_list":
        return jwt.encode(claims(exams="sample"), good_secret, algorithm="HS256")
    if case == "huge":
        return "a" * 40000
    raise AssertionError(case)


BAD_TOKEN_CASES = [
    "missing",
    "null",
    "number",
    "empty",
    "garbage",
    "garbage_b64",
    "alg_none",
    "alg_none_uppercase",
    "alg_none_with_valid_sig",
    "hs256_wrong_secret",
    "hs512_right_secret",
    "rs256_fresh_key",
    "hs_rs_confusion",
    "tampered_payload",
    "expired",
    "wrong_audience",
    "missing_audience",
    "missing_exp",
    "missing_role",
    "unknown_role",
    "missing_sub",
    "empty_sub",
    "exams_not_a_list",
    "huge",
]


def test_bad_tokens_close_4401_and_node_keeps_serving(node: Any, make_token: Callable[..., str], secrets: Any) -> None:
    failures = []
    for case in BAD_TOKEN_CASES:
        token = _forge(case, secrets)
        hello: dict[str, Any] = {"t": "hello", "v": 1}
        if token is not ...:
            hello["token"] = token
        code, received = run_hello(node, hello)
        if code != 4401 or any(m.get("t") == "welcome" for m in received):
            failures.append(f"{case}: close {code}, received {received!r}")
    assert not failures, "tokens not refused with 4401:\n" + "\n".join(failures) + f"\n(node log: {node.log_path})"
    assert_good_client_served(node, make_token)


def test_expired_via_make_token_closes_4401(node: Any, make_token: Callable[..., str]) -> None:
    assert_closed_with(node, {"t": "hello", "v": 1, "token": make_token("eve", ttl=-60)}, 4401)
    assert_good_client_served(node, make_token)


def test_valid_token_is_welcomed(node: Any, make_token: Callable[..., str]) -> None:
    welcome = assert_good_client_served(node, make_token, sub="bob")
    assert welcome["exam"]["id"] == EXAM
    assert welcome["state"] == "ready"
    # an exams claim that lists this exam is fine too
    code, received = run_hello(node, {"t": "hello", "v": 1, "token": make_token("carol", exams=["x", EXAM])}, wait=0.5)
    assert code is None and received and received[0]["t"] == "welcome", (code, received)


def test_issuer_checked_when_configured(make_node: Callable[..., Any], sample_exam: dict[str, Any], make_token: Callable[..., str], secrets: Any) -> None:
    issuer = "https://idp.example.org"
    n = make_node(EXAMWIRE_JWT_ISSUER=issuer)
    admin_token = make_token("test-admin", "admin", iss=issuer)
    from testkit import http_json

    status, body = http_json("PUT", f"{n.base_url}/v1/exams/{EXAM}", token=admin_token, body=sample_exam)
    assert status == 200, (status, body)
    for label, token in [
        ("wrong iss", make_token("eve", iss="https://evil.example.org")),
        ("missing iss", make_token("eve")),
        ("iss not a string", raw_jwt({"alg": "HS256", "typ": "JWT"}, claims(iss=[issuer]), hmac_key=secrets.jwt_secret.encode())),
    ]:
        code, received = run_hello(n, {"t": "hello", "v": 1, "token": token})
        assert code == 4401, f"{label}: close {code}, received {received!r}"
    code, received = run_hello(n, {"t": "hello", "v": 1, "token": make_token("alice", iss=issuer)}, wait=0.5)
    assert code is None and received and received[0]["t"] == "welcome", (code, received)


def test_wrong_audience_on_node_with_custom_audience(make_node: Callable[..., Any], sample_exam: dict[str, Any], make_token: Callable[..., str]) -> None:
    from testkit import http_json

    n = make_node(EXAMWIRE_JWT_AUDIENCE="exams-prod")
    status, body = http_json("PUT", f"{n.base_url}/v1/exams/{EXAM}", token=make_token("adm", "admin", aud="exams-prod"), body=sample_exam)
    assert status == 200, (status, body)
    code, received = run_hello(n, {"t": "hello", "v": 1, "token": make_token("eve")})  # aud=examwire
    assert code == 4401, (code, received)
    code, received = run_hello(n, {"t": "hello", "v": 1, "token": make_token("alice", aud="exams-prod")}, wait=0.5)
    assert code is None and received and received[0]["t"] == "welcome", (code, received)


# ---------------------------------------------------------------------------
# 4403 / 4404
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["proctor", "admin"])
def test_staff_token_on_candidate_endpoint_closes_4403(node: Any, make_token: Callable[..., str], role: str) -> None:
    assert_closed_with(node, {"t": "hello", "v": 1, "token": make_token(f"staff-{role}", role)}, 4403)
    assert_good_client_served(node, make_token)


def test_candidate_token_for_other_exams_closes_4403(node: Any, make_token: Callable[..., str]) -> None:
    assert_closed_with(node, {"t": "hello", "v": 1, "token": make_token("eve", exams=["other-exam", "net-101"])}, 4403)
    assert_closed_with(node, {"t": "hello", "v": 1, "token": make_token("eve", exams=[])}, 4403)
    assert_good_client_served(node, make_token)


def test_unknown_exam_closes_4404(node: Any, make_token: Callable[..., str]) -> None:
    assert_closed_with(node, {"t": "hello", "v": 1, "token": make_token("eve")}, 4404, exam="no-such-exam")
    assert_good_client_served(node, make_token)


# ---------------------------------------------------------------------------
# Authorization: Bearer on the upgrade
# ---------------------------------------------------------------------------


def test_bearer_header_with_tokenless_hello_is_welcomed(node: Any, make_token: Callable[..., str]) -> None:
    headers = {"Authorization": f"Bearer {make_token('dave')}"}
    code, received = run_hello(node, {"t": "hello", "v": 1}, headers=headers, wait=0.5)
    assert code is None, (code, received)
    assert received and received[0]["t"] == "welcome", received


@pytest.mark.parametrize(
    "value",
    ["Bearer not-a-jwt", "Bearer ", "Basic dXNlcjpwYXNz", "wrong-secret", "alg-none"],
)
def test_bad_bearer_closes_4401(node: Any, make_token: Callable[..., str], value: str) -> None:
    if value == "wrong-secret":
        value = "Bearer " + jwt.encode(claims(), "not-the-secret-but-long-enough-0123456789", algorithm="HS256")
    elif value == "alg-none":
        value = "Bearer " + raw_jwt({"alg": "none", "typ": "JWT"}, claims())
    assert_closed_with(node, {"t": "hello", "v": 1}, 4401, headers={"Authorization": value})
    assert_good_client_served(node, make_token)


# ---------------------------------------------------------------------------
# hello itself
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("v", [2, 0, "1", 1.5])
def test_hello_wrong_version_closes_4400(node: Any, make_token: Callable[..., str], v: Any) -> None:
    hello = {"t": "hello", "v": v, "token": make_token("eve")}
    code, received = run_hello(node, hello)
    if v == 2:
        assert code == 4400, (code, received)
    else:
        # not a supported version either: refused one way or the other, never welcomed
        assert code in (4400, 4401), (code, received)
    assert not any(m.get("t") == "welcome" for m in received), received
    assert_good_client_served(node, make_token)


@pytest.mark.parametrize("first", [{"t": "start", "id": 1}, {"t": "ping", "ct": 1}, {"t": "answer", "id": 1, "q": "q1", "value": "b"}])
def test_first_message_not_hello_closes_4401(node: Any, make_token: Callable[..., str], first: dict[str, Any]) -> None:
    # a valid hello right behind it must not rescue the connection
    assert_closed_with(node, {"t": "hello", "v": 1, "token": make_token("eve")}, 4401, first=first)
    assert_good_client_served(node, make_token)


def test_no_hello_in_time_closes_4408(make_node: Callable[..., Any], put_exam: Callable[..., Any], sample_exam: dict[str, Any], make_token: Callable[..., str]) -> None:
    n = make_node(EXAMWIRE_HELLO_TIMEOUT_MS="500")
    put_exam(n, sample_exam)
    started = time.monotonic()
    code, received = run_hello(n, None, wait=5)
    elapsed = time.monotonic() - started
    assert code == 4408, (code, received)
    assert received == [], received
    assert 0.4 <= elapsed < 4.0, f"closed after {elapsed:.2f} s with a 500 ms hello timeout"
    assert_good_client_served(n, make_token)


@pytest.mark.parametrize("role", [["candidate"], {"candidate": True}], ids=["list", "dict"])
def test_signed_token_with_ill_typed_role_closes_4401(node: Any, make_token: Callable[..., str], role: Any) -> None:
    """A correctly signed token whose ``role`` is not a string is malformed: 4401, not a crash."""
    assert_closed_with(node, {"t": "hello", "v": 1, "token": make_token("eve", role=role)}, 4401)
    assert_good_client_served(node, make_token)
