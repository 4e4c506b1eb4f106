"""Binance USD-M futures REST answers of the fake (facts §5): routing, weights, error bodies, and the 418 ban
earned by a client that keeps calling inside the Retry-After of a 429.

Pure: takes a request (method, path, query) plus market data and a time, returns an answer; no sockets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from tests.fakes.market import (
    MarketSnapshot,
    TradeTape,
    rest_book_ticker,
    rest_ticker_24hr,
    rest_ticker_price,
)

# Facts §5: 2400 request weight per minute per IP; per-endpoint weights below.
WEIGHT_LIMIT_PER_MINUTE = 2400
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
# Facts §5: "HTTP 429 means back off now; continuing earns 418 and an IP ban from 2 minutes to 3 days".
BAN_SECONDS = 120.0  # the first ban: Binance's documented shortest
MAX_BAN_SECONDS = 3 * 86400.0  # ... and its longest; every further ban doubles, up to this
# A request that reaches the fake this soon after a 429 was already on the wire when the 429 left: its sender
# could not have known. Binance bans for not backing off, not for requests in flight.
IN_FLIGHT_GRACE = 0.25
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


# What decided an answer (RestCall.cause).
ANSWERED = "answer"  # the normal answer (200, or 400/404/405 for a bad request)
FORCED = "forced"  # FakeBinance.set_rest_failure
WEIGHT = "weight"  # the request weight of the minute went over the limit: 429
BAN = "ban"  # a request inside the Retry-After of a 429: 418, and the ban starts
BANNED = "banned"  # a request during a ban: 418


@dataclass(frozen=True)
class RestCall:
    """One HTTP request the fake answered (other than WebSocket handshakes and /_fake control calls)."""

    at: float  # wall-clock time.time() seconds when the fake answered it
    method: str
    path: str
    query: Mapping[str, str]
    status: int
    retry_after: int | None  # the Retry-After header sent, in seconds
    cause: str  # ANSWERED, FORCED, WEIGHT, BAN or BANNED


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
    if request.path == "/fapi/v1/ticker/bookTicker":
        return 2 if "symbol" in request.query else 5
    if request.path == "/fapi/v1/aggTrades":
        return 20
    return 1


@dataclass(frozen=True)
class MarketData:
    """What the REST answers are made of: the current quotes, the recent trades, exchangeInfo."""

    snapshot: MarketSnapshot
    tape: TradeTape
    exchange_info: Mapping[str, Any]


def answer(request: RestRequest, market: MarketData, now_ms: int) -> RestAnswer:
    """The normal (not rate-limited, not failing) answer to `request`."""
    handler = _HANDLERS.get(request.path)
    if handler is None:
        known = ", ".join(sorted(_HANDLERS))
        return RestAnswer(404, error_body(-1, f"unknown path {request.path!r}; the fake serves {known}"))
    if request.method != "GET":
        return RestAnswer(405, error_body(-1, f"method {request.method} not allowed on {request.path}; use GET"))
    return handler(request, market, now_ms)


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


class Escalation:
    """Binance's answer to a client that does not back off (facts §5). A 429 (or a 418) with Retry-After opens
    a window; a request inside it (later than `grace` after the answer that opened it) earns 418 and a ban,
    during which every request gets 418 with the ban's remaining Retry-After. The first ban lasts
    `ban_seconds`, every further one twice the previous, at most MAX_BAN_SECONDS. A ban closes the window it
    punished."""

    def __init__(self, ban_seconds: float = BAN_SECONDS, grace: float = IN_FLIGHT_GRACE) -> None:
        if not (math.isfinite(ban_seconds) and ban_seconds > 0):
            raise ValueError(f"ban length must be a positive number of seconds, got {ban_seconds!r}")
        self._ban_seconds = ban_seconds
        self._grace = grace
        self._window_opened = 0.0  # when the answer that opened the current Retry-After window was sent
        self._window_until = 0.0
        self._banned_until = 0.0
        self.bans = 0

    def judge(self, now: float, limit: int = WEIGHT_LIMIT_PER_MINUTE) -> tuple[str, RestAnswer] | None:
        """(BAN or BANNED, the 418 answer) when a request at `now` (seconds) is punished; else None."""
        if now < self._banned_until:
            return BANNED, self._banned(self._banned_until - now, limit)
        if self._window_opened + self._grace <= now < self._window_until:
            self.bans += 1
            length = min(self._ban_seconds * 2 ** min(self.bans - 1, 64), MAX_BAN_SECONDS)
            self._banned_until, self._window_until = now + length, 0.0
            return BAN, self._banned(length, limit)
        return None

    def answered(self, status: int, retry_after: int | None, now: float) -> None:
        """Note an answer sent at `now`: a 429 or 418 with Retry-After opens (or extends) the window; the ban's
        own 418s change nothing (the ban governs until it ends)."""
        if status not in (418, 429) or retry_after is None or now < self._banned_until:
            return
        if now >= self._window_until:
            self._window_opened = now
        self._window_until = max(self._window_until, now + retry_after)

    @staticmethod
    def _banned(seconds: float, limit: int) -> RestAnswer:
        return RestAnswer(418, failure_body(418, limit), {"Retry-After": str(max(1, math.ceil(seconds)))})


def _ping(request: RestRequest, market: MarketData, now_ms: int) -> RestAnswer:
    return RestAnswer(200, {})


def _time(request: RestRequest, market: MarketData, now_ms: int) -> RestAnswer:
    return RestAnswer(200, {"serverTime": now_ms})


def _exchange_info(request: RestRequest, market: MarketData, now_ms: int) -> RestAnswer:
    return RestAnswer(200, {**market.exchange_info, "serverTime": now_ms})


def _ticker_24hr(request: RestRequest, market: MarketData, now_ms: int) -> RestAnswer:
    return _per_symbol(request, market.snapshot, lambda quote: rest_ticker_24hr(quote, now_ms))


def _ticker_price(request: RestRequest, market: MarketData, now_ms: int) -> RestAnswer:
    return _per_symbol(request, market.snapshot, lambda quote: rest_ticker_price(quote, now_ms))


def _book_ticker(request: RestRequest, market: MarketData, now_ms: int) -> RestAnswer:
    return _per_symbol(request, market.snapshot, lambda quote: rest_book_ticker(quote, now_ms))


# `GET /fapi/v1/aggTrades`: "limit: Default 500; max 1000"; fromId, startTime and endTime are inclusive.
AGG_TRADES_DEFAULT_LIMIT = 500
AGG_TRADES_MAX_LIMIT = 1000
_LONG_PARAMETERS = ("fromId", "startTime", "endTime")


def _agg_trades(request: RestRequest, market: MarketData, now_ms: int) -> RestAnswer:
    symbol = request.query.get("symbol")
    if not symbol:
        return RestAnswer(400, error_body(
            -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."))
    bad = _bad_symbol(symbol, market.snapshot)
    if bad is not None:
        return bad
    limit = _integer(request.query.get("limit", str(AGG_TRADES_DEFAULT_LIMIT)))
    if limit is None or not 1 <= limit <= AGG_TRADES_MAX_LIMIT:
        return RestAnswer(400, error_body(-1130, "Data sent for parameter 'limit' is not valid."))
    bounds: dict[str, int] = {}
    for name in _LONG_PARAMETERS:
        if name in request.query:
            value = _integer(request.query[name])
            if value is None or value < 0:
                return RestAnswer(400, error_body(-1130, f"Data sent for parameter '{name}' is not valid."))
            bounds[name] = value
    rows = [row for row in market.tape.rows(symbol)
            if row["a"] >= bounds.get("fromId", 0) and bounds.get("startTime", 0) <= row["T"]
            and row["T"] <= bounds.get("endTime", row["T"])]
    # from fromId or startTime: the first `limit` rows from there; otherwise the most recent ones
    chosen = rows[:limit] if "fromId" in bounds or "startTime" in bounds else rows[-limit:]
    return RestAnswer(200, chosen)


def _integer(text: str) -> int | None:
    return int(text) if re.fullmatch(r"-?[0-9]{1,19}", text) else None


def _bad_symbol(symbol: str, snapshot: MarketSnapshot) -> RestAnswer | None:
    if not _SYMBOL.fullmatch(symbol):
        msg = f"Illegal characters found in parameter 'symbol'; legal range is '{_SYMBOL_PATTERN}'."
        return RestAnswer(400, error_body(-1100, msg))
    if symbol not in snapshot.usd_m:
        return RestAnswer(400, error_body(-1121, "Invalid symbol."))
    return None


def _per_symbol(request: RestRequest, snapshot: MarketSnapshot, build: Callable[[Any], dict[str, Any]]) -> RestAnswer:
    symbol = request.query.get("symbol")
    if symbol is None:
        return RestAnswer(200, [build(quote) for quote in snapshot.usd_m.values()])
    return _bad_symbol(symbol, snapshot) or RestAnswer(200, build(snapshot.usd_m[symbol]))


_HANDLERS: Mapping[str, Callable[[RestRequest, MarketData, int], RestAnswer]] = MappingProxyType({
    "/fapi/v1/ping": _ping,
    "/fapi/v1/time": _time,
    "/fapi/v1/exchangeInfo": _exchange_info,
    "/fapi/v1/ticker/24hr": _ticker_24hr,
    "/fapi/v1/ticker/price": _ticker_price,
    "/fapi/v1/ticker/bookTicker": _book_ticker,
    "/fapi/v1/aggTrades": _agg_trades,
})
