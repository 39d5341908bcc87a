"""Token verification and the upgrade-time Origin check.

The algorithm list is pinned by configuration and always passed to PyJWT, so
``alg:none`` and HS/RS confusion are refused. JWKS keys are fetched off the
event loop (``PyJWKClient`` blocks) and cached by the client.

A signature makes a token authentic, not well-formed: every claim Examwire
reads is validated here like any other input, and a token that breaks a rule
is a ``BadToken`` naming the claim (4401 / HTTP 401), never an error further
in. The rules (docs/protocol.md, "Tokens: precise rules"):

* ``sub``: a string of 1 to 128 characters, not blank, of valid text (below);
* ``role``: ``candidate``, ``proctor`` or ``admin``;
* ``name`` (optional): absent, null or blank means none (``sub`` is shown);
  else a string of at most 200 characters of valid text;
* ``exams`` (optional): null, or a list of at most 1000 exam ids, each
  following ``engine.ids``;
* ``exp`` (required), ``nbf``, ``iat``: numbers (not strings, not booleans),
  finite; and ``exp`` at most ``max_lifetime_s`` after ``iat`` (else after
  now): a token cannot be valid for a thousand years.

Valid text: encodable as UTF-8 (no lone surrogates, which would break every
encoder further on), with no control characters, line or paragraph
separators, or bidirectional overrides (which would disguise a name where it
is shown).
"""

from __future__ import annotations

import asyncio
import math
import time
import unicodedata
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

import jwt

from engine.ids import is_exam_id

ROLES = frozenset({"candidate", "proctor", "admin"})
SUB_MAX = 128
NAME_MAX = 200
EXAMS_MAX = 1000
#: Leeway for ``exp``, ``nbf``, ``iat`` and the lifetime, in seconds: clocks of the issuer and the node differ a little.
LEEWAY_S = 5
#: The default of ``EXAMWIRE_MAX_TOKEN_LIFETIME_S``.
MAX_LIFETIME_S = 86_400

#: Categories of characters no claim may hold: controls, surrogates, line and paragraph separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
#: Bidirectional embeddings, overrides and isolates: they reorder what is shown after them.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class BadToken(Exception):
    """Missing, malformed, expired or wrongly signed token (4401 / HTTP 401).

    The message is safe to show: it never contains the token.
    """


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    role: str
    name: str  # the ``name`` claim, else ``sub``
    exams: frozenset[str] | None
    named: bool = True  # False: the token had no usable ``name`` claim (``name`` is then the ``sub``)

    @property
    def signature(self) -> str:
        """How a proctor's message is signed to the candidate: the ``name`` claim, else the role (never the ``sub``)."""
        if self.named:
            return self.name
        return "Administrator" if self.role == "admin" else "Proctor"

    def may_use(self, exam_id: str) -> bool:
        """True when the token's ``exams`` claim (if any) admits ``exam_id``."""
        return self.exams is None or exam_id in self.exams

    @property
    def is_staff(self) -> bool:
        return self.role in ("proctor", "admin")


