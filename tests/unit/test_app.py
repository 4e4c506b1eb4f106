"""app: the Socket.IO origin check for a list of allowed origins."""
from __future__ import annotations

from app import origin_check


def test_listed_origins_and_the_service_s_own_are_allowed() -> None:
    check = origin_check(("https://dash.example.com", "http://127.0.0.1:8080"))
    environ = {"HTTP_HOST": "prices.example.com:5021"}
    assert check("https://dash.example.com", environ) and check("https://dash.example.com/", environ)
    assert check("http://127.0.0.1:8080", environ)
    assert check("http://prices.example.com:5021", environ), "what websocket-client sends: the URL it connects to"
    assert check("https://PRICES.example.com:5021", environ)
    for other in ("https://evil.example", "https://dash.example.com.evil.example", "http://prices.example.com",
                  "null", "", None, "http://[::1", "https://prices.example.com:5021@evil.example"):
        assert not check(other, environ), other
    assert not check("http://prices.example.com:5021", {}), "no Host header: only the listed origins"
