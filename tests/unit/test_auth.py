"""streaming.auth: static tokens and HS256 JWTs."""
from __future__ import annotations

import pytest

from streaming.auth import AuthError, Authenticator, make_jwt
from tests.unit.test_pacing import FakeClock

SECRET = "s3cret-for-tests"


def test_disabled_by_default() -> None:
    auth = Authenticator()
    assert not auth.enabled
    auth.check(None)


def test_static_tokens() -> None:
    auth = Authenticator(["alpha", "beta"])
    auth.check("beta")
    for bad in (None, "", "gamma", 7, "alpha ", "x" * 10_000):
        with pytest.raises(AuthError) as info:
            auth.check(bad)
        assert "gamma" not in str(info.value) and "alpha" not in str(info.value)


def test_jwt_with_expiry() -> None:
    clock = FakeClock()
    clock.now = 1_000.0
    auth = Authenticator(jwt_secret=SECRET, clock=clock)
    auth.check(make_jwt({"sub": "dash", "exp": 1_060}, SECRET))
    with pytest.raises(AuthError, match="expired"):
        auth.check(make_jwt({"exp": 999}, SECRET))
    with pytest.raises(AuthError, match="exp"):
        auth.check(make_jwt({"sub": "no expiry"}, SECRET))
    with pytest.raises(AuthError, match="invalid token"):
        auth.check(make_jwt({"exp": 2_000}, "another secret"))
    with pytest.raises(AuthError, match="not valid yet"):
        auth.check(make_jwt({"exp": 2_000, "nbf": 1_500}, SECRET))
    header, payload, signature = make_jwt({"exp": 2_000}, SECRET).split(".")
    none_alg = make_jwt({"exp": 2_000}, SECRET).replace(header, "eyJhbGciOiJub25lIn0")
    for forged in (f"{header}.{payload}.", none_alg, "a.b.c", "...", f"{header}.{payload}.{signature}x"):
        with pytest.raises(AuthError):
            auth.check(forged)