class Authenticator:
    def __init__(
        self,
        *,
        algorithms: tuple[str, ...],
        audience: str,
        issuer: str | None,
        secret: str | None = None,
        jwks_url: str | None = None,
        max_lifetime_s: int = MAX_LIFETIME_S,
    ) -> None:
        if (secret is None) == (jwks_url is None):
            raise ValueError("exactly one of secret and jwks_url")
        if not algorithms:
            raise ValueError("at least one algorithm")
        self._algorithms = list(algorithms)
        self._audience = audience
        self._issuer = issuer
        self._secret = secret
        self._max_lifetime_s = max_lifetime_s
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None
        required = ["exp", "sub", "aud", "role"] + (["iss"] if issuer else [])
        # every check spelled out, none left to a default
        self._options = {
            "require": required,
            "verify_signature": True,
            "verify_exp": True,
            "verify_nbf": True,
            "verify_iat": True,
            "verify_aud": True,
            "verify_iss": bool(issuer),
            "verify_sub": False,  # ``claims_from`` checks ``sub`` (type and content), naming it in the reason
            "verify_jti": True,
        }

    async def verify(self, token: object) -> Claims:
        """Decode and check ``token``; raise ``BadToken`` for anything short of a valid token."""
        if not isinstance(token, str) or not token or len(token) > 16384:
            raise BadToken("missing token")
        try:
            if self._jwks is not None:
                key = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)).key
            else:
                key = self._secret
            payload = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options=self._options,  # type: ignore[arg-type]
                leeway=LEEWAY_S,
            )
        except jwt.ExpiredSignatureError:
            raise BadToken("token expired") from None
        except jwt.ImmatureSignatureError:
            raise BadToken("token not yet valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise BadToken(f"invalid token: {exc.claim} missing") from None
        except jwt.InvalidAudienceError:
            raise BadToken("invalid token: aud") from None
        except jwt.InvalidIssuerError:
            raise BadToken("invalid token: iss") from None
        except jwt.InvalidIssuedAtError:
            raise BadToken("invalid token: iat must be a number") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise BadToken("invalid token") from None
        return claims_from(payload, max_lifetime_s=self._max_lifetime_s)


def valid_text(value: str) -> bool:
    """True when ``value`` is text a claim may hold (see the module docstring)."""
    if value.isascii():
        return value.isprintable()
    return not any(unicodedata.category(ch) in _BAD_CATEGORIES or ch in _BIDI for ch in value)


def _time(payload: Mapping[str, object], claim: str) -> float | None:
    """A NumericDate claim: absent (None), else a finite number; PyJWT alone would take ``"99999999999"``."""
    if claim not in payload:
        return None
    value = payload[claim]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadToken(f"invalid token: {claim} must be a number")
    return value


def claims_from(payload: Mapping[str, object], *, max_lifetime_s: int = MAX_LIFETIME_S, now: float | None = None) -> Claims:
    """The claims of a verified ``payload``, each checked (the module docstring's rules); ``BadToken`` naming the claim."""
    exp, iat = _time(payload, "exp"), _time(payload, "iat")
    _time(payload, "nbf")
    if exp is None:
        raise BadToken("invalid token: exp")
    start = iat if iat is not None else (time.time() if now is None else now)
    if exp - start > max_lifetime_s + LEEWAY_S:
        raise BadToken(f"invalid token: lifetime over {max_lifetime_s} s")
    sub, role = payload.get("sub"), payload.get("role")
    if not isinstance(sub, str) or not 0 < len(sub) <= SUB_MAX or not sub.strip() or not valid_text(sub):
        raise BadToken("invalid token: sub")
    if not isinstance(role, str) or role not in ROLES:
        raise BadToken("invalid token: role")
    name = payload.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > NAME_MAX or not valid_text(name)):
        raise BadToken("invalid token: name")
    named = isinstance(name, str) and bool(name.strip())
    exams = payload.get("exams")
    if exams is not None:
        if not isinstance(exams, list) or len(exams) > EXAMS_MAX or not all(is_exam_id(e) for e in exams):
            raise BadToken("invalid token: exams")
        exams = frozenset(exams)
    return Claims(sub=sub, role=role, name=name if named else sub, exams=exams, named=named)  # type: ignore[arg-type]


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def origin_allowed(headers: Mapping[str, str], allowed: tuple[str, ...]) -> bool:
    """An absent Origin passes (non-browser clients); else it must be in ``allowed``.

    With no allow-list configured, only the engine's own origin passes: the
    Origin's host and port must equal the request's Host header.
    """
    origin = headers.get("origin")
    if origin is None:
        return True
    if "*" in allowed or origin in allowed:
        return True
    if allowed:
        return False
    host = headers.get("host")
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()
