"""Fanout: one tick -> the cache (the ordering gate), the stream monitor, the symbol's room, and metrics.

Per symbol, a tick not newer than the last one is dropped, so clients never see an update older than one
they already received (duplicates from overlapping connections included).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cache.writer import TickerCache
from metrics.collectors import ServiceMetrics
from streaming.core.symbols import room_for
from streaming.exchanges.binance.protocol import TickerBatch

__all__ = ["Fanout", "PRICE_UPDATE"]

PRICE_UPDATE = "price_update"

Emit = Callable[[str, dict, str], None]


class Fanout:
    def __init__(
        self,
        emit: Emit,
        audience: Callable[[str], int],
        cache: TickerCache,
        metrics: ServiceMetrics,
        on_tick: Callable[[str], None],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._emit = emit
        self._audience = audience
        self._cache = cache
        self._metrics = metrics
        self._on_tick = on_tick
        self._wall_clock = wall_clock
        # Held while a tick is cached and emitted, and while a client joins a room and gets the cached tick:
        # so each client sees every tick once, in order.
        self.lock = threading.Lock()

    def publish(self, batch: TickerBatch, from_stream: bool = True, received_at: float | None = None) -> int:
        """Emit every new tick of a batch to its room; returns how many were emitted.

        Ticks fetched over REST (``from_stream=False``) say nothing about the health of the stream.
        ``received_at`` (``time.perf_counter()`` when the frame was read) feeds the receipt-to-emit histogram."""
        emitted = 0
        for ticker in batch.tickers:
            with self.lock:
                if not self._cache.offer(ticker):
                    self._metrics.updates_dropped.inc()
                    continue
                if self._audience(ticker.symbol) > 0:
                    self._emit(PRICE_UPDATE, ticker.to_wire(), room_for(ticker.symbol))
                    emitted += 1
            if from_stream:
                self._on_tick(ticker.symbol)
        if emitted:
            self._metrics.updates_emitted.inc(emitted)
            latency = max(0.0, self._wall_clock() - batch.tickers[-1].event_time / 1000.0)
            self._metrics.emit_latency.observe(latency)
            if received_at is not None:
                self._metrics.receive_latency.observe(max(0.0, time.perf_counter() - received_at))
        return emitted
