"""A WebSocket client's queue written out on demand, instead of by a green thread parked per client.

python-engineio starts a writer task for every WebSocket: a green thread that waits on the client's send queue
for the connection's whole life. With the fan-out writing most frames directly (see
streaming.gateway.fastpath.outlets), that thread mostly sits idle, holding its stack (about 10 KB per client).
OnDemandWriter stands in for it: the client's queue wakes it on every put, and a short-lived green thread sends
what is queued, in order, through the same WebSocket object (where it has ``send_many``, up to
MESSAGES_PER_WRITE messages in one socket write), then ends. As python-engineio's writer does, it closes the
WebSocket when it reads the end-of-connection marker (None) or a send fails, and ``join`` waits for that.

Where the WebSocket can ``offer`` (the fast path's, see streaming.gateway.fastpath.wsproto_socket), a packet put
while nothing is queued or being written for the client goes straight into its socket, if the socket takes it
without waiting: no green thread at all, and no wait for one's turn. What was queued before the writer starts
(Engine.IO's OPEN packet) is offered the same way at the start. A deploy's reconnecting clients get their
connect answers, their ``subscribed`` and their acknowledgements that way, so their live updates are not queued
behind a writer that a loop busy with thousands of handshakes runs seconds later. The end marker goes the same
way where the WebSocket can ``offer_close``: a deploy's shutdown closes thousands of idle clients at once.

Only for clients that connected with the WebSocket transport directly: during an upgrade from long-polling a
polling request may still be waiting on the same queue.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from queue import Empty
from typing import Any

__all__ = ["MESSAGES_PER_WRITE", "OnDemandWriter", "waking_queue"]

log = logging.getLogger(__name__)

# the most queued messages sent in one socket write (a backlog goes out in writes of at most this many)
MESSAGES_PER_WRITE = 64

_waking_classes: dict[type, type] = {}


def waking_queue(queue: Any, wake: Callable[[], None], offer: Callable[[Any], bool] | None = None,
                 backlog: Callable[[list[Any]], bool] | None = None) -> Any:
    """A queue of the same class as ``queue`` with its items, that calls ``wake()`` after every put. With
    ``offer``, a put first offers its item (the end marker, None, too) there: True means it was taken care of,
    and it is not queued. With ``backlog``, the items ``queue`` held are offered there first, all together:
    True means they were taken care of, and the new queue starts empty."""
    base = type(queue)
    cls = _waking_classes.get(base)
    if cls is None:

        def put(self: Any, item: Any, block: bool = True, timeout: float | None = None) -> None:
            if self.offer is not None and self.offer(item):
                return
            base.put(self, item, block, timeout)
            self.wake()

        cls = type(f"Waking{base.__name__}", (base,), {"put": put, "wake": staticmethod(lambda: None),
                                                       "offer": None})
        _waking_classes[base] = cls
    waking = cls()
    items = []
    while True:
        try:
            items.append(queue.get_nowait())
        except Empty:
            break
        queue.task_done()
    if not (items and backlog is not None and backlog(items)):
        for item in items:
            base.put(waking, item)
    waking.wake = wake
    waking.offer = offer
    return waking


class OnDemandWriter:
    """python-engineio's writer task for one WebSocket (``start``/``join``), run only when there is output."""

    def __init__(self, sock: Any, ws: Any, spawn: Callable[[Callable[[], None]], object]) -> None:
        self._sock = sock  # the engineio.socket.Socket
        self._ws = ws
        self._spawn = spawn
        self._running = False
        self._finished = False
        self._done: Any = None  # an Event, made only if somebody waits before the end (saves memory per client)
        self._direct: Any = None  # the WebSocket's offer, if it has one

    def start(self) -> None:
        direct = getattr(self._ws, "offer", None)
        self._direct = direct
        self._sock.queue = waking_queue(self._sock.queue, self._wake, self._offer if direct is not None else None,
                                        self._offer_backlog if direct is not None else None)
        if self._sock.queue.qsize():
            self._wake()

    def _offer_backlog(self, packets: list[Any]) -> bool:
        """What was queued before the start (Engine.IO's OPEN packet, the connect answer), sent now in one write
        if the socket takes it without waiting: in a burst of reconnections the answer is not left to a green
        thread that runs only after every other handshake the server has accepted. False: it stays queued."""
        if None in packets or len(packets) > MESSAGES_PER_WRITE:
            return False
        return self._direct(tuple(pkt.encode() for pkt in packets))

    def join(self, timeout: float | None = None) -> None:
        if not self._finished:
            if self._done is None:
                self._done = threading.Event()  # green under monkey patching
            self._done.wait(timeout)

    def _offer(self, pkt: Any) -> bool:
        """Send one packet now, past the queue, if nothing is queued or being written for this client and its
        socket takes it without waiting; for the end marker (None), close the WebSocket that way. False: it is
        queued (and the writer woken)."""
        if self._running or self._finished or self._sock.queue.qsize():
            return False
        if pkt is None:
            offer_close = getattr(self._ws, "offer_close", None)
            if offer_close is None or not offer_close():
                return False
            self._over()
            return True
        return self._direct((pkt.encode(),))

    def _wake(self) -> None:
        if not self._running and not self._finished:
            self._running = True
            self._spawn(self._drain)

    def _drain(self) -> None:
        queue = self._sock.queue
        send_many = getattr(self._ws, "send_many", None)  # the fast path's WebSockets: several in one write
        try:
            while True:
                messages: list[str | bytes] = []
                end = False
                while len(messages) < (MESSAGES_PER_WRITE if send_many is not None else 1):
                    try:
                        pkt = queue.get_nowait()
                    except Empty:
                        break
                    queue.task_done()
                    if pkt is None:
                        end = True
                        break
                    messages.append(pkt.encode())
                if messages:
                    try:
                        if send_many is not None:
                            send_many(messages)
                        else:
                            self._ws.send(messages[0])
                    except Exception:  # noqa: BLE001 - as python-engineio's writer: a failed send ends the connection
                        end = True
                if end:
                    self._finish()
                    return
                if not messages:
                    return
        finally:
            self._running = False

    def _finish(self) -> None:
        try:
            self._ws.close()
        except Exception as exc:  # noqa: BLE001 - the connection is over either way
            log.debug("closing a WebSocket: %s", exc)
        self._over()

    def _over(self) -> None:
        self._finished = True
        if self._done is not None:
            self._done.set()
