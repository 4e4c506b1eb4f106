"""Optional client authentication: static tokens and HS256 JWTs with an expiry. Pure: clock injected, no I/O.

Off unless AUTH_TOKENS or JWT_SECRET is set (the data is public). Tokens are compared in constant time and
never appear in error messages or logs.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Callable, Iterable

from streaming.errors import StreamingError

__all__ = ["Authenticator", "AuthError", "make_jwt"]


class AuthError(StreamingError):
    code = "UNAUTHORIZED"


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any], secret: str) -> str:
    """An HS256 JWT (for tests and tools; the service only verifies)."""
    header = _b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64encode(signature)}"


class Authenticator:
    """Checks a presented token against the configured static tokens and/or JWT secret."""

    MAX_TOKEN_LENGTH = 4096

    def __init__(
        self, tokens: Iterable[str] = (), jwt_secret: str | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._tokens = [token.encode() for token in tokens if token]
        self._secret = jwt_secret.encode() if jwt_secret else None
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self._tokens) or self._secret is not None

    def check(self, token: object) -> None:
        """Return if the token is accepted; raise AuthError saying why not (without echoing it)."""
        if not self.enabled:
            return
        if not isinstance(token, str) or not token:
            raise AuthError("authentication required: pass a token in the Socket.IO auth payload "
                            "({\"token\": \"...\"}) or as ?token=")
        if len(token) > self.MAX_TOKEN_LENGTH:
            raise AuthError("invalid token")
        presented = token.encode()
        if any(hmac.compare_digest(presented, known) for known in self._tokens):
            return
        if self._secret is not None and token.count(".") == 2:
            self._check_jwt(token)
            return
        raise AuthError("invalid token")

    def _check_jwt(self, token: str) -> None:
        assert self._secret is not None
        header_part, payload_part, signature_part = token.split(".")
        try:
            header = json.loads(_b64decode(header_part))
            claims = json.loads(_b64decode(payload_part))
            signature = _b64decode(signature_part)
        except (ValueError, binascii.Error):
            raise AuthError("invalid token") from None
        if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
            raise AuthError("invalid token: only HS256 JWTs are accepted")
        expected = hmac.new(self._secret, f"{header_part}.{payload_part}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            raise AuthError("invalid token")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise AuthError("invalid token: an 'exp' claim is required")
        now = self._clock()
        if now >= exp:
            raise AuthError("token expired: get a new one")
        nbf = claims.get("nbf")
        if isinstance(nbf, (int, float)) and not isinstance(nbf, bool) and now < nbf:
            raise AuthError("token not valid yet")
