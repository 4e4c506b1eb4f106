"""A strict local fake of Bybit v5 public linear market data (WebSocket + REST) on one 127.0.0.1 port.

The I/O shell: an aiohttp server in its own event loop on a daemon thread, plus fault hooks and thread-safe
inspection for tests. Decisions live in the pure modules bybit_protocol.py (requests, acks, limits, heartbeat,
REST validation) and bybit_market.py (instruments, the random walk, messages and REST bodies).
Run standalone with `python -m tests.fakes.bybit --port 9100 --tick-interval 1` (see `main`); the behaviour is
described in tests/fakes/README.md ("Fake Bybit").
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import logging
import math
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from types import MappingProxyType
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.bybit_market import (
    CLOSED,
    DEFAULT_INSTRUMENTS,
    DELIVERING,
    BybitMarket,
    Event,
    InstrumentSpec,
    instruments_page,
    listed_spec,
)
from tests.fakes.bybit_protocol import (
    ARGS_CHARS_LIMIT,
    BOOK_RESEND_SECONDS,
    CONNECTION_WINDOW,
    CONNECTIONS_PER_WINDOW,
    HANDSHAKE_RATE_LIMITED_STATUS,
    HANDSHAKE_REFUSED_STATUS,
    MAX_OPEN_CONNECTIONS_PER_IP,
    PING_TIMEOUT,
    PUBLIC_LINEAR_PATH,
    REST_BAN_SECONDS,
    REST_LIMIT,
    REST_TOO_FREQUENT_STATUS,
    REST_TOO_FREQUENT_TEXT,
    REST_WINDOW,
    RET_OK,
    RET_TOO_MANY_VISITS,
    ConnState,
    Heartbeat,
    RestQuery,
    RestRefusal,
    decode_request,
    envelope,
    handle_text,
    parse_rest,
    parse_topic,
    rate_limited_handshake_text,
    refused_handshake_text,
    too_many_open_text,
    topic_symbol,
    ws_category,
)
from tests.fakes.connection import now_ms
from tests.fakes.protocol import RateWindow, Silence, is_websocket_upgrade
from tests.fakes.server import LoopServer, serve

log = logging.getLogger(__name__)

DEFAULT_SEED = 20260501
CATCH_UP = 0.05  # seconds of ticks a late tick loop makes up for (a pause of the process, a busy machine)
RESEND_CHECK = 0.05  # seconds between checks for level-1 order book snapshots due again
CLOSE_HANDSHAKE_TIMEOUT = 1.0  # seconds the fake waits for a client's close frame after sending its own
MAX_OUTBOX = 5000  # data frames queued per connection; a client that falls further behind is cut off
SENT_KEPT = 100_000  # data messages remembered per topic for `sent(topic)`
CLOSE_ABNORMAL = 1006  # recorded locally when no close frame was exchanged
CLOSE_GOING_AWAY = 1001
REASON_PING_TIMEOUT = "ping timeout"
REASON_SLOW = "slow consumer"
REASON_DROPPED = "dropped by fake"
_RESERVED_CLOSE_CODES = frozenset({1004, 1005, 1006, 1015})  # never sent in a close frame (RFC 6455 §7.4.1)
_FORCED_TEXT = MappingProxyType({403: REST_TOO_FREQUENT_TEXT, 429: "System level frequency protection"})
_dumps = partial(json.dumps, separators=(",", ":"))
Prepared = tuple[str, dict[str, Any], str, str | None]  # (topic, message, JSON text, symbol)


@dataclass(frozen=True)
class ConnInfo:
    """Snapshot of one accepted WebSocket connection. Times are wall-clock `time.time()` seconds."""

    number: int  # 1, 2, ... in acceptance order
    conn_id: str  # Bybit's `conn_id` in every ack and pong of the connection
    path: str
    remote: str
    topics: tuple[str, ...]
    open: bool
    opened_at: float
    closed_at: float | None
    close_code: int | None  # the server's code, else the client's; 1006 when no close frame was exchanged
    close_reason: str | None
    received: int  # incoming frames: text, binary, ping and pong


@dataclass(frozen=True)
class PingRecord:
    """One `{"op":"ping"}` the fake received."""

    conn_id: str
    at: float  # wall-clock arrival time
    req_id: str
    answered: bool  # False when it was lost to `withhold_replies` (then it did not count as a heartbeat)


@dataclass(frozen=True)
class RestCall:
    """One HTTP request to the market endpoints (not WebSocket handshakes, not /_fake control calls)."""

    at: float
    method: str
    path: str
    query: Mapping[str, str]
    status: int
    cause: str  # "answer", "forced" (set_rest_failure), "limit" (over the IP limit: 403), "banned" (403 after it)


class FakeBybit(LoopServer):
    """Bybit v5 public linear market data on 127.0.0.1: WebSocket `/v5/public/linear` and the REST market
    endpoints; see tests/fakes/README.md ("Fake Bybit") for the behaviour."""

    NAME = "Bybit"

    def __init__(self, *, tick_interval: float = 0.2, seed: int = DEFAULT_SEED, ping_timeout: float = PING_TIMEOUT,
                 port: int = 0, book_deltas: bool = False, book_resend_interval: float = BOOK_RESEND_SECONDS,
                 args_limit: int = ARGS_CHARS_LIMIT, max_connections_per_window: int = CONNECTIONS_PER_WINDOW,
                 connection_window: float = CONNECTION_WINDOW,
                 max_open_connections: int = MAX_OPEN_CONNECTIONS_PER_IP, rest_limit: int = REST_LIMIT,
                 rest_window: float = REST_WINDOW, rest_ban_seconds: float = REST_BAN_SECONDS,
                 instruments: Iterable[InstrumentSpec] = DEFAULT_INSTRUMENTS) -> None:
        for name, value in (("tick_interval", tick_interval), ("ping_timeout", ping_timeout),
                            ("book_resend_interval", book_resend_interval), ("connection_window", connection_window),
                            ("rest_window", rest_window), ("rest_ban_seconds", rest_ban_seconds)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        for name, count in (("args_limit", args_limit), ("max_connections_per_window", max_connections_per_window),
                            ("max_open_connections", max_open_connections), ("rest_limit", rest_limit)):
            if not (isinstance(count, int) and count >= 1):
                raise ValueError(f"{name} must be an integer of at least 1, got {count!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0 (any free port) or 1-65535, got {port!r}")
        self._tick_interval = float(tick_interval)
        self._ping_timeout = float(ping_timeout)
        super().__init__(port)
        self._resend_interval = float(book_resend_interval)
        self._args_limit = args_limit
        self._connection_limit = (max_connections_per_window, float(connection_window))
        self._max_open = max_open_connections
        self._rest_limit = (rest_limit, float(rest_window))
        self._rest_ban_seconds = float(rest_ban_seconds)
        self._book_deltas = book_deltas
        # The market: mutated on the event loop under _market_lock, read from any thread under it.
        self._market_lock = threading.RLock()
        self._market = BybitMarket(instruments, seed=seed, now_ms=now_ms(), book_deltas=book_deltas)
        # Records shared with the caller's threads; guarded by _lock.
        self._lock = threading.Lock()
        self._infos: list[ConnInfo] = []
        self._control: list[tuple[str, float, object]] = []
        self._pings: list[PingRecord] = []
        self._sent: dict[str, deque[tuple[str, dict[str, Any]]]] = {}
        self._trades_sent: dict[str, dict[str, dict[str, Any]]] = {}  # symbol -> trade id -> trade, in order
        self._rest_log: list[RestCall] = []
        self._attempts: list[float] = []
        self._refused: list[float] = []
        self._rate_limited: list[float] = []
        # Immutable values written by callers, read by the loop (atomic reads).
        self._silence = Silence()
        self._frozen: frozenset[str] = frozenset()
        self._rest_failure: tuple[int, Any, int | None] | None = None
        self._refuse_until = 0.0
        self._delivery_delay = 0.0
        self._withhold_replies = False
        # Event-loop thread only.
        self._live: dict[str, _Connection] = {}
        self._attempt_windows: dict[str, RateWindow] = {}
        self._rest_windows: dict[str, RateWindow] = {}
        self._rest_banned_until: dict[str, float] = {}
        self._tick_count = 0
        self._tick_wakeup: asyncio.Event | None = None

    # ------------------------------------------------------------ lifecycle

    # ------------------------------------------------------------ inspection (thread-safe snapshots)

    def connections(self) -> list[ConnInfo]:
        """Every WebSocket connection ever accepted, oldest first."""
        with self._lock:
            return list(self._infos)

    def open_connections(self) -> list[ConnInfo]:
        with self._lock:
            return [info for info in self._infos if info.open]

    def connection(self, conn_id: str) -> ConnInfo:
        """The connection with Bybit `conn_id` (as in its acks and pongs)."""
        with self._lock:
            for info in self._infos:
                if info.conn_id == conn_id:
                    return info
        raise KeyError(f"no connection has conn_id {conn_id!r}")

    def control_messages(self) -> list[tuple[str, object]]:
        """(conn_id, parsed JSON or raw text) of every text frame received, pings included, in arrival order."""
        with self._lock:
            return [(conn_id, message) for conn_id, _, message in self._control]

    def timed_control_messages(self) -> list[tuple[str, float, object]]:
        with self._lock:
            return list(self._control)

    def pings(self, conn_id: str | None = None) -> list[PingRecord]:
        """Every `{"op":"ping"}` received (of one connection when `conn_id` is given), in arrival order."""
        with self._lock:
            return [ping for ping in self._pings if conn_id in (None, ping.conn_id)]

    def subscribed_topics(self) -> set[str]:
        """The union of the topics of the open connections."""
        with self._lock:
            return {topic for info in self._infos if info.open for topic in info.topics}

    def sent(self, topic: str) -> list[tuple[str, dict[str, Any]]]:
        """(conn_id, message) of every data message sent on `topic` (snapshots and deltas), in sending order; a
        message sent to two connections appears twice."""
        with self._lock:
            return [(conn_id, copy.deepcopy(message)) for conn_id, message in self._sent.get(topic, ())]

    def ticker(self, symbol: str) -> dict[str, str] | None:
        """The full current ticker of `symbol`: what a client that merged its snapshot and every delta holds once it
        has the latest message (None for an unknown or Closed symbol)."""
        with self._market_lock:
            return self._market.ticker(symbol)

    def book(self, symbol: str, depth: int = 1000) -> dict[str, Any] | None:
        """{"s","b","a","u","seq"}: the top `depth` levels now and that depth's `u` (what a client that applied
        every message of `orderbook.{depth}.{symbol}` holds)."""
        with self._market_lock:
            return self._market.book(symbol, depth)

    def trades(self, symbol: str) -> list[dict[str, Any]]:
        """Every trade of `symbol` the fake sent on `publicTrade.{symbol}` (any connection, each once), in order."""
        with self._lock:
            return [dict(trade) for trade in self._trades_sent.get(symbol, {}).values()]

    def rest_requests(self) -> list[tuple[str, dict[str, str]]]:
        """(path, query) of every market REST request, in arrival order."""
        with self._lock:
            return [(call.path, dict(call.query)) for call in self._rest_log]

    def rest_calls(self) -> list[RestCall]:
        with self._lock:
            return list(self._rest_log)

    def connection_attempts(self) -> list[float]:
        """Wall-clock times of every WebSocket handshake attempt, accepted or refused."""
        with self._lock:
            return list(self._attempts)

    def refused_attempts(self) -> list[float]:
        """... of those refused by `refuse_connections` (HTTP 503)."""
        with self._lock:
            return list(self._refused)

    def rate_limited_attempts(self) -> list[float]:
        """... of those refused with HTTP 429 (the per-IP attempt window or open-connection limit)."""
        with self._lock:
            return list(self._rate_limited)

    def tick_count(self) -> int:
        return self._tick_count

    def instruments(self) -> dict[str, InstrumentSpec]:
        """Every instrument of the fake (any contract type and status)."""
        with self._market_lock:
            return dict(self._market.specs())

    def usdt_perpetuals(self) -> set[str]:
        """What a client must keep from instruments-info: LinearPerpetual, quoteCoin USDT, status Trading."""
        return {symbol for symbol, spec in self.instruments().items() if spec.is_usdt_perpetual}

    def state(self) -> dict[str, Any]:
        """A JSON-able summary (also `GET /_fake/state`)."""
        infos = self.connections()
        silence = self._silence
        with self._lock:
            attempts, refused, limited = list(self._attempts), list(self._refused), list(self._rate_limited)
            control_count, rest_count, ping_count = len(self._control), len(self._rest_log), len(self._pings)
        return {
            "ws_url": self.ws_url, "rest_url": self.rest_url, "tick_interval": self._tick_interval,
            "ping_timeout": self._ping_timeout, "book_deltas": self._book_deltas,
            "book_resend_interval": self._resend_interval, "silent": silence.everything,
            "silent_symbols": sorted(silence.symbols), "frozen_symbols": sorted(self._frozen),
            "delivery_delay": self._delivery_delay, "refusing_for": round(self._refusing_for(), 3),
            "withholding_replies": self._withhold_replies, "ticks": self._tick_count,
            "connection_attempts": attempts, "refused_attempts": refused, "rate_limited_attempts": limited,
            "connection_limit": {"attempts": self._connection_limit[0], "window": self._connection_limit[1],
                                 "open": self._max_open},
            "rest_limit": {"requests": self._rest_limit[0], "window": self._rest_limit[1],
                           "ban_seconds": self._rest_ban_seconds},
            "connections_total": len(infos), "open_total": sum(1 for info in infos if info.open),
            "open_connections": [{"conn_id": info.conn_id, "topics": list(info.topics), "received": info.received,
                                  "opened_at": info.opened_at} for info in infos if info.open],
            "subscribed_topics": sorted(self.subscribed_topics()), "control_messages": control_count,
            "pings": ping_count, "rest_requests": rest_count,
        }

    # ------------------------------------------------------------ fault hooks

    def drop_all(self) -> int:
        """Abort every open connection's TCP transport (no close frame); returns how many were open."""
        return self._call(self._drop_all)

    def close_all(self, code: int, reason: str) -> int:
        """Close every open connection with a close frame (`code`, `reason`); returns how many."""
        _check_close(code, reason)
        return self._call(lambda: self._close_all(code, reason))

    def refuse_connections(self, seconds: float) -> None:
        """For the next `seconds`, answer every WebSocket handshake with HTTP 503 and no upgrade (exchange down).
        REST and open connections are untouched; 0 stops refusing now; a new call replaces the window."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"refuse_connections needs a finite number of seconds >= 0, got {seconds!r}")
        self._refuse_until = time.monotonic() + seconds

    def set_silent(self, silent: bool, *, symbols: Iterable[str] | None = None) -> None:
        """While silent, connections, acks and pongs work but no data message is sent (the market still moves, so
        a client misses deltas: a gap in `u` for books). With upper-case `symbols`: only those (or, silent False,
        un-silence only those); `set_silent(False)` clears every silence."""
        with self._lock:
            self._silence = self._silence.changed(bool(silent), symbols)

    def set_frozen(self, frozen: bool, *, symbols: Iterable[str] | None = None) -> None:
        """A frozen symbol's market stops: no trades, no book or ticker change, so nothing but the level-1 order
        book re-sends (every `book_resend_interval`). No symbols: all (or, frozen False, none)."""
        if symbols is None:
            names: frozenset[str] = frozenset(self.instruments()) if frozen else frozenset()
            self._frozen = names
            return
        if isinstance(symbols, (str, bytes)):
            raise TypeError(f"symbols must be a collection of names like ['BTCUSDT'], not the string {symbols!r}")
        chosen = frozenset(symbols)
        unknown = sorted(chosen - set(self.instruments()))
        if unknown:
            raise ValueError(f"set_frozen: unknown symbol {unknown[0]!r}")
        self._frozen = self._frozen | chosen if frozen else self._frozen - chosen

    def set_rest_failure(self, status: int | None, retry_after: int | None = None,
                         body: str | dict[str, Any] | None = None) -> None:
        """Answer every market REST request with HTTP `status` (and `Retry-After` when given) until called with
        None. 403 answers "access too frequent" (rate-limit docs), 429 "System level frequency protection" (error
        page), others a short text; 200 answers retCode 10006 "Too many visits!" (the documented API rate-limit
        answer). `body`: a text, or a JSON object, instead."""
        if status is None:
            self._rest_failure = None
            return
        if not (status == 200 or 400 <= status <= 599):
            raise ValueError(f"status must be an HTTP error status (400-599), 200 (a retCode failure) or None, "
                             f"got {status!r}")
        if retry_after is not None and not (isinstance(retry_after, int) and retry_after >= 0):
            raise ValueError(f"retry_after must be a whole number of seconds >= 0, got {retry_after!r}")
        self._rest_failure = (status, body, retry_after)

    def withhold_replies(self, withhold: bool) -> None:
        """While on, every text frame (subscribe, unsubscribe, ping, ...) is recorded and then lost: not applied,
        not answered; a lost ping is no heartbeat. Data and closes go on; off, later requests are handled again."""
        self._withhold_replies = bool(withhold)

    def inject(self, frame: str | bytes, *, binary: bool = False) -> int:
        """Send `frame` as it is to every open connection (binary for bytes or binary=True); returns how many got
        it. Not recorded as data, never delayed, never a reason to close."""
        if not isinstance(frame, (str, bytes)):
            raise TypeError(f"frame must be str or bytes, got {type(frame).__name__}")
        raw: str | bytes = frame.encode("utf-8") if binary and isinstance(frame, str) else frame
        return self._call(lambda: self._inject(raw))

    def set_delivery_delay(self, seconds: float) -> None:
        """Send every data message (snapshots included) `seconds` after it was made (`ts` stays the making time, so
        latency shows); order is kept; acks, pongs and injected frames are not delayed."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"delivery delay must be a finite number of seconds >= 0, got {seconds!r}")
        self._delivery_delay = seconds

    def set_tick_interval(self, seconds: float) -> None:
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"tick interval must be a positive number of seconds, got {seconds!r}")
        self._tick_interval = seconds
        loop, wakeup = self._loop, self._tick_wakeup
        if loop is not None and wakeup is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wakeup.set)

    def list_symbol(self, symbol: str) -> None:
        """List `symbol`: an existing contract becomes Trading (data again); a new name like "NEWLYUSDT" becomes
        a Trading USDT perpetual with market data from the next tick."""
        with self._market_lock:
            specs = self._market.specs()
            next_id = max(spec.symbol_id for spec in specs.values()) + 1
            self._market.set_spec(listed_spec(symbol, specs.get(symbol), next_id, now_ms()), now_ms())

    def delist(self, symbol: str, status: str = CLOSED) -> None:
        """Delist `symbol`: status Closed (default: its data stops, its topics are refused with "handler not found"
        and REST answers "params error: symbol invalid"; open subscriptions go silent) or Delivering (data goes
        on). Either way it drops out of the default instruments-info list (only Trading is listed by default)."""
        if status not in (CLOSED, DELIVERING):
            raise ValueError(f"delist status must be {CLOSED!r} or {DELIVERING!r}, got {status!r}")
        with self._market_lock:
            spec = self._market.specs().get(symbol)
            if spec is None:
                raise ValueError(f"cannot delist {symbol!r}: no such instrument; known: {sorted(self._market.specs())}")
            self._market.set_spec(replace(spec, status=status, delivery_time_ms=now_ms()), now_ms())

    def restart_orderbook(self, symbols: Iterable[str] | None = None) -> int:
        """Simulate a restart of the order book service: every depth of `symbols` (None: all) sends a snapshot with
        `u` = 1 to its subscribers and counts on from there. Returns how many snapshot messages were made."""
        names = None if symbols is None else list(symbols)

        async def restart() -> int:
            with self._market_lock:
                events = self._market.restart_books(names, now_ms())
            self._publish(events)
            return len(events)

        return self._call(restart)

    # ------------------------------------------------------------ event-loop thread

    def _on_loop(self) -> None:
        self._tick_wakeup = asyncio.Event()

    def _background(self) -> list[Coroutine[Any, Any, None]]:
        return [self._tick_loop(), self._resend_loop()]

    async def _tick_loop(self) -> None:
        assert self._tick_wakeup is not None
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
            due = max(due + self._tick_interval, loop.time() - CATCH_UP)
            with self._market_lock:
                events = self._market.step(now_ms(), self._frozen)
            self._tick_count += 1
            self._publish(events)

    async def _resend_loop(self) -> None:
        """Level-1 order book snapshots re-sent after `book_resend_interval` without a change (frozen or not)."""
        interval_ms = int(self._resend_interval * 1000)
        while True:
            await asyncio.sleep(min(RESEND_CHECK, self._resend_interval / 4))
            with self._market_lock:
                events = self._market.resends(now_ms(), interval_ms)
            if events:
                self._publish(events)

    def _publish(self, events: Sequence[Event]) -> None:
        """Queue `events` on every open connection holding their topics (event loop only)."""
        if not events:
            return
        prepared: list[Prepared] = [(topic, message, _dumps(message), topic_symbol(topic)) for topic, message in events]
        loop = asyncio.get_running_loop()
        due = loop.time() + self._delivery_delay
        silence = self._silence
        for conn in list(self._live.values()):
            conn.offer(prepared, due, silence)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_fake/"):
            return await self._control_endpoint(request)
        if is_websocket_upgrade(request.headers):
            refusal = self._refuse_handshake(request)
            if refusal is not None:
                return refusal
            return await self._accept(request)
        if request.path == PUBLIC_LINEAR_PATH:
            return _text(400, f"{PUBLIC_LINEAR_PATH} is a WebSocket endpoint; connect with a WebSocket client")
        return self._rest(request)

    def _refuse_handshake(self, request: web.Request) -> web.Response | None:
        """Count one handshake attempt; the refusal when it is over the per-IP attempt window or open-connection
        limit (429), while the fake refuses connections (503), or for a path other than /v5/public/linear (404)."""
        now = time.monotonic()
        remote = request.remote or ""
        limit, window = self._connection_limit
        attempts = self._attempt_windows.setdefault(remote, RateWindow(limit, window))
        over_window = attempts.hit(now)
        open_here = sum(1 for conn in self._live.values() if conn.remote == remote and not conn.closing)
        over_open = open_here >= self._max_open
        refusing_for = self._refusing_for()
        with self._lock:
            self._attempts.append(time.time())
            if over_window or over_open:
                self._rate_limited.append(self._attempts[-1])
            elif refusing_for > 0:
                self._refused.append(self._attempts[-1])
        if over_window:
            retry_after = attempts.retry_after(now)
            return _text(HANDSHAKE_RATE_LIMITED_STATUS, rate_limited_handshake_text(limit, window, retry_after),
                         {"Retry-After": str(max(1, math.ceil(retry_after)))})
        if over_open:
            return _text(HANDSHAKE_RATE_LIMITED_STATUS, too_many_open_text(self._max_open))
        if refusing_for > 0:
            return _text(HANDSHAKE_REFUSED_STATUS, refused_handshake_text(refusing_for))
        category = ws_category(request.path)
        if category != "linear":
            what = f"the {category} stream" if category else "no Bybit WebSocket path"
            return _text(404, f"404 page not found: {request.path} is {what}; FakeBybit serves {PUBLIC_LINEAR_PATH}")
        if self._stopping:
            return _text(503, "fake Bybit is shutting down")
        return None

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=CLOSE_HANDSHAKE_TIMEOUT)
        if not ws.can_prepare(request).ok:
            return _text(400, f"{request.path} is a WebSocket endpoint; the upgrade request is not valid")
        transport = request.transport
        await ws.prepare(request)
        assert isinstance(transport, asyncio.Transport)
        conn_id = str(uuid.uuid4())
        with self._lock:
            number = len(self._infos) + 1
            self._infos.append(ConnInfo(number=number, conn_id=conn_id, path=request.path,
                                        remote=request.remote or "", topics=(), open=True, opened_at=time.time(),
                                        closed_at=None, close_code=None, close_reason=None, received=0))
        conn = _Connection(self, number, conn_id, request.remote or "", ws, transport)
        self._live[conn_id] = conn
        log.info("ws %s open", conn_id)
        await conn.run()
        return ws

    # ------------------------------------------------------------ what connections ask of the fake (loop only)

    def topic_exists(self, name: str) -> bool:
        topic = parse_topic(name)
        if topic is None:
            return False
        with self._market_lock:
            return self._market.has_topics(topic.symbol)

    def snapshot_for(self, topic: str) -> Prepared | None:
        with self._market_lock:
            message = self._market.snapshot_message(topic, now_ms())
        if message is None:
            return None
        return topic, message, _dumps(message), topic_symbol(topic)

    def _update(self, number: int, **changes: Any) -> None:
        with self._lock:
            self._infos[number - 1] = replace(self._infos[number - 1], **changes)

    def _count_frame(self, number: int) -> None:
        with self._lock:
            info = self._infos[number - 1]
            self._infos[number - 1] = replace(info, received=info.received + 1)

    def _record_control(self, conn_id: str, message: object) -> None:
        with self._lock:
            self._control.append((conn_id, time.time(), message))

    def _record_ping(self, conn_id: str, message: object, answered: bool) -> None:
        req_id = message.get("req_id", "") if isinstance(message, dict) else ""
        with self._lock:
            self._pings.append(PingRecord(conn_id, time.time(), str(req_id), answered))

    def _record_sent(self, conn_id: str, topic: str, message: dict[str, Any]) -> None:
        with self._lock:
            self._sent.setdefault(topic, deque(maxlen=SENT_KEPT)).append((conn_id, message))
            if topic.startswith("publicTrade."):
                seen = self._trades_sent.setdefault(topic.split(".", 1)[1], {})
                for trade in message["data"]:
                    seen.setdefault(trade["i"], trade)

    def _connection_closed(self, conn: _Connection, code: int, reason: str) -> None:
        self._live.pop(conn.conn_id, None)
        self._update(conn.number, open=False, closed_at=time.time(), close_code=code, close_reason=reason)
        log.info("ws %s closed %d %s", conn.conn_id, code, reason)

    async def _drop_all(self) -> int:
        live = [conn for conn in self._live.values() if not conn.finished.done()]
        for conn in live:
            conn.drop(REASON_DROPPED)
        await _wait_finished(live)
        return len(live)

    async def _close_all(self, code: int, reason: str) -> int:
        live = [conn for conn in self._live.values() if not conn.finished.done()]
        for conn in live:
            conn.close_soon(code, reason)
        await _wait_finished(live)
        return len(live)

    async def _inject(self, frame: str | bytes) -> int:
        live = [conn for conn in self._live.values() if not conn.finished.done()]
        sent = await asyncio.gather(*(conn.inject(frame) for conn in live))
        return sum(sent)

    def _refusing_for(self) -> float:
        return max(0.0, self._refuse_until - time.monotonic())

    # ------------------------------------------------------------ REST

    def _rest(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        now = time.time()
        mono = time.monotonic()
        remote = request.remote or ""
        limit, window = self._rest_limit
        over = self._rest_windows.setdefault(remote, RateWindow(limit, window)).hit(mono)
        cause = "answer"
        if mono < self._rest_banned_until.get(remote, 0.0):
            cause, response = "banned", _text(REST_TOO_FREQUENT_STATUS, REST_TOO_FREQUENT_TEXT)
        elif over:
            self._rest_banned_until[remote] = mono + self._rest_ban_seconds
            cause, response = "limit", _text(REST_TOO_FREQUENT_STATUS, REST_TOO_FREQUENT_TEXT)
        elif self._rest_failure is not None:
            cause, response = "forced", self._forced(*self._rest_failure, now_ms())
        else:
            response = self._answer(request.method, request.path, query, now_ms())
        with self._lock:
            self._rest_log.append(RestCall(now, request.method, request.path, MappingProxyType(query),
                                           response.status, cause))
        return response

    @staticmethod
    def _forced(status: int, body: Any, retry_after: int | None, stamp: int) -> web.Response:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        if status == 200 and body is None:
            return _json(200, envelope(RET_TOO_MANY_VISITS, "Too many visits!", {}, stamp), headers)
        if isinstance(body, dict):
            return _json(status, body, headers)
        default = _FORCED_TEXT.get(status, f"HTTP {status} (FakeBybit.set_rest_failure)")
        text = body if isinstance(body, str) else default
        return _text(status, text, headers)

    def _answer(self, method: str, path: str, query: Mapping[str, str], stamp: int) -> web.Response:
        with self._market_lock:
            market = self._market
            specs = market.specs()
            parsed = parse_rest(method, path, query, has_market=market.has_topics, is_instrument=specs.__contains__)
            if isinstance(parsed, RestRefusal):
                if parsed.text is not None:
                    return _text(parsed.http_status, parsed.text)
                return _json(parsed.http_status, envelope(parsed.ret_code, parsed.ret_msg, parsed.result, stamp))
            return _json(200, envelope(RET_OK, "OK", self._result(parsed, stamp), stamp))

    def _result(self, query: RestQuery, stamp: int) -> dict[str, Any]:
        market = self._market
        if query.endpoint == "tickers":
            symbols = [query.symbol] if query.symbol else sorted(s for s in market.specs() if market.has_topics(s))
            return {"category": "linear", "list": [market.rest_ticker(symbol) for symbol in symbols]}
        assert query.symbol is not None or query.endpoint == "instruments-info"
        if query.endpoint == "recent-trade":
            assert query.symbol is not None
            return {"category": "linear", "list": market.recent_trades(query.symbol, query.limit)}
        if query.endpoint == "orderbook":
            assert query.symbol is not None
            return market.rest_orderbook(query.symbol, query.limit, stamp)
        page = instruments_page(market.specs().values(), status=query.status, symbol=query.symbol, limit=query.limit,
                                after=query.after)
        return {"category": "linear", "list": list(page.rows), "nextPageCursor": page.next_cursor}

    # ------------------------------------------------------------ HTTP control

    async def _control_endpoint(self, request: web.Request) -> web.Response:
        """HTTP control for non-Python users (see tests/fakes/README.md, "Fake Bybit")."""
        query = request.query
        action = (request.method, request.path)
        on = query.get("on", "true").lower() in ("1", "true", "yes")
        names = query.get("symbols")
        symbols = None if names is None else [name for name in names.split(",") if name]
        try:
            if action == ("GET", "/_fake/state"):
                return _json(200, self.state())
            if action == ("POST", "/_fake/drop"):
                return _json(200, {"dropped": await self._drop_all()})
            if action == ("POST", "/_fake/close"):
                code, reason = int(query.get("code", CLOSE_GOING_AWAY)), query.get("reason", "going away")
                _check_close(code, reason)
                return _json(200, {"closed": await self._close_all(code, reason)})
            if action == ("POST", "/_fake/tick-interval"):
                self.set_tick_interval(float(query.get("seconds", "")))
                return _json(200, {"tick_interval": self._tick_interval})
            if action == ("POST", "/_fake/silent"):
                self.set_silent(on, symbols=symbols)
                return _json(200, {"silent": self._silence.everything, "silent_symbols": sorted(self._silence.symbols)})
            if action == ("POST", "/_fake/frozen"):
                self.set_frozen(on, symbols=symbols)
                return _json(200, {"frozen_symbols": sorted(self._frozen)})
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
                self.withhold_replies(on)
                return _json(200, {"withholding_replies": self._withhold_replies})
            if action == ("POST", "/_fake/rest-failure"):
                status, retry_after = query.get("status"), query.get("retry_after")
                self.set_rest_failure(int(status) if status else None, int(retry_after) if retry_after else None)
                return _json(200, {"rest_failure": int(status) if status else None})
            if action == ("POST", "/_fake/list"):
                self.list_symbol(query.get("symbol", ""))
                return _json(200, {"symbol": query.get("symbol"), "status": "Trading"})
            if action == ("POST", "/_fake/delist"):
                symbol, status = query.get("symbol", ""), query.get("status", CLOSED)
                self.delist(symbol, status)
                return _json(200, {"symbol": symbol, "status": status})
            if action == ("POST", "/_fake/restart-orderbook"):
                with self._market_lock:
                    events = self._market.restart_books(symbols, now_ms())
                self._publish(events)
                return _json(200, {"snapshots": len(events)})
        except (ValueError, TypeError) as exc:
            return _json(400, {"error": f"bad control request {request.path_qs}: {exc}"})
        usage = ("GET /_fake/state, POST /_fake/drop, /_fake/close?code=&reason=, /_fake/tick-interval?seconds=, "
                 "/_fake/silent?on=&symbols=, /_fake/frozen?on=&symbols=, /_fake/refuse?seconds=, "
                 "/_fake/inject[?binary=true] (body: the frame), /_fake/delivery-delay?seconds=, "
                 "/_fake/withhold-replies?on=, /_fake/rest-failure?status=&retry_after=, /_fake/list?symbol=, "
                 "/_fake/delist?symbol=&status=, /_fake/restart-orderbook[?symbols=]")
        return _json(404, {"error": f"unknown control call {request.method} {request.path}; use {usage}"})


class _Connection:
    """One accepted WebSocket connection on the fake's event loop: reader, ordered data writer, ping watchdog."""

    def __init__(self, fake: FakeBybit, number: int, conn_id: str, remote: str, ws: web.WebSocketResponse,
                 transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        self.fake = fake
        self.number = number
        self.conn_id = conn_id
        self.remote = remote
        self.ws = ws
        self.transport = transport
        self.state = ConnState()
        self.topic_set: frozenset[str] = frozenset()
        self.heartbeat = Heartbeat(fake._ping_timeout, loop.time())
        self.outbox: asyncio.Queue[tuple[float, str, dict[str, Any], str]] = asyncio.Queue()
        self.closing = False
        self.server_close: tuple[int, str] | None = None
        self.close_task: asyncio.Task[bool] | None = None
        self.finished: asyncio.Future[None] = loop.create_future()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        helpers = [loop.create_task(self._write()), loop.create_task(self._watch())]
        client_close: tuple[int, str] | None = None
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type == WSMsgType.CLOSE:
                    client_close = (int(msg.data) or 1005, msg.extra or "")
                    break
                if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                self.fake._count_frame(self.number)
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type == WSMsgType.BINARY:  # not a request Bybit can decode; the socket stays open
                    await self._on_text(bytes(msg.data).decode("utf-8", errors="replace"))
                elif msg.type == WSMsgType.PING:  # answered, but only {"op":"ping"} is a heartbeat
                    await self._guard(self.ws.pong(msg.data))
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._finish_close()
            code, reason = self.server_close or client_close or (CLOSE_ABNORMAL, "connection lost")
            self.fake._connection_closed(self, code, reason)
            self.finished.set_result(None)

    def offer(self, prepared: Sequence[Prepared], due: float, silence: Silence) -> None:
        """Queue the messages of topics this connection holds (its subscriptions now, when they were made)."""
        if self.closing:
            return
        for topic, message, text, symbol in prepared:
            if topic in self.topic_set and not (silence.everything or symbol in silence.symbols):
                self._enqueue(due, topic, message, text)

    def _enqueue(self, due: float, topic: str, message: dict[str, Any], text: str) -> None:
        if self.outbox.qsize() >= MAX_OUTBOX:
            self.drop(REASON_SLOW)
            return
        self.outbox.put_nowait((due, topic, message, text))

    async def _on_text(self, text: str) -> None:
        fake = self.fake
        if fake._withhold_replies:  # lost by the exchange: recorded, never applied nor answered
            message = decode_request(text)
            fake._record_control(self.conn_id, message)
            if isinstance(message, dict) and message.get("op") == "ping":
                fake._record_ping(self.conn_id, message, answered=False)
            return
        outcome = handle_text(text, self.state, conn_id=self.conn_id, topic_exists=fake.topic_exists,
                              args_limit=fake._args_limit)
        fake._record_control(self.conn_id, outcome.message)
        if outcome.ping:
            self.heartbeat.beat(asyncio.get_running_loop().time())
            fake._record_ping(self.conn_id, outcome.message, answered=True)
        if outcome.state != self.state:
            self.state = outcome.state
            self.topic_set = frozenset(outcome.state.topics)
            fake._update(self.number, topics=outcome.state.topics)
        # Snapshots are queued before the ack is written (no await in between), so no delta of a new topic can
        # precede its snapshot; the ack itself is written at once, ahead of them.
        due = asyncio.get_running_loop().time() + fake._delivery_delay
        silence = fake._silence
        for topic in outcome.subscribed:
            snapshot = fake.snapshot_for(topic)
            if snapshot is not None and not (silence.everything or snapshot[3] in silence.symbols):
                self._enqueue(due, snapshot[0], snapshot[1], snapshot[2])
        if outcome.reply is not None:
            await self._send(_dumps(outcome.reply))

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, topic, message, text = await self.outbox.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.closing or topic not in self.topic_set:  # unsubscribed meanwhile: nothing after its ack
                continue
            if not await self._send(text):
                return
            self.fake._record_sent(self.conn_id, topic, message)

    async def _watch(self) -> None:
        """Cut the connection off (no close frame) once the client has not pinged for `ping_timeout`."""
        loop = asyncio.get_running_loop()
        while not self.closing:
            await asyncio.sleep(max(0.0, self.heartbeat.deadline() - loop.time()))
            if self.heartbeat.overdue(loop.time()):
                self.drop(REASON_PING_TIMEOUT)
                return

    async def inject(self, frame: str | bytes) -> bool:
        if self.closing:
            return False
        if isinstance(frame, bytes):
            return await self._guard(self.ws.send_bytes(frame))
        return await self._send(frame)

    def close_soon(self, code: int, reason: str) -> None:
        """Send a close frame and end the connection. First call wins."""
        if self.closing:
            return
        self.closing = True
        self.server_close = (code, reason)
        self.close_task = asyncio.get_running_loop().create_task(
            self.ws.close(code=code, message=reason.encode("utf-8")))

    def drop(self, reason: str) -> None:
        """Abort the TCP connection without a close frame (recorded as 1006 with `reason`)."""
        if not self.closing:
            self.closing = True
            self.server_close = (CLOSE_ABNORMAL, reason)
        self.transport.abort()

    async def _finish_close(self) -> None:
        task = self.close_task
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=CLOSE_HANDSHAKE_TIMEOUT + 1.0)
        if not done:
            self.transport.abort()
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _send(self, text: str) -> bool:
        return await self._guard(self.ws.send_str(text))

    @staticmethod
    async def _guard(write: Awaitable[None]) -> bool:
        try:
            await write
        except ConnectionError:
            return False
        return True


async def _wait_finished(connections: Sequence[_Connection]) -> None:
    pending = [conn.finished for conn in connections if not conn.finished.done()]
    if pending:
        await asyncio.wait(pending, timeout=CLOSE_HANDSHAKE_TIMEOUT + 2.0)


def _check_close(code: int, reason: str) -> None:
    if not (1000 <= code <= 4999) or code in _RESERVED_CLOSE_CODES:
        raise ValueError(f"close code {code} cannot be sent in a close frame; use 1000-4999 except 1004-1006, 1015")
    if len(reason.encode("utf-8")) > 123:
        raise ValueError(f"close reason is {len(reason.encode('utf-8'))} bytes; a close frame allows 123")


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=dict(headers or {}), dumps=_dumps)


