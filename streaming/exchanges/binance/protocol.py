"""The Binance USD-M futures protocol, without I/O: URLs, control requests, message and REST parsing. Pure.

Facts used here come from Binance's "WebSocket Market Streams", "Live Subscribing/Unsubscribing to streams"
and "Market Data REST API" documentation. Symbols are lower-cased only here, for stream names.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping, Union
from urllib.parse import quote

from metrics.labels import StreamType
from streaming.core.errors import ProtocolError
from streaming.core.models import BookTicker, Ticker, Trade

__all__ = [
    "MARKET_ROUTE",
    "TickerBatch",
    "Reply",
    "ErrorReply",
    "Unrecognised",
    "Message",
    "stream_name",
    "symbol_of_stream",
    "stream_type",
    "market_stream_url",
    "control_request",
    "parse_message",
    "ticker_from_payload",
    "ticker_from_rest",
    "trade_from_payload",
    "trade_from_rest",
    "book_ticker_from_payload",
    "book_ticker_from_rest",
    "tradable_usdt_perpetuals",
    "rest_error",
]

# Since 2026-04-23 ticker streams are served only on the /market route ("Important WebSocket Change Notice").
MARKET_ROUTE = "/market"
TICKER_SUFFIX = "@ticker"
# "symbol type" field of futures payloads: 1 = USD-M, 2 = COIN-M.
USD_M_SYMBOL_TYPE = 1
_STREAM = re.compile(r"([a-z0-9_]+)@ticker")
# Bounds that keep a parsed ticker printable: finite JSON numbers, times within datetime's range (year 9999).
MAX_DECIMAL_LENGTH = 64
MAX_DECIMAL = Decimal("1e300")
MAX_EPOCH_MS = 253_402_300_799_999
MAX_IDENTIFIER = 2**63 - 1  # Binance's ids are LONGs


@dataclass(frozen=True, slots=True)
class TickerBatch:
    """Ticker data from one frame (one ticker, or several from an array stream)."""

    stream: str
    tickers: tuple[Ticker, ...]
    skipped: int = 0  # rows ignored: other symbol types (COIN-M) or malformed rows


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer to a SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS request."""

    id: int | None
    result: Any


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """``{"error": {...}, "id": N}``: a request was refused (or, without id, the frame was invalid)."""

    id: int | None
    code: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Unrecognised:
    """A frame that is not garbage-free JSON of a known kind; ``kind`` is a short, bounded category."""

    kind: str
    detail: str


Message = Union[TickerBatch, Reply, ErrorReply, Unrecognised]


def stream_name(symbol: str) -> str:
    """The ticker stream of a symbol: ``BTCUSDT`` -> ``btcusdt@ticker``."""
    return symbol.lower() + TICKER_SUFFIX


def symbol_of_stream(stream: str) -> str | None:
    """The upper-case symbol of a ticker stream name, or None for other streams."""
    match = _STREAM.fullmatch(stream)
    return match.group(1).upper() if match else None


ALL_TICKERS_STREAM = "!ticker@arr"


def stream_type(stream: str) -> StreamType:
    """The kind of a stream, for metric labels (a bounded set): ``ticker``, ``ticker_array`` or ``other``."""
    if stream == ALL_TICKERS_STREAM:
        return StreamType.TICKER_ARRAY
    return StreamType.TICKER if symbol_of_stream(stream) is not None else StreamType.OTHER


def market_stream_url(base_url: str, streams: Iterable[str] = ()) -> str:
    """Combined-stream URL on the /market route: ``{base}/market/stream?streams=a/b``."""
    url = base_url.rstrip("/") + MARKET_ROUTE + "/stream"
    names = list(streams)
    if names:
        url += "?streams=" + "/".join(quote(name, safe="@!_") for name in names)
    return url


def control_request(method: str, request_id: int, streams: Iterable[str] = ()) -> str:
    """A live control frame, e.g. ``{"method":"SUBSCRIBE","params":[...],"id":1}``."""
    if request_id < 0:
        raise ValueError("request id must be an unsigned integer")
    body: dict[str, Any] = {"method": method}
    if method != "LIST_SUBSCRIPTIONS":
        body["params"] = list(streams)
    body["id"] = request_id
    return json.dumps(body, separators=(",", ":"))


def parse_message(text: str | bytes) -> Message:
    """Classify one frame from a combined-stream connection. Never raises."""
    try:
        frame = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        return Unrecognised("invalid_json", str(exc)[:200])
    if not isinstance(frame, dict):
        return Unrecognised("not_an_object", type(frame).__name__)
    if "stream" in frame and "data" in frame:
        return _parse_stream_frame(frame)
    if "error" in frame:
        return _parse_error(frame)
    if "id" in frame and "result" in frame:
        return Reply(_request_id(frame.get("id")), frame["result"])
    return Unrecognised("unknown_frame", ",".join(sorted(map(str, frame))[:10]))


def _parse_stream_frame(frame: Mapping[str, Any]) -> Message:
    stream = frame["stream"]
    data = frame["data"]
    if not isinstance(stream, str):
        return Unrecognised("bad_stream_name", repr(stream)[:80])
    rows = data if isinstance(data, list) else [data]
    tickers: list[Ticker] = []
    skipped = 0
    for row in rows:
        if not isinstance(row, dict) or row.get("e") != "24hrTicker":
            skipped += 1
            continue
        if row.get("st", USD_M_SYMBOL_TYPE) != USD_M_SYMBOL_TYPE:
            skipped += 1
            continue
        try:
            tickers.append(ticker_from_payload(row))
        except ProtocolError:
            skipped += 1
    if not tickers and skipped and not isinstance(data, list):
        event = data.get("e") if isinstance(data, dict) else None
        return Unrecognised("unknown_event", f"{stream}: {str(event)[:40]}")
    return TickerBatch(stream, tuple(tickers), skipped)


