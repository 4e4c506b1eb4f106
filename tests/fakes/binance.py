"""A faithful local fake of Binance USD-M futures market data (WebSocket + REST) on one 127.0.0.1 port.

The I/O shell: an aiohttp server in its own event loop on a daemon thread, plus fault hooks and thread-safe
inspection for tests. Decisions live in the pure modules protocol.py, rest.py and market.py.
Run standalone with `python -m tests.fakes.binance --port 9000 --tick-interval 2` (see `main`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from types import MappingProxyType
from typing import Any

from aiohttp import web

from tests.fakes.connection import CLOSE_HANDSHAKE_TIMEOUT, Connection, Limits, Tick, now_ms, wait_finished
from tests.fakes.exchange_info import load_exchange_info, symbol_specs, with_listing, with_status
from tests.fakes.market import Market, TradeTape
from tests.fakes.protocol import (
    CLOSE_GOING_AWAY,
    CONNECTION_WINDOW,
    CONNECTIONS_PER_WINDOW,
    HANDSHAKE_RATE_LIMITED_STATUS,
    HANDSHAKE_REFUSED_STATUS,
    REASON_LIFETIME,
    Endpoint,
    ProtocolError,
    RateWindow,
    Silence,
    is_websocket_upgrade,
    parse_endpoint,
    rate_limited_handshake_body,
    refused_handshake_body,
)
from tests.fakes.rest import (
    ANSWERED,
    BAN_SECONDS,
    FORCED,
    WEIGHT,
    WEIGHT_HEADER,
    WEIGHT_LIMIT_PER_MINUTE,
    Escalation,
    MarketData,
    RestAnswer,
    RestCall,
    RestRequest,
    WeightMeter,
    answer,
    failure_body,
    request_weight,
    too_many_requests_body,
)
from tests.fakes.server import LoopServer, serve

log = logging.getLogger(__name__)

DEFAULT_SEED = 20260423
CATCH_UP = 0.05  # seconds of ticks a late tick loop makes up for (a pause of the process, a busy machine)
# Close codes a peer must never send in a close frame (RFC 6455 §7.4.1).
_RESERVED_CLOSE_CODES = frozenset({1004, 1005, 1006, 1015})
_dumps = partial(json.dumps, separators=(",", ":"))


@dataclass(frozen=True)
class ConnInfo:
    """Snapshot of one accepted WebSocket connection. Times are wall-clock `time.time()` seconds."""

    id: int
    path: str
    route: str  # "market" | "public" | "private" | "" (un-routed legacy URL)
    query: str
    streams: frozenset[str]
    open: bool
    opened_at: float
    closed_at: float | None
    close_code: int | None  # the server's code, else the client's; 1006 when no close frame was exchanged
    close_reason: str | None
    received: int  # incoming frames: text, binary, ping and pong


class FakeBinance(LoopServer):
    """Binance USD-M futures market data on 127.0.0.1: WebSocket routes /market, /public, /private, the
    un-routed legacy URL, and the /fapi REST endpoints; see tests/fakes/README.md for the behaviour."""

    NAME = "Binance"
    CLOSE_REASON = REASON_LIFETIME

    def __init__(self, *, tick_interval: float = 2.0, ping_interval: float = 180.0, pong_timeout: float = 600.0,
                 max_streams: int = 1024, max_incoming_per_second: int = 10,
                 connection_lifetime: float = 86400.0, port: int = 0, seed: int = DEFAULT_SEED,
                 rest_weight_limit: int = WEIGHT_LIMIT_PER_MINUTE, rest_ban_seconds: float = BAN_SECONDS,
                 max_connections_per_window: int = CONNECTIONS_PER_WINDOW,
                 connection_window: float = CONNECTION_WINDOW) -> None:
        for name, value in (("tick_interval", tick_interval), ("ping_interval", ping_interval),
                            ("pong_timeout", pong_timeout), ("connection_lifetime", connection_lifetime),
                            ("rest_ban_seconds", rest_ban_seconds), ("connection_window", connection_window)):
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        for name, count in (("max_streams", max_streams), ("max_incoming_per_second", max_incoming_per_second),
                            ("rest_weight_limit", rest_weight_limit),
                            ("max_connections_per_window", max_connections_per_window)):
            if count < 1:
                raise ValueError(f"{name} must be at least 1, got {count!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (any free port) or 1-65535, got {port!r}")
        self._tick_interval = tick_interval
        self._limits = Limits(max_streams=max_streams, max_incoming_per_second=max_incoming_per_second,
                              ping_interval=ping_interval, pong_timeout=pong_timeout, lifetime=connection_lifetime)
        super().__init__(port)
        self._weight_limit = rest_weight_limit
        self._connection_limit = (max_connections_per_window, connection_window)
        self._exchange_info = load_exchange_info()
        self._specs = tuple(symbol_specs(self._exchange_info))
        self._market = Market(self._specs, seed=seed)
        self._tape = TradeTape()  # the recent trades of every symbol (GET /fapi/v1/aggTrades); loop thread only
        # Shared with the caller's threads; guarded by _lock.
        self._lock = threading.Lock()
        self._infos: list[ConnInfo] = []
        self._control: list[tuple[int, float, object]] = []  # (conn_id, wall-clock time, message)
        self._rest_log: list[RestCall] = []
        self._last_tickers: dict[str, dict[str, Any]] = {}
        self._sent_times: dict[str, set[int]] = {}  # symbol -> `E` of every 24hrTicker payload sent
        self._trades_sent: dict[str, dict[int, dict[str, Any]]] = {}  # symbol -> aggTrade payloads sent, by `a`
        self._last_books: dict[str, dict[str, Any]] = {}  # symbol -> the last bookTicker payload sent
        self._books_sent: dict[str, dict[int, dict[str, Any]]] = {}  # symbol -> bookTicker payloads sent, by `u`
        self._attempts: list[float] = []  # wall-clock times of every WebSocket handshake attempt
        self._refused: list[float] = []  # ... and of those refused by refuse_connections
        self._rate_limited: list[float] = []  # ... and of those over the connection-attempt limit
        # Immutable values written by the caller (read-modify-write under _lock), read by the loop (atomic).
        self._silence = Silence()
        self._rest_failure: tuple[int, dict[str, Any], int | None] | None = None
        self._refuse_until = 0.0  # time.monotonic() until which handshakes are refused
        self._delivery_delay = 0.0
        self._withhold_replies = False
        # Event-loop thread only.
        self._live: dict[int, Connection] = {}
        self._attempt_windows: dict[str, RateWindow] = {}  # client IP -> its connection attempts
        self._weights = WeightMeter()
        self._escalation = Escalation(rest_ban_seconds)
        self._tick_count = 0
        self._tick_wakeup: asyncio.Event | None = None
        self._deliveries: asyncio.Queue[tuple[float, Tick]] | None = None

    # ------------------------------------------------------------ lifecycle

    # ------------------------------------------------------------ inspection (thread-safe snapshots)

    def connections(self) -> list[ConnInfo]:
        """Every WebSocket connection ever accepted, oldest first."""
        with self._lock:
            return list(self._infos)

    def open_connections(self) -> list[ConnInfo]:
        with self._lock:
            return [info for info in self._infos if info.open]

    def subscribed_streams(self, route: str | None = "market") -> set[str]:
        """Union of the streams of the open connections of a route ("market", "public"; None: every route)."""
        with self._lock:
            return {stream for info in self._infos if info.open and route in (None, info.route)
                    for stream in info.streams}

    def control_messages(self) -> list[tuple[int, object]]:
        """(conn_id, parsed JSON or raw text) of every text frame received, in arrival order."""
        with self._lock:
            return [(conn_id, message) for conn_id, _, message in self._control]

    def timed_control_messages(self) -> list[tuple[int, float, object]]:
        """(conn_id, wall-clock arrival time, parsed JSON or raw text) of every text frame received, in order."""
        with self._lock:
            return list(self._control)

    def rest_requests(self) -> list[tuple[str, dict[str, str]]]:
        """(path, query) of every HTTP request other than WebSocket handshakes and /_fake control calls."""
        with self._lock:
            return [(call.path, dict(call.query)) for call in self._rest_log]

    def rest_calls(self) -> list[RestCall]:
        """The same requests with when they were answered, the status, Retry-After and what decided it."""
        with self._lock:
            return list(self._rest_log)

    def ticker(self, symbol: str) -> dict[str, Any] | None:
        """The last `24hrTicker` payload the fake sent for `symbol` (from any stream), or None."""
        with self._lock:
            payload = self._last_tickers.get(symbol)
            return dict(payload) if payload is not None else None

    def trades_sent(self, symbol: str) -> list[dict[str, Any]]:
        """Every `aggTrade` payload the fake sent for `symbol` (any connection; a trade sent on two connections
        counts once), in trade id order: what a trade subscriber should have seen."""
        with self._lock:
            return [dict(row) for _, row in sorted(self._trades_sent.get(symbol, {}).items())]

    def book_ticker(self, symbol: str) -> dict[str, Any] | None:
        """The last `bookTicker` payload the fake sent for `symbol`, or None."""
        with self._lock:
            payload = self._last_books.get(symbol)
            return dict(payload) if payload is not None else None

    def books_sent(self, symbol: str) -> list[dict[str, Any]]:
        """Every `bookTicker` payload the fake sent for `symbol` (a payload sent on two connections counts
        once), in update id order."""
        with self._lock:
            return [dict(row) for _, row in sorted(self._books_sent.get(symbol, {}).items())]

    def ticker_event_times(self, symbol: str) -> list[int]:
        """The event time `E` of every `24hrTicker` payload the fake sent for `symbol` (any stream, any
        connection; a tick sent on two connections counts once), ascending: what a client should have seen."""
        with self._lock:
            return sorted(self._sent_times.get(symbol, ()))

    def connection_attempts(self) -> list[float]:
        """Wall-clock times of every WebSocket handshake attempt, accepted or refused, oldest first."""
        with self._lock:
            return list(self._attempts)

    def refused_attempts(self) -> list[float]:
        """Wall-clock times of the handshakes refused by `refuse_connections`, oldest first."""
        with self._lock:
            return list(self._refused)

    def rate_limited_attempts(self) -> list[float]:
        """Wall-clock times of the handshakes refused with HTTP 429 for exceeding the connection-attempt limit."""
        with self._lock:
            return list(self._rate_limited)

    def tick_count(self) -> int:
        """How many market ticks have happened (silent or not); wait on it instead of sleeping."""
        return self._tick_count

    def known_symbols(self) -> set[str]:
        """Every symbol of the fake's exchangeInfo (any contract type or status); all have market data."""
        return {spec.symbol for spec in self._specs}

    def perpetual_symbols(self) -> set[str]:
        """Symbols with contractType PERPETUAL, quoteAsset USDT and status TRADING (facts §5)."""
        return {spec.symbol for spec in self._specs if spec.is_usdt_perpetual}

    def exchange_info(self) -> dict[str, Any]:
        """The exchangeInfo body the fake serves (serverTime as loaded); a deep copy."""
        return json.loads(json.dumps(self._exchange_info))

    def state(self) -> dict[str, Any]:
        """JSON-friendly summary (also served at GET /_fake/state)."""
        infos = self.connections()
        with self._lock:
            control_count, rest_count = len(self._control), len(self._rest_log)
            attempts, refused, rate_limited = list(self._attempts), list(self._refused), list(self._rate_limited)
        silence = self._silence
        return {
            "ws_url": self.ws_url,
            "rest_url": self.rest_url,
            "tick_interval": self._tick_interval,
            "silent": silence.everything,
            "silent_symbols": sorted(silence.symbols),
            "delivery_delay": self._delivery_delay,
            "connection_lifetime": self._limits.lifetime,
            "refusing_for": round(self._refusing_for(), 3),
            "connection_attempts": attempts,
            "refused_attempts": refused,
            "rate_limited_attempts": rate_limited,
            "connection_limit": {"attempts": self._connection_limit[0], "window": self._connection_limit[1]},
            "withholding_replies": self._withhold_replies,
            "ticks": self._tick_count,
            "connections_total": len(infos),
            "open_total": sum(1 for info in infos if info.open),
            "open_connections": [
                {"id": info.id, "route": info.route, "path": info.path, "query": info.query,
                 "streams": sorted(info.streams), "received": info.received, "opened_at": info.opened_at}
                for info in infos if info.open
            ],
            "subscribed_streams": sorted(self.subscribed_streams()),
            "control_messages": control_count,
            "rest_requests": rest_count,
        }

    # ------------------------------------------------------------ fault hooks

    def drop_all(self) -> int:
        """Abort every open connection's TCP transport (no close frame); returns how many were open."""
        return self._call(self._drop_all)

    def close_all(self, code: int, reason: str) -> int:
        """Close every open connection with a close frame (`code`, `reason`); returns how many."""
        _check_close(code, reason)
        return self._call(lambda: self._close_all(code, reason))

    def set_rest_failure(self, status: int | None, body: dict[str, Any] | None = None,
                         retry_after: int | None = None) -> None:
        """Answer every /fapi request with `status` (and `Retry-After` when given); None restores normal answers.

        A 429 or 418 with `retry_after` opens a Retry-After window: calling again before it passed earns a ban
        (tests/fakes/README.md, "REST bans"), which outlasts this call and `set_rest_failure(None)`."""
        if status is None:
            self._rest_failure = None
            return
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599) or None, got {status!r}")
        self._rest_failure = (status, body if body is not None else failure_body(status, self._weight_limit),
                              retry_after)

    def list_symbol(self, symbol: str) -> None:
        """List `symbol` (e.g. "NEWLYUSDT") as a TRADING USDT perpetual: exchangeInfo has it from now on, and it has
        market data (its streams, `!ticker@arr`, REST tickers) from the next tick. A delisted one trades again."""
        self._change_on_loop(lambda body: with_listing(body, symbol))

    def delist(self, symbol: str) -> None:
        """Set `symbol`'s status to SETTLING in exchangeInfo, as Binance does when it delists a contract; its market
        data keeps flowing (whoever streams it must stop on their own)."""
        self._change_on_loop(lambda body: with_status(body, symbol, "SETTLING"))

    def _change_on_loop(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        async def apply() -> None:  # the event loop owns the market
            self._change_exchange_info(change)

        self._call(apply)

    def _change_exchange_info(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Serve `change(exchangeInfo)` from now on, with market data for its new symbols (event loop only)."""
        body = change(self._exchange_info)
        specs = tuple(symbol_specs(body))
        self._market.add(specs)
        self._exchange_info, self._specs = body, specs

    def set_silent(self, silent: bool, *, symbols: Iterable[str] | None = None) -> None:
        """While silent, connections and acks keep working but no data frame is sent (the un-routed-URL mode).

        With `symbols` (upper case), silence (or, silent False, un-silence) only those: their frames and their rows
        in `!ticker@arr` / `!miniTicker@arr` are withheld, other symbols still flow. `set_silent(False)` clears all.
        """
        with self._lock:
            self._silence = self._silence.changed(bool(silent), symbols)

    def refuse_connections(self, seconds: float) -> None:
        """For the next `seconds`, answer every WebSocket handshake with HTTP 503 and no upgrade (exchange down).

        REST and open connections are untouched; 0 stops refusing now; a new call replaces the window.
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"refuse_connections needs a finite number of seconds >= 0, got {seconds!r}")
        self._refuse_until = time.monotonic() + seconds

    def withhold_replies(self, withhold: bool) -> None:
        """While on, every request (text frame) on every connection is recorded and then lost: not applied, not
        answered, never a reason to close (a SUBSCRIBE that is never acknowledged). Off: requests from then on
        are handled again; the lost ones stay unanswered. Data, pings and closes are unaffected."""
        self._withhold_replies = bool(withhold)

    def inject(self, frame: str | bytes, *, binary: bool = False) -> int:
        """Send `frame` as it is to every open connection (a binary frame for bytes or binary=True, else text);
        returns how many got it. Not a tick of the fake's, never delayed, and no reason to close the connection."""
        if not isinstance(frame, (str, bytes)):
            raise TypeError(f"frame must be str or bytes, got {type(frame).__name__}")
        raw: str | bytes = frame.encode("utf-8") if binary and isinstance(frame, str) else frame
        return self._call(lambda: self._inject(raw))

    def set_delivery_delay(self, seconds: float) -> None:
        """Send every data frame `seconds` after its tick (a slow upstream; `E` stays the tick time). Acks, pings
        and injected frames are not delayed; order is kept. 0 (the default) sends at once."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"delivery delay must be a finite number of seconds >= 0, got {seconds!r}")
        self._delivery_delay = seconds

    def set_lifetime(self, seconds: float) -> None:
        """Close connections opened from now on with 1001 "going away" `seconds` after they open (facts §4);
        connections already open keep their lifetime."""
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"connection lifetime must be a positive number of seconds, got {seconds!r}")
        with self._lock:
            self._limits = replace(self._limits, lifetime=seconds)

    def set_tick_interval(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"tick interval must be a positive number of seconds, got {seconds!r}")
        self._tick_interval = seconds
        loop, wakeup = self._loop, self._tick_wakeup
        if loop is not None and wakeup is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wakeup.set)

    # ------------------------------------------------------------ event-loop thread

    def _on_loop(self) -> None:
        self._tick_wakeup = asyncio.Event()
        self._deliveries = asyncio.Queue()

    def _background(self) -> list[Coroutine[Any, Any, None]]:
        return [self._tick_loop(), self._deliver_loop()]

    async def _tick_loop(self) -> None:
        assert self._tick_wakeup is not None and self._deliveries is not None
        loop = asyncio.get_running_loop()
        due = loop.time() + self._tick_interval
        while True:
            self._tick_wakeup.clear()
            try:
                await asyncio.wait_for(self._tick_wakeup.wait(), timeout=max(0.0, due - loop.time()))
                due = loop.time() + self._tick_interval  # the interval changed: start a fresh wait
                continue
            except TimeoutError:
                pass
            # A tick every interval, however long a tick takes; a late loop makes up at most CATCH_UP of ticks.
            due = max(due + self._tick_interval, loop.time() - CATCH_UP)
            snapshot = self._market.step()
            self._tick_count += 1
            tick = Tick(snapshot, now_ms())
            self._tape.record(snapshot, tick.event_ms)
            self._deliveries.put_nowait((loop.time(), tick))

    async def _deliver_loop(self) -> None:
        """Hand each tick to the connections, in order, `delivery_delay` after it happened."""
        assert self._deliveries is not None
        loop = asyncio.get_running_loop()
        while True:
            happened, tick = await self._deliveries.get()
            wait = happened + self._delivery_delay - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._silence.everything:
                continue
            for conn in list(self._live.values()):
                conn.offer(tick)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await self._control_endpoint(request)
        if is_websocket_upgrade(request.headers):
            refusal = self._refuse_handshake(request)
            if refusal is not None:
                return refusal
        try:
            endpoint = parse_endpoint(request.path, request.query.get("streams"))
        except ProtocolError as exc:
            return _json(400, {"error": str(exc)})
        if endpoint is None:
            return self._rest(request)
        if self._stopping:
            return _json(503, {"error": "fake Binance is shutting down"})
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=CLOSE_HANDSHAKE_TIMEOUT)
        if not ws.can_prepare(request).ok:
            return _json(400, {"error": f"{request.path} is a WebSocket endpoint; connect with a WebSocket client"})
        transport = request.transport
        await ws.prepare(request)
        assert transport is not None
        await self._accept(request, ws, transport, endpoint).run()
        return ws

    def _refuse_handshake(self, request: web.Request) -> web.Response | None:
        """Count one handshake attempt; the refusal when it is over the per-IP attempt limit (429) or while the
        exchange refuses connections (503), else None."""
        now = time.monotonic()
        limit, window = self._connection_limit
        attempts = self._attempt_windows.setdefault(request.remote or "", RateWindow(limit, window))
        over_limit = attempts.hit(now)
        refusing_for = self._refusing_for()
        with self._lock:
            self._attempts.append(time.time())
            if over_limit:
                self._rate_limited.append(self._attempts[-1])
            elif refusing_for > 0:
                self._refused.append(self._attempts[-1])
        if over_limit:
            retry_after = attempts.retry_after(now)
            log.info("ws handshake refused %s: over %d attempts in %g s", request.path, limit, window)
            return _json(HANDSHAKE_RATE_LIMITED_STATUS, rate_limited_handshake_body(limit, window, retry_after),
                         {"Retry-After": str(max(1, math.ceil(retry_after)))})
        if refusing_for > 0:
            log.info("ws handshake refused %s (refusing for %.1f s more)", request.path, refusing_for)
            return _json(HANDSHAKE_REFUSED_STATUS, refused_handshake_body(refusing_for))
        return None

    def _accept(self, request: web.Request, ws: web.WebSocketResponse, transport: asyncio.Transport,
                endpoint: Endpoint) -> Connection:
        with self._lock:
            conn_id = len(self._infos) + 1
            self._infos.append(ConnInfo(
                id=conn_id, path=request.path, route=endpoint.route, query=request.query_string,
                streams=frozenset(endpoint.streams), open=True, opened_at=time.time(), closed_at=None,
                close_code=None, close_reason=None, received=0))
        with self._lock:
            limits = self._limits
        conn = Connection(self, conn_id, ws, transport, endpoint, limits)
        self._live[conn_id] = conn
        log.info("ws %d open %s?%s", conn_id, request.path, request.query_string)
        return conn

    # ------------------------------------------------------------ connection.Host (event loop only)

    def silence(self) -> Silence:
        return self._silence

    def withholds_replies(self) -> bool:
        return self._withhold_replies

    def count_frame(self, conn_id: int) -> None:
        with self._lock:
            info = self._infos[conn_id - 1]
            self._infos[conn_id - 1] = replace(info, received=info.received + 1)

    def record_control(self, conn_id: int, message: object) -> None:
        with self._lock:
            self._control.append((conn_id, time.time(), message))

    def record_streams(self, conn_id: int, streams: tuple[str, ...]) -> None:
        self._update(conn_id, streams=frozenset(streams))

    def record_sent(self, payload: Any) -> None:
        rows = payload if isinstance(payload, list) else [payload]
        with self._lock:
            for row in rows:
                event = row.get("e")
                if event == "24hrTicker":
                    self._last_tickers[row["s"]] = row
                    self._sent_times.setdefault(row["s"], set()).add(row["E"])
                elif event == "aggTrade":
                    self._trades_sent.setdefault(row["s"], {})[row["a"]] = row
                elif event == "bookTicker":
                    self._last_books[row["s"]] = row
                    self._books_sent.setdefault(row["s"], {})[row["u"]] = row

    def connection_closed(self, conn_id: int, code: int, reason: str) -> None:
        self._live.pop(conn_id, None)
        self._update(conn_id, open=False, closed_at=time.time(), close_code=code, close_reason=reason)
        log.info("ws %d closed %d %s", conn_id, code, reason)

    def _update(self, conn_id: int, **changes: Any) -> None:
        with self._lock:
            self._infos[conn_id - 1] = replace(self._infos[conn_id - 1], **changes)

    async def _drop_all(self) -> int:
        live = [conn for conn in self._live.values() if not conn.finished.done()]
        for conn in live:
            conn.drop()
        await wait_finished(live)
        return len(live)

    async def _inject(self, frame: str | bytes) -> int:
        live = [conn for conn in self._live.values() if not conn.finished.done()]
        sent = await asyncio.gather(*(conn.inject(frame) for conn in live))
        return sum(sent)

    def _refusing_for(self) -> float:
        return max(0.0, self._refuse_until - time.monotonic())

    async def _close_all(self, code: int, reason: str) -> int:
        live = [conn for conn in self._live.values() if not conn.finished.done()]
        for conn in live:
            conn.close_soon(code, reason)
        await wait_finished(live)
        return len(live)

    # ------------------------------------------------------------ REST

    def _rest(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        now = time.time()
        cause, result = self._rest_answer(RestRequest(request.method, request.path, query), now)
        header = result.headers.get("Retry-After")
        retry_after = int(header) if header is not None else None
        self._escalation.answered(result.status, retry_after, now)
        with self._lock:
            self._rest_log.append(RestCall(now, request.method, request.path, MappingProxyType(query),
                                           result.status, retry_after, cause))
        return _json(result.status, result.body, result.headers)

    def _rest_answer(self, request: RestRequest, now: float) -> tuple[str, RestAnswer]:
        """What decided the answer (rest.ANSWERED, FORCED, WEIGHT, BAN, BANNED) and the answer: a ban first,
        then a forced failure, then the weight limit, then the normal answer."""
        if not request.path.startswith("/fapi/"):
            return ANSWERED, answer(request, self._market_data(), int(now * 1000))
        used = self._weights.add(request_weight(request), now)
        weight = {WEIGHT_HEADER: str(used)}
        punished = self._escalation.judge(now, self._weight_limit)
        if punished is not None:
            cause, result = punished
            return cause, replace(result, headers={**weight, **result.headers})
        failure = self._rest_failure
        if failure is not None:
            status, body, retry_after = failure
            return FORCED, RestAnswer(status, body, weight if retry_after is None
                                      else {**weight, "Retry-After": str(retry_after)})
        if used > self._weight_limit:
            return WEIGHT, RestAnswer(429, too_many_requests_body(self._weight_limit),
                                      {**weight, "Retry-After": str(60 - int(now % 60))})
        result = answer(request, self._market_data(), int(now * 1000))
        return ANSWERED, replace(result, headers={**weight, **result.headers})

    def _market_data(self) -> MarketData:
        return MarketData(self._market.snapshot(), self._tape, self._exchange_info)

    async def _control_endpoint(self, request: web.Request) -> web.Response:
        """HTTP control for non-Python users: drop, close, state, tick-interval, silent, rest-failure, refuse,
        inject, delivery-delay, lifetime, withhold-replies, list, delist."""
        query = request.query
        action = (request.method, request.path)
        try:
            if action == ("POST", "/_fake/drop"):
                return _json(200, {"dropped": await self._drop_all()})
            if action == ("POST", "/_fake/close"):
                code, reason = int(query.get("code", CLOSE_GOING_AWAY)), query.get("reason", REASON_LIFETIME)
                _check_close(code, reason)
                return _json(200, {"closed": await self._close_all(code, reason)})
            if action == ("GET", "/_fake/state"):
                return _json(200, self.state())
            if action == ("POST", "/_fake/tick-interval"):
                self.set_tick_interval(float(query.get("seconds", "")))
                return _json(200, {"tick_interval": self._tick_interval})
            if action == ("POST", "/_fake/silent"):
                symbols = query.get("symbols")
                self.set_silent(query.get("on", "true").lower() in ("1", "true", "yes"),
                                symbols=None if symbols is None else [s for s in symbols.split(",") if s])
                silence = self._silence
                return _json(200, {"silent": silence.everything, "silent_symbols": sorted(silence.symbols)})
            if action == ("POST", "/_fake/refuse"):
                self.refuse_connections(float(query.get("seconds", "")))
                return _json(200, {"refusing_for": round(self._refusing_for(), 3)})
            if action == ("POST", "/_fake/inject"):
                binary = query.get("binary", "false").lower() in ("1", "true", "yes")
                frame: str | bytes = await request.read() if binary else await request.text()
                return _json(200, {"sent": await self._inject(frame)})
            if action == ("POST", "/_fake/delivery-delay"):
                self.set_delivery_delay(float(query.get("seconds", "")))
                return _json(200, {"delivery_delay": self._delivery_delay})
            if action == ("POST", "/_fake/withhold-replies"):
                self.withhold_replies(query.get("on", "true").lower() in ("1", "true", "yes"))
                return _json(200, {"withholding_replies": self._withhold_replies})
            if action == ("POST", "/_fake/lifetime"):
                self.set_lifetime(float(query.get("seconds", "")))
                return _json(200, {"connection_lifetime": self._limits.lifetime})
            if action in (("POST", "/_fake/list"), ("POST", "/_fake/delist")):
                symbol = query.get("symbol", "")
                self._change_exchange_info(lambda body: with_listing(body, symbol) if action[1] == "/_fake/list"
                                           else with_status(body, symbol, "SETTLING"))
                return _json(200, {"symbol": symbol, "perpetual": symbol in self.perpetual_symbols()})
            if action == ("POST", "/_fake/rest-failure"):
                status = query.get("status")
                retry_after = query.get("retry_after")
                self.set_rest_failure(int(status) if status else None, None,
                                      int(retry_after) if retry_after else None)
                return _json(200, {"rest_failure": status and int(status)})
        except ValueError as exc:
            return _json(400, {"error": f"bad control request {request.path_qs}: {exc}"})
        usage = ("POST /_fake/drop, POST /_fake/close?code=&reason=, GET /_fake/state, "
                 "POST /_fake/tick-interval?seconds=, POST /_fake/silent?on=true|false[&symbols=A,B], "
                 "POST /_fake/rest-failure?status=&retry_after=, POST /_fake/refuse?seconds=, "
                 "POST /_fake/inject[?binary=true] (body: the frame), POST /_fake/delivery-delay?seconds=, "
                 "POST /_fake/lifetime?seconds=, POST /_fake/withhold-replies?on=true|false, "
                 "POST /_fake/list?symbol=, POST /_fake/delist?symbol=")
        return _json(404, {"error": f"unknown control call {request.method} {request.path}; use {usage}"})


def _check_close(code: int, reason: str) -> None:
    if not (1000 <= code <= 4999) or code in _RESERVED_CLOSE_CODES:
        raise ValueError(f"close code {code} cannot be sent in a close frame; use 1000-4999 except 1004-1006, 1015")
    if len(reason.encode("utf-8")) > 123:
        raise ValueError(f"close reason is {len(reason.encode('utf-8'))} bytes; a close frame allows 123")


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=dict(headers or {}), dumps=_dumps)


# ---------------------------------------------------------------- command line

def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.binance",
                                     description="Run the fake Binance USD-M futures server until SIGINT/SIGTERM.")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--tick-interval", type=float, default=2.0, help="seconds between ticker frames")
    parser.add_argument("--ping-interval", type=float, default=180.0, help="seconds between server pings")
    parser.add_argument("--pong-timeout", type=float, default=600.0, help="seconds a pong may take")
    parser.add_argument("--max-streams", type=int, default=1024, help="streams per connection")
    parser.add_argument("--max-incoming-per-second", type=int, default=10, help="incoming frames per second")
    parser.add_argument("--connection-lifetime", type=float, default=86400.0, help="seconds before 1001 close")
    parser.add_argument("--max-connections-per-window", type=int, default=CONNECTIONS_PER_WINDOW,
                        help="WebSocket handshake attempts per IP per window; more get HTTP 429")
    parser.add_argument("--connection-window", type=float, default=CONNECTION_WINDOW,
                        help="seconds of the connection-attempt window")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random-walk seed")
    parser.add_argument("--verbose", action="store_true", help="log one line per connection event")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    return serve(lambda: FakeBinance(
        tick_interval=args.tick_interval, ping_interval=args.ping_interval, pong_timeout=args.pong_timeout,
        max_streams=args.max_streams, max_incoming_per_second=args.max_incoming_per_second,
        connection_lifetime=args.connection_lifetime, port=args.port, seed=args.seed,
        max_connections_per_window=args.max_connections_per_window, connection_window=args.connection_window,
    ).start(), args.verbose)


if __name__ == "__main__":
    sys.exit(main())