def _text(status: int, text: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", headers=dict(headers or {}))


# ---------------------------------------------------------------- command line

def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.bybit",
                                     description="Run the fake Bybit v5 public linear server until SIGINT/SIGTERM.")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--tick-interval", type=float, default=1.0, help="seconds between market ticks")
    parser.add_argument("--ping-timeout", type=float, default=PING_TIMEOUT,
                        help="seconds without a client ping before the connection is cut off")
    parser.add_argument("--book-deltas", action="store_true", help="orderbook.1 sends deltas after its snapshot")
    parser.add_argument("--book-resend-interval", type=float, default=BOOK_RESEND_SECONDS,
                        help="seconds without a level-1 change before its snapshot is re-sent")
    parser.add_argument("--max-connections-per-window", type=int, default=CONNECTIONS_PER_WINDOW)
    parser.add_argument("--connection-window", type=float, default=CONNECTION_WINDOW)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random-walk seed")
    parser.add_argument("--verbose", action="store_true", help="log one line per connection event")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    return serve(lambda: FakeBybit(tick_interval=args.tick_interval, ping_timeout=args.ping_timeout, port=args.port,
                     seed=args.seed, book_deltas=args.book_deltas, book_resend_interval=args.book_resend_interval,
                     max_connections_per_window=args.max_connections_per_window,
                     connection_window=args.connection_window).start(), args.verbose)


if __name__ == "__main__":
    sys.exit(main())
