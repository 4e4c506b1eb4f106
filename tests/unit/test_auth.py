"""streaming.core.auth: static tokens and HS256 JWTs (PyJWT verifies them against the wall clock)."""
from __future__ import annotations

import base64
import json
import time

import pytest

from streaming.core.auth import Authenticator, AuthError, make_jwt

SECRET = "s3cret-for-tests-s3cret-for-tests"  # 33 bytes: HS256 needs at least 32
LEEWAY = 10.0


def _segment(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


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
    now = time.time()
    auth = Authenticator(jwt_secret=SECRET, leeway=LEEWAY)
    auth.check(make_jwt({"sub": "dash", "exp": now + 60}, SECRET))
    with pytest.raises(AuthError, match="token expired: get a new one"):
        auth.check(make_jwt({"exp": now - 60}, SECRET))
    with pytest.raises(AuthError, match="an 'exp' claim is required"):
        auth.check(make_jwt({"sub": "no expiry"}, SECRET))
    with pytest.raises(AuthError, match="^invalid token$"):
        auth.check(make_jwt({"exp": now + 60}, "another secret, as long as the first"))
    header, payload, signature = make_jwt({"exp": now + 60}, SECRET).split(".")
    none_alg = f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    with pytest.raises(AuthError, match="only HS256"):
        auth.check(none_alg)
    with pytest.raises(AuthError, match="only HS256"):
        auth.check(f"{_segment({'alg': 'HS512', 'typ': 'JWT'})}.{payload}.{signature}")
    for forged in (f"{header}.{payload}.", "a.b.c", "...", f"{header}.{payload}.{signature}x",
                   f"{header}.{_segment({'exp': now + 3600})}.{signature}"):
        with pytest.raises(AuthError) as info:
            auth.check(forged)
        assert forged not in str(info.value)


def test_leeway_tolerates_a_small_clock_difference_only() -> None:
    now = time.time()
    auth = Authenticator(jwt_secret=SECRET, leeway=LEEWAY)
    auth.check(make_jwt({"exp": now - LEEWAY / 2}, SECRET))  # just expired by a clock a little ahead
    auth.check(make_jwt({"exp": now + 60, "nbf": now + LEEWAY / 2}, SECRET))
    with pytest.raises(AuthError, match="expired"):
        Authenticator(jwt_secret=SECRET).check(make_jwt({"exp": now - LEEWAY / 2}, SECRET))


def test_jwt_not_valid_yet() -> None:
    now = time.time()
    auth = Authenticator(jwt_secret=SECRET, leeway=LEEWAY)
    auth.check(make_jwt({"exp": now + 600, "nbf": now - 1, "iat": now - 1}, SECRET))
    for claims in ({"exp": now + 600, "nbf": now + 300}, {"exp": now + 600, "iat": now + 300}):
        with pytest.raises(AuthError, match="^token not valid yet$"):
            auth.check(make_jwt(claims, SECRET))


def test_audience_and_issuer_when_configured() -> None:
    exp = time.time() + 60
    auth = Authenticator(jwt_secret=SECRET, audience="prices", issuer="https://login.example.com")
    auth.check(make_jwt({"exp": exp, "aud": "prices", "iss": "https://login.example.com"}, SECRET))
    auth.check(make_jwt({"exp": exp, "aud": ["other", "prices"], "iss": "https://login.example.com"}, SECRET))
    cases = [
        ({"exp": exp, "aud": "billing", "iss": "https://login.example.com"}, "not meant for this service"),
        ({"exp": exp, "iss": "https://login.example.com"}, "an 'aud' claim is required"),
        ({"exp": exp, "aud": "prices", "iss": "https://evil.example"}, "not from the expected issuer"),
        ({"exp": exp, "aud": "prices"}, "an 'iss' claim is required"),
    ]
    for claims, reason in cases:
        with pytest.raises(AuthError, match=reason):
            auth.check(make_jwt(claims, SECRET))


def test_audience_and_issuer_are_not_checked_unless_configured() -> None:
    auth = Authenticator(jwt_secret=SECRET)
    auth.check(make_jwt({"exp": time.time() + 60, "aud": "anything", "iss": "anyone"}, SECRET))


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Authenticator(jwt_secret="short")
