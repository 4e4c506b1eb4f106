"""ConnectionGuard: the I/O side of ``streaming.core.intake`` for the HTTP server, the same under eventlet and gevent.

The servers in ``streaming.runtime.server`` call it around ``accept()`` and when a request's headers took too long; it
keeps the counts, closes what must be closed, logs once per kind of trouble and counts everything in metrics.
"""
from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from metrics.collectors import ServiceMetrics
from metrics.labels import AcceptError, TcpRefusal
from streaming.core.intake import EXHAUSTION_ERRORS, AddressTable, Exhaustion

__all__ = ["ACCEPT_PAUSE", "HANDSHAKES_IN_FLIGHT", "ConnectionGuard", "HandshakeGate", "HeaderTimeout"]

log = logging.getLogger(__name__)

# After accept() failed for want of descriptors, the server stops accepting this long before it tries again
# (pending connections wait in the listen queue meanwhile).
ACCEPT_PAUSE = 0.25


# Requests served at once between their headers and the end of their handshake, and the longest one of them
# holds back the others (see HandshakeGate).
HANDSHAKES_IN_FLIGHT = 64
HANDSHAKE_EXPIRY = 1.0


class HandshakeGate:
    """At most ``limit`` requests served at once from the moment their headers are in until the end of their
    handshake: their WebSocket upgrade done (the fast path tells), their Socket.IO connect (admitted or refused),
    their HTTP answer, or their connection's end, whichever comes first.

    When every client of a restarted process reconnects at once (a deploy), serving them all at once puts
    thousands of half-done handshakes into the event loop: one turn of it then takes seconds, during which
    timers fire late (request-header deadlines close connections that were only waiting for their turn, Redis
    reads time out although the answer is there) and upstream frames wait. With the gate the others wait their
    turn, parked, and each handshake under way finishes promptly. A connection that sends no headers takes no
    slot (the header deadline is for those), so idle connections cannot hold the gate shut.

    A request takes a slot for its connection (``enter``, keyed by the connection's socket) once its headers
    are parsed, and the slot is given back (``done``, for that socket: idempotent) at the end of its handshake,
    from whichever green thread sees it. A slot held for ``expiry`` seconds is free again (the request goes on):
    a WebSocket that never sends its Socket.IO connect cannot hold one for long."""

    def __init__(self, limit: int = HANDSHAKES_IN_FLIGHT, expiry: float = HANDSHAKE_EXPIRY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._expiry = expiry
        self._clock = clock
        self._taken: dict[object, float] = {}  # connection -> when its slot was taken, oldest first
        self._changed = threading.Condition()  # green under monkey patching

    def enter(self, connection: object, blocking: bool = True) -> bool:
        """Take a slot for ``connection``, waiting for one if ``blocking``; False if none is free (only when not
        ``blocking``). A connection that holds one already keeps it."""
        with self._changed:
            while True:
                if connection in self._taken:
                    return True
                now = self._clock()
                for held, taken in list(self._taken.items()):
                    if now - taken < self._expiry:
                        break
                    del self._taken[held]
                if len(self._taken) < self.limit:
                    self._taken[connection] = now
                    return True
                if not blocking:
                    return False
                self._changed.wait(next(iter(self._taken.values())) + self._expiry - now)

    def done(self, connection: object) -> None:
        """The handshake on ``connection`` is over: the next request may start its own."""
        with self._changed:
            if self._taken.pop(connection, None) is not None:
                self._changed.notify()

    def in_use(self) -> int:
        with self._changed:
            return len(self._taken)


class HeaderTimeout(socket.timeout):
    """Raised in a connection's green thread when its request line and headers did not arrive in time. A
    ``socket.timeout``, so both servers end the connection as after any timed-out read."""


class ConnectionGuard:
    """Per-address TCP caps, request-header deadlines and descriptor exhaustion for one HTTP server."""

    def __init__(self, tcp_per_address: int, header_timeout: float, metrics: ServiceMetrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.addresses = AddressTable(tcp_per_address)
        self.header_timeout = header_timeout
        self.exhaustion = Exhaustion(ACCEPT_PAUSE, clock)
        self.handshakes = HandshakeGate()
        self._metrics = metrics
        self._refused = metrics.tcp_refusals.labels(TcpRefusal.PER_ADDRESS)
        self._reported_cap = False
        self._reported_timeout = False
        metrics.tcp_connections.set_function(self.addresses.total)

    # -- accept -----------------------------------------------------------------------------------------------
    def accepted(self, sock: socket.socket, address: str) -> bool:
        """A connection was accepted: True to serve it (it is counted until ``closed``), False when it was
        closed at once because its address holds too many already."""
        recovered = self.exhaustion.recovered()
        if recovered is not None:
            log.info("accepting connections again after %.1fs without free file descriptors", recovered)
        if self.addresses.admit(address):
            return True
        self._refused.inc()
        if not self._reported_cap:  # once; the counter has the rest
            self._reported_cap = True
            log.warning("closing TCP connections from %s beyond %d per address (MAX_TCP_CONNECTIONS_PER_IP); "
                        "further ones are only counted in tcp_refusals_total", address, self.addresses.limit)
        try:
            sock.close()
        except OSError:
            pass
        return False

    def closed(self, address: str) -> None:
        self.addresses.release(address)

    def accept_failed(self, exc: OSError) -> float | None:
        """accept() raised: the seconds to pause accepting when it ran out of descriptors, else None (the caller
        re-raises)."""
        if exc.errno not in EXHAUSTION_ERRORS:
            return None
        name = AcceptError(errno.errorcode[exc.errno])
        self._metrics.accept_errors.labels(name).inc()
        step = self.exhaustion.failed()
        if step.report:
            log.warning("cannot accept connections: %s (%s); pausing accepts for %.2fs at a time until descriptors "
                        "are free; each failure is counted in accept_errors_total", name, os.strerror(exc.errno),
                        step.pause)
        return step.pause

    # -- request headers --------------------------------------------------------------------------------------
    def header_deadline(self) -> HeaderTimeout:
        """The exception a server's timer raises in the connection's green thread at the header deadline."""
        return HeaderTimeout(f"no complete request headers within {self.header_timeout:g}s")

    def timed_out(self) -> None:
        """A connection's request headers did not arrive within HTTP_HEADER_TIMEOUT; the server closes it."""
        self._metrics.header_timeouts.inc()
        if not self._reported_timeout:
            self._reported_timeout = True
            log.warning("closing HTTP connections that sent no complete request headers within %gs "
                        "(HTTP_HEADER_TIMEOUT); further ones are only counted in http_header_timeouts_total",
                        self.header_timeout)