def _parse_error(frame: Mapping[str, Any]) -> ErrorReply:
    error = frame.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        message = str(error.get("msg", ""))[:300]
    else:
        code, message = None, str(error)[:300]
    return ErrorReply(_request_id(frame.get("id")), code if isinstance(code, int) else None, message)


def _request_id(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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


def _millis(payload: Mapping[str, Any], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_EPOCH_MS:
        raise ProtocolError(f"field {key!r} must be epoch milliseconds, got {value!r:.40}")
    return value


def _symbol(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"field {key!r} must be a symbol, got {value!r:.40}")
    return value.upper()


def _identifier(payload: Mapping[str, Any], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_IDENTIFIER:
        raise ProtocolError(f"field {key!r} must be a non-negative integer id, got {value!r:.40}")
    return value


def _flag(payload: Mapping[str, Any], key: str) -> bool:
    value = payload.get(key)
    if not isinstance(value, bool):
        raise ProtocolError(f"field {key!r} must be true or false, got {value!r:.40}")
    return value


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
        event_time=_millis(payload, "E"),
    )


def ticker_from_rest(body: Mapping[str, Any]) -> Ticker:
    """A Ticker from ``GET /fapi/v1/ticker/24hr?symbol=``; its instant is the statistics close time."""
    if not isinstance(body, Mapping):
        raise ProtocolError(f"24hr ticker answer must be an object, got {type(body).__name__}")
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
        event_time=_millis(body, "closeTime"),
    )


def _trade(payload: Mapping[str, Any], symbol: str, event_time: int) -> Trade:
    first, last = _identifier(payload, "f"), _identifier(payload, "l")
    if first > last:
        raise ProtocolError(f"first trade id {first} is after last trade id {last}")
    return Trade(
        symbol=symbol,
        trade_id=_identifier(payload, "a"),
        price=_decimal(payload, "p"),
        quantity=_decimal(payload, "q"),
        buyer_is_maker=_flag(payload, "m"),
        first_trade_id=first,
        last_trade_id=last,
        trade_time=_millis(payload, "T"),
        event_time=event_time,
    )


def trade_from_payload(payload: Mapping[str, Any]) -> Trade:
    """A Trade from an ``aggTrade`` stream payload (``a p q f l T m``, ``E``); extra fields (``nq``, ``st``)
    are ignored."""
    return _trade(payload, _symbol(payload, "s"), _millis(payload, "E"))


def trade_from_rest(row: Mapping[str, Any], symbol: str) -> Trade:
    """A Trade from one row of ``GET /fapi/v1/aggTrades?symbol=``: the row names no symbol and carries no event
    time, so the trade time stands for it."""
    if not isinstance(row, Mapping):
        raise ProtocolError(f"aggTrades row must be an object, got {type(row).__name__}")
    trade_time = _millis(row, "T")
    return _trade(row, symbol.upper(), trade_time)


def book_ticker_from_payload(payload: Mapping[str, Any]) -> BookTicker:
    """A BookTicker from a ``bookTicker`` stream payload (``u s b B a A T E``); extra fields are ignored."""
    return BookTicker(
        symbol=_symbol(payload, "s"),
        bid=_decimal(payload, "b"),
        bid_qty=_decimal(payload, "B"),
        ask=_decimal(payload, "a"),
        ask_qty=_decimal(payload, "A"),
        update_id=_identifier(payload, "u"),
        event_time=_millis(payload, "E"),
        transaction_time=_millis(payload, "T"),
    )


def book_ticker_from_rest(body: Mapping[str, Any]) -> BookTicker:
    """A BookTicker from ``GET /fapi/v1/ticker/bookTicker?symbol=``: its ``time`` (the transaction time) stands
    for the event time; the update id is ``lastUpdateId`` where the answer has one (the documentation shows none)."""
    if not isinstance(body, Mapping):
        raise ProtocolError(f"bookTicker answer must be an object, got {type(body).__name__}")
    instant = _millis(body, "time")
    return BookTicker(
        symbol=_symbol(body, "symbol"),
        bid=_decimal(body, "bidPrice"),
        bid_qty=_decimal(body, "bidQty"),
        ask=_decimal(body, "askPrice"),
        ask_qty=_decimal(body, "askQty"),
        update_id=_identifier(body, "lastUpdateId") if "lastUpdateId" in body else None,
        event_time=instant,
        transaction_time=instant,
    )


def tradable_usdt_perpetuals(exchange_info: Mapping[str, Any]) -> frozenset[str]:
    """Symbols of ``GET /fapi/v1/exchangeInfo`` that are USDT-quoted, PERPETUAL and TRADING.

    Quarterlies (also USDT-quoted), TRADIFI_PERPETUAL and PENDING_TRADING symbols are excluded.
    """
    symbols = exchange_info.get("symbols") if isinstance(exchange_info, Mapping) else None
    if not isinstance(symbols, list):
        raise ProtocolError("exchangeInfo has no 'symbols' list")
    tradable = set()
    for entry in symbols:
        if (
            isinstance(entry, dict)
            and entry.get("contractType") == "PERPETUAL"
            and entry.get("quoteAsset") == "USDT"
            and entry.get("status") == "TRADING"
            and isinstance(entry.get("symbol"), str)
        ):
            tradable.add(entry["symbol"].upper())
    return frozenset(tradable)


def rest_error(body: Any) -> tuple[int | None, str]:
    """The ``(code, msg)`` of a Binance REST error body such as ``{"code":-1121,"msg":"Invalid symbol."}``."""
    if isinstance(body, Mapping):
        code = body.get("code")
        return (code if isinstance(code, int) else None, str(body.get("msg", ""))[:300])
    return None, ""
