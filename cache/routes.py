"""GET /price/<symbol>, /book/<symbol> and /trades/<symbol>: the latest price, the best bid/ask and the last
trades, from the service's memory (and Redis, for prices) when fresh, else from the exchange's REST API. GET
/history/<symbol>: pages of a stream's recorded history (Redis Streams, else memory). Each takes
``?exchange=binance|bybit`` (default binance).

Every /price answer says how old its price is (``age``, seconds) and whether that is beyond PRICE_MAX_AGE
(``stale``). A stale price is never served as current: when Binance cannot be asked, the answer is a 503 that
carries the last known price, marked stale.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from streaming.core.channels import BINANCE, Channel, market_of
from streaming.core.errors import (
    InvalidRequestError,
    InvalidSymbolError,
    RateLimitedError,
    UnknownSymbolError,
    UpstreamUnavailableError,
)
from streaming.core.limits import ADMIT
from streaming.core.models import Ticker
from streaming.core.ranges import parse_history_query
from streaming.core.symbols import normalise_symbol, shown_item
from streaming.exchanges.registry import exchange_named
from streaming.service import StreamingService

__all__ = ["blueprint", "json_error"]

log = logging.getLogger(__name__)

blueprint = Blueprint("price", __name__)

# GET /trades: as Binance's GET /fapi/v1/aggTrades ("limit: Default 500; max 1000").
DEFAULT_TRADES = 500
MIN_TRADES = 1
MAX_TRADES = 1000

T = TypeVar("T")


def json_error(status: int, code: str, message: str, **extra: Any) -> ResponseReturnValue:
    return jsonify({"success": False, "error": message, "code": code, **extra}), status


def _priced(service: StreamingService, ticker: Ticker) -> dict[str, Any]:
    age = service.cache.age(ticker)
    return {"data": ticker.to_wire(), "age": round(max(0.0, age), 3), "stale": age > service.settings.price_max_age}


def _admit(service: StreamingService) -> ResponseReturnValue | None:
    """The 429 for an address over PRICE_REQUESTS_PER_SECOND (shared by /price, /book and /trades), else None."""
    verdict = service.price_limiter.admit(request.remote_addr or "unknown")
    if verdict.outcome == ADMIT:
        return None
    service.count_rejection("RATE_LIMITED")
    body, status = json_error(  # type: ignore[misc]
        429, "RATE_LIMITED",
        f"too many requests from your address to /price, /book, /trades and /history; at most "
        f"{service.settings.price_requests_per_second:g}/s",
    )
    return body, status, {"Retry-After": str(max(1, math.ceil(verdict.retry_after)))}


@dataclass(frozen=True, slots=True)
class _Asked:
    """The exchange and the validated symbol a request asks about."""

    exchange: str
    symbol: str


def _admitted_symbol(service: StreamingService, raw_symbol: str) -> _Asked | ResponseReturnValue:
    """What a request within the address's rate limit asks about, or the 429, 400 or 404 answer."""
    refused = _admit(service)
    if refused is not None:
        return refused
    try:
        exchange = exchange_named(request.args.get("exchange", BINANCE), service.exchanges).name
        symbol = normalise_symbol(raw_symbol)
        service.catalogs[exchange].check(symbol)
    except (InvalidSymbolError, InvalidRequestError) as exc:
        service.count_rejection(exc.code)
        return json_error(400, exc.code, str(exc))
    except UnknownSymbolError as exc:
        service.count_rejection(exc.code)
        return json_error(404, exc.code, str(exc))
    return _Asked(exchange, symbol)


