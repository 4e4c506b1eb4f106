"""Demand: which client holds which channels, their rooms, what a new subscriber gets first, and which streams
are asked for.

A channel's first subscriber makes its stream wanted (streaming/hub/sources.py: ``Supply``: the upstream pools,
or a gateway's feed); its last one leaving releases it there, after the grace period. A client joins a room and
gets its missed updates or the latest fresh update of a state kind (ticker, book) from the ``Source`` under the
fan-out's lock, so it gets each update exactly once and in order, whether from there or from the stream.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cache.writer import TickerCache
from metrics.collectors import ServiceMetrics
from metrics.labels import RecoveryResult, RejectedCode
from streaming.core.channels import BINANCE, KINDS, Channel, Kind, market_of
from streaming.core.errors import TooManySymbolsError, UnknownSymbolError
from streaming.core.history import Position, Recovery
from streaming.core.subscriptions import SubscriptionRegistry
from streaming.core.symbols import SymbolRequest
from streaming.exchanges.catalog import SymbolCatalog
from streaming.hub.fanout import Fanout
from streaming.hub.lookups import Lookups
from streaming.hub.monitor import STREAM_STATUS, StreamMonitor
from streaming.hub.sources import Source, Supply

__all__ = ["Demand", "Joined", "SubscribeOutcome", "channels_of"]

NAMESPACE = "/"


Confirm = Callable[[dict[str, Position], dict[str, bool]], None]  # (positions, recovered) by channel key


@dataclass
class Joined:
    """What a join did, by channel key: the position of each channel joined, whether each channel of ``since``
    was recovered, and why not."""

    positions: dict[str, Position] = field(default_factory=dict)
    recovered: dict[str, bool] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass
class SubscribeOutcome:
    """What a subscribe/unsubscribe did: symbols served, and rejected ones grouped by error code."""

    symbols: list[str] = field(default_factory=list)
    rejected: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # code -> [(item, reason)]

    def reject(self, code: str, item: str, reason: str) -> None:
        self.rejected.setdefault(code, []).append((item, reason))


def channels_of(symbols: Iterable[str], kinds: Iterable[Kind], exchange: str = BINANCE) -> list[Channel]:
    """Every (kind, symbol) channel of these symbols on one exchange, symbol by symbol."""
    kinds = tuple(kinds)
    return [Channel(exchange, kind, symbol) for symbol in symbols for kind in kinds]


class Demand:
    def __init__(
        self,
        server: Any,  # python-socketio's Server: enter_room / leave_room
        emit: Callable[..., Any],  # SocketIO.emit
        fanout: Fanout,
        cache: TickerCache,
        source: Source,
        monitor: StreamMonitor,
        catalogs: Mapping[str, SymbolCatalog],  # by exchange: the enabled ones
        supply: Supply,
        lookups: Lookups,
        metrics: ServiceMetrics,
        *,
        max_symbols_per_client: int,
        recovery_grace: float | None = None,
    ) -> None:
        self.registry: SubscriptionRegistry[Channel] = SubscriptionRegistry()
        self._server = server
        self._emit = emit
        self._fanout = fanout
        self._cache = cache
        self._source = source
        self._monitor = monitor
        self._catalogs = catalogs
        self._supply = supply
        self._lookups = lookups
        self._metrics = metrics
        self._max_symbols = max_symbols_per_client
        self._recovery_grace = recovery_grace  # None: the supply's own grace
        self._lock = threading.Lock()  # the registry

    # -- subscribe --------------------------------------------------------------------------------------------
    def check(self, sid: str, request: SymbolRequest, exchange: str = BINANCE) -> SubscribeOutcome:
        """Which symbols of a subscribe request on one exchange can be served, and why the others cannot.
        Changes nothing.

        MAX_SYMBOLS_PER_CLIENT counts symbols of every exchange (BTCUSDT on two exchanges is two), whatever
        streams of them a client holds."""
        outcome = self.outcome_for(request)
        held = self.markets_of(sid)
        room = self._max_symbols - len(held)
        catalog = self._catalogs[exchange]
        for symbol in request.symbols:
            new = market_of(exchange, symbol) not in held
            if new and room <= 0:
                outcome.reject(TooManySymbolsError.code, symbol,
                               f"a client may hold at most {self._max_symbols} symbols; unsubscribe some first")
                self._metrics.rejected_inputs.labels(TooManySymbolsError.code).inc()
                continue
            try:
                catalog.check(symbol)
            except UnknownSymbolError as exc:
                outcome.reject(exc.code, symbol, str(exc))
                self._metrics.rejected_inputs.labels(exc.code).inc()
                continue
            outcome.symbols.append(symbol)
            if new:
                room -= 1
        return outcome

    def join(self, sid: str, symbols: Sequence[str], kinds: Sequence[Kind],
             since: Mapping[Channel, Position] | None = None, confirm: Confirm | None = None,
             exchange: str = BINANCE) -> Joined:
        """Subscribe a client to these streams of checked symbols, and send it, in this order and under the
        fan-out's lock (so nothing is missed or repeated at the seam with live updates):
        ``confirm(positions, recovered)`` (the ``subscribed`` answer); for each channel in ``since`` that can be
        recovered, every update it missed (``recovered: true``); for every other state channel, its latest fresh
        update. Then the ticker streams' states. Symbols without a fresh ticker get one from Binance REST in the
        background, so a new subscriber does not wait for the next stream tick.

        A client that is gone (or going: its disconnect is being handled) joins nothing and gets no answer. Its
        subscribe was read while it was connected, and its handler ran later (a reconnect storm queues thousands):
        joining rooms it has left would fail, and holding channels for it would never end."""
        if not self.connected(sid):
            return Joined()
        since = since or {}
        channels = channels_of(symbols, kinds, exchange)
        markets = [market_of(exchange, symbol) for symbol in symbols]
        self._supply.prepare(channels)
        if Kind.TICKER in kinds:
            for market in markets:
                self._cache.latest(market)  # outside the lock: brings a Redis-only tick into memory
        cold = []
        joined = Joined()
        with self._fanout.lock:
            recoveries = self._plan(channels, since, joined)  # may wait for Redis: the client may have left
            if not self.connected(sid):
                return Joined()
            if confirm is not None:
                confirm(joined.positions, joined.recovered)
            for channel in channels:
                self._fanout.settle(channel.room)  # what waits for the room's window is not this client's
                self._server.enter_room(sid, channel.room, namespace=NAMESPACE)
            with self._lock:
                _, first = self.registry.add(sid, channels)
            for channel in channels:
                recovery = recoveries.get(channel)
                if recovery is not None:
                    self._metrics.recovered_updates.inc(self._source.send_recovered(sid, channel, recovery))
                    continue
                if not channel.policy.snapshot or self._source.send_snapshot(sid, channel):
                    continue
                if (channel.kind is Kind.TICKER and self._source.cold_fallback
                        and self._catalogs[exchange].is_known(channel.symbol)):
                    cold.append(channel.symbol)
        if Kind.TICKER in kinds:
            for status in self._monitor.status_of(markets):
                self._emit(STREAM_STATUS, status, to=sid)
        for channel in first:
            self._supply.want(channel)
        if cold:
            self._lookups.warm_up(exchange, cold)
        return joined

    def connected(self, sid: str) -> bool:
        """Whether the client is connected, and not being disconnected."""
        return bool(self._server.manager.is_connected(sid, NAMESPACE))

    def _plan(self, channels: Sequence[Channel], since: Mapping[Channel, Position], joined: Joined
              ) -> dict[Channel, Recovery[str]]:
        """Each channel's position, and the recoveries that can be sent: in the request's order while they
        fit in one recovery's budget (RECOVERY_MAX_UPDATES); the fan-out's lock is held."""
        recoveries: dict[Channel, Recovery[str]] = {}
        budget = self._source.recovery_limit
        for channel in channels:
            current = self._source.position(channel)
            if current is None:  # history off
                continue
            joined.positions[channel.key] = current
            position = since.get(channel)
            if position is None:
                continue
            recovery = self._source.recover(channel, position, budget)
            joined.recovered[channel.key] = recovery.recovered
            self._metrics.recoveries.labels(
                RecoveryResult.RECOVERED if recovery.recovered else RecoveryResult.SNAPSHOT).inc()
            if recovery.recovered:
                recoveries[channel] = recovery
                budget -= len(recovery.entries)
            else:
                joined.reasons[channel.key] = recovery.reason
        return recoveries

    # -- unsubscribe ------------------------------------------------------------------------------------------
    def leave(self, sid: str, request: SymbolRequest, kinds: Sequence[Kind], exchange: str = BINANCE
              ) -> SubscribeOutcome:
        """Unsubscribe a client from these streams of these symbols of one exchange; ``symbols`` of the outcome
        are those of which it held at least one of them."""
        outcome = self.outcome_for(request)
        with self._lock:
            removed, last = self.registry.remove(sid, channels_of(request.symbols, kinds, exchange))
        for channel in removed:
            self._server.leave_room(sid, channel.room, namespace=NAMESPACE)
        self._release(last)
        left = {channel.symbol for channel in removed}
        outcome.symbols = [symbol for symbol in request.symbols if symbol in left]
        return outcome

    def drop(self, sid: str) -> None:
        """A client disconnected: forget it (python-socketio forgets its rooms). Its channels keep streaming, and
        being recorded, for RECOVERY_GRACE, so that it can come back and recover what it missed."""
        with self._lock:
            last = self.registry.drop(sid)
        self._release(last, self._recovery_grace)

    def _release(self, channels: Iterable[Channel], grace: float | None = None) -> None:
        for channel in channels:
            self._supply.release(channel, grace)

    def drop_unknown(self, clients: Iterable[str]) -> None:
        """Remove subscriptions accepted before the catalog was loaded (or since delisted), telling clients."""
        every = tuple(KINDS)
        for exchange, symbol in sorted({(channel.exchange, channel.symbol) for channel in self.registry.keys()}):
            try:
                self._catalogs[exchange].check(symbol)
            except UnknownSymbolError as exc:
                market = market_of(exchange, symbol)
                for sid in [sid for sid in clients if market in self.markets_of(sid)]:
                    self.leave(sid, SymbolRequest((symbol,), ()), every, exchange)
                    self._emit("error", {"code": exc.code, "message": str(exc), "event": "subscribe",
                                         "symbols": [symbol], "exchange": exchange}, to=sid)

    def outcome_for(self, request: SymbolRequest) -> SubscribeOutcome:
        """An outcome with the request's malformed items already rejected (and counted)."""
        outcome = SubscribeOutcome()
        for item, reason in request.rejected:
            outcome.reject(RejectedCode.INVALID_SYMBOL, item, reason)
        for code, items in outcome.rejected.items():
            self._metrics.rejected_inputs.labels(code).inc(len(items))
        return outcome

    # -- views ------------------------------------------------------------------------------------------------
    def subscriber_count(self, channel: Channel) -> int:
        return self.registry.subscriber_count(channel)

    def markets_of(self, sid: str) -> frozenset[str]:
        """The client's symbols, each on its exchange (``channels.market_of``)."""
        return frozenset(channel.market for channel in self.registry.of(sid))

    def counts(self) -> dict[Channel, int]:
        with self._lock:
            return self.registry.counts()

    def total(self) -> int:
        with self._lock:
            return self.registry.total_subscriptions()
