"""BinanceRest: the few Binance USD-M REST calls the service makes (exchangeInfo, 24hr ticker, book ticker,
aggregated trades).

Every call passes the RequestGate (429/418 with Retry-After, and the used-weight header).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from metrics.collectors import ServiceMetrics
from metrics.labels import RestEndpoint, RestOutcome
from streaming.core.errors import ProtocolError, RateLimitedError, UnknownSymbolError, UpstreamUnavailableError
from streaming.core.models import BookTicker, Ticker, Trade
from streaming.core.pacing import RequestGate
from streaming.exchanges.binance.payloads import book_ticker_from_rest, ticker_from_rest, trade_from_rest
from streaming.exchanges.binance.protocol import rest_error

__all__ = ["BinanceRest", "INVALID_SYMBOL_CODE"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# "Error Codes": -1121 Invalid symbol.
INVALID_SYMBOL_CODE = -1121
# "General Info": every answer carries the weight used by this IP in the current minute.
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"

class BinanceRest:
    def __init__(
        self, base_url: str, timeout: float, metrics: ServiceMetrics, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._metrics = metrics
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "websocket-streaming"
        self.gate = RequestGate(wall_clock)
        self.last_ok: bool | None = None  # did Binance answer the last call (None: no call yet)?

    def _get(self, endpoint: RestEndpoint, params: dict[str, str] | None = None) -> Any:
        wait = self.gate.blocked_for()
        if wait > 0:
            self._metrics.rest_requests.labels(endpoint, RestOutcome.HELD_BACK).inc()
            raise RateLimitedError(
                f"Binance REST API calls paused for {wait:.0f}s more ({self.gate.reason})", retry_after=wait
            )
        url = self._base_url + endpoint
        try:
            response = self._session.get(url, params=params, timeout=self._timeout)
        except requests.RequestException as exc:
            self._metrics.rest_requests.labels(endpoint, RestOutcome.UNREACHABLE).inc()
            self.last_ok = False
            raise UpstreamUnavailableError(f"Binance REST API unreachable ({type(exc).__name__})") from exc
        self.gate.observe(response.status_code, response.headers.get("Retry-After"),
                          response.headers.get(WEIGHT_HEADER))
        if self.gate.used_weight is not None:
            self._metrics.rest_used_weight.set(self.gate.used_weight)
        try:
            body = response.json()
        except ValueError:
            body = None
        self.last_ok = response.status_code < 500 and response.status_code not in (418, 429)
        if response.status_code == 200 and body is not None:
            self._metrics.rest_requests.labels(endpoint, RestOutcome.OK).inc()
            return body
        code, message = rest_error(body)
        if response.status_code == 400 and code == INVALID_SYMBOL_CODE:
            self._metrics.rest_requests.labels(endpoint, RestOutcome.INVALID_SYMBOL).inc()
            raise UnknownSymbolError(message or "Invalid symbol.")
        outcome = {429: RestOutcome.RATE_LIMITED, 418: RestOutcome.BANNED}.get(response.status_code, RestOutcome.FAILED)
        self._metrics.rest_requests.labels(endpoint, outcome).inc()
        detail = f"HTTP {response.status_code}" + (f", code {code}: {message}" if code is not None else "")
        if outcome != RestOutcome.FAILED:
            log.warning("Binance REST answered %s; pausing REST calls for %.0fs", detail, self.gate.blocked_for())
            raise RateLimitedError(f"Binance REST API rate limit ({detail})", retry_after=self.gate.blocked_for())
        raise UpstreamUnavailableError(f"Binance REST API failed ({detail})")

    def available(self) -> bool:
        """Whether a call may work now: not paused by the gate, and the last call (if any) was answered."""
        return self.last_ok is not False and self.gate.blocked_for() <= 0

    def exchange_info(self) -> dict[str, Any]:
        body = self._get(RestEndpoint.EXCHANGE_INFO)
        if not isinstance(body, dict):
            raise UpstreamUnavailableError("Binance exchangeInfo answer is not an object")
        return body

    def _parsed(self, endpoint: RestEndpoint, params: dict[str, str], parse: Callable[[Any], T], what: str) -> T:
        """GET and parse; a malformed answer is UpstreamUnavailableError."""
        body = self._get(endpoint, params)
        try:
            return parse(body)
        except ProtocolError as exc:
            raise UpstreamUnavailableError(f"Binance {what} answer is malformed: {exc}") from exc

    def ticker_24hr(self, symbol: str) -> Ticker:
        """The 24hr ticker of a validated symbol; UnknownSymbolError for -1121, else UpstreamUnavailableError."""
        return self._parsed(RestEndpoint.TICKER_24HR, {"symbol": symbol}, ticker_from_rest, "24hr ticker")

    def book_ticker(self, symbol: str) -> BookTicker:
        """The best bid/ask of a validated symbol (weight 2); errors as ``ticker_24hr``."""
        return self._parsed(RestEndpoint.BOOK_TICKER, {"symbol": symbol}, book_ticker_from_rest, "book ticker")

    def agg_trades(self, symbol: str, limit: int, from_id: int | None = None) -> list[Trade]:
        """The last ``limit`` (1-1000) aggregated trades of a validated symbol, oldest first (weight 20); with
        ``from_id``, the first ``limit`` from that aggregate id on."""
        params = {"symbol": symbol, "limit": str(limit)}
        if from_id is not None:
            params["fromId"] = str(from_id)
        return self._parsed(RestEndpoint.AGG_TRADES, params, lambda body: _rows(body, symbol), "aggTrades")

    def close(self) -> None:
        self._session.close()


def _rows(body: Any, symbol: str) -> list[Trade]:
    if not isinstance(body, list):
        raise ProtocolError("the aggTrades answer is not a list")
    return [trade_from_rest(row, symbol) for row in body]
