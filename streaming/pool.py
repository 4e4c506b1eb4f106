"""UpstreamPool: owns every upstream connection, places streams on them, and paces control messages.

Symbols become wanted when their first client subscribes (or they are defaults) and stop being wanted after a
grace period without subscribers. Each wanted stream lives on one connection with room for it (Binance allows
1024 streams per connection); one pool task sends the paced SUBSCRIBE / UNSUBSCRIBE requests.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable

from streaming.binance import TickerBatch, stream_name
from streaming.control import ControlChannel
from streaming.upstream import TaskRunner, UpstreamConnection, UpstreamObserver, UpstreamStatus

__all__ = ["UpstreamPool"]

log = logging.getLogger(__name__)

POOL_TICK = 0.1


class UpstreamPool:
    """Stream placement and pacing across connections. Thread-safe; I/O happens in the connections' tasks."""

    def __init__(
        self,
        base_url: str,
        tasks: TaskRunner,
        observer: UpstreamObserver,
        *,
        max_streams_per_connection: int,
        messages_per_second: float,
        reconnect_delay: float,
        stale_timeout: float,
        grace: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_url = base_url
        self._tasks = tasks
        self._observer = observer
        self._capacity = max_streams_per_connection
        self._rate = messages_per_second
        self._reconnect_delay = reconnect_delay
        self._stale_timeout = stale_timeout
        self._grace = grace
        self._clock = clock
        self._lock = threading.Lock()
        self._connections: list[UpstreamConnection] = []
        self._placement: dict[str, UpstreamConnection] = {}  # symbol -> connection carrying it
        self._pinned: set[str] = set()  # always streamed (DEFAULT_SYMBOLS)
        self._releases: dict[str, float] = {}  # symbol -> when it stops being wanted
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._done = threading.Event()
        self._running = False

    # -- what is wanted ---------------------------------------------------------------------------------------
    def pin(self, symbols: Iterable[str]) -> None:
        """Symbols streamed whatever the subscriptions (the defaults)."""
        for symbol in symbols:
            self._pinned.add(symbol)
            self.want(symbol)

    def want(self, symbol: str) -> None:
        """Stream a symbol (its first subscriber arrived); cancels a pending release."""
        with self._lock:
            self._releases.pop(symbol, None)
            if symbol in self._placement:
                return
            connection = self._connection_with_room()
            with connection.lock:
                connection.channel.want(stream_name(symbol))
            self._placement[symbol] = connection
        self._wake.set()

    def release(self, symbol: str) -> None:
        """Its last subscriber left: stop streaming after the grace period unless it is pinned or wanted again."""
        if symbol in self._pinned:
            return
        with self._lock:
            if symbol in self._placement:
                self._releases[symbol] = self._clock() + self._grace
        self._wake.set()

    def _connection_with_room(self) -> UpstreamConnection:
        for connection in self._connections:
            with connection.lock:
                if len(connection.channel.wanted) < self._capacity:
                    return connection
        connection = UpstreamConnection(
            len(self._connections),
            self._base_url,
            ControlChannel(self._clock, self._rate),
            self._observer,
            self._tasks,
            self._reconnect_delay,
            self._stale_timeout,
            self._clock,
        )
        self._connections.append(connection)
        if self._running:
            connection.start()
        return connection

    def _expire_releases(self) -> None:
        now = self._clock()
        with self._lock:
            due = [symbol for symbol, at in self._releases.items() if at <= now]
            for symbol in due:
                del self._releases[symbol]
                connection = self._placement.pop(symbol)
                with connection.lock:
                    connection.channel.unwant(stream_name(symbol))
        for symbol in due:
            log.info("stream %s released: no subscribers for %.1fs", symbol, self._grace)

    # -- views ------------------------------------------------------------------------------------------------
    def wanted_symbols(self) -> list[str]:
        with self._lock:
            return sorted(self._placement)

    def active_streams(self) -> list[str]:
        """Streams Binance currently delivers to us (acknowledged or opened with), sorted."""
        streams: set[str] = set()
        for connection in list(self._connections):
            with connection.lock:
                streams.update(connection.channel.active)
        return sorted(streams)

    def statuses(self) -> list[UpstreamStatus]:
        return [connection.status() for connection in list(self._connections)]

    # -- the pool task ----------------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if not self._connections:
                self._connection_with_room()
            self._running = True  # from now on, new connections start as they are made
            connections = list(self._connections)
        for connection in connections:
            connection.start()
        self._stop.clear()
        self._done.clear()
        self._tasks.start(self._run)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            self._running = False
            connections = list(self._connections)
        for connection in connections:
            if not connection.stop(timeout):
                log.warning("upstream %d: reader did not stop within %.1fs", connection.index, timeout)
        self._done.wait(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                wait = POOL_TICK
                try:
                    self._expire_releases()
                    for connection in list(self._connections):
                        wait = min(wait, connection.send_due_requests())
                except Exception:  # keep pacing whatever one round did; the log has the traceback
                    log.exception("upstream pool round failed; continuing")
                    self._observer.on_pool_error()
                self._wake.wait(max(0.01, wait))
                self._wake.clear()
        finally:
            self._done.set()
