"""The write side of one client's WebSocket, shared by python-engineio's writer and the fan-out's direct writes.

python-engineio gives every client a send queue and a writer green thread: a broadcast to N clients is N queue
puts, N thread switches and N framings of the same message. An Outlet lets the fan-out write a frame it built
once straight into a client's socket, without blocking, when nothing else is on its way to that client:

- ``offer(frame)`` writes only while no other write is in progress or left over; a client whose socket buffer
  is full takes nothing (False: the caller queues the packet the normal way) and a partly taken frame leaves
  its rest ``pending``, flushed before any other byte goes to that socket.
- ``write(data)`` is what every other write to the socket goes through (the library's frames, pongs, the close
  frame): it takes the outlet's lock, sends what is pending, then ``data``, blocking the calling green thread as
  a socket send would.

``attach`` hooks an Outlet into the WebSocket object of eventlet's server, so that its own sends go through
``write``; under gevent streaming.gateway.fastpath.gevent_ws writes through one of its own. Per-message compression
frames
messages itself: the service never attaches outlets when WS_COMPRESSION is on.
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Outlet", "attach", "without_delay"]

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)  # the OS-level sockets of both servers are non-blocking anyway


class Outlet:
    def __init__(self, blocking: Any, nonblocking: Any, spawn: Callable[[Callable[[], None]], object],
                 lock: Any = None) -> None:
        """``blocking``: the green socket (its ``sendall`` waits for room); ``nonblocking``: the same
        connection's OS-level socket (written with MSG_DONTWAIT: never waits); ``spawn`` starts a green thread
        (to flush the rest of a partly written frame); ``lock``: a (green) lock to serialise writes, if the
        WebSocket object already has one it no longer uses."""
        self._blocking = blocking
        self._nonblocking = nonblocking
        self._spawn = spawn
        self._lock = lock if lock is not None else threading.Lock()  # green under monkey patching
        self.pending = b""
        self.closed = False

    def idle(self) -> bool:
        """Whether nothing is on its way to this client (no write in progress, nothing left over) and the
        outlet is open: what ``offer`` needs."""
        return not (self.pending or self.closed or self._lock.locked())

    def offer(self, data: bytes) -> bool:
        """Write ``data`` now if nothing else is on its way to this client and the socket takes at least part
        of it; the rest, if any, goes out before any later write. False: nothing was written."""
        if not self.idle():
            return False
        try:
            sent = self._nonblocking.send(data, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            self.closed = True  # the library's writer finds out for itself and closes the connection
            return False
        if sent < len(data):
            self.pending = data[sent:]
            self._spawn(self.flush)
        return True

    def write(self, data: bytes) -> int:
        """Send what is pending, then ``data``, waiting for the socket as long as it takes (green)."""
        with self._lock:
            if self.pending:
                pending, self.pending = self.pending, b""
                self._blocking.sendall(pending)
            if data:
                self._blocking.sendall(data)
        return len(data)

    def flush(self) -> None:
        try:
            self.write(b"")
        except OSError:
            self.closed = True


def attach(ws: Any, spawn: Callable[[Callable[[], None]], object]) -> Outlet | None:
    """Route the sends of a WebSocket object handed to python-engineio's handler through a new Outlet.

    eventlet: ``eventlet.websocket.RFC6455WebSocket`` (every frame goes through its ``_send``). gevent:
    streaming.gateway.fastpath.gevent_ws made its own Outlet, which is returned. None for any other kind
    (simple-websocket,
    used only with compression on, when no outlet is wanted): that client is served through python-engineio's
    queue alone."""
    own = getattr(ws, "outlet", None)
    if isinstance(own, Outlet):
        return own
    green = getattr(ws, "socket", None)
    if green is not None and hasattr(ws, "_send") and hasattr(green, "fd"):
        outlet = Outlet(green, green.fd, spawn, getattr(ws, "_sendlock", None))  # _send was its only user
        ws._send = outlet.write
        return without_delay(outlet, green.fd)
    return None


def without_delay(outlet: Outlet, tcp: Any) -> Outlet:
    """Turn Nagle's algorithm off: a price must not wait for the acknowledgement of the previous one (what
    Node's ``ws`` does for socket.io too). Harmless where the option does not apply (Unix sockets in tests)."""
    try:
        tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    return outlet
