"""Binance USD-M futures REST answers of the fake (facts §5): routing, weights, error bodies.

Pure: takes a request (method, path, query) plus market data and a time in ms, returns an answer; no sockets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from tests.fakes.market import MarketSnapshot, rest_ticker_24hr, rest_ticker_price

# Facts §5: 2400 request weight per minute per IP; per-endpoint weights below.
WEIGHT_LIMIT_PER_MINUTE = 2400
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
_SYMBOL_PATTERN = "^[A-Z0-9-_.]{1,20}$"
_SYMBOL = re.compile(_SYMBOL_PATTERN)


@dataclass(frozen=True)
class RestAnswer:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RestRequest:
    method: str
    path: str
    query: Mapping[str, str]


def error_body(code: int, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg}


def too_many_requests_body(limit: int) -> dict[str, Any]:
    return error_body(-1003, f"Too many requests; current limit of IP(127.0.0.1) request weight per minute is "
                             f"{limit}. Please use WebSocket Streams for live updates to avoid polling the API.")


def failure_body(status: int, limit: int = WEIGHT_LIMIT_PER_MINUTE) -> dict[str, Any]:
    """Default body for a forced failure (`FakeBinance.set_rest_failure`)."""
    if status == 418:
        return error_body(-1003, "Way too many requests; IP(127.0.0.1) banned. "
                                 "Please use WebSocket Streams for live updates to avoid bans.")
    if status == 429:
        return too_many_requests_body(limit)
    if status >= 500:
        return error_body(-1001, "Internal error; unable to process your request. Please try again.")
    return error_body(-1000, "An unknown error occurred while processing the request.")


def request_weight(request: RestRequest) -> int:
    """Weight of one request (facts §5); unknown paths cost 1."""
    if request.path == "/fapi/v1/ticker/24hr" and "symbol" not in request.query:
        return 40
    if request.path == "/fapi/v1/ticker/price" and "symbol" not in request.query:
        return 2
    return 1


def answer(request: RestRequest, snapshot: MarketSnapshot, exchange_info: Mapping[str, Any],
           now_ms: int) -> RestAnswer:
    """The normal (not rate-limited, not failing) answer to `request`."""
    handler = _HANDLERS.get(request.path)
    if handler is None:
        known = ", ".join(sorted(_HANDLERS))
        return RestAnswer(404, error_body(-1, f"unknown path {request.path!r}; the fake serves {known}"))
    if request.method != "GET":
        return RestAnswer(405, error_body(-1, f"method {request.method} not allowed on {request.path}; use GET"))
    return handler(request, snapshot, exchange_info, now_ms)


class WeightMeter:
    """Request weight used in the current clock minute (Binance counts per IP per minute)."""

    def __init__(self) -> None:
        self._minute = -1
        self._used = 0

    def add(self, weight: int, now: float) -> int:
        """Add `weight` at wall-clock time `now` (seconds); return the weight used this minute."""
        minute = int(now // 60)
        if minute != self._minute:
            self._minute, self._used = minute, 0
        self._used += weight
        return self._used


def _ping(request: RestRequest, snapshot: MarketSnapshot, info: Mapping[str, Any], now_ms: int) -> RestAnswer:
    return RestAnswer(200, {})


def _time(request: RestRequest, snapshot: MarketSnapshot, info: Mapping[str, Any], now_ms: int) -> RestAnswer:
    return RestAnswer(200, {"serverTime": now_ms})


def _exchange_info(request: RestRequest, snapshot: MarketSnapshot, info: Mapping[str, Any],
                   now_ms: int) -> RestAnswer:
    return RestAnswer(200, {**info, "serverTime": now_ms})


def _ticker_24hr(request: RestRequest, snapshot: MarketSnapshot, info: Mapping[str, Any],
                 now_ms: int) -> RestAnswer:
    return _per_symbol(request, snapshot, lambda quote: rest_ticker_24hr(quote, now_ms))


def _ticker_price(request: RestRequest, snapshot: MarketSnapshot, info: Mapping[str, Any],
                  now_ms: int) -> RestAnswer:
    return _per_symbol(request, snapshot, lambda quote: rest_ticker_price(quote, now_ms))


def _per_symbol(request: RestRequest, snapshot: MarketSnapshot, build: Callable[[Any], dict[str, Any]]) -> RestAnswer:
    symbol = request.query.get("symbol")
    if symbol is None:
        return RestAnswer(200, [build(quote) for quote in snapshot.usd_m.values()])
    if not _SYMBOL.fullmatch(symbol):
        msg = f"Illegal characters found in parameter 'symbol'; legal range is '{_SYMBOL_PATTERN}'."
        return RestAnswer(400, error_body(-1100, msg))
    quote = snapshot.usd_m.get(symbol)
    if quote is None:
        return RestAnswer(400, error_body(-1121, "Invalid symbol."))
    return RestAnswer(200, build(quote))


_HANDLERS: Mapping[str, Callable[[RestRequest, MarketSnapshot, Mapping[str, Any], int], RestAnswer]] = MappingProxyType({
    "/fapi/v1/ping": _ping,
    "/fapi/v1/time": _time,
    "/fapi/v1/exchangeInfo": _exchange_info,
    "/fapi/v1/ticker/24hr": _ticker_24hr,
    "/fapi/v1/ticker/price": _ticker_price,
})
