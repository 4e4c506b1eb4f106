"""StreamingService: the per-app owner of subscriptions, upstream pool, cache, fan-out and metrics.

Socket.IO handlers and HTTP routes call it; its background tasks start through the SocketIO object, so they
run under whatever async mode the app uses.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flask_socketio import SocketIO

from cache.store import RedisStore
from cache.writer import TickerCache
from config import Settings
from metrics.collectors import ServiceMetrics
from metrics.labels import DeliveryPath, RejectedCode, StaleScope, TaskName
from streaming.core.auth import Authenticator
from streaming.core.errors import ProtocolError, StreamingError, TooManySymbolsError, UnknownSymbolError
from streaming.core.limits import KeyedLimiter
from streaming.core.models import Ticker, iso_timestamp
from streaming.core.singleflight import SingleFlight
from streaming.core.subscriptions import SubscriptionRegistry
from streaming.core.symbols import SymbolRequest, room_for
from streaming.exchanges.binance.catalog import SymbolCatalog
from streaming.exchanges.binance.protocol import TickerBatch, stream_type, symbol_of_stream, tradable_usdt_perpetuals
from streaming.exchanges.binance.rest import BinanceRest
from streaming.gateway.fastpath.backlog import BacklogGuard
from streaming.gateway.fastpath.install import install as install_fast_path
from streaming.hub.fanout import PRICE_UPDATE, Fanout
from streaming.hub.monitor import STREAM_STATUS, StreamMonitor
from streaming.runtime.guard import ConnectionGuard
from streaming.runtime.server import HTTP_HEADROOM
from streaming.runtime.tasks import PeriodicTask, SocketIOTasks
from streaming.runtime.version import build_details
from streaming.upstream.connection import Timing, UpstreamConnection
from streaming.upstream.pool import UpstreamPool

__all__ = ["StreamingService", "SubscribeOutcome"]

log = logging.getLogger(__name__)

NAMESPACE = "/"
UPSTREAM_STATES = ("connecting", "live", "reconnecting")
# A new subscriber's first price comes from REST for at most this many symbols per request (request weight 1 each).
WARM_UP_LIMIT = 20
REST_SOURCE = "rest:ticker/24hr"
# Symbols Binance called invalid are not asked about again for this long (only matters before exchangeInfo
# has loaded: afterwards unknown symbols never reach Binance).
UNKNOWN_SYMBOL_TTL = 300.0
MAX_REMEMBERED_UNKNOWN = 10_000
SERVER_SHUTDOWN = "server_shutdown"
SHUTTING_DOWN = RejectedCode.SERVER_SHUTTING_DOWN
TOO_MANY_CONNECTIONS = RejectedCode.TOO_MANY_CONNECTIONS


@dataclass
class SubscribeOutcome:
    """What a subscribe/unsubscribe did: symbols served, and rejected ones grouped by error code."""

    symbols: list[str] = field(default_factory=list)
    rejected: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # code -> [(item, reason)]

    def reject(self, code: str, item: str, reason: str) -> None:
        self.rejected.setdefault(code, []).append((item, reason))


class StreamingService:
    def __init__(self, settings: Settings, socketio: SocketIO) -> None:
        self.settings = settings
        self.socketio = socketio
        self.metrics = ServiceMetrics()
        self.tasks = SocketIOTasks(socketio)
        self.registry = SubscriptionRegistry()
        self.fast_path = install_fast_path(socketio, socketio.start_background_task, enabled=settings.fast_path,
                                           compression=settings.ws_compression)
        self.broadcaster = self.fast_path.broadcaster
        self.metrics.fast_path.set(1 if self.fast_path.enabled else 0)
        self.catalog = SymbolCatalog()
        self.rest = BinanceRest(settings.binance_rest_url, settings.http_timeout, self.metrics)
        store = (
            RedisStore(settings.redis_host, settings.redis_port, settings.redis_db, settings.cache_ttl)
            if settings.redis_enabled
            else None
        )
        self.cache = TickerCache(store, self.tasks, self.metrics)
        self.monitor = StreamMonitor(
            self._emit_to_room, self.registry.subscriber_count, lambda: self.pool.wanted_symbols(),
            settings.stale_timeout, self.tasks,
            on_stale=lambda count: self.metrics.stale_detections.labels(StaleScope.SYMBOL).inc(count),
        )
        self.fanout = Fanout(
            self._emit_to_room, self.registry.subscriber_count, self.cache, self.metrics, self.monitor.tick
        )
        self.pool = UpstreamPool(
            settings.binance_ws_url,
            self.tasks,
            self,
            max_streams_per_connection=settings.max_streams_per_connection,
            messages_per_second=settings.control_messages_per_second,
            timing=Timing(
                reconnect_delay=settings.reconnect_delay,
                max_reconnect_delay=settings.reconnect_max_delay,
                stale_timeout=settings.stale_timeout,
                ping_interval=settings.ping_interval,
                pong_timeout=settings.pong_timeout,
            ),
            grace=settings.unsubscribe_grace,
            max_age=settings.connection_max_age,
        )
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._clients: set[str] = set()
        self._address_of: dict[str, str] = {}  # sid -> client IP
        self._per_address: dict[str, int] = {}  # client IP -> connections
        self._stopping = threading.Event()
        self.draining = False  # set once by begin_shutdown: no new clients, /ready answers 503
        self._catalog_task = PeriodicTask(
            TaskName.SYMBOLS_CATALOG, self.tasks, self._refresh_step, settings.symbols_refresh_interval,
            lambda name: self.metrics.task_errors.labels(name).inc(),
        )
        self._reported: set[str] = set()
        self._warming: set[str] = set()
        self._fetches: SingleFlight[tuple[Ticker, str]] = SingleFlight()
        self._unknown: dict[str, float] = {}  # symbol -> until when Binance's "Invalid symbol." is remembered
        self.event_limiter = KeyedLimiter(
            settings.client_events_per_second, settings.client_event_burst, time.monotonic,
            abuse_after=settings.client_abuse_timeout,
        )
        self.auth = Authenticator(settings.auth_tokens, settings.jwt_secret or None, settings.jwt_audience or None,
                                  settings.jwt_issuer or None, settings.jwt_leeway)
        self.price_limiter = KeyedLimiter(settings.price_requests_per_second, settings.price_request_burst,
                                          time.monotonic)
        self.backlog = BacklogGuard(
            socketio.server.eio, lambda eio_sid: socketio.server.environ.get(eio_sid),
            settings.client_backlog_limit, settings.slow_client_timeout, self.metrics, self.tasks,
        )
        # TCP-level admission for the HTTP server (streaming.runtime.server): per-address caps, header deadlines
        self.guard = ConnectionGuard(
            settings.max_tcp_connections_per_ip or settings.max_connections_per_ip + HTTP_HEADROOM,
            settings.http_header_timeout, self.metrics,
        )
        self._direct_deliveries = self.metrics.deliveries.labels(DeliveryPath.DIRECT)
        self._queued_deliveries = self.metrics.deliveries.labels(DeliveryPath.QUEUED)
        self._bind_gauges()

    def _bind_gauges(self) -> None:
        """Gauges are read from the owning objects at scrape time, so they can never drift."""
        m = self.metrics
        m.connected_clients.set_function(lambda: len(self._clients))
        m.subscriptions.set_function(self.registry.total_subscriptions)
        m.subscribed_symbols.set_function(lambda: len(self.registry.symbols()))
        m.upstream_streams.set_function(lambda: len(self.pool.active_streams()))
        m.background_tasks.set_function(lambda: self.tasks.running)
        m.symbol_subscriptions.bind(self._streamed_symbol_subscriptions)
        m.build_info.info(build_details(self.settings.async_mode))
        for state in UPSTREAM_STATES:
            m.upstream_connections.labels(state).set_function(
                lambda state=state: sum(1 for s in self.pool.statuses() if s.state == state)
            )

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        log.info(
            "starting %s: upstream %s, REST %s, cache %s",
            self.settings.service_name,
            self.settings.binance_ws_url,
            self.settings.binance_rest_url,
            "Redis" if self.settings.redis_enabled else "memory only",
        )
        self.started_at = time.time()
        self.cache.start()
        self.pool.pin(self.settings.default_symbols)
        self.pool.start()
        self.monitor.start()
        self.backlog.start()
        self._stopping.clear()
        self._catalog_task.start()

    def begin_shutdown(self, reason: str) -> int:
        """Refuse new clients from now on and tell the connected ones (``server_shutdown``); returns how many
        were told. Their connections are closed by the caller, after which their clients reconnect (to this
        service's next process) by themselves."""
        self.draining = True
        self.metrics.shutting_down.set(1)
        with self._lock:
            told = len(self._clients)
        self.socketio.emit(SERVER_SHUTDOWN, {
            "reason": reason,
            "message": "the server is shutting down; your client reconnects by itself, or reconnect in a few seconds",
            "reconnect": True,
            "timestamp": iso_timestamp(int(time.time() * 1000)),
        })
        return told

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every background task and close upstream connections; safe to call twice."""
        self._stopping.set()
        self._catalog_task.stop(timeout)
        self.monitor.stop(timeout)
        self.backlog.stop(timeout)
        self.pool.stop(timeout)
        self.cache.stop(timeout)
        self.rest.close()
        log.info("%s stopped", self.settings.service_name)

    # -- clients ----------------------------------------------------------------------------------------------
    def connection_refusal(self, address: str) -> tuple[str, str] | None:
        """(code, reason) when a new connection from this address is refused: the service is shutting down
        (SERVER_SHUTTING_DOWN), or MAX_CONNECTIONS / MAX_CONNECTIONS_PER_IP is reached (TOO_MANY_CONNECTIONS)."""
        if self.draining:
            return SHUTTING_DOWN, "the server is shutting down; reconnect in a few seconds"
        with self._lock:
            if len(self._clients) >= self.settings.max_connections:
                return TOO_MANY_CONNECTIONS, "the server is full; try again later"
            if self._per_address.get(address, 0) >= self.settings.max_connections_per_ip:
                return TOO_MANY_CONNECTIONS, (
                    f"too many connections from your address (at most {self.settings.max_connections_per_ip})"
                )
        return None

    def client_connected(self, sid: str, address: str = "") -> None:
        with self._lock:
            self._clients.add(sid)
            self._address_of[sid] = address
            self._per_address[address] = self._per_address.get(address, 0) + 1

    def client_disconnected(self, sid: str) -> None:
        with self._lock:
            self._clients.discard(sid)
            address = self._address_of.pop(sid, None)
            if address is not None:
                left = self._per_address.pop(address, 1) - 1
                if left > 0:
                    self._per_address[address] = left
            last = self.registry.drop(sid)
            self.event_limiter.forget(sid)
        for symbol in last:
            self.pool.release(symbol)

    def check(self, sid: str, request: SymbolRequest) -> SubscribeOutcome:
        """Which symbols of a subscribe request can be served, and why the others cannot. Changes nothing."""
        outcome = self._outcome_for(request)
        held = self.registry.symbols_of(sid)
        room = self.settings.max_symbols_per_client - len(held)
        for symbol in request.symbols:
            if symbol not in held and room <= 0:
                outcome.reject(
                    TooManySymbolsError.code, symbol,
                    f"a client may hold at most {self.settings.max_symbols_per_client} symbols; unsubscribe some first",
                )
                self.metrics.rejected_inputs.labels(TooManySymbolsError.code).inc()
                continue
            try:
                self.catalog.check(symbol)
            except UnknownSymbolError as exc:
                outcome.reject(exc.code, symbol, str(exc))
                self.metrics.rejected_inputs.labels(exc.code).inc()
                continue
            outcome.symbols.append(symbol)
            if symbol not in held:
                room -= 1
        return outcome

    def join(self, sid: str, symbols: Sequence[str]) -> None:
        """Subscribe a client to checked symbols and send it their latest fresh prices and stream states.

        The room join and the cached prices happen under the fan-out's lock, so the client gets each tick
        exactly once and in order, whether it comes from the cache or from the stream. Symbols without a fresh
        tick get one from Binance REST in the background (at most WARM_UP_LIMIT per call, one fetch per symbol
        at a time), so a new subscriber does not wait for the next stream tick.
        """
        max_age = self.settings.price_max_age
        for symbol in symbols:
            self.cache.latest(symbol)  # outside the lock: brings a Redis-only tick into memory
        with self.fanout.lock:
            for symbol in symbols:
                self.socketio.server.enter_room(sid, room_for(symbol), namespace=NAMESPACE)
            with self._lock:
                _, first = self.registry.add(sid, symbols)
            cold = []
            for symbol in symbols:
                ticker = self.cache.peek(symbol, max_age)
                if ticker is not None:
                    self.socketio.emit(PRICE_UPDATE, ticker.to_wire(), to=sid)
                elif self.catalog.is_known(symbol):
                    cold.append(symbol)
        for status in self.monitor.status_of(symbols):
            self.socketio.emit(STREAM_STATUS, status, to=sid)
        for symbol in first:
            self.pool.want(symbol)
        with self._lock:
            cold = [symbol for symbol in cold if symbol not in self._warming][:WARM_UP_LIMIT]
            self._warming.update(cold)
        if cold:
            self.tasks.start(self._warm_up, cold)

    def fresh_ticker(self, symbol: str) -> tuple[Ticker, str]:
        """A fresh tick of a validated symbol and where it came from ("cache" or "api").

        Concurrent callers for one symbol share one Binance call, and its result is cached before any of them
        returns, so a burst of requests for an uncached symbol costs Binance one request.
        Raises UnknownSymbolError, or UpstreamUnavailableError (RateLimitedError while Binance says back off).
        """
        ticker = self.cache.latest(symbol, max_age=self.settings.price_max_age)
        if ticker is not None:
            return ticker, "cache"
        return self._fetches.do(symbol, lambda: self._fetch(symbol))

    def _fetch(self, symbol: str) -> tuple[Ticker, str]:
        ticker = self.cache.latest(symbol, max_age=self.settings.price_max_age)
        if ticker is not None:  # a tick arrived while this caller waited for the flight
            return ticker, "cache"
        if self._unknown.get(symbol, 0.0) > time.monotonic():
            raise UnknownSymbolError(f"unknown symbol {symbol!r}: Binance answered 'Invalid symbol.'")
        try:
            ticker = self.rest.ticker_24hr(symbol)
        except UnknownSymbolError:
            if len(self._unknown) >= MAX_REMEMBERED_UNKNOWN:
                self._unknown.clear()
            self._unknown[symbol] = time.monotonic() + UNKNOWN_SYMBOL_TTL  # no second call for it meanwhile
            raise
        self.fanout.publish(TickerBatch(REST_SOURCE, (ticker,)), from_stream=False)  # cached, and sent on
        return ticker, "api"

    def _warm_up(self, symbols: list[str]) -> None:
        try:
            for symbol in symbols:
                if self._stopping.is_set():
                    break
                try:
                    self.fresh_ticker(symbol)
                except StreamingError as exc:  # counted in rest_requests_total; the stream will follow
                    log.debug("first price of %s from REST failed: %s", symbol, exc)
        finally:
            with self._lock:
                self._warming.difference_update(symbols)

    def unsubscribe(self, sid: str, request: SymbolRequest) -> SubscribeOutcome:
        outcome = self._outcome_for(request)
        with self._lock:
            removed, last = self.registry.remove(sid, request.symbols)
        for symbol in removed:
            self.socketio.server.leave_room(sid, room_for(symbol), namespace=NAMESPACE)
        for symbol in last:
            self.pool.release(symbol)
        outcome.symbols = removed
        return outcome

    def _outcome_for(self, request: SymbolRequest) -> SubscribeOutcome:
        outcome = SubscribeOutcome()
        for item, reason in request.rejected:
            outcome.reject(RejectedCode.INVALID_SYMBOL, item, reason)
        for code, items in outcome.rejected.items():
            self.metrics.rejected_inputs.labels(code).inc(len(items))
        return outcome

    def count_rejection(self, code: str) -> None:
        self.metrics.rejected_inputs.labels(code).inc()

    # -- upstream observer ------------------------------------------------------------------------------------
    def on_tickers(self, batch: TickerBatch, received_at: float) -> None:
        self.metrics.upstream_messages.labels(stream_type(batch.stream)).inc()
        self.fanout.publish(batch, received_at=received_at)

    def on_event(self, connection: UpstreamConnection, event: str, detail: str = "") -> None:
        if event in ("reconnect", "stale"):
            self.monitor.connection_down(connection.symbols(), stale=event == "stale")
        if event == "reconnect":
            self.metrics.upstream_reconnects.labels(detail).inc()
        elif event == "request_sent":
            self.metrics.control_requests.labels(detail).inc()
        elif event == "stale":
            self.metrics.stale_detections.labels(StaleScope.CONNECTION).inc()
        else:
            self.metrics.upstream_events.labels(event).inc()
        if event in ("error_frame", "unrecognised", "unmatched_reply"):
            kind = f"{event}:{detail.split(':')[0]}"
            if kind not in self._reported:  # once per kind; the counter has the rest
                self._reported.add(kind)
                log.warning(
                    "upstream %d: %s (%s); further ones are only counted in %s",
                    connection.index, event, detail, "websocket_streaming_upstream_events_total",
                )

    def on_pool_error(self) -> None:
        self.metrics.task_errors.labels(TaskName.UPSTREAM_POOL).inc()

    # -- symbols catalog --------------------------------------------------------------------------------------
    def _refresh_step(self) -> float:
        ok = self.refresh_catalog()
        return self.settings.symbols_refresh_interval if ok else self.settings.symbols_retry_interval

    def refresh_catalog(self) -> bool:
        """Reload the tradable symbols from exchangeInfo; returns whether it worked."""
        try:
            symbols = tradable_usdt_perpetuals(self.rest.exchange_info())
        except (StreamingError, ProtocolError) as exc:
            log.warning(
                "could not load symbols from %s/fapi/v1/exchangeInfo: %s; retrying in %.0fs",
                self.settings.binance_rest_url, exc, self.settings.symbols_retry_interval,
            )
            return False
        if not symbols:
            log.warning("exchangeInfo listed no trading USDT perpetuals; keeping the previous list")
            return False
        first_load = not self.catalog.loaded
        added, removed = self.catalog.replace(symbols, time.time())
        if first_load:
            log.info("loaded %d tradable USDT perpetual symbols", len(symbols))
        elif added or removed:
            log.info("symbols refreshed: %d added, %d removed", len(added), len(removed))
        for symbol in self.settings.default_symbols:
            if symbol not in symbols:
                log.warning("DEFAULT_SYMBOLS has %s, which is not a trading USDT perpetual", symbol)
        self._drop_unknown_subscriptions()
        return True

    def _drop_unknown_subscriptions(self) -> None:
        """Remove subscriptions accepted before the catalog was loaded (or since delisted), telling clients."""
        for symbol in self.registry.symbols():
            try:
                self.catalog.check(symbol)
            except UnknownSymbolError as exc:
                holders = [sid for sid in list(self._clients) if symbol in self.registry.symbols_of(sid)]
                for sid in holders:
                    self.unsubscribe(sid, SymbolRequest((symbol,), ()))
                    self.socketio.emit(
                        "error",
                        {"code": exc.code, "message": str(exc), "event": "subscribe", "symbols": [symbol]},
                        to=sid,
                    )

    # -- views for routes -------------------------------------------------------------------------------------
    def _emit_to_room(self, event: str, payload: dict, room: str) -> None:
        direct, queued = self.broadcaster.emit(event, payload, room)
        if direct:
            self._direct_deliveries.inc(direct)
        if queued:
            self._queued_deliveries.inc(queued)

    def _streamed_symbol_subscriptions(self) -> dict[str, int]:
        """Subscriptions per symbol, for the symbols streamed now only (a bounded set of metric labels)."""
        streamed = {symbol_of_stream(stream) for stream in self.pool.active_streams()}
        with self._lock:
            by_symbol = self.registry.counts_by_symbol()
        return {symbol: count for symbol, count in by_symbol.items() if symbol in streamed}

    def uptime_seconds(self) -> float:
        return time.time() - self.started_at

    def snapshot(self) -> dict[str, Any]:
        """Counters shared by /health and /stats."""
        with self._lock:
            by_symbol = self.registry.counts_by_symbol()
            total = self.registry.total_subscriptions()
            clients = len(self._clients)
        streams = self.pool.active_streams()
        return {
            "active_streams": len(streams),
            "active_symbols": sorted(filter(None, map(symbol_of_stream, streams))),
            "total_subscriptions": total,
            "subscriptions_by_symbol": by_symbol,
            "connected_clients": clients,
        }
