"""Binance payloads -> the core's models: the 24hrTicker, aggTrade and bookTicker stream payloads and the REST
answers of the same data. Pure: every field is checked, prices stay Binance's exact decimal strings.

Field names and types from Binance's "WebSocket Market Streams" and "Market Data REST API" documentation.
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from streaming.core.errors import ProtocolError
from streaming.core.models import BookTicker, Ticker, Trade
from streaming.exchanges.fields import flag, integer, mapping, millis

__all__ = [
    "book_ticker_from_payload",
    "book_ticker_from_rest",
    "ticker_from_payload",
    "ticker_from_rest",
    "trade_from_payload",
    "trade_from_rest",
]

# Bounds that keep a parsed ticker printable: finite JSON numbers, times within datetime's range (year 9999).
MAX_DECIMAL_LENGTH = 64
MAX_DECIMAL = Decimal("1e300")
MAX_IDENTIFIER = 2**63 - 1  # Binance's ids are LONGs


def _decimal(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or len(value) > MAX_DECIMAL_LENGTH:
        raise ProtocolError(f"field {key!r} must be a decimal string, got {type(value).__name__}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ProtocolError(f"field {key!r} is not a decimal: {value[:40]!r}") from None
    if not number.is_finite() or not abs(number) < MAX_DECIMAL:  # it must also be a finite JSON number
        raise ProtocolError(f"field {key!r} is not a finite number in range: {value[:40]!r}")
    return value


def _symbol(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"field {key!r} must be a symbol, got {value!r:.40}")
    return value.upper()


def ticker_from_payload(payload: Mapping[str, Any]) -> Ticker:
    """A Ticker from a ``24hrTicker`` stream payload; extra fields are ignored."""
    return Ticker(
        symbol=_symbol(payload, "s"),
        price=_decimal(payload, "c"),
        volume=_decimal(payload, "v"),
        high=_decimal(payload, "h"),
        low=_decimal(payload, "l"),
        change=_decimal(payload, "p"),
        change_percent=_decimal(payload, "P"),
        open=_decimal(payload, "o"),
        quote_volume=_decimal(payload, "q"),
        event_time=millis(payload, "E"),
    )


def ticker_from_rest(body: Mapping[str, Any]) -> Ticker:
    """A Ticker from ``GET /fapi/v1/ticker/24hr?symbol=``; its instant is the statistics close time."""
    mapping(body, "24hr ticker answer")
    return Ticker(
        symbol=_symbol(body, "symbol"),
        price=_decimal(body, "lastPrice"),
        volume=_decimal(body, "volume"),
        high=_decimal(body, "highPrice"),
        low=_decimal(body, "lowPrice"),
        change=_decimal(body, "priceChange"),
        change_percent=_decimal(body, "priceChangePercent"),
        open=_decimal(body, "openPrice"),
        quote_volume=_decimal(body, "quoteVolume"),
        event_time=millis(body, "closeTime"),
    )


def _trade(payload: Mapping[str, Any], symbol: str, event_time: int) -> Trade:
    first, last = integer(payload, "f", MAX_IDENTIFIER), integer(payload, "l", MAX_IDENTIFIER)
    if first > last:
        raise ProtocolError(f"first trade id {first} is after last trade id {last}")
    return Trade(
        symbol=symbol,
        trade_id=integer(payload, "a", MAX_IDENTIFIER),
        price=_decimal(payload, "p"),
        quantity=_decimal(payload, "q"),
        buyer_is_maker=flag(payload, "m"),
        first_trade_id=first,
        last_trade_id=last,
        trade_time=millis(payload, "T"),
        event_time=event_time,
    )


def trade_from_payload(payload: Mapping[str, Any]) -> Trade:
    """A Trade from an ``aggTrade`` stream payload (``a p q f l T m``, ``E``); extra fields (``nq``, ``st``)
    are ignored."""
    return _trade(payload, _symbol(payload, "s"), millis(payload, "E"))


def trade_from_rest(row: Mapping[str, Any], symbol: str) -> Trade:
    """A Trade from one row of ``GET /fapi/v1/aggTrades?symbol=``: the row names no symbol and carries no event
    time, so the trade time stands for it."""
    mapping(row, "aggTrades row")
    trade_time = millis(row, "T")
    return _trade(row, symbol.upper(), trade_time)


def book_ticker_from_payload(payload: Mapping[str, Any]) -> BookTicker:
    """A BookTicker from a ``bookTicker`` stream payload (``u s b B a A T E``); extra fields are ignored."""
    return BookTicker(
        symbol=_symbol(payload, "s"),
        bid=_decimal(payload, "b"),
        bid_qty=_decimal(payload, "B"),
        ask=_decimal(payload, "a"),
        ask_qty=_decimal(payload, "A"),
        update_id=integer(payload, "u", MAX_IDENTIFIER),
        event_time=millis(payload, "E"),
        transaction_time=millis(payload, "T"),
    )


def book_ticker_from_rest(body: Mapping[str, Any]) -> BookTicker:
    """A BookTicker from ``GET /fapi/v1/ticker/bookTicker?symbol=``: its ``time`` (the transaction time) stands
    for the event time; the update id is ``lastUpdateId`` where the answer has one (the documentation shows none)."""
    mapping(body, "bookTicker answer")
    instant = millis(body, "time")
    return BookTicker(
        symbol=_symbol(body, "symbol"),
        bid=_decimal(body, "bidPrice"),
        bid_qty=_decimal(body, "bidQty"),
        ask=_decimal(body, "askPrice"),
        ask_qty=_decimal(body, "askQty"),
        update_id=integer(body, "lastUpdateId", MAX_IDENTIFIER) if "lastUpdateId" in body else None,
        event_time=instant,
        transaction_time=instant,
    )
