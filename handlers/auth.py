"""Token verification and the upgrade-time Origin check.

The algorithm list is pinned by configuration and always passed to PyJWT, so
``alg:none`` and HS/RS confusion are refused. JWKS keys are fetched off the
event loop (``PyJWKClient`` blocks) and cached by the client.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

import jwt

ROLES = frozenset({"candidate", "proctor", "admin"})


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
    ) -> None:
        if (secret is None) == (jwks_url is None):
            raise ValueError("exactly one of secret and jwks_url")
        self._algorithms = list(algorithms)
        self._audience = audience
        self._issuer = issuer
        self._secret = secret
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None
        required = ["exp", "sub", "aud", "role"] + (["iss"] if issuer else [])
        self._options = {"require": required}

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
                options=self._options,
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise BadToken("token expired") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise BadToken("invalid token") from None
        return claims_from(payload)


def claims_from(payload: Mapping[str, object]) -> Claims:
    sub, role = payload.get("sub"), payload.get("role")
    if not isinstance(sub, str) or not 0 < len(sub) <= 128:
        raise BadToken("invalid token: sub")
    if not isinstance(role, str) or role not in ROLES:
        raise BadToken("invalid token: role")
    name = payload.get("name")
    named = isinstance(name, str) and 0 < len(name.strip()) and len(name) <= 200
    if not named:
        name = sub
    exams = payload.get("exams")
    if exams is not None:
        if not isinstance(exams, list) or not all(isinstance(e, str) for e in exams):
            raise BadToken("invalid token: exams")
        exams = frozenset(exams)
    return Claims(sub=sub, role=str(role), name=str(name), exams=exams, named=named)


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
