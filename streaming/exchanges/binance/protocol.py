"""The Binance USD-M futures protocol, without I/O: URLs, control requests, message and REST parsing. Pure.

Facts used here come from Binance's "WebSocket Market Streams", "Live Subscribing/Unsubscribing to streams"
and "Market Data REST API" documentation. Symbols are lower-cased only here, for stream names.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from metrics.labels import StreamType
from streaming.core.errors import ProtocolError
from streaming.core.models import Model
from streaming.exchanges.binance.streams import BY_EVENT, channel_of_stream
from streaming.exchanges.messages import ErrorReply, Message, Reply, StreamBatch, Unrecognised

__all__ = [
    "StreamBatch",
    "Reply",
    "ErrorReply",
    "Unrecognised",
    "Message",
    "stream_type",
    "stream_url",
    "control_request",
    "parse_frame",
    "parse_message",
    "tradable_usdt_perpetuals",
    "rest_error",
]

# "symbol type" field of futures payloads: 1 = USD-M, 2 = COIN-M.
USD_M_SYMBOL_TYPE = 1




ALL_TICKERS_STREAM = "!ticker@arr"


def stream_type(stream: str) -> StreamType:
    """The kind of a stream, for metric labels (a bounded set): a channel kind, ``ticker_array`` or ``other``."""
    if stream == ALL_TICKERS_STREAM:
        return StreamType.TICKER_ARRAY
    channel = channel_of_stream(stream)
    return StreamType(channel.kind.value) if channel is not None else StreamType.OTHER


def stream_url(base_url: str, route: str, streams: Iterable[str] = ()) -> str:
    """Combined-stream URL on a route: ``{base}{route}/stream?streams=a/b`` (route ``/market`` or ``/public``)."""
    url = base_url.rstrip("/") + route + "/stream"
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
    return parse_frame(frame)


def parse_frame(frame: object) -> Message:
    """Classify one frame already decoded from JSON (what ``parse_message`` does after decoding). Never raises."""
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
    updates: list[Model] = []
    skipped = 0
    for row in rows:
        spec = BY_EVENT.get(row.get("e")) if isinstance(row, dict) else None
        if spec is None or row.get("st", USD_M_SYMBOL_TYPE) != USD_M_SYMBOL_TYPE:
            skipped += 1
            continue
        try:
            updates.append(spec.parse(row))
        except ProtocolError:
            skipped += 1
    if not updates and skipped and not isinstance(data, list):
        event = data.get("e") if isinstance(data, dict) else None
        return Unrecognised("unknown_event", f"{stream}: {str(event)[:40]}")
    return StreamBatch(stream, tuple(updates), skipped)


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