def _serve(raw_symbol: str, what: str, look_up: Callable[[StreamingService, str, str], tuple[T, str]],
           render: Callable[[StreamingService, T], dict[str, Any]],
           last_known: Callable[[StreamingService, str, str], dict[str, Any] | None] = lambda *_: None,
           ) -> ResponseReturnValue:
    """One look-up endpoint: the rate limit, the exchange's and the symbol's validation, the look-up (cache,
    else the exchange's REST API behind its REST gate and single-flight) and its errors, the same for every
    endpoint. ``look_up`` and ``last_known`` take (service, exchange, symbol)."""
    service: StreamingService = current_app.extensions["streaming"]
    checked = _admitted_symbol(service, raw_symbol)
    if not isinstance(checked, _Asked):
        return checked
    exchange, symbol = checked.exchange, checked.symbol
    try:
        found, source = look_up(service, exchange, symbol)
    except InvalidRequestError as exc:
        service.count_rejection(exc.code)
        return json_error(400, exc.code, str(exc))
    except UnknownSymbolError:
        service.count_rejection(UnknownSymbolError.code)
        return json_error(
            404, UnknownSymbolError.code, f"unknown symbol {symbol!r}: {service.rests[exchange].title} answered "
            "that it has no such symbol"
        )
    except UpstreamUnavailableError as exc:
        known = last_known(service, exchange, symbol)
        extra: dict[str, Any] = {"last_known": known} if known is not None else {}
        response = json_error(503, exc.code, f"no fresh {what} for {symbol} in the cache and {exc}; retry shortly",
                              **extra)
        if isinstance(exc, RateLimitedError):  # already logged once by the REST client
            body, status = response  # type: ignore[misc]
            return body, status, {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        log.warning("%s of %s: none fresh in the cache and %s", what, symbol, exc)
        return response
    return jsonify({"success": True, **render(service, found), "source": source})


def _last_price(service: StreamingService, exchange: str, symbol: str) -> dict[str, Any] | None:
    last = service.cache.latest(market_of(exchange, symbol))
    return _priced(service, last) if last is not None else None


@blueprint.get("/price/<path:raw_symbol>")
def price(raw_symbol: str) -> ResponseReturnValue:
    return _serve(raw_symbol, "price", lambda service, exchange, symbol: service.fresh_ticker(symbol, exchange),
                  _priced, _last_price)


@blueprint.get("/book/<path:raw_symbol>")
def book(raw_symbol: str) -> ResponseReturnValue:
    """The best bid and ask: the latest book_ticker from the stream, or the exchange's REST best bid/ask."""
    return _serve(raw_symbol, "book ticker", lambda service, exchange, symbol: service.fresh_book(symbol, exchange),
                  lambda _service, found: {"data": found.to_wire()})


@blueprint.get("/trades/<path:raw_symbol>")
def trades(raw_symbol: str) -> ResponseReturnValue:
    """The last ``limit`` trades (default DEFAULT_TRADES, 1-MAX_TRADES), oldest first."""
    raw_limit = request.args.get("limit")
    return _serve(raw_symbol, "trades",
                  lambda service, exchange, symbol: service.recent_trades(symbol, _trades_limit(raw_limit), exchange),
                  lambda _service, found: {"data": [trade.to_wire() for trade in found]})


def _trades_limit(raw: str | None) -> int:
    """The ``limit`` query parameter of /trades; InvalidRequestError with what to send instead."""
    if raw is None:
        return DEFAULT_TRADES
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 5 or not MIN_TRADES <= int(text) <= MAX_TRADES:
        raise InvalidRequestError(f"'limit' must be a whole number from {MIN_TRADES} to {MAX_TRADES}, got "
                                  f"{shown_item(raw)!r}")
    return int(text)


@blueprint.get("/history/<path:raw_symbol>")
def history(raw_symbol: str) -> ResponseReturnValue:
    """A page of a stream's recorded updates, oldest first, each with its offset; ``next`` is the ``after`` of
    the next page (null: the range has no more)."""
    service: StreamingService = current_app.extensions["streaming"]
    checked = _admitted_symbol(service, raw_symbol)
    if not isinstance(checked, _Asked):
        return checked
    exchange, symbol = checked.exchange, checked.symbol
    try:
        query = parse_history_query(request.args)
    except InvalidRequestError as exc:
        service.count_rejection(exc.code)
        return json_error(400, exc.code, str(exc))
    if service.history is None:
        return json_error(404, "HISTORY_DISABLED", "history is off on this server (HISTORY_ENABLED=false)")
    channel = Channel(exchange, query.kind, symbol)
    page = service.history.read(channel, query.after, query.start, query.end, query.limit)
    if query.epoch is not None and query.epoch != page.epoch:
        return json_error(409, "EPOCH_CHANGED", f"the history of {channel.key} started afresh (epoch "
                          f"{query.epoch!r} is gone, now {page.epoch!r}): offsets of the old epoch mean nothing "
                          "in the new one; read again from the start", epoch=page.epoch)
    return jsonify({"success": True, "data": {
        "symbol": symbol, "exchange": exchange, "stream": str(query.kind), "epoch": page.epoch,
        "items": [{**json.loads(entry.item), "offset": entry.offset} for entry in page.entries],
        "next": page.next,
    }})
