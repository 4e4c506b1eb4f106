"""Binance WebSocket market-stream protocol as the fake server sees it: URLs, stream names, control requests,
rate and ping bookkeeping (facts §1, §3, §4), and which data a fault hook withholds (`Silence`).

Pure ("sans-I/O"): takes text and times in, returns decisions; imports no socket, aiohttp or asyncio.
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

# Routes of the 2026 URL scheme (facts §1); "" is the legacy un-routed URL, which acks but never delivers.
ROUTES = ("market", "public", "private")
UNROUTED = ""

# Close codes and reasons (facts §4; "Too many requests" and "going away" are as seen from Binance).
CLOSE_POLICY = 1008
CLOSE_GOING_AWAY = 1001
CLOSE_ABNORMAL = 1006  # recorded locally when no close frame was exchanged (drop, client vanished)
REASON_TOO_MANY_STREAMS = "Too many streams"
REASON_TOO_MANY_REQUESTS = "Too many requests"
REASON_PONG_TIMEOUT = "Pong timeout"
REASON_INVALID_JSON = "Invalid JSON"
REASON_LIFETIME = "going away"

# Error codes of the live-subscription API (facts §3; messages follow Binance's published list).
ERROR_UNKNOWN_PROPERTY = 0
ERROR_INVALID_VALUE = 1
ERROR_INVALID_REQUEST = 2
ERROR_INVALID_JSON = 3
MSG_BAD_ID = "Invalid request: request ID must be an unsigned integer"
MSG_INVALID_STREAM = "Invalid request: invalid stream"
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
MAX_REQUEST_ID = 2**64 - 1

_KLINE_INTERVALS = "1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M"
_SYMBOL_STREAM = re.compile(
    r"(?P<symbol>[a-z0-9_]+)@(?P<kind>ticker|miniTicker|aggTrade|markPrice(?:@1s)?|forceOrder|bookTicker"
    rf"|kline_(?:{_KLINE_INTERVALS})|continuousKline_(?:{_KLINE_INTERVALS})"
    r"|depth(?:5|10|20)?(?:@(?:100ms|250ms|500ms))?)"
)
_ALL_MARKET_STREAMS = frozenset({
    "!ticker@arr", "!miniTicker@arr", "!bookTicker", "!markPrice@arr", "!markPrice@arr@1s", "!forceOrder@arr",
})
# Python's JSON messages reworded as Binance's parser words them (ws_control_frames.jsonl line 4).
_JSON_ERRORS = MappingProxyType({"Expecting value": "expected value"})
_PUBLIC_KINDS = ("bookTicker", "depth")
# A handshake refused by FakeBinance.refuse_connections: the exchange is down (HTTP 503, no upgrade).
HANDSHAKE_REFUSED_STATUS = 503
# A handshake over the connection-attempt limit (facts §4: 300 per 5 minutes per IP). Binance documents the limit
# but not the answer; its general rule is HTTP 429 with code -1003 (and Retry-After) for rate-limit violations.
HANDSHAKE_RATE_LIMITED_STATUS = 429
CONNECTIONS_PER_WINDOW = 300
CONNECTION_WINDOW = 300.0
ERROR_TOO_MANY_REQUESTS = -1003
_SYMBOL_NAME = re.compile(r"[A-Z0-9][A-Z0-9_.-]*")
_ENDPOINT = re.compile(r"(?:/(?P<route>market|public|private))?/(?P<mode>stream|ws)(?:/(?P<stream>[^/]+))?")


class ProtocolError(ValueError):
    """A WebSocket URL the fake refuses at the handshake (answered with HTTP 400)."""


@dataclass(frozen=True)
class Endpoint:
    """What a WebSocket URL asks for."""

    route: str  # one of ROUTES, or UNROUTED
    combined: bool  # True for /stream (frames wrapped as {"stream","data"}), False for /ws (raw payloads)
    streams: tuple[str, ...]


@dataclass(frozen=True)
class DataFeed:
    """A stream the fake actually feeds on its route: `kind` names the payload builder."""

    kind: str  # "ticker", "miniTicker", "aggTrade", "bookTicker", "ticker_arr", "miniTicker_arr"
    symbol: str | None  # upper case, None for all-market streams


@dataclass(frozen=True)
class Subscription:
    """The per-connection state the control API changes."""

    streams: tuple[str, ...] = ()
    combined: bool = False


@dataclass(frozen=True)
class Outcome:
    """What to do with one incoming text frame."""

    message: Any  # parsed JSON, or the raw text when it was not JSON (for the fake's record)
    reply: dict[str, Any] | None
    state: Subscription
    close: tuple[int, str] | None = None


@dataclass(frozen=True)
class Silence:
    """Which data the fake withholds: everything (the un-routed-URL mode) or the data of some symbols."""

    everything: bool = False
    symbols: frozenset[str] = frozenset()  # upper case; their frames and their rows in arrays are withheld

    def changed(self, silent: bool, symbols: Iterable[str] | None = None) -> Silence:
        """The silence after `FakeBinance.set_silent(silent, symbols=symbols)`.

        No symbols: silence everything, or (silent False) clear everything. With symbols: add them to, or remove
        them from, the silenced symbols; `everything` is left as it is.
        """
        if symbols is None:
            return replace(self, everything=True) if silent else Silence()
        if isinstance(symbols, (str, bytes)):
            raise TypeError(f"symbols must be a collection of names like ['BTCUSDT'], not the string {symbols!r}")
        names = frozenset(symbols)
        bad = sorted(str(name) for name in names if not isinstance(name, str) or not _SYMBOL_NAME.fullmatch(name))
        if bad:
            raise ValueError(f"symbol {bad[0]!r} is not an upper-case symbol name like 'BTCUSDT'")
        return replace(self, symbols=self.symbols | names if silent else self.symbols - names)

    def audible(self, payload: Any) -> Any | None:
        """`payload` (one row or an array of rows) without silenced symbols; None when nothing is left to send."""
        if self.everything:
            return None
        if not self.symbols:
            return payload
        if isinstance(payload, list):
            rows = [row for row in payload if row.get("s") not in self.symbols]
            return rows or None
        return None if payload.get("s") in self.symbols else payload


def is_websocket_upgrade(headers: Mapping[str, str]) -> bool:
    """True when an HTTP request asks for a WebSocket upgrade (a handshake attempt, accepted or not)."""
    tokens = {token.strip().lower() for token in headers.get("Upgrade", "").split(",")}
    return "websocket" in tokens


def refused_handshake_body(remaining: float) -> dict[str, Any]:
    """Body of the HTTP 503 that answers a handshake while the fake refuses connections."""
    return {"code": -1001, "msg": f"Service unavailable: WebSocket connections are refused for another "
                                  f"{remaining:.1f} s (FakeBinance.refuse_connections)"}


def rate_limited_handshake_body(limit: int, window: float, retry_after: float) -> dict[str, Any]:
    """Body of the HTTP 429 that answers a handshake over the connection-attempt limit."""
    return {"code": ERROR_TOO_MANY_REQUESTS,
            "msg": f"Too many requests: more than {limit} connection attempts in {window:g} s from this IP; "
                   f"retry after {retry_after:.1f} s"}


def is_valid_stream(name: str) -> bool:
    """True for a well-formed USD-M stream name (lower-case symbol; case-sensitive suffix)."""
    return name in _ALL_MARKET_STREAMS or _SYMBOL_STREAM.fullmatch(name) is not None


def stream_route(name: str) -> str:
    """The route that carries a valid stream (facts §1): "public" for book data, else "market"."""
    match = _SYMBOL_STREAM.fullmatch(name)
    kind = match.group("kind") if match else name.lstrip("!")
    return "public" if kind.startswith(_PUBLIC_KINDS) else "market"


def data_feed(route: str, name: str) -> DataFeed | None:
    """The data the fake sends for `name` on `route`, or None when it stays silent there."""
    if route == UNROUTED or route != stream_route(name):
        return None
    if name == "!ticker@arr":
        return DataFeed("ticker_arr", None)
    if name == "!miniTicker@arr":
        return DataFeed("miniTicker_arr", None)
    match = _SYMBOL_STREAM.fullmatch(name)
    if match and match.group("kind") in ("ticker", "miniTicker", "aggTrade", "bookTicker"):
        return DataFeed(match.group("kind"), match.group("symbol").upper())
    return None


def parse_endpoint(path: str, streams_query: str | None) -> Endpoint | None:
    """Endpoint of a WebSocket URL; None when the path is no stream URL at all (404).

    Raises ProtocolError when the path is a stream URL naming an invalid stream.
    """
    match = _ENDPOINT.fullmatch(path)
    if match is None:
        return None
    route = match.group("route") or UNROUTED
    combined = match.group("mode") == "stream"
    if match.group("stream") is not None:
        if combined:
            return None  # /stream/<x> is no Binance URL
        names: list[str] = [match.group("stream")]
    else:
        names = [part for part in (streams_query or "").split("/") if part] if combined else []
    bad = [name for name in names if not is_valid_stream(name)]
    if bad:
        raise ProtocolError(f"invalid stream {bad[0]!r} in URL {path!r}; stream names are like 'btcusdt@ticker'")
    return Endpoint(route=route, combined=combined, streams=tuple(dict.fromkeys(names)))


def handle_text(text: str, state: Subscription, max_streams: int) -> Outcome:
    """Apply one control request (facts §3) to `state`."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = _JSON_ERRORS.get(exc.msg, exc.msg[:1].lower() + exc.msg[1:])
        msg = f"Invalid JSON: {reason} at line {exc.lineno} column {exc.colno}"
        return Outcome(text, {"error": {"code": ERROR_INVALID_JSON, "msg": msg}}, state,
                       (CLOSE_POLICY, REASON_INVALID_JSON))
    if not isinstance(message, dict):
        return Outcome(message, _error(ERROR_INVALID_REQUEST, "Invalid request: expected a JSON object", None),
                       state)
    request_id = message.get("id")
    if not _is_unsigned(request_id):
        return Outcome(message, _error(ERROR_INVALID_REQUEST, MSG_BAD_ID, request_id), state)
    method = message.get("method")
    if method is None:
        return Outcome(message, _error(ERROR_INVALID_REQUEST, "Invalid request: missing field `method`",
                                       request_id), state)
    if method not in METHODS:
        expected = ", ".join(f"`{name}`" for name in METHODS)
        text_msg = f"Invalid request: unknown variant `{method}`, expected one of {expected}"
        return Outcome(message, _error(ERROR_INVALID_REQUEST, text_msg, request_id), state)
    params = message.get("params", [])
    if method == "LIST_SUBSCRIPTIONS":
        return Outcome(message, {"result": list(state.streams), "id": request_id}, state)
    if method in ("SET_PROPERTY", "GET_PROPERTY"):
        return _property(message, params, state, request_id)
    return _subscription(message, method, params, state, request_id, max_streams)


