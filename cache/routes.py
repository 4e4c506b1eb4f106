"""GET /price/<symbol>: the latest price from the cache, or from Binance REST when the cache has none fresh."""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from streaming.errors import InvalidSymbolError, UnknownSymbolError, UpstreamUnavailableError
from streaming.service import StreamingService
from streaming.symbols import normalise_symbol

__all__ = ["blueprint", "json_error"]

log = logging.getLogger(__name__)

blueprint = Blueprint("price", __name__)


def json_error(status: int, code: str, message: str) -> ResponseReturnValue:
    return jsonify({"success": False, "error": message, "code": code}), status


@blueprint.get("/price/<path:raw_symbol>")
def price(raw_symbol: str) -> ResponseReturnValue:
    service: StreamingService = current_app.extensions["streaming"]
    try:
        symbol = normalise_symbol(raw_symbol)
        service.catalog.check(symbol)
    except InvalidSymbolError as exc:
        service.count_rejection(exc.code)
        return json_error(400, exc.code, str(exc))
    except UnknownSymbolError as exc:
        service.count_rejection(exc.code)
        return json_error(404, exc.code, str(exc))
    ticker = service.cache.latest(symbol, max_age=service.settings.price_max_age)
    if ticker is not None:
        return jsonify({"success": True, "data": ticker.to_wire(), "source": "cache"})
    try:
        ticker = service.rest.ticker_24hr(symbol)
    except UnknownSymbolError:
        service.count_rejection(UnknownSymbolError.code)
        return json_error(
            404, UnknownSymbolError.code, f"unknown symbol {symbol!r}: Binance answered 'Invalid symbol.'"
        )
    except UpstreamUnavailableError as exc:
        log.warning("/price/%s: no fresh cached price and %s", symbol, exc)
        return json_error(503, exc.code, f"no fresh price for {symbol} in the cache and {exc}; retry shortly")
    service.cache.offer(ticker)
    return jsonify({"success": True, "data": ticker.to_wire(), "source": "api"})
