"""GET /price/<symbol>: the latest price from the cache, or from Binance REST when the cache has none fresh.

Every answer says how old its price is (``age``, seconds) and whether that is beyond PRICE_MAX_AGE
(``stale``). A stale price is never served as current: when Binance cannot be asked, the answer is a 503 that
carries the last known price, marked stale.
"""
from __future__ import annotations

import logging
import math
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from streaming.core.errors import (
    InvalidSymbolError,
    RateLimitedError,
    UnknownSymbolError,
    UpstreamUnavailableError,
)
from streaming.core.limits import ADMIT
from streaming.core.models import Ticker
from streaming.core.symbols import normalise_symbol
from streaming.service import StreamingService

__all__ = ["blueprint", "json_error"]

log = logging.getLogger(__name__)

blueprint = Blueprint("price", __name__)


def json_error(status: int, code: str, message: str, **extra: Any) -> ResponseReturnValue:
    return jsonify({"success": False, "error": message, "code": code, **extra}), status


def _priced(service: StreamingService, ticker: Ticker) -> dict[str, Any]:
    age = service.cache.age(ticker)
    return {"data": ticker.to_wire(), "age": round(max(0.0, age), 3), "stale": age > service.settings.price_max_age}


@blueprint.get("/price/<path:raw_symbol>")
def price(raw_symbol: str) -> ResponseReturnValue:
    service: StreamingService = current_app.extensions["streaming"]
    verdict = service.price_limiter.admit(request.remote_addr or "unknown")
    if verdict.outcome != ADMIT:
        service.count_rejection("RATE_LIMITED")
        body, status = json_error(  # type: ignore[misc]
            429, "RATE_LIMITED",
            f"too many /price requests from your address; at most {service.settings.price_requests_per_second:g}/s",
        )
        return body, status, {"Retry-After": str(max(1, math.ceil(verdict.retry_after)))}
    try:
        symbol = normalise_symbol(raw_symbol)
        service.catalog.check(symbol)
    except InvalidSymbolError as exc:
        service.count_rejection(exc.code)
        return json_error(400, exc.code, str(exc))
    except UnknownSymbolError as exc:
        service.count_rejection(exc.code)
        return json_error(404, exc.code, str(exc))
    try:
        ticker, source = service.fresh_ticker(symbol)
    except UnknownSymbolError:
        service.count_rejection(UnknownSymbolError.code)
        return json_error(
            404, UnknownSymbolError.code, f"unknown symbol {symbol!r}: Binance answered 'Invalid symbol.'"
        )
    except UpstreamUnavailableError as exc:
        last = service.cache.latest(symbol)
        extra: dict[str, Any] = {"last_known": _priced(service, last)} if last is not None else {}
        response = json_error(
            503, exc.code, f"no fresh price for {symbol} in the cache and {exc}; retry shortly", **extra
        )
        if isinstance(exc, RateLimitedError):  # already logged once by the REST client
            body, status = response  # type: ignore[misc]
            return body, status, {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        log.warning("/price/%s: no fresh cached price and %s", symbol, exc)
        return response
    return jsonify({"success": True, **_priced(service, ticker), "source": source})