def decode_request(text: str) -> Any:
    """The JSON value of a text frame, or the text itself when it is not JSON (for the fake's record)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def frame_text(stream: str, payload: Any, combined: bool) -> str:
    """One data frame as Binance serialises it (compact JSON)."""
    body = {"stream": stream, "data": payload} if combined else payload
    return json.dumps(body, separators=(",", ":"))


def reply_text(reply: dict[str, Any]) -> str:
    return json.dumps(reply, separators=(",", ":"))


def _is_unsigned(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_REQUEST_ID


def _error(code: int, msg: str, request_id: Any) -> dict[str, Any]:
    return {"error": {"code": code, "msg": msg}, "id": request_id}


def _subscription(message: Any, method: str, params: Any, state: Subscription, request_id: int,
                  max_streams: int) -> Outcome:
    if not isinstance(params, list) or not all(isinstance(name, str) for name in params):
        msg = "Invalid request: params must be a list of stream names like 'btcusdt@ticker'"
        return Outcome(message, _error(ERROR_INVALID_REQUEST, msg, request_id), state)
    if not all(is_valid_stream(name) for name in params):
        return Outcome(message, _error(ERROR_INVALID_REQUEST, MSG_INVALID_STREAM, request_id), state)
    if method == "UNSUBSCRIBE":
        gone = set(params)
        kept = tuple(name for name in state.streams if name not in gone)
        return Outcome(message, {"result": None, "id": request_id}, replace(state, streams=kept))
    streams = tuple(dict.fromkeys(state.streams + tuple(params)))
    if len(streams) > max_streams:
        return Outcome(message, None, state, (CLOSE_POLICY, REASON_TOO_MANY_STREAMS))
    return Outcome(message, {"result": None, "id": request_id}, replace(state, streams=streams))


def _property(message: Any, params: Any, state: Subscription, request_id: int) -> Outcome:
    if not isinstance(params, list) or not params or not isinstance(params[0], str):
        msg = "Invalid request: property name must be a string"
        return Outcome(message, _error(ERROR_INVALID_REQUEST, msg, request_id), state)
    if params[0] != "combined":
        return Outcome(message, _error(ERROR_UNKNOWN_PROPERTY, "Unknown property", request_id), state)
    if message["method"] == "GET_PROPERTY":
        return Outcome(message, {"result": state.combined, "id": request_id}, state)
    if len(params) != 2 or not isinstance(params[1], bool):
        msg = "Invalid value type: expected Boolean"
        return Outcome(message, _error(ERROR_INVALID_VALUE, msg, request_id), state)
    return Outcome(message, {"result": None, "id": request_id}, replace(state, combined=params[1]))


class RateWindow:
    """Counts events in a sliding window: a connection's incoming frames (facts §4: 10 per second, pings and pongs
    included) or an IP's connection attempts (300 per 5 minutes). Every event counts, refused ones too."""

    def __init__(self, limit: int, window: float = 1.0) -> None:
        self._limit = limit
        self._window = window
        self._hits: collections.deque[float] = collections.deque()

    def hit(self, now: float) -> bool:
        """Record one event at `now`; True when the window now holds more than the limit."""
        self._hits.append(now)
        self._expire(now)
        return len(self._hits) > self._limit

    def retry_after(self, now: float) -> float:
        """Seconds from `now` until one more event would be within the limit (0.0 when it is now)."""
        self._expire(now)
        excess = len(self._hits) - self._limit
        return 0.0 if excess < 0 else self._hits[excess] + self._window - now

    def _expire(self, now: float) -> None:
        while self._hits and self._hits[0] <= now - self._window:
            self._hits.popleft()


class PingTracker:
    """Server pings and the pongs due for them (facts §4: ping every 3 min, pong within 10 min)."""

    def __init__(self, interval: float, timeout: float, now: float) -> None:
        self._interval = interval
        self._timeout = timeout
        self._next_ping = now + interval
        self._outstanding: dict[bytes, float] = {}

    def next_wakeup(self) -> float:
        """The earliest time something may be due (a ping to send, or a pong deadline)."""
        deadlines = [self._next_ping]
        if self._outstanding:
            deadlines.append(min(self._outstanding.values()) + self._timeout)
        return min(deadlines)

    def ping_due(self, now: float) -> bool:
        return now >= self._next_ping

    def sent(self, payload: bytes, now: float) -> None:
        self._outstanding[payload] = now
        self._next_ping = now + self._interval

    def pong(self, payload: bytes) -> bool:
        """Settle the ping `payload` echoes and every older one; False for an unsolicited pong."""
        sent_at = self._outstanding.get(payload)
        if sent_at is None:
            return False
        self._outstanding = {key: at for key, at in self._outstanding.items() if at > sent_at}
        return True

    def overdue(self, now: float) -> bool:
        return any(now >= at + self._timeout for at in self._outstanding.values())
