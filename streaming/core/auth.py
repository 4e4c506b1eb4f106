"""Optional client authentication: static tokens and HS256 JWTs (verified by PyJWT) with an expiry. No I/O.

Off unless AUTH_TOKENS or JWT_SECRET is set (the data is public). Tokens are compared in constant time and
never appear in error messages or logs.
"""
from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

import jwt

from config import MIN_JWT_SECRET_BYTES
from streaming.core.errors import StreamingError

__all__ = ["Authenticator", "AuthError", "make_jwt", "presented_token", "JWT_ALGORITHM"]

JWT_ALGORITHM = "HS256"  # the only one accepted: no "none", no asymmetric algorithm keyed with the secret


class AuthError(StreamingError):
    code = "UNAUTHORIZED"


def presented_token(authorization: str, query_token: str | None) -> str | None:
    """The token an HTTP request presents: ``Authorization: Bearer ...``, else ``?token=``."""
    return authorization[7:] if authorization.startswith("Bearer ") else query_token


def make_jwt(claims: dict[str, Any], secret: str) -> str:
    """An HS256 JWT (for tests and tools; the service only verifies)."""
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


class Authenticator:
    """Checks a presented token against the configured static tokens and/or JWT secret.

    A JWT must carry ``exp``; ``nbf`` and ``iat`` are checked when present; ``aud`` and ``iss`` are required and
    checked when an audience or issuer is configured (``aud`` is not checked otherwise). ``leeway`` seconds of
    clock difference with the token's issuer are tolerated on ``exp``, ``nbf`` and ``iat``.
    """

    MAX_TOKEN_LENGTH = 4096

    def __init__(
        self, tokens: Iterable[str] = (), jwt_secret: str | None = None, audience: str | None = None,
        issuer: str | None = None, leeway: float = 0.0,
    ) -> None:
        if jwt_secret and len(jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(f"a JWT secret needs at least {MIN_JWT_SECRET_BYTES} bytes (RFC 7518 section 3.2)")
        self._tokens = [token.encode() for token in tokens if token]
        self._secret = jwt_secret or None
        self._audience = audience or None
        self._issuer = issuer or None
        self._leeway = leeway
        self._required = ["exp", *(["aud"] if self._audience else []), *(["iss"] if self._issuer else [])]

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
        try:
            jwt.decode(
                token, self._secret, algorithms=[JWT_ALGORITHM], audience=self._audience, issuer=self._issuer,
                leeway=self._leeway,
                options={"require": self._required, "verify_aud": self._audience is not None,
                         "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired: get a new one") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("token not valid yet") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"invalid token: an {exc.claim!r} claim is required") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError(f"invalid token: only {JWT_ALGORITHM} JWTs are accepted") from None
        except jwt.InvalidAudienceError:
            raise AuthError("invalid token: not meant for this service (aud)") from None
        except jwt.InvalidIssuerError:
            raise AuthError("invalid token: not from the expected issuer (iss)") from None
        except jwt.PyJWTError:  # bad signature, malformed token, claims of the wrong type, ...
            raise AuthError("invalid token") from None
