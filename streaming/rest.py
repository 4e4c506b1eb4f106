"""BinanceRest: the few Binance USD-M REST calls the service makes (exchangeInfo, 24hr ticker)."""
from __future__ import annotations

import logging
from typing import Any

import requests

from metrics.collectors import ServiceMetrics
from streaming.binance import rest_error, ticker_from_rest
from streaming.errors import ProtocolError, UnknownSymbolError, UpstreamUnavailableError
from streaming.models import Ticker

__all__ = ["BinanceRest", "INVALID_SYMBOL_CODE"]

log = logging.getLogger(__name__)

# "Error Codes": -1121 Invalid symbol.
INVALID_SYMBOL_CODE = -1121


class BinanceRest:
    def __init__(self, base_url: str, timeout: float, metrics: ServiceMetrics) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._metrics = metrics
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "websocket-streaming"

    def _get(self, endpoint: str, params: dict[str, str] | None = None) -> Any:
        url = self._base_url + endpoint
        try:
            response = self._session.get(url, params=params, timeout=self._timeout)
        except requests.RequestException as exc:
            self._metrics.rest_requests.labels(endpoint, "unreachable").inc()
            raise UpstreamUnavailableError(f"Binance REST API unreachable ({type(exc).__name__})") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and body is not None:
            self._metrics.rest_requests.labels(endpoint, "ok").inc()
            return body
        code, message = rest_error(body)
        if response.status_code == 400 and code == INVALID_SYMBOL_CODE:
            self._metrics.rest_requests.labels(endpoint, "invalid_symbol").inc()
            raise UnknownSymbolError(message or "Invalid symbol.")
        outcome = {429: "rate_limited", 418: "banned"}.get(response.status_code, "failed")
        self._metrics.rest_requests.labels(endpoint, outcome).inc()
        detail = f"HTTP {response.status_code}" + (f", code {code}: {message}" if code is not None else "")
        raise UpstreamUnavailableError(f"Binance REST API failed ({detail})")

    def exchange_info(self) -> dict[str, Any]:
        body = self._get("/fapi/v1/exchangeInfo")
        if not isinstance(body, dict):
            raise UpstreamUnavailableError("Binance exchangeInfo answer is not an object")
        return body

    def ticker_24hr(self, symbol: str) -> Ticker:
        """The 24hr ticker of a validated symbol; UnknownSymbolError for -1121, else UpstreamUnavailableError."""
        body = self._get("/fapi/v1/ticker/24hr", {"symbol": symbol})
        try:
            return ticker_from_rest(body)
        except ProtocolError as exc:
            raise UpstreamUnavailableError(f"Binance 24hr ticker answer is malformed: {exc}") from exc

    def close(self) -> None:
        self._session.close()
