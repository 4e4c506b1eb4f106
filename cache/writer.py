"""TickerCache: the latest tick per symbol, in memory at once and in Redis in coalesced batches.

``offer`` never blocks and never does I/O, so the fan-out never waits on Redis. A background task writes the
newest pending tick of each symbol in one pipeline per flush. When Redis fails, the cache keeps serving from
memory, retries Redis on its own, and rewrites the latest ticks once it is back.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from cache.store import CacheUnavailable, RedisStore
from metrics.collectors import ServiceMetrics
from metrics.labels import CacheOperation, CacheResult, TaskName
from streaming.core.models import Ticker
from streaming.hub.stores import LatestStore
from streaming.runtime.tasks import PeriodicTask, TaskRunner

__all__ = ["TickerCache", "CacheStatus"]

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.1
REDIS_RETRY_INTERVAL = 2.0


class CacheStatus:
    CONNECTED = "connected"
    MEMORY = "memory"  # Redis configured but not answering: serving from memory
    DISABLED = "disabled"  # REDIS_ENABLED=false


class TickerCache:
    def __init__(
        self,
        store: RedisStore | None,
        tasks: TaskRunner,
        metrics: ServiceMetrics,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._latest: LatestStore[Ticker] = LatestStore(wall_clock)  # the ordering gate of tickers
        self._pending: dict[str, Ticker] = {}
        self._redis_up = False
        self._redis_error = "not connected yet"
        self._reported_down = False
        self._next_retry = 0.0
        self._last_contact = 0.0
        self._task = PeriodicTask(
            TaskName.CACHE_WRITER, tasks, self._round, FLUSH_INTERVAL,
            lambda name: metrics.task_errors.labels(name).inc(),
        )

    # -- writes -----------------------------------------------------------------------------------------------
    def offer(self, ticker: Ticker) -> bool:
        """Record a tick if it is newer than the one held; returns whether it was newer. No I/O."""
        if not self._latest.offer(ticker):
            return False
        if self._store is not None:
            with self._lock:
                pending = self._pending.get(ticker.market)
                if pending is None or ticker.newer_than(pending):
                    self._pending[ticker.market] = ticker
        return True

    # -- reads ------------------------------------------------------------------------------------------------
    def latest(self, market: str, max_age: float | None = None) -> Ticker | None:
        """The newest known tick of a market (``channels.market_of``: memory, then Redis), or None; with
        ``max_age`` only a fresh one."""
        ticker = self._latest.peek(market)
        if ticker is None and self._store is not None and self._redis_up:
            try:
                ticker = self._store.get(market)
            except CacheUnavailable as exc:
                self._mark_down(exc, CacheOperation.GET)
            if ticker is not None:
                self.offer(ticker)
        if ticker is not None and max_age is not None and self.age(ticker) > max_age:
            self._metrics.cache_lookups.labels(CacheResult.STALE).inc()
            return None
        self._metrics.cache_lookups.labels(CacheResult.HIT if ticker is not None else CacheResult.MISS).inc()
        return ticker

    def peek(self, market: str, max_age: float) -> Ticker | None:
        """The tick held in memory, if fresh. No I/O, no metrics: safe on the hot path."""
        return self._latest.peek(market, max_age)

    def age(self, ticker: Ticker) -> float:
        """Seconds since the tick's event time (by this machine's clock)."""
        return self._latest.age(ticker)

    def status(self) -> tuple[str, str]:
        """``(state, message)`` for /health."""
        if self._store is None:
            return CacheStatus.DISABLED, "Redis disabled (REDIS_ENABLED=false); serving from memory"
        if self._redis_up:
            return CacheStatus.CONNECTED, f"Redis at {self._store.address} connected"
        return (
            CacheStatus.MEMORY,
            f"Redis at {self._store.address} unavailable ({self._redis_error}); serving from memory, retrying",
        )

    # -- the writer task --------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._store is None:
            return
        self._try_connect()
        self._task.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the writer after a last flush."""
        if self._store is None:
            return
        if self._task.stop(timeout):
            self._round()
        self._store.close()

    def _round(self) -> None:
        if not self._redis_up:
            if self._monotonic() >= self._next_retry and self._try_connect():
                latest = self._latest.values()
                with self._lock:  # rewrite what Redis missed while it was away
                    for ticker in latest:
                        self._pending.setdefault(ticker.symbol, ticker)
            else:
                return
        if not self.flush() and self._monotonic() - self._last_contact >= REDIS_RETRY_INTERVAL:
            self._try_connect()  # idle: a ping notices an outage as soon as a write would

    def flush(self) -> int:
        """Write the pending ticks to Redis in one pipeline; returns how many were written."""
        if self._store is None or not self._redis_up:
            return 0
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            written = self._store.put_many(batch.values())
        except CacheUnavailable as exc:
            with self._lock:
                for symbol, ticker in batch.items():
                    self._pending.setdefault(symbol, ticker)
            self._mark_down(exc, CacheOperation.WRITE)
            return 0
        self._metrics.cache_writes.inc(written)
        self._last_contact = self._monotonic()
        return written

    def _try_connect(self) -> bool:
        assert self._store is not None
        try:
            self._store.ping()
        except CacheUnavailable as exc:
            self._mark_down(exc, CacheOperation.PING)
            return False
        if not self._redis_up:
            log.info("cache: Redis at %s connected", self._store.address)
        self._redis_up = True
        self._reported_down = False
        self._last_contact = self._monotonic()
        return True

    def _mark_down(self, exc: Exception, operation: CacheOperation) -> None:
        self._metrics.cache_errors.labels(operation).inc()
        self._next_retry = self._monotonic() + REDIS_RETRY_INTERVAL
        self._redis_error = str(exc).split(": ", 1)[-1][:200]
        if self._redis_up or not self._reported_down:  # one line per outage, not per retry
            log.warning("cache: %s; serving from memory and retrying every %.0fs", exc, REDIS_RETRY_INTERVAL)
        self._reported_down = True
        self._redis_up = False
