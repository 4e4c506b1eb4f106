"""StreamingService: wires the app's collaborators (upstream pools, stores, fan-out, demand, look-ups,
admission, metrics) and starts and stops them.

Socket.IO handlers and HTTP routes call it; its background tasks start through the SocketIO object, so they
run under whatever async mode the app uses.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Sequence
from typing import Any

from flask_socketio import SocketIO

from cache.history_store import HistoryUnavailable, RedisHistory
from cache.store import RedisStore
from cache.writer import TickerCache
from config import Settings
from metrics.collectors import ServiceMetrics
from metrics.labels import DeliveryPath, StaleScope, StreamType, TaskName
from streaming.cluster.bus import ClusterRedis, ClusterUnavailable
from streaming.cluster.election import Election
from streaming.cluster.feed import GatewayFeed
from streaming.cluster.ingest import IngestRole
from streaming.cluster.membership import Membership
from streaming.cluster.publisher import Publisher
from streaming.cluster.shared import SharedBooks, SharedHistory
from streaming.core.auth import Authenticator
from streaming.core.channels import BINANCE, KINDS, Channel, Kind, split_market
from streaming.core.errors import ProtocolError, StreamingError
from streaming.core.history import Position, Retention
from streaming.core.limits import KeyedLimiter
from streaming.core.models import BookTicker, Ticker, Trade, iso_timestamp
from streaming.core.positions import parse_channel_key
from streaming.core.symbols import SymbolRequest
from streaming.exchanges.adapter import MarketRest
from streaming.exchanges.binance.protocol import stream_type
from streaming.exchanges.binance.rest import BinanceRest
from streaming.exchanges.binance.streams import MARKET
from streaming.exchanges.catalog import SymbolCatalog
from streaming.exchanges.clients import REST_CLIENTS
from streaming.exchanges.messages import StreamBatch
from streaming.exchanges.registry import EXCHANGES
from streaming.gateway.admission import Admission
from streaming.gateway.fastpath.backlog import BacklogGuard
from streaming.gateway.fastpath.install import install as install_fast_path
from streaming.gateway.replays import HistoryReader, Replays
from streaming.hub.backfill import TradeBackfill, last_trade_id
from streaming.hub.demand import Confirm, Demand, Joined, SubscribeOutcome
from streaming.hub.fanout import Fanout
from streaming.hub.lookups import Lookups
from streaming.hub.monitor import StreamMonitor
from streaming.hub.recorder import Recorder
from streaming.hub.sources import LocalSource, PoolSupply, Source
from streaming.hub.stores import LatestStore, TradeTape
from streaming.runtime.guard import ConnectionGuard
from streaming.runtime.server import HTTP_HEADROOM
from streaming.runtime.tasks import PeriodicTask, SocketIOTasks
from streaming.runtime.version import build_details
from streaming.upstream.connection import UpstreamConnection, UpstreamStatus
from streaming.upstream.pool import UpstreamPool, pool_for
from streaming.upstream.recorder import FrameRecorder
from streaming.upstream.replay import Replay, ReplayPool, ReplayRest

__all__ = ["StreamingService", "SubscribeOutcome"]

log = logging.getLogger(__name__)

UPSTREAM_STATES = ("connecting", "live", "reconnecting")
ROLE_ALL, ROLE_INGEST, ROLE_GATEWAY = "all", "ingest", "gateway"
WRONG_ROLE = "WRONG_ROLE"
SERVER_SHUTDOWN = "server_shutdown"


class StreamingService:
    def __init__(self, settings: Settings, socketio: SocketIO) -> None:
        self.settings = settings
        self.socketio = socketio
        self.metrics = ServiceMetrics()
        self.tasks = SocketIOTasks(socketio)
        self.fast_path = install_fast_path(socketio, socketio.start_background_task, enabled=settings.fast_path,
                                           compression=settings.ws_compression,
                                           batch_window=settings.trade_batch_window)
        self.broadcaster = self.fast_path.broadcaster
        self.broadcaster.on_flushed = self._count_deliveries  # coalesced trades are counted when they go out
        self.metrics.fast_path.set(1 if self.fast_path.enabled else 0)
        # EXCHANGES: the enabled adapters, Binance (the default of every request) first
        self.exchanges = {name: EXCHANGES[name] for name in settings.exchanges}
        self.catalogs = {name: SymbolCatalog(exchange.title, name) for name, exchange in self.exchanges.items()}
        # UPSTREAM_RECORD_FILE: every upstream text frame, as received, to a recording
        record_prefix = settings.record_prefix()
        self.upstream_recorder = FrameRecorder(
            record_prefix, self.tasks, name=TaskName.UPSTREAM_RECORDER,
            on_error=lambda name: self.metrics.task_errors.labels(name).inc(),
        ) if record_prefix else None
        # UPSTREAM_REPLAY_FILE: a recording stands in for the exchanges: their pools and their REST clients
        self.upstream_replay = Replay(
            settings.replay_files(), self, self.tasks, self.exchanges, name=settings.upstream_replay_file,
            speed=settings.upstream_replay_speed, loop=settings.upstream_replay_loop,
            task_name=TaskName.UPSTREAM_REPLAY, on_error=lambda name: self.metrics.task_errors.labels(name).inc(),
        ) if settings.upstream_replay_file else None
        self.rests: dict[str, MarketRest] = {
            name: ReplayRest(self.upstream_replay, exchange) if self.upstream_replay
            else REST_CLIENTS[name](settings.rest_url_of(name), settings.http_timeout, self.metrics)
            for name, exchange in self.exchanges.items()}
        binance_rest = self.rests[BINANCE]  # it also fills trade gaps (backfill)
        assert isinstance(binance_rest, BinanceRest | ReplayRest)
        store = (
            RedisStore(settings.redis_host, settings.redis_port, settings.redis_db, settings.cache_ttl)
            if settings.redis_enabled
            else None
        )
        self.cache = TickerCache(store, self.tasks, self.metrics)
        # ROLE=ingest|gateway (docs/SCALING.md): the cluster's Redis; the histories are written by the leader's
        # publish script there, and read by the gateways
        self.role = settings.role
        self.node = settings.node_name()
        clustered = self.role != ROLE_ALL
        self.cluster_bus = (ClusterRedis(settings.redis_host, settings.redis_port, settings.redis_db)
                            if clustered else None)
        self.history_reader = (RedisHistory(settings.redis_host, settings.redis_port, settings.redis_db)
                               if clustered else None)
        self.recorder = self._recorder() if settings.history_enabled and not clustered else None
        self.books: LatestStore[BookTicker] = LatestStore()
        self.trades = TradeTape()
        # one pool per exchange route: (exchange, route) -> pool
        self.pools: dict[tuple[str, str], UpstreamPool | ReplayPool] = {} if self.role == ROLE_GATEWAY else {
            (name, route): self._pool(name, route) for name, exchange in self.exchanges.items()
            for route in exchange.routes}
        if self.upstream_replay and self.pools:
            self.pools.update(self.upstream_replay.pools())
        self.ingest = self._ingest_role() if self.role == ROLE_INGEST else None
        self.monitor = StreamMonitor(
            self._emit_to_room, self._ticker_audience, self._streamed_tickers,
            settings.stale_timeout, self.tasks,
            on_stale=lambda count: self.metrics.stale_detections.labels(StaleScope.SYMBOL).inc(count),
        )
        # each kind's store: the fan-out's ordering gate, and where a state kind's snapshot comes from
        stores: dict[Kind, Any] = {Kind.TICKER: self.cache, Kind.TRADE: self.trades, Kind.BOOK: self.books}
        self.backfill = TradeBackfill(binance_rest, self._last_trade_id, self._restart_history, self.metrics)
        self.fanout = Fanout(self._emit_to_room, lambda channel: self.demand.subscriber_count(channel), stores,
                             self.metrics, self.monitor.tick,
                             record=self.recorder.record if self.recorder is not None else None,
                             settle=self.broadcaster.flush,
                             forward=self.ingest.publisher.offer if self.ingest is not None else None)
        gateway_books = SharedBooks(self.history_reader) if self.history_reader and self.role == ROLE_GATEWAY else None
        self.lookups = Lookups(
            self.rests, self.cache, gateway_books or self.books, self.trades,
            # a gateway is not the leader: what it fetches is answered, not published
            (lambda batch: 0) if self.role == ROLE_GATEWAY else self._publish_fetched,
            self.tasks, settings.price_max_age, self.is_streamed,
        )
        recovery_grace = max(settings.unsubscribe_grace, settings.recovery_grace) if settings.history_enabled else None
        self.feed = self._feed() if self.role == ROLE_GATEWAY else None
        source: Source = self.feed or LocalSource(
            self.recorder, {kind: stores[kind] for kind, policy in KINDS.items() if policy.snapshot},
            self.broadcaster.emit, self.broadcaster.emit_packets, settings.price_max_age)
        self.demand = Demand(
            socketio.server, socketio.emit, self.fanout, self.cache, source, self.monitor, self.catalogs,
            self.feed or PoolSupply(self.pools), self.lookups, self.metrics,
            max_symbols_per_client=settings.max_symbols_per_client,
            recovery_grace=recovery_grace if self.recorder or self.feed else None,
        )
        self.membership = Membership(
            self.cluster_bus, self.node, settings.cluster_node_ttl, self._node_state, self.tasks, self.metrics,
            demand=self.feed.channels if self.feed is not None else None,
        ) if self.cluster_bus is not None else None
        self.admission = Admission(settings.max_connections, settings.max_connections_per_ip)
        self.started_at = time.time()
        self._catalog_tasks = [PeriodicTask(
            TaskName.SYMBOLS_CATALOG, self.tasks, lambda name=name: self._refresh_step(name),
            settings.symbols_refresh_interval, lambda task: self.metrics.task_errors.labels(task).inc(),
        ) for name in self.exchanges]
        self._reported: set[str] = set()
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
            trade_limit=settings.client_trade_backlog_limit,
        )
        # TCP-level admission for the HTTP server (streaming.runtime.server): per-address caps, header deadlines
        self.guard = ConnectionGuard(
            settings.max_tcp_connections_per_ip or settings.max_connections_per_ip + HTTP_HEADROOM,
            settings.http_header_timeout, self.metrics,
        )
        # a WebSocket's handshake slot is free once the upgrade is done: what follows waits for the client
        self.broadcaster.on_websocket = self.guard.handshakes.done
        # the histories' reads (/history, replays): the recorder, or on a gateway Redis (None: history off)
        self.history: HistoryReader | None = (
            SharedHistory(self.history_reader) if self.feed is not None and self.history_reader is not None
            else self.recorder)
        self.replays = Replays(
            self.history, socketio.emit,
            lambda sid: self.backlog.backlog(socketio.server.manager.eio_sid_from_sid(sid, "/") or ""),
            self.tasks, self.metrics, settings.replay_max_per_client,
        ) if self.history is not None else None
        self._direct_deliveries = self.metrics.deliveries.labels(DeliveryPath.DIRECT)
        self._queued_deliveries = self.metrics.deliveries.labels(DeliveryPath.QUEUED)
        self._bind_gauges()

    def _recorder(self) -> Recorder:
        settings = self.settings
        redis = (RedisHistory(settings.redis_host, settings.redis_port, settings.redis_db)
                 if settings.redis_enabled else None)
        retention = {kind: Retention(settings.history_max_items[kind], settings.history_max_age[kind])
                     for kind in Kind}
        recovery_limit = min(settings.recovery_max_updates, settings.client_trade_backlog_limit // 2)
        if recovery_limit < settings.recovery_max_updates:
            log.warning("RECOVERY_MAX_UPDATES=%d lowered to %d, half of CLIENT_TRADE_BACKLOG_LIMIT=%d: a larger "
                        "recovery would get its client cut off as a slow consumer", settings.recovery_max_updates,
                        recovery_limit, settings.client_trade_backlog_limit)
        return Recorder(redis, retention, settings.history_memory_max_items, recovery_limit, self.tasks,
                        self.metrics)

    def _ingest_role(self) -> IngestRole:
        assert self.cluster_bus is not None
        settings = self.settings
        election = Election(
            self.cluster_bus, self.node, settings.leader_ttl, settings.leader_renew_interval, self.tasks,
            on_elected=lambda token: ingest.elected(token), on_deposed=self._deposed,
            on_error=lambda name: self.metrics.task_errors.labels(name).inc(),
        )
        publisher = Publisher(self.cluster_bus, election, {kind: settings.history_max_items[kind] for kind in Kind},
                              self.tasks, self.metrics)
        ingest = IngestRole(self.cluster_bus, election, publisher, PoolSupply(self.pools), self.tasks, self.metrics,
                            on_elected=self._start_upstream)
        return ingest

    def _feed(self) -> GatewayFeed:
        assert self.cluster_bus is not None and self.history_reader is not None
        settings = self.settings
        retention = {kind: Retention(settings.history_max_items[kind], settings.history_max_age[kind])
                     for kind in Kind}
        return GatewayFeed(
            self.cluster_bus, self.history_reader, self.fanout.lock, self.broadcaster.emit_packets,
            lambda channel: self.demand.subscriber_count(channel), retention,
            min(settings.recovery_max_updates, settings.client_trade_backlog_limit // 2),
            settings.unsubscribe_grace, settings.price_max_age, self.tasks,
            self.metrics, on_deliveries=self._count_deliveries,
            on_demand=lambda: self.membership.wake() if self.membership is not None else None,
        )

    def _pool(self, exchange: str, route: str) -> UpstreamPool:
        return pool_for(self.settings, self.exchanges[exchange], route, self.tasks, self,
                        tap=self.upstream_recorder.offer if self.upstream_recorder else None)

    def _bind_gauges(self) -> None:
        """Gauges are read from the owning objects at scrape time, so they can never drift."""
        m = self.metrics
        m.connected_clients.set_function(self.admission.count)
        m.subscriptions.set_function(self.demand.total)
        m.subscribed_symbols.set_function(lambda: len({channel.market for channel in self.demand.counts()}))
        m.upstream_streams.set_function(lambda: len(self.active_channels()))
        m.background_tasks.set_function(lambda: self.tasks.running)
        m.symbol_subscriptions.bind(self._streamed_symbol_subscriptions)
        m.build_info.info(build_details(self.settings.async_mode))
        for exchange in self.exchanges:
            for state in UPSTREAM_STATES:
                m.upstream_connections.labels(exchange, state).set_function(
                    lambda exchange=exchange, state=state: sum(
                        1 for s in self.upstream_statuses() if s.state == state and s.exchange == exchange)
                )

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        log.info(
            "starting %s: upstream %s, REST %s, cache %s",
            self.settings.service_name,
            f"replay of {self.upstream_replay.name}" if self.upstream_replay else self.settings.binance_ws_url,
            "not used (replay)" if self.upstream_replay else self.settings.binance_rest_url,
            "Redis" if self.settings.redis_enabled else "memory only",
        )
        self.started_at = time.time()
        self.cache.start()
        if self.recorder is not None:
            self.recorder.start()  # before the first update: stored histories are continued
        if self.pools:
            binance = self.exchanges[BINANCE]
            for symbol in self.settings.default_symbols:
                channel = Channel(BINANCE, Kind.TICKER, symbol)
                self.pools[BINANCE, binance.route_of(channel)].pin([binance.stream_of(channel)])
        if self.membership is not None:
            self.membership.start()
        if self.feed is not None:
            self.feed.start()
        if self.ingest is not None:
            self.ingest.start()  # the upstream starts when this node is elected
        else:
            self._start_upstream()
        if self.upstream_recorder:
            self.upstream_recorder.start()  # frames offered before it starts wait in its queue
        if self.upstream_replay:
            self.upstream_replay.start()
        self.monitor.start()
        self.backlog.start()
        self.lookups.start()
        for task in self._catalog_tasks:
            task.start()

    def wait_for_upstream(self, timeout: float, poll: float = 0.02) -> bool:
        """Wait (green) at most ``timeout`` s until Binance's upstream is live and the symbols are loaded, or its
        first connection attempt has failed; True if it is live and loaded. For the entry point, between
        ``start`` and serving: the port is bound already, so the clients of a restart wait in the kernel's
        backlog meanwhile, and none is served before the prices flow (served first, thousands of reconnecting
        clients keep the event loop too busy for the upstream's handshake and the symbols' request for seconds;
        `make bench SCENARIO=storm`). No wait in a cluster or with a replay: their source is not ours to wait for."""
        if self.feed is not None or self.ingest is not None or self.upstream_replay is not None or not self.pools:
            return True
        deadline = time.monotonic() + timeout
        while True:
            states = {status.state for status in self.upstream_statuses() if status.exchange == BINANCE}
            if "live" in states and self.catalog.loaded:
                return True
            if "reconnecting" in states or time.monotonic() >= deadline:
                return False
            self.socketio.sleep(poll)

    def _start_upstream(self) -> None:
        for key, pool in self.pools.items():
            pool.start(connect_idle=key == (BINANCE, MARKET))  # /ready waits for Binance's /market connection

    def _deposed(self, reason: str) -> None:
        """This ingestor lost the leader lock: it has stopped publishing; leave, to start again as a standby
        (under PM2, or any process manager that restarts it)."""
        if self.ingest is not None:
            self.ingest.deposed()
        log.error("cluster: leaving so that this node starts again as a standby (%s)", reason)
        os.kill(os.getpid(), signal.SIGTERM)  # the graceful shutdown, as for a deploy

    @property
    def draining(self) -> bool:
        """Set by begin_shutdown: no new clients, /ready answers 503."""
        return self.admission.draining

    def begin_shutdown(self) -> None:
        """Refuse new clients from now on (``SERVER_SHUTTING_DOWN``); /ready answers 503."""
        self.admission.draining = True
        self.metrics.shutting_down.set(1)

    def tell_clients(self, reason: str) -> int:
        """Tell every connected client that this process is going (``server_shutdown``); returns how many were
        told. Their connections are closed by the caller, after which their clients reconnect (to this service's
        next process) by themselves."""
        told = self.admission.count()
        self.socketio.emit(SERVER_SHUTDOWN, {
            "reason": reason,
            "message": "the server is shutting down; your client reconnects by itself, or reconnect in a few seconds",
            "reconnect": True,
            "timestamp": iso_timestamp(int(time.time() * 1000)),
        })
        return told

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every background task and close upstream connections; safe to call twice. Logs how long each
        part took (a shutdown's next process waits for all of them)."""
        took: dict[str, float] = {}
        began = time.monotonic()

        def done(part: str) -> None:
            nonlocal began
            now = time.monotonic()
            took[part] = now - began
            began = now

        self.lookups.stop()
        if self.ingest is not None:
            self.ingest.stop(timeout)  # first: a standby takes over while this one closes
        if self.feed is not None:
            self.feed.stop(timeout)
        if self.membership is not None:
            self.membership.stop(timeout)
        for task in self._catalog_tasks:
            task.stop(timeout)
        self.monitor.stop(timeout)
        self.backlog.stop(timeout)
        done("tasks")
        for pool in self.pools.values():
            pool.stop(timeout)
        if self.upstream_replay:
            self.upstream_replay.stop(timeout)
        if self.upstream_recorder:
            self.upstream_recorder.stop(timeout)  # after the pools: their last frames are in the file
        done("upstream")
        self.cache.stop(timeout)
        done("cache")
        if self.recorder is not None:
            self.recorder.stop(timeout)
        done("history")
        for rest in self.rests.values():
            rest.close()
        for client in (self.cluster_bus, self.history_reader):
            if client is not None:
                client.close()
        done("clients")
        log.info("%s stopped (%s)", self.settings.service_name,
                 ", ".join(f"{part} {seconds:.2f}s" for part, seconds in took.items()))

    # -- clients ----------------------------------------------------------------------------------------------
    def connection_refusal(self, address: str) -> tuple[str, str] | None:
        if self.role == ROLE_INGEST:
            return WRONG_ROLE, ("this node is an ingestor (ROLE=ingest) and serves no clients; connect to a "
                                "gateway (ROLE=gateway), e.g. through the cluster's proxy")
        return self.admission.refusal(address)

    def client_connected(self, sid: str, address: str = "") -> None:
        self.admission.connected(sid, address)

    def client_disconnected(self, sid: str) -> None:
        self.admission.disconnected(sid)
        self.demand.drop(sid)
        if self.replays is not None:
            self.replays.drop(sid)
        self.event_limiter.forget(sid)

    def check(self, sid: str, request: SymbolRequest, exchange: str = BINANCE) -> SubscribeOutcome:
        return self.demand.check(sid, request, exchange)

    def join(self, sid: str, symbols: Sequence[str], kinds: Sequence[Kind] = (Kind.TICKER,),
             since: dict[Channel, Position] | None = None, confirm: Confirm | None = None,
             exchange: str = BINANCE) -> Joined:
        return self.demand.join(sid, symbols, kinds, since, confirm, exchange)

    def unsubscribe(self, sid: str, request: SymbolRequest, kinds: Sequence[Kind],
                    exchange: str = BINANCE) -> SubscribeOutcome:
        return self.demand.leave(sid, request, kinds, exchange)

    def fresh_ticker(self, symbol: str, exchange: str = BINANCE) -> tuple[Ticker, str]:
        return self.lookups.fresh_ticker(exchange, symbol)

    def fresh_book(self, symbol: str, exchange: str = BINANCE) -> tuple[BookTicker, str]:
        return self.lookups.fresh_book(exchange, symbol)

    def recent_trades(self, symbol: str, limit: int, exchange: str = BINANCE) -> tuple[list[Trade], str]:
        return self.lookups.recent_trades(exchange, symbol, limit)

    def count_rejection(self, code: str) -> None:
        self.metrics.rejected_inputs.labels(code).inc()

    # -- upstream observer ------------------------------------------------------------------------------------
    def on_updates(self, batch: StreamBatch, received_at: float) -> None:
        first = batch.updates[0] if batch.updates else None
        exchange = first.exchange if first is not None else BINANCE
        kind = (StreamType(first.kind.value) if first is not None and exchange != BINANCE
                else stream_type(batch.stream))  # Binance's names also say which are arrays
        self.metrics.upstream_messages.labels(exchange, kind).inc()
        self.fanout.publish(self.backfill.fill(batch), received_at=received_at)

    def _last_trade_id(self, symbol: str) -> int | None:
        """The newest aggregated trade of a symbol published: in memory, else (after a restart, or a take-over
        by this ingestor) in its history."""
        held = self.trades.last_id(symbol)
        channel = Channel(BINANCE, Kind.TRADE, symbol)
        if held is not None:
            return held
        if self.recorder is not None:
            return last_trade_id(self.recorder.newest(channel))
        if self.history_reader is not None:
            try:
                newest = self.history_reader.tail(channel.key, 1)
            except HistoryUnavailable as exc:
                log.warning("backfill: %s", exc)
                return None
            return last_trade_id(newest[-1].item) if newest else None
        return None

    def _restart_history(self, channel: Channel) -> None:
        """A trade gap that cannot be filled: the channel's history starts again with a new epoch."""
        if self.recorder is not None:
            self.recorder.restart(channel)
        elif self.cluster_bus is not None:
            try:
                self.cluster_bus.restart(channel.key)
            except ClusterUnavailable as exc:
                log.warning("backfill: %s", exc)

    def _publish_fetched(self, batch: StreamBatch) -> int:
        return self.fanout.publish(batch, from_stream=False)

    def on_event(self, connection: UpstreamConnection, event: str, detail: str = "") -> None:
        if event in ("reconnect", "stale"):
            tickers = [channel.market for channel in connection.channels() if channel.kind is Kind.TICKER]
            self.monitor.connection_down(tickers, stale=event == "stale")
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
                    "upstream %d (%s %s): %s (%s); further ones are only counted in %s", connection.index,
                    connection.exchange.name, connection.route, event, detail,
                    "websocket_streaming_upstream_events_total",
                )

    def on_pool_error(self) -> None:
        self.metrics.task_errors.labels(TaskName.UPSTREAM_POOL).inc()

    # -- symbols catalog --------------------------------------------------------------------------------------
    def _refresh_step(self, exchange: str) -> float:
        ok = self.refresh_catalog(exchange)
        return self.settings.symbols_refresh_interval if ok else self.settings.symbols_retry_interval

    def refresh_catalog(self, exchange: str = BINANCE) -> bool:
        """Reload an exchange's tradable symbols (Binance's exchangeInfo, Bybit's instruments); returns whether
        it worked."""
        rest = self.rests[exchange]
        try:
            symbols = rest.tradable_symbols()
        except (StreamingError, ProtocolError) as exc:
            log.warning("could not load the symbols of %s from %s: %s; retrying in %.0fs", exchange, rest.title,
                        exc, self.settings.symbols_retry_interval)
            return False
        if not symbols:
            log.warning("%s listed no trading USDT perpetuals; keeping the previous list", rest.title)
            return False
        catalog = self.catalogs[exchange]
        first_load = not catalog.loaded
        added, removed = catalog.replace(symbols, time.time())
        if first_load:
            log.info("loaded %d tradable USDT perpetual symbols of %s", len(symbols), exchange)
        elif added or removed:
            log.info("symbols of %s refreshed: %d added, %d removed", exchange, len(added), len(removed))
        if exchange == BINANCE:
            for symbol in self.settings.default_symbols:
                if symbol not in symbols:
                    log.warning("DEFAULT_SYMBOLS has %s, which is not a trading USDT perpetual", symbol)
        self.demand.drop_unknown(self.admission.clients())
        return True

    @property
    def catalog(self) -> SymbolCatalog:
        """Binance's catalog (the default exchange's)."""
        return self.catalogs[BINANCE]

    @property
    def rest(self) -> MarketRest:
        """Binance's REST client (the default exchange's)."""
        return self.rests[BINANCE]

    # -- views ------------------------------------------------------------------------------------------------
    def _emit_to_room(self, event: str, payload: dict, room: str, coalesce: bool = False) -> None:
        if self.ingest is not None:  # the stream monitor's notices: to the gateways, whose clients are in the room
            self.ingest.publisher.notice(event, payload, room)
            return
        self._count_deliveries(*self.broadcaster.emit(event, payload, room, coalesce))

    def _ticker_audience(self, market: str) -> int:
        """Who is told of a ticker stream's state: its subscribers here, or on an ingestor the gateways'."""
        exchange, symbol = split_market(market)
        channel = Channel(exchange, Kind.TICKER, symbol)
        if self.ingest is not None:
            return 1 if self.ingest.wants(channel) else 0
        return self.demand.subscriber_count(channel)

    def _count_deliveries(self, direct: int, queued: int) -> None:
        if direct:
            self._direct_deliveries.inc(direct)
        if queued:
            self._queued_deliveries.inc(queued)

    def active_channels(self) -> list[Channel]:
        """The channels the exchanges deliver to us now, on every route (a gateway: those it receives from the
        leader)."""
        if self.feed is not None:
            return sorted(filter(None, map(parse_channel_key, self.feed.channels())))
        return sorted(channel for pool in self.pools.values()
                      for channel in map(pool.exchange.channel_of_stream, pool.active_streams()) if channel)

    def wanted_channels(self) -> list[Channel]:
        return sorted(channel for pool in self.pools.values()
                      for channel in map(pool.exchange.channel_of_stream, pool.wanted_streams()) if channel)

    def upstream_statuses(self) -> list[UpstreamStatus]:
        return [status for pool in self.pools.values() for status in pool.statuses()]

    def is_streamed(self, channel: Channel) -> bool:
        if self.feed is not None:
            return channel.key in self.feed.channels()
        exchange = self.exchanges.get(channel.exchange)
        if exchange is None:
            return False
        pool = self.pools.get((channel.exchange, exchange.route_of(channel)))
        return pool is not None and exchange.stream_of(channel) in pool.active_streams()

    def _streamed_tickers(self) -> list[str]:
        """Markets whose ticker is streamed now (the monitor watches those)."""
        return [channel.market for channel in self.wanted_channels() if channel.kind is Kind.TICKER]

    def _streamed_symbol_subscriptions(self) -> dict[str, int]:
        """Subscriptions per market, for the markets streamed now only (a bounded set of metric labels)."""
        streamed = {channel.market for channel in self.active_channels()}
        return {market: count for market, count in self._subscriptions_by_symbol().items() if market in streamed}

    def _subscriptions_by_symbol(self) -> dict[str, int]:
        """Subscriptions per market (``BTCUSDT`` on Binance, ``bybit:BTCUSDT``)."""
        by_symbol: dict[str, int] = {}
        for channel, count in self.demand.counts().items():
            by_symbol[channel.market] = by_symbol.get(channel.market, 0) + count
        return dict(sorted(by_symbol.items()))

    def uptime_seconds(self) -> float:
        return time.time() - self.started_at

    def _node_state(self) -> dict[str, Any]:
        """This node's heartbeat in the cluster."""
        snapshot = self.snapshot()
        state: dict[str, Any] = {
            "role": self.role, "port": self.settings.port, "pid": os.getpid(), "started_at": round(self.started_at, 3),
            "connected_clients": snapshot["connected_clients"],
            "total_subscriptions": snapshot["total_subscriptions"], "channels": len(snapshot["active_channels"]),
        }
        if self.ingest is not None:
            election = self.ingest.election
            state["leader"] = election.lease_valid()
            state["term"] = election.term
            state["publish_queue"] = self.ingest.publisher.queued
        if self.feed is not None:
            state["pubsub_connected"] = self.feed.connected
        return state

    def cluster_view(self) -> dict[str, Any] | None:
        """The cluster as this node sees it (None: ROLE=all)."""
        if self.membership is None:
            return None
        return {"role": self.role, "node": self.node, **self.membership.view()}

    def snapshot(self) -> dict[str, Any]:
        """Counters shared by /health and /stats."""
        counts = self.demand.counts()
        channels = self.active_channels()
        return {
            "active_streams": len(channels),
            "active_symbols": sorted({channel.market for channel in channels}),
            "active_channels": [channel.key for channel in channels],
            "total_subscriptions": sum(counts.values()),
            "subscriptions_by_symbol": self._subscriptions_by_symbol(),
            "subscriptions_by_channel": {channel.key: counts[channel] for channel in sorted(counts)},
            "connected_clients": self.admission.count(),
        }
