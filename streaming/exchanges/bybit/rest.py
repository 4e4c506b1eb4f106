"""BybitRest: the Bybit v5 market REST calls the service makes (instruments, tickers, orderbook, recent trades).

Facts from Bybit's documentation:
- every answer is an envelope ``{retCode, retMsg, result, retExtInfo, time}``; an error is a retCode other
  than 0, mostly with HTTP 200 (https://bybit-exchange.github.io/docs/v5/error);
- "403, access too frequent": the IP is over the limit and is banned; the ban is lifted after 10 minutes
  (https://bybit-exchange.github.io/docs/v5/rate-limit); retCode 10006 "Too many visits": back off until
  ``X-Bapi-Limit-Reset-Timestamp`` (epoch ms);
- an unknown symbol is retCode 10001 ("params error", naming the symbol), for which the service says 404.
Every call passes the RequestGate, as Binance's do.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import requests

from metrics.collectors import ServiceMetrics
from metrics.labels import RestEndpoint, RestOutcome
from streaming.core.errors import ProtocolError, RateLimitedError, UnknownSymbolError, UpstreamUnavailableError
from streaming.core.models import BookTicker, Ticker, Trade
from streaming.core.pacing import RequestGate
from streaming.exchanges.bybit.payloads import (
    book_ticker_from_rest,
    next_page_cursor,
    rest_error,
    ticker_from_rest,
    tradable_usdt_perpetuals,
    trades_from_rest,
)
from streaming.exchanges.http import RestClient

__all__ = ["BybitRest", "BAN_SECONDS", "PARAMS_ERROR", "TOO_MANY_VISITS"]

log = logging.getLogger(__name__)

CATEGORY = "linear"
BAN_SECONDS = 600.0  # "403, access too frequent": lifted after 10 minutes
PARAMS_ERROR = 10001
TOO_MANY_VISITS = 10006
RESET_HEADER = "X-Bapi-Limit-Reset-Timestamp"
INSTRUMENTS_PAGE = 1000  # instruments-info: "limit [1, 1000]"
MAX_PAGES = 20  # a bound on the instrument pages read at once (Bybit lists a few hundred linear contracts)
MAX_RECENT_TRADES = 1000  # recent-trade, linear: "limit [1,1000]"


class BybitRest(RestClient):
    def __init__(
        self, base_url: str, timeout: float, metrics: ServiceMetrics, wall_clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__("Bybit REST API", base_url, timeout, metrics,
                         RequestGate(wall_clock, blocking={403: BAN_SECONDS, 429: 60.0}, who="Bybit"))
        self._wall_clock = wall_clock

    def _interpret(self, endpoint: RestEndpoint, response: requests.Response, body: Any) -> Any:
        status = response.status_code
        self.gate.observe(status, response.headers.get("Retry-After"), None)
        self.last_ok = status < 500 and status not in (403, 429)
        code, message = rest_error(body)
        if status == 200 and code == 0:
            self._count(endpoint, RestOutcome.OK)
            return body
        detail = f"HTTP {status}" + (f", retCode {code}: {message}" if code is not None else "")
        if status == 200 and code == PARAMS_ERROR and "symbol" in message.lower():
            self._count(endpoint, RestOutcome.INVALID_SYMBOL)
            raise UnknownSymbolError(message or "params error: symbol invalid")
        if status in (403, 429) or code == TOO_MANY_VISITS:
            if code == TOO_MANY_VISITS:
                self.gate.pause(self._reset_in(response), f"retCode {TOO_MANY_VISITS} from Bybit")
                self.last_ok = False
            self._count(endpoint, RestOutcome.RATE_LIMITED)
            log.warning("Bybit REST answered %s; pausing REST calls for %.0fs", detail, self.gate.blocked_for())
            raise RateLimitedError(f"Bybit REST API rate limit ({detail})", retry_after=self.gate.blocked_for())
        self._count(endpoint, RestOutcome.FAILED)
        raise UpstreamUnavailableError(f"Bybit REST API failed ({detail})")

    def _reset_in(self, response: requests.Response) -> float:
        """Seconds until the limit resets (``X-Bapi-Limit-Reset-Timestamp``), else 1 s."""
        raw = response.headers.get(RESET_HEADER, "")
        if raw.strip().isdigit():
            return min(max(int(raw) / 1000.0 - self._wall_clock(), 0.0), BAN_SECONDS) or 1.0
        return 1.0

    def tradable_symbols(self) -> frozenset[str]:
        """The trading USDT perpetuals of every instruments-info page."""
        symbols: set[str] = set()
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params = {"category": CATEGORY, "limit": str(INSTRUMENTS_PAGE)}
            if cursor:
                params["cursor"] = cursor
            body = self._get(RestEndpoint.BYBIT_INSTRUMENTS, params)
            try:
                symbols |= tradable_usdt_perpetuals(body)
                cursor = next_page_cursor(body)
            except ProtocolError as exc:
                raise UpstreamUnavailableError(f"Bybit instruments-info answer is malformed: {exc}") from exc
            if cursor is None:
                return frozenset(symbols)
        raise UpstreamUnavailableError(f"Bybit instruments-info has more than {MAX_PAGES} pages")

    def ticker(self, symbol: str) -> Ticker:
        return self._parsed(RestEndpoint.BYBIT_TICKERS, {"category": CATEGORY, "symbol": symbol},
                            ticker_from_rest, "tickers")

    def book_ticker(self, symbol: str) -> BookTicker:
        return self._parsed(RestEndpoint.BYBIT_ORDERBOOK, {"category": CATEGORY, "symbol": symbol, "limit": "1"},
                            book_ticker_from_rest, "orderbook")

    def recent_trades(self, symbol: str, limit: int) -> list[Trade]:
        """The last ``limit`` (1-1000) public trades, oldest first."""
        params = {"category": CATEGORY, "symbol": symbol, "limit": str(min(limit, MAX_RECENT_TRADES))}
        return self._parsed(RestEndpoint.BYBIT_RECENT_TRADE, params, lambda body: trades_from_rest(body, symbol),
                            "recent-trade")
