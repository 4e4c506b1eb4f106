"""Slow consumers: bound each client's outgoing backlog by conflating it, and cut off clients that stay behind.

A client that reads slower than its updates arrive makes its Engine.IO send queue grow. Twice a second the
BacklogGuard looks at every queue: past CLIENT_BACKLOG_LIMIT packets it keeps only the newest update per symbol
of each conflating kind (``price_update``, ``book_ticker``; streaming/core/channels.py) and every other packet,
in order. A client is behind from its first conflation until a check finds its queue shorter than that
conflation left it (it read more than arrived meanwhile); one that stays behind for SLOW_CLIENT_TIMEOUT seconds
is disconnected. Trades never conflate: a client left with more than CLIENT_TRADE_BACKLOG_LIMIT packets, trades
among them, is disconnected at once, and its backlog is replaced by an ``error`` SLOW_CONSUMER that says how
many messages it missed, so nothing is dropped silently; so is a client cut off at SLOW_CLIENT_TIMEOUT with
trades in its backlog. The work is per client per check, never per tick, so
fast clients are not slowed down. ``conflate`` is pure; the guard reaches into python-engineio's sockets (their
``queue``).
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from queue import Empty
from typing import Any

from engineio import packet as eio_packet

from metrics.collectors import ServiceMetrics
from metrics.labels import TaskName
from streaming.core.channels import KINDS
from streaming.gateway.fastpath.transport import abort_connection
from streaming.runtime.tasks import PeriodicTask, TaskRunner

__all__ = ["conflation_key", "conflate", "is_trade", "BacklogGuard", "SLOW_CONSUMER"]

log = logging.getLogger(__name__)

CHECK_INTERVAL = 0.5
SLOW_CONSUMER = "SLOW_CONSUMER"
# A client cut off for its trades gets its error this long before its connection is shut down regardless.
ERROR_GRACE = 2.0
# A Socket.IO EVENT packet for the default namespace: 2["<event>",{...}]
_EVENT = re.compile(r'2\["([a-z_]{1,32})",')
_SYMBOL = re.compile(r'"symbol":"([A-Z0-9_]{1,32})"')
_CONFLATED = frozenset(policy.event for policy in KINDS.values() if policy.conflate)
_NEVER_DROPPED = frozenset(policy.event for policy in KINDS.values() if not policy.conflate)


def _event(item: Any) -> tuple[str, str] | None:
    """(event, packet text) of a queued Engine.IO packet carrying a Socket.IO event, else None."""
    data = getattr(item, "data", None)
    if isinstance(data, str):
        match = _EVENT.match(data)
        if match:
            return match.group(1), data
    return None


def conflation_key(item: Any) -> tuple[str, str] | None:
    """(event, symbol) of a queued packet whose older copies may be dropped (an update of a conflating kind)."""
    found = _event(item)
    if found is None or found[0] not in _CONFLATED:
        return None
    match = _SYMBOL.search(found[1], 0, 200)
    return (found[0], match.group(1)) if match else None


def is_trade(item: Any) -> bool:
    """Whether a queued packet carries an update of a kind that never conflates (a trade)."""
    found = _event(item)
    return found is not None and found[0] in _NEVER_DROPPED


def conflate(items: Iterable[Any], key_of: Callable[[Any], object | None] = conflation_key) -> list[Any]:
    """Keep every item but older updates of a (kind, symbol) that has a newer one, in their original order."""
    kept: list[Any] = []
    newest: dict[object, int] = {}
    for item in items:
        key = key_of(item)
        if key is not None:
            if key in newest:
                kept[newest[key]] = _DROPPED
            newest[key] = len(kept)
        kept.append(item)
    return [item for item in kept if item is not _DROPPED]


_DROPPED = object()


def error_packet(missed: int, limit: int) -> Any:
    """The Engine.IO packet of the ``error`` a client cut off for its trades gets."""
    payload = {"code": SLOW_CONSUMER, "missed": missed, "message": (
        f"disconnected: this client cannot keep up with its trades (more than {limit} messages queued for it; "
        f"the {missed} not yet sent are dropped, trades are never conflated); read faster, subscribe to fewer "
        "trade streams, or reconnect and fetch GET /trades/<SYMBOL> for what was missed")}
    return eio_packet.Packet(eio_packet.MESSAGE, data='2["error",' + json.dumps(payload, separators=(",", ":")) + "]")


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
        trade_limit: int = 2000,
    ) -> None:
        self._eio = engineio_server
        self._environ_of = environ_of
        self._limit = limit
        self._trade_limit = trade_limit
        self._closing: dict[str, float] = {}  # eio sid -> when to shut down a client told SLOW_CONSUMER
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

    def backlog(self, eio_sid: str) -> int | None:
        """Packets queued for a client now (None: it is gone); a sender that must not outrun it waits on this."""
        sock = self._eio.sockets.get(eio_sid)
        queue = getattr(sock, "queue", None)
        if sock is None or queue is None or sock.closed:
            return None
        return int(queue.qsize())

    def check(self) -> None:
        now = self._clock()
        sockets = dict(self._eio.sockets)
        for eio_sid in list(self._behind):
            if eio_sid not in sockets:
                del self._behind[eio_sid]
        for eio_sid, due in list(self._closing.items()):
            if eio_sid not in sockets:
                del self._closing[eio_sid]
            elif now >= due:  # its error did not go out within the grace: it does not read at all
                del self._closing[eio_sid]
                abort_connection(sockets[eio_sid], self._environ_of(eio_sid) or {})
        for eio_sid, sock in sockets.items():
            queue = getattr(sock, "queue", None)
            if queue is None or sock.closed:
                self._behind.pop(eio_sid, None)
                continue
            size = queue.qsize()
            behind = self._behind.get(eio_sid)
            if size > self._limit:
                left, trades = self._conflate(queue)
                if left > self._trade_limit and trades:
                    self._cut_off_for_trades(eio_sid, sock, now)
                    continue
                behind = self._behind[eio_sid] = Behind(behind.since if behind else now, left)
            elif behind is None:
                continue
            elif size < behind.left:  # it read more than arrived since the last conflation: caught up
                del self._behind[eio_sid]
                continue
            if now - behind.since >= self._timeout:
                if _holds_trades(queue):  # trades are never dropped without a word
                    self._cut_off_for_trades(eio_sid, sock, now)
                else:
                    self._cut_off(eio_sid, sock, queue.qsize())

    def _conflate(self, queue: Any) -> tuple[int, bool]:
        """Conflate a queue in place; returns how many packets are left in it, and whether trades are among them."""
        items = _drain(queue)
        kept = conflate(items)
        for item in kept:
            queue.put(item)
        self._metrics.slow_client_conflations.inc()
        self._metrics.slow_client_dropped_updates.inc(len(items) - len(kept))
        return len(kept), any(map(is_trade, kept))

    def _cut_off_for_trades(self, eio_sid: str, sock: Any, now: float) -> None:
        """Replace the backlog by the SLOW_CONSUMER error and close the connection after it; shut it down
        ERROR_GRACE later if the client does not even read that."""
        missed = len(_drain(sock.queue))
        log.warning("disconnecting a client that cannot keep up with its trades: %d messages behind", missed)
        self._metrics.slow_client_disconnects.inc()
        self._behind.pop(eio_sid, None)
        sock.queue.put(error_packet(missed, self._trade_limit))
        self._closing[eio_sid] = now + ERROR_GRACE
        sock.close(wait=False)  # queues the Engine.IO CLOSE after the error

    def _cut_off(self, eio_sid: str, sock: Any, backlog: int) -> None:
        log.warning("disconnecting a slow client: %d messages behind for %.0fs", backlog, self._timeout)
        self._metrics.slow_client_disconnects.inc()
        self._behind.pop(eio_sid, None)
        # its writer is blocked on a full TCP buffer: only shutting the socket down frees it
        abort_connection(sock, self._environ_of(eio_sid) or {})


def _drain(queue: Any) -> list[Any]:
    """Take everything out of a queue, in order."""
    items = []
    while True:
        try:
            items.append(queue.get_nowait())
        except Empty:
            return items
        queue.task_done()


def _holds_trades(queue: Any) -> bool:
    """Whether a queue holds a trade, by a look at its items (the eventlet, gevent and standard queues keep them
    in ``queue``, a deque); a queue that does not show them counts as holding some."""
    items = getattr(queue, "queue", None)
    return items is None or any(map(is_trade, list(items)))
