"""BinanceRest: the few Binance USD-M REST calls the service makes (exchangeInfo, 24hr ticker, book ticker,
aggregated trades).

Every call passes the RequestGate (429/418 with Retry-After, and the used-weight header).
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
from streaming.exchanges.binance.payloads import book_ticker_from_rest, ticker_from_rest, trade_from_rest
from streaming.exchanges.binance.protocol import rest_error, tradable_usdt_perpetuals
from streaming.exchanges.http import RestClient

__all__ = ["BinanceRest", "INVALID_SYMBOL_CODE"]

log = logging.getLogger(__name__)

# "Error Codes": -1121 Invalid symbol.
INVALID_SYMBOL_CODE = -1121
# "General Info": every answer carries the weight used by this IP in the current minute.
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"

class BinanceRest(RestClient):
    def __init__(
        self, base_url: str, timeout: float, metrics: ServiceMetrics, wall_clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__("Binance REST API", base_url, timeout, metrics, RequestGate(wall_clock))

    def _interpret(self, endpoint: RestEndpoint, response: requests.Response, body: Any) -> Any:
        self.gate.observe(response.status_code, response.headers.get("Retry-After"),
                          response.headers.get(WEIGHT_HEADER))
        if self.gate.used_weight is not None:
            self._metrics.rest_used_weight.set(self.gate.used_weight)
        self.last_ok = response.status_code < 500 and response.status_code not in (418, 429)
        if response.status_code == 200 and body is not None:
            self._count(endpoint, RestOutcome.OK)
            return body
        code, message = rest_error(body)
        if response.status_code == 400 and code == INVALID_SYMBOL_CODE:
            self._count(endpoint, RestOutcome.INVALID_SYMBOL)
            raise UnknownSymbolError(message or "Invalid symbol.")
        outcome = {429: RestOutcome.RATE_LIMITED, 418: RestOutcome.BANNED}.get(response.status_code, RestOutcome.FAILED)
        self._count(endpoint, outcome)
        detail = f"HTTP {response.status_code}" + (f", code {code}: {message}" if code is not None else "")
        if outcome != RestOutcome.FAILED:
            log.warning("Binance REST answered %s; pausing REST calls for %.0fs", detail, self.gate.blocked_for())
            raise RateLimitedError(f"Binance REST API rate limit ({detail})", retry_after=self.gate.blocked_for())
        raise UpstreamUnavailableError(f"Binance REST API failed ({detail})")

    def exchange_info(self) -> dict[str, Any]:
        body = self._get(RestEndpoint.EXCHANGE_INFO)
        if not isinstance(body, dict):
            raise UpstreamUnavailableError("Binance exchangeInfo answer is not an object")
        return body

    def tradable_symbols(self) -> frozenset[str]:
        """The trading USDT perpetuals of exchangeInfo."""
        try:
            return tradable_usdt_perpetuals(self.exchange_info())
        except ProtocolError as exc:
            raise UpstreamUnavailableError(f"Binance exchangeInfo answer is malformed: {exc}") from exc

    def ticker(self, symbol: str) -> Ticker:
        """The 24hr ticker of a validated symbol; UnknownSymbolError for -1121, else UpstreamUnavailableError."""
        return self._parsed(RestEndpoint.TICKER_24HR, {"symbol": symbol}, ticker_from_rest, "24hr ticker")

    def book_ticker(self, symbol: str) -> BookTicker:
        """The best bid/ask of a validated symbol (weight 2); errors as ``ticker``."""
        return self._parsed(RestEndpoint.BOOK_TICKER, {"symbol": symbol}, book_ticker_from_rest, "book ticker")

    def recent_trades(self, symbol: str, limit: int) -> list[Trade]:
        """The last ``limit`` (1-1000) aggregated trades of a validated symbol, oldest first (weight 20)."""
        return self.agg_trades(symbol, limit)

    def agg_trades(self, symbol: str, limit: int, from_id: int | None = None) -> list[Trade]:
        """The last ``limit`` (1-1000) aggregated trades of a validated symbol, oldest first (weight 20); with
        ``from_id``, the first ``limit`` from that aggregate id on."""
        params = {"symbol": symbol, "limit": str(limit)}
        if from_id is not None:
            params["fromId"] = str(from_id)
        return self._parsed(RestEndpoint.AGG_TRADES, params, lambda body: _rows(body, symbol), "aggTrades")


def _rows(body: Any, symbol: str) -> list[Trade]:
    if not isinstance(body, list):
        raise ProtocolError("the aggTrades answer is not a list")
    return [trade_from_rest(row, symbol) for row in body]
