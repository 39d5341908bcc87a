"""Unit tests of ``handlers.auth``: token verification, JWKS mode, Origin and Bearer parsing.

No engine process; the JWKS test serves keys from a real ``http.server`` in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import threading
import time
import warnings
from typing import Any, Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from handlers.auth import Authenticator, BadToken, Claims, bearer, claims_from, origin_allowed

SECRET = "unit-test-secret-0123456789abcdef-0123456789"
AUD = "examwire"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_jwt(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"", *, hmac_key: bytes | None = None) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if hmac_key is not None:
        signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def payload(sub: str | None = "alice", role: str | None = "candidate", **extra: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"sub": sub, "role": role, "aud": AUD, "exp": int(time.time()) + 3600}
    p.update(extra)
    return {k: v for k, v in p.items() if v is not None}


def hs(p: dict[str, Any], key: str = SECRET, alg: str = "HS256") -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # key-length warnings for HS384/HS512
        return jwt.encode(p, key, algorithm=alg)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def hs_auth(issuer: str | None = None, audience: str = AUD) -> Authenticator:
    return Authenticator(algorithms=("HS256",), audience=audience, issuer=issuer, secret=SECRET)


def verify(auth: Authenticator, token: object) -> Claims:
    return asyncio.run(auth.verify(token))


def refused(auth: Authenticator, token: object) -> BadToken:
    with pytest.raises(BadToken) as info:
        verify(auth, token)
    if isinstance(token, str) and len(token) > 8:
        assert token not in str(info.value), "BadToken message contains the token"
    return info.value


# ---------------------------------------------------------------------------
# HS256 mode
# ---------------------------------------------------------------------------


def test_good_token_gives_claims() -> None:
    claims = verify(hs_auth(), hs(payload("alice", "candidate", name="Alice A.", exams=["net-101", "sample"])))
    assert claims == Claims(sub="alice", role="candidate", name="Alice A.", exams=frozenset({"net-101", "sample"}))
    assert claims.may_use("sample") and not claims.may_use("other")
    assert not claims.is_staff


def test_good_token_defaults() -> None:
    claims = verify(hs_auth(), hs(payload("bob", "proctor")))
    assert claims.sub == "bob" and claims.role == "proctor"
    assert claims.name == "bob", "name defaults to sub"
    assert claims.exams is None and claims.may_use("anything")
    assert claims.is_staff
    assert verify(hs_auth(), hs(payload("root", "admin"))).is_staff


def test_a_blank_or_null_name_falls_back_to_sub_an_overlong_or_ill_typed_one_is_refused() -> None:
    assert verify(hs_auth(), hs(payload("carol", name="   "))).name == "carol"
    assert verify(hs_auth(), hs(payload("carol", name=None))).name == "carol"
    assert verify(hs_auth(), hs(payload("carol", name="x" * 200))).name == "x" * 200
    assert "name" in str(refused(hs_auth(), hs(payload("carol", name="x" * 201))))
    assert "name" in str(refused(hs_auth(), hs(payload("carol", name=["Carol"]))))


def test_a_message_is_signed_with_the_name_claim_else_the_role_never_the_sub() -> None:
    assert verify(hs_auth(), hs(payload("p1", "proctor", name="Room 4 proctor"))).signature == "Room 4 proctor"
    assert verify(hs_auth(), hs(payload("p1", "proctor"))).signature == "Proctor"
    assert verify(hs_auth(), hs(payload("a9", "admin"))).signature == "Administrator"
    assert verify(hs_auth(), hs(payload("p1", "proctor", name=""))).signature == "Proctor"


def test_audience_may_be_a_list_containing_ours() -> None:
    assert verify(hs_auth(), hs(payload(aud=["other", AUD]))).sub == "alice"


ATTACKS: dict[str, Any] = {
    "not a string": 12345,
    "None": None,
    "bytes": b"abc.def.ghi",
    "empty": "",
    "garbage": "garbage",
    "two segments": "abc.def",
    "bad base64": "!!!.???.***",
    "too long": "a" * 20000,
    "alg none": raw_jwt({"alg": "none", "typ": "JWT"}, payload()),
    "alg None": raw_jwt({"alg": "None", "typ": "JWT"}, payload()),
    "alg NONE with a signature": raw_jwt({"alg": "NONE", "typ": "JWT"}, payload(), b"sig"),
    "alg missing": raw_jwt({"typ": "JWT"}, payload(), hmac_key=SECRET.encode()),
    "wrong secret": hs(payload(), key="another-secret-of-sufficient-length-000"),
    "HS512 with the right secret": hs(payload(), alg="HS512"),
    "HS384 with the right secret": hs(payload(), alg="HS384"),
    "RS256 fresh key": jwt.encode(payload(), RSA_KEY, algorithm="RS256"),
    "HS256 keyed with an RSA public PEM": raw_jwt({"alg": "HS256", "typ": "JWT"}, payload(), hmac_key=public_pem(RSA_KEY)),
    "tampered payload": (lambda t: t.split(".")[0] + "." + b64url(json.dumps(payload(role="admin")).encode()) + "." + t.split(".")[2])(hs(payload())),
    "signature stripped": hs(payload()).rsplit(".", 1)[0] + ".",
    "expired": hs(payload(exp=int(time.time()) - 60)),
    "not yet valid": hs(payload(nbf=int(time.time()) + 600)),
    "exp not a number": hs(payload(exp="tomorrow")),
    "missing exp": hs(payload(exp=None)),
    "wrong audience": hs(payload(aud="other")),
    "missing audience": hs(payload(aud=None)),
    "missing role": hs(payload(role=None)),
    "unknown role": hs(payload(role="superuser")),
    "role with different case": hs(payload(role="Admin")),
    "role a number": hs(payload(role=1)),
    "missing sub": hs(payload(sub=None)),
    "empty sub": hs(payload(sub="")),
    "sub too long": hs(payload(sub="u" * 129)),
    "sub a number": raw_jwt({"alg": "HS256", "typ": "JWT"}, payload(sub=42), hmac_key=SECRET.encode()),
    "exams a string": hs(payload(exams="sample")),
    "exams with a number": hs(payload(exams=["sample", 7])),
    "exams with a dot segment": hs(payload(exams=["sample", ".."])),
    "exams with a path": hs(payload(exams=["../../x"])),
    "name with a lone surrogate": hs(payload(name="A\ud800")),
    "sub with a lone surrogate": hs(payload(sub="a\udc00")),
    "sub with a line feed": hs(payload(sub="a\nb")),
    "name with a bidi override": hs(payload(name="A\u202eB")),
    "exp a numeric string": hs(payload(exp=str(int(time.time()) + 600))),
    "nbf a numeric string": hs(payload(nbf=str(int(time.time()) - 60))),
    "iat a numeric string": hs(payload(iat=str(int(time.time())))),
    "exp a thousand years out": hs(payload(exp=int(time.time()) + 1000 * 365 * 86400)),
    "exp two days after iat": hs(payload(iat=int(time.time()), exp=int(time.time()) + 2 * 86400)),
    "payload not an object": raw_jwt({"alg": "HS256", "typ": "JWT"}, ["sub", "alice"], hmac_key=SECRET.encode()),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_raises_bad_token(name: str) -> None:
    refused(hs_auth(), ATTACKS[name])


@pytest.mark.parametrize("role", [["candidate"], {"candidate": 1}], ids=["list", "dict"])
def test_ill_typed_role_raises_bad_token_not_type_error(role: Any) -> None:
    """A validly signed token whose ``role`` is a list/dict is malformed: BadToken, not TypeError."""
    refused(hs_auth(), hs(payload(role=role)))


def test_expired_message_says_expired() -> None:
    assert "expired" in str(refused(hs_auth(), hs(payload(exp=int(time.time()) - 60))))


def test_leeway_is_a_few_seconds() -> None:
    now = int(time.time())
    assert verify(hs_auth(), hs(payload(exp=now - 2))).sub == "alice"  # within the 5 s leeway
    assert verify(hs_auth(), hs(payload(nbf=now + 2))).sub == "alice"
    refused(hs_auth(), hs(payload(exp=now - 30)))
    refused(hs_auth(), hs(payload(nbf=now + 30)))


def test_issuer_checked_when_configured() -> None:
    auth = hs_auth(issuer="https://idp.example.org")
    assert verify(auth, hs(payload(iss="https://idp.example.org"))).sub == "alice"
    refused(auth, hs(payload()))  # missing iss
    refused(auth, hs(payload(iss="https://evil.example.org")))
    refused(auth, hs(payload(iss="https://idp.example.org/")))
    # not configured: any iss is fine
    assert verify(hs_auth(), hs(payload(iss="https://whoever.example"))).sub == "alice"


def test_custom_audience() -> None:
    auth = hs_auth(audience="exams-prod")
    assert verify(auth, hs(payload(aud="exams-prod"))).sub == "alice"
    refused(auth, hs(payload()))  # aud=examwire


def test_exactly_one_key_source() -> None:
    with pytest.raises(ValueError):
        Authenticator(algorithms=("HS256",), audience=AUD, issuer=None)
    with pytest.raises(ValueError):
        Authenticator(algorithms=("HS256",), audience=AUD, issuer=None, secret=SECRET, jwks_url="http://127.0.0.1:1/jwks")


# ---------------------------------------------------------------------------
# JWKS mode (RS256) against a real HTTP server
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def jwks_server() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server with the JWKS (key ``k1``): its URL, and the paths it was asked for."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    body = json.dumps({"keys": [jwk]}).encode()
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    with jwks_server() as (url, _):
        yield url


def rs_auth(url: str) -> Authenticator:
    return Authenticator(algorithms=("RS256",), audience=AUD, issuer=None, jwks_url=url)


def test_jwks_rs256_token_verifies(jwks_url: str) -> None:
    auth = rs_auth(jwks_url)
    token = jwt.encode(payload("dana", "proctor", name="Dana"), RSA_KEY, algorithm="RS256", headers={"kid": "k1"})
    assert verify(auth, token) == Claims(sub="dana", role="proctor", name="Dana", exams=None)
    # cached: a second verification works too
    assert verify(auth, token).sub == "dana"


def test_jwks_refuses_hmac_and_foreign_keys(jwks_url: str) -> None:
    auth = rs_auth(jwks_url)
    pem = public_pem(RSA_KEY)
    attacks = {
        # the classic HS/RS confusion: HMAC keyed with the server's own public key
        "HS256 keyed with the JWKS public PEM": raw_jwt({"alg": "HS256", "typ": "JWT", "kid": "k1"}, payload(role="admin"), hmac_key=pem),
        "HS256 keyed with the PEM, no kid": raw_jwt({"alg": "HS256", "typ": "JWT"}, payload(role="admin"), hmac_key=pem),
        "HS256 keyed with the JWK n": raw_jwt(
            {"alg": "HS256", "typ": "JWT", "kid": "k1"}, payload(), hmac_key=json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))["n"].encode()
        ),
        "RS256 by another key": jwt.encode(payload(), OTHER_RSA_KEY, algorithm="RS256", headers={"kid": "k1"}),
        "RS256 unknown kid": jwt.encode(payload(), RSA_KEY, algorithm="RS256", headers={"kid": "nope"}),
        "RS512 by the right key": jwt.encode(payload(), RSA_KEY, algorithm="RS512", headers={"kid": "k1"}),
        "PS256 by the right key": jwt.encode(payload(), RSA_KEY, algorithm="PS256", headers={"kid": "k1"}),
        "ES256 by an EC key": jwt.encode(payload(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "k1"}),
        "alg none with kid": raw_jwt({"alg": "none", "typ": "JWT", "kid": "k1"}, payload()),
        "expired RS256": jwt.encode(payload(exp=int(time.time()) - 60), RSA_KEY, algorithm="RS256", headers={"kid": "k1"}),
        "RS256 missing role": jwt.encode(payload(role=None), RSA_KEY, algorithm="RS256", headers={"kid": "k1"}),
        "garbage": "garbage",
    }
    accepted = []
    for name, token in attacks.items():
        try:
            verify(auth, token)
        except BadToken:
            continue
        accepted.append(name)
    assert not accepted, f"JWKS authenticator accepted: {accepted}"


def test_jwks_unreachable_is_bad_token() -> None:
    from testkit import free_port

    auth = rs_auth(f"http://127.0.0.1:{free_port()}/jwks.json")
    refused(auth, jwt.encode(payload(), RSA_KEY, algorithm="RS256", headers={"kid": "k1"}))


# ---------------------------------------------------------------------------
# origin_allowed / bearer
# ---------------------------------------------------------------------------

HOST = "127.0.0.1:8080"


@pytest.mark.parametrize(
    "origin, ok",
    [
        (None, True),  # absent: non-browser client
        ("http://127.0.0.1:8080", True),
        ("https://127.0.0.1:8080", True),
        ("http://127.0.0.1:8081", False),
        ("http://127.0.0.1", False),
        ("https://evil.example", False),
        ("http://127.0.0.1:8080.evil.example", False),
        ("http://evil.example#127.0.0.1:8080", False),
        ("http://user@127.0.0.1:8080", False),
        ("ws://127.0.0.1:8080", False),
        ("file://127.0.0.1:8080", False),
        ("null", False),
        ("", False),
        ("127.0.0.1:8080", False),
        ("http://[::1", False),  # malformed
        ("http://[127.0.0.1:8080", False),
    ],
)
def test_origin_default_is_own_origin(origin: str | None, ok: bool) -> None:
    headers = {"host": HOST}
    if origin is not None:
        headers["origin"] = origin
    assert origin_allowed(headers, ()) is ok


def test_origin_default_needs_a_host() -> None:
    assert not origin_allowed({"origin": "http://127.0.0.1:8080"}, ())
    assert not origin_allowed({"origin": "http://127.0.0.1:8080", "host": ""}, ())


def test_origin_allow_list() -> None:
    allowed = ("https://exams.example.org", "https://proctor.example.org")
    assert origin_allowed({"host": HOST}, allowed)
    assert origin_allowed({"host": HOST, "origin": "https://exams.example.org"}, allowed)
    assert origin_allowed({"host": HOST, "origin": "https://proctor.example.org"}, allowed)
    for origin in [
        "http://exams.example.org",
        "https://exams.example.org:8443",
        "https://exams.example.org.evil.example",
        "https://sub.exams.example.org",
        "https://exams.example.org/",
        "http://127.0.0.1:8080",  # the own origin is not implied once a list is configured
        "null",
        "",
    ]:
        assert not origin_allowed({"host": HOST, "origin": origin}, allowed), origin


def test_origin_star_allows_anything() -> None:
    for origin in ["https://evil.example", "null", "http://127.0.0.1:8080", "http://[::1"]:
        assert origin_allowed({"host": HOST, "origin": origin}, ("*",)), origin
    assert origin_allowed({"host": HOST, "origin": "https://evil.example"}, ("https://a.example", "*"))


@pytest.mark.parametrize(
    "value, token",
    [
        (None, None),
        ("", None),
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("Bearer   abc  ", "abc"),
        ("Bearer ", None),
        ("Bearer", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Token abc", None),
        ("Bearerabc", None),
    ],
)
def test_bearer(value: str | None, token: str | None) -> None:
    headers = {} if value is None else {"authorization": value}
    assert bearer(headers) == token


def test_the_refusal_names_the_claim_and_the_lifetime_is_configurable() -> None:
    now = int(time.time())
    assert str(refused(hs_auth(), hs(payload(name="A\ud800")))) == "invalid token: name"
    assert str(refused(hs_auth(), hs(payload(sub="a\udc00")))) == "invalid token: sub"
    assert str(refused(hs_auth(), hs(payload(exams=[".."])))) == "invalid token: exams"
    assert str(refused(hs_auth(), hs(payload(exp=str(now + 600))))) == "invalid token: exp must be a number"
    assert str(refused(hs_auth(), hs(payload(exp=now + 2 * 86400)))) == "invalid token: lifetime over 86400 s"
    short = Authenticator(algorithms=("HS256",), audience=AUD, issuer=None, secret=SECRET, max_lifetime_s=600)
    assert verify(short, hs(payload(exp=now + 600))).sub == "alice"
    assert "lifetime over 600 s" in str(refused(short, hs(payload(exp=now + 900))))
    assert "lifetime" in str(refused(short, hs(payload(iat=now - 3600, exp=now + 60))))
    assert verify(hs_auth(), hs(payload(name="Zoë 山田\u200d", exp=float(now + 60), iat=now - 1.5))).name == "Zoë 山田\u200d"


def test_every_time_claim_is_a_number_and_exp_is_required_also_when_called_directly() -> None:
    assert str(refused(hs_auth(), hs(payload(iat="yesterday")))) == "invalid token: iat must be a number"
    with pytest.raises(BadToken, match="invalid token: nbf must be a number"):
        claims_from({**payload(), "nbf": True})
    with pytest.raises(BadToken, match="^invalid token: exp$"):
        claims_from({"sub": "alice", "role": "candidate", "aud": AUD})


def test_an_authenticator_needs_an_algorithm() -> None:
    with pytest.raises(ValueError, match="at least one algorithm"):
        Authenticator(algorithms=(), audience=AUD, issuer=None, secret=SECRET)


def test_a_flood_of_unknown_key_ids_does_not_become_a_flood_of_jwks_fetches() -> None:
    """Before any authentication, a token can name any ``kid``: the key set is fetched again at most once per cooldown."""
    with jwks_server() as (url, hits):
        auth = rs_auth(url)
        good = jwt.encode(payload(), RSA_KEY, algorithm="RS256", headers={"kid": "k1"})
        assert verify(auth, good).sub == "alice"

        async def flood() -> None:
            tokens = [jwt.encode(payload(), RSA_KEY, algorithm="RS256", headers={"kid": f"forged-{i}"}) for i in range(200)]
            outcomes = await asyncio.gather(*(auth.verify(t) for t in tokens), return_exceptions=True)
            assert all(isinstance(o, BadToken) for o in outcomes)

        asyncio.run(flood())
        assert len(hits) <= 2, f"{len(hits)} JWKS fetches for 200 forged key ids"
        assert verify(auth, good).sub == "alice"  # and the real key still verifies
