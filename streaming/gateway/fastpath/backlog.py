"""Slow consumers: bound each client's outgoing backlog by conflating it, and cut off clients that stay behind.

A client that reads slower than its updates arrive makes its Engine.IO send queue grow. Twice a second the
BacklogGuard looks at every queue: past CLIENT_BACKLOG_LIMIT packets it keeps only the newest price_update per
symbol (and every other packet, in order). A client is behind from its first conflation until a check finds
its queue shorter than that conflation left it (it read more than arrived meanwhile); one that stays behind for
SLOW_CLIENT_TIMEOUT seconds is disconnected. The work is per client per check, never per tick, so fast clients
are not slowed down. ``conflate`` is pure; the guard reaches into python-engineio's sockets (their ``queue``).
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from queue import Empty
from typing import Any

from metrics.collectors import ServiceMetrics
from metrics.labels import TaskName
from streaming.gateway.fastpath.transport import abort_connection
from streaming.runtime.tasks import PeriodicTask, TaskRunner

__all__ = ["conflate", "price_symbol", "BacklogGuard"]

log = logging.getLogger(__name__)

CHECK_INTERVAL = 0.5
_PRICE_UPDATE = '2["price_update",'  # a Socket.IO EVENT packet for the default namespace
_SYMBOL = re.compile(r'"symbol":"([A-Z0-9_]{1,32})"')


def price_symbol(item: Any) -> str | None:
    """The symbol of a queued Engine.IO packet carrying a price_update, else None."""
    data = getattr(item, "data", None)
    if isinstance(data, str) and data.startswith(_PRICE_UPDATE):
        match = _SYMBOL.search(data, 0, 200)
        return match.group(1) if match else None
    return None


def conflate(items: Iterable[Any], symbol_of: Callable[[Any], str | None] = price_symbol) -> list[Any]:
    """Keep every item but older price updates of a symbol that has a newer one, in their original order."""
    kept: list[Any] = []
    newest: dict[str, int] = {}
    for item in items:
        symbol = symbol_of(item)
        if symbol is not None:
            if symbol in newest:
                kept[newest[symbol]] = _DROPPED
            newest[symbol] = len(kept)
        kept.append(item)
    return [item for item in kept if item is not _DROPPED]


_DROPPED = object()


@dataclass
class Behind:
    """A client that fell behind: since when, and how many packets its last conflation left queued."""

    since: float
    left: int


class BacklogGuard:
    def __init__(
        self,
        engineio_server: Any,
        environ_of: Callable[[str], dict | None],
        limit: int,
        timeout: float,
        metrics: ServiceMetrics,
        tasks: TaskRunner,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._eio = engineio_server
        self._environ_of = environ_of
        self._limit = limit
        self._timeout = timeout
        self._metrics = metrics
        self._clock = clock
        self._behind: dict[str, Behind] = {}  # eio sid -> the clients behind now
        self._task = PeriodicTask(
            TaskName.BACKLOG_GUARD, tasks, self.check, CHECK_INTERVAL,
            lambda name: metrics.task_errors.labels(name).inc(),
        )

    def start(self) -> None:
        self._task.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._task.stop(timeout)

    def check(self) -> None:
        now = self._clock()
        sockets = dict(self._eio.sockets)
        for eio_sid in list(self._behind):
            if eio_sid not in sockets:
                del self._behind[eio_sid]
        for eio_sid, sock in sockets.items():
            queue = getattr(sock, "queue", None)
            if queue is None or sock.closed:
                self._behind.pop(eio_sid, None)
                continue
            size = queue.qsize()
            behind = self._behind.get(eio_sid)
            if size > self._limit:
                left = self._conflate(queue)
                behind = self._behind[eio_sid] = Behind(behind.since if behind else now, left)
            elif behind is None:
                continue
            elif size < behind.left:  # it read more than arrived since the last conflation: caught up
                del self._behind[eio_sid]
                continue
            if now - behind.since >= self._timeout:
                self._cut_off(eio_sid, sock, queue.qsize())

    def _conflate(self, queue: Any) -> int:
        """Conflate a queue in place; returns how many packets are left in it."""
        items = []
        while True:
            try:
                items.append(queue.get_nowait())
            except Empty:
                break
            queue.task_done()
        kept = conflate(items)
        for item in kept:
            queue.put(item)
        self._metrics.slow_client_conflations.inc()
        self._metrics.slow_client_dropped_updates.inc(len(items) - len(kept))
        return len(kept)

    def _cut_off(self, eio_sid: str, sock: Any, backlog: int) -> None:
        log.warning("disconnecting a slow client: %d messages behind for %.0fs", backlog, self._timeout)
        self._metrics.slow_client_disconnects.inc()
        self._behind.pop(eio_sid, None)
        # its writer is blocked on a full TCP buffer: only shutting the socket down frees it
        abort_connection(sock, self._environ_of(eio_sid) or {})
