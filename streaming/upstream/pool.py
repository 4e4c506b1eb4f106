"""UpstreamPool: owns the upstream connections of one exchange's route, places streams on them, paces control
messages, rotates.

An exchange serves each stream on one route (Binance's /market or /public, Bybit's /v5/public/linear) and a
connection carries one route's streams, so the service has one pool per (exchange, route). Streams become
wanted when their channel's first client subscribes (or they are defaults) and stop being wanted after a grace
period without subscribers.

Each wanted stream lives on one connection with room for it (Binance allows 1024 streams per connection; Bybit
limits the length of a connection's topics). One pool task sends the paced SUBSCRIBE / UNSUBSCRIBE requests and
pings, and replaces each connection before Binance's 24-hour limit: the successor subscribes the same streams,
takes over once it delivers, and only then is the old one closed (the fan-out drops the overlap's duplicates).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from config import Settings
from streaming.core.pacing import SlidingWindowBudget
from streaming.exchanges.adapter import Exchange
from streaming.runtime.tasks import PeriodicTask, TaskRunner
from streaming.upstream.connection import FrameTap, Timing, UpstreamConnection, UpstreamObserver, UpstreamStatus
from streaming.upstream.control import ControlChannel

__all__ = ["UpstreamPool", "CONNECTIONS_PER_WINDOW", "CONNECTION_WINDOW", "pool_for"]

log = logging.getLogger(__name__)

POOL_TICK = 0.1
# Binance: 300 new connections per 5 minutes per IP ("WebSocket Limits", documented for spot, assumed for
# futures). The service keeps a margin below it.
CONNECTIONS_PER_WINDOW = 250
CONNECTION_WINDOW = 300.0
# A successor that is fully subscribed takes over after this long even if its streams are quiet.
TAKEOVER_WITHOUT_DATA = 10.0


class UpstreamPool:
    """Stream placement, pacing and rotation across connections. Thread-safe; I/O happens in tasks."""

    def __init__(
        self,
        exchange: Exchange,
        base_url: str,
        tasks: TaskRunner,
        observer: UpstreamObserver,
        *,
        max_streams_per_connection: int,
        messages_per_second: float,
        timing: Timing,
        grace: float,
        max_age: float,
        route: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        tap: FrameTap | None = None,
    ) -> None:
        self.exchange = exchange
        self.route = exchange.routes[0] if route is None else route
        self._tap = tap  # every connection's text frames, as received (a recorder)
        self._base_url = base_url
        self._tasks = tasks
        self._observer = observer
        self._capacity = min(max_streams_per_connection, exchange.max_streams_per_connection)
        self._rate = messages_per_second
        self._timing = timing
        self._grace = grace
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._connections: list[UpstreamConnection] = []
        self._successors: dict[UpstreamConnection, tuple[UpstreamConnection, float]] = {}  # old -> (new, started)
        self._next_index = 0
        self._placement: dict[str, UpstreamConnection] = {}  # stream -> connection carrying it
        self._pinned: set[str] = set()  # always streamed (the tickers of DEFAULT_SYMBOLS)
        self._releases: dict[str, float] = {}  # stream -> when it stops being wanted
        self._budget = SlidingWindowBudget(CONNECTIONS_PER_WINDOW, CONNECTION_WINDOW, clock)
        self._budget_lock = threading.Lock()
        self._task = PeriodicTask(
            "upstream pool", tasks, self._round, POOL_TICK, lambda _name: observer.on_pool_error()
        )
        self._running = False

    # -- what is wanted ---------------------------------------------------------------------------------------
    def pin(self, streams: Iterable[str]) -> None:
        """Streams carried whatever the subscriptions (the defaults)."""
        for stream in streams:
            self._pinned.add(stream)
            self.want(stream)

    def want(self, stream: str) -> None:
        """Carry a stream (its channel's first subscriber arrived); cancels a pending release."""
        with self._lock:
            self._releases.pop(stream, None)
            if stream in self._placement:
                return
            connection = self._connection_with_room()
            with connection.lock:
                connection.channel.want(stream)
            self._placement[stream] = connection
        self._task.wake()

    def release(self, stream: str, grace: float | None = None) -> None:
        """Its last subscriber left: stop carrying it after the grace period (default: the pool's) unless it is
        pinned or wanted again."""
        if stream in self._pinned:
            return
        with self._lock:
            if stream in self._placement:
                self._releases[stream] = self._clock() + (self._grace if grace is None else grace)
        self._task.wake()

    def _new_connection(self) -> UpstreamConnection:
        connection = UpstreamConnection(
            self.exchange,
            self._next_index,
            self._base_url,
            ControlChannel(self._clock, self._rate, self.exchange.max_batch),
            self._observer,
            self._tasks,
            self._timing,
            self._connection_slot,
            self._clock,
            self.route,
            self._tap,
        )
        self._next_index += 1
        return connection

    def _connection_with_room(self) -> UpstreamConnection:
        for connection in self._connections:
            with connection.lock:
                if len(connection.channel.wanted) < self._capacity:
                    return connection
        connection = self._new_connection()
        self._connections.append(connection)
        if self._running:
            connection.start()
        return connection

    def _connection_slot(self) -> float:
        """0.0 and one new connection counted, or the seconds to wait for the budget."""
        with self._budget_lock:
            return 0.0 if self._budget.try_acquire() else max(0.1, self._budget.wait_time())

    def _expire_releases(self) -> None:
        now = self._clock()
        with self._lock:
            due = [stream for stream, at in self._releases.items() if at <= now]
            for stream in due:
                del self._releases[stream]
                connection = self._placement.pop(stream)
                with connection.lock:
                    connection.channel.unwant(stream)
        for stream in due:
            log.info("stream %s released: no subscribers for its grace period", stream)

    # -- rotation ---------------------------------------------------------------------------------------------
    def _rotate(self) -> None:
        """Start successors for connections near the age limit; hand over to the ready ones."""
        with self._lock:
            connections = list(self._connections)
        for old in connections:
            entry = self._successors.get(old)
            if entry is None:
                if old.age() >= self._max_age:
                    self._start_successor(old)
                continue
            successor, started = entry
            with old.lock:
                wanted = set(old.channel.wanted)
            with successor.lock:
                successor.channel.sync_wanted(wanted)
                subscribed = successor.channel.fully_active()
            ready = successor.state == "live" and subscribed and (
                successor.messages > 0 or self._clock() - started > TAKEOVER_WITHOUT_DATA
            )
            if ready:
                self._hand_over(old, successor)

    def _start_successor(self, old: UpstreamConnection) -> None:
        with self._lock:
            successor = self._new_connection()
        with old.lock:
            wanted = set(old.channel.wanted)
        with successor.lock:
            successor.channel.sync_wanted(wanted)
        self._successors[old] = (successor, self._clock())
        log.info("upstream %d: %.0fs old, opening successor %d", old.index, old.age(), successor.index)
        successor.start()

    def _hand_over(self, old: UpstreamConnection, successor: UpstreamConnection) -> None:
        with self._lock:
            self._connections[self._connections.index(old)] = successor
            for stream, connection in self._placement.items():
                if connection is old:
                    self._placement[stream] = successor
            del self._successors[old]
        log.info("upstream %d: successor %d took over; closing the old connection", old.index, successor.index)
        self._observer.on_event(successor, "rotated")
        self._tasks.start(old.stop)

    # -- views ------------------------------------------------------------------------------------------------
    def wanted_streams(self) -> list[str]:
        with self._lock:
            return sorted(self._placement)

    def _all_connections(self) -> list[UpstreamConnection]:
        with self._lock:
            return self._connections + [successor for successor, _ in self._successors.values()]

    def active_streams(self) -> list[str]:
        """Streams Binance currently delivers to us (acknowledged or opened with), sorted."""
        streams: set[str] = set()
        for connection in self._all_connections():
            with connection.lock:
                streams.update(connection.channel.active)
        return sorted(streams)

    def statuses(self) -> list[UpstreamStatus]:
        return [connection.status() for connection in self._all_connections()]

    # -- the pool task ----------------------------------------------------------------------------------------
    def start(self, connect_idle: bool = True) -> None:
        """Start the connections and the pool task; with ``connect_idle`` False a pool with nothing to carry
        opens its first connection only when a stream is wanted."""
        with self._lock:
            if not self._connections and connect_idle:
                self._connection_with_room()
            self._running = True  # from now on, new connections start as they are made
            connections = list(self._connections)
        for connection in connections:
            connection.start()
        self._task.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._task.stop(timeout)
        with self._lock:
            self._running = False
        connections = self._all_connections()
        for connection in connections:
            connection.request_stop()  # all at once: each closes cleanly within the receive poll
        for connection in connections:
            if not connection.stop(timeout):
                log.warning("upstream %d: reader did not stop within %.1fs", connection.index, timeout)

    def _round(self) -> float:
        """One pass of the pool task; returns how soon the next one is due."""
        self._expire_releases()
        self._rotate()
        wait = POOL_TICK
        for connection in self._all_connections():
            wait = min(wait, connection.maintain())
        return max(0.01, wait)


def pool_for(settings: Settings, exchange: Exchange, route: str, tasks: TaskRunner, observer: UpstreamObserver,
             tap: FrameTap | None = None) -> UpstreamPool:
    """The pool of one exchange's route as the settings describe it (the service's, and the recorder's)."""
    return UpstreamPool(
        exchange,
        settings.ws_url_of(exchange.name),
        tasks,
        observer,
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
        route=route,
        tap=tap,
    )
