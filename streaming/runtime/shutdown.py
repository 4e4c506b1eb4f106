"""GracefulShutdown: what SIGTERM/SIGINT does, in order, within SHUTDOWN_TIMEOUT.

1. refuse Socket.IO connects (``SERVER_SHUTTING_DOWN``) and answer ``/ready`` (and ``/health``) with 503, so
   load balancers and new clients see why;
2. close the upstream connections cleanly, and flush the cache writer and the history to Redis: first, while
   the event loop is calm (closing thousands of clients keeps it busy for seconds, and every step waits its
   turn behind them); from now on no update goes out;
3. tell every client (``server_shutdown``, the last message it gets), then close their connections: their
   clients' own reconnection brings them back, to the next process;
4. once every client's output has gone out (or its grace is over), stop accepting connections (a client that
   reconnects from now on is refused by the kernel and retries), and exit 0 at once (``end``). A deploy starts
   the next process only then: every second here is a second the clients wait (`make bench SCENARIO=storm`).

If that takes longer than the bound, exit 1 anyway (PM2's kill_timeout is longer still). A second signal during
a shutdown exits at once.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from flask_socketio import SocketIO

from streaming.gateway.fastpath.transport import abort_connection, close_transport, still_closing
from streaming.runtime.server import HttpServer
from streaming.service import StreamingService

__all__ = ["GracefulShutdown"]

log = logging.getLogger(__name__)

# Of the bound, at most this long waits for the clients' connections to close.
CLIENTS_GRACE = 2.0
POLL = 0.05


class GracefulShutdown:
    def __init__(
        self,
        service: StreamingService,
        socketio: SocketIO,
        server: HttpServer,
        timeout: float,
        exit_now: Callable[[int], None] = os._exit,
    ) -> None:
        self._service = service
        self._socketio = socketio
        self._server = server
        self._timeout = timeout
        self._exit_now = exit_now
        self._requested: str | None = None
        self._done = threading.Event()

    def request(self, reason: str) -> None:
        """Start the shutdown (from a signal handler); a second request exits at once."""
        if self._requested is not None:
            log.warning("%s during shutdown: exiting now", reason)
            _flush_logs()
            self._exit_now(1)
            return
        self._requested = reason
        self._socketio.start_background_task(self._run, reason)
        self._socketio.start_background_task(self._watchdog)

    def wait(self) -> int:
        """Block until a requested shutdown has finished (the process normally ends before this returns: the
        shutdown calls ``end`` itself); returns the exit status (0)."""
        self._done.wait()
        return 0

    def end(self, status: int) -> None:
        """End the process now, with ``status``, once the logs are written. Everything worth keeping is kept by
        then; the interpreter's own teardown of what every client left (green threads, sockets, sessions) would
        take seconds under thousands of them, and a deploy starts the next process only once this one is gone,
        so its clients would wait that much longer to be served again (`make bench SCENARIO=storm`)."""
        log.info("exiting with status %d", status)
        _flush_logs()
        self._exit_now(status)

    def _run(self, reason: str) -> None:
        started = time.monotonic()
        deadline = started + self._timeout
        log.info("%s received: shutting down (at most %.0fs)", reason, self._timeout)
        try:
            self._service.begin_shutdown()
            self._service.stop(timeout=max(0.5, deadline - time.monotonic() - CLIENTS_GRACE - 0.5))
            stopped_at = time.monotonic()
            told = self._service.tell_clients(reason)
            self._close_transports()
            self._wait_for_clients(min(deadline, time.monotonic() + CLIENTS_GRACE))
            self._server.stop_accepting()
            log.info("shutdown complete in %.2fs: upstream closed and cache flushed (%.2fs), then %d clients told "
                     "and their connections closed (%.2fs)", time.monotonic() - started, stopped_at - started,
                     told, time.monotonic() - stopped_at)
        except Exception:  # still exit; the watchdog is the last resort, not the plan
            log.exception("shutdown step failed; exiting anyway")
        self._done.set()
        # From here, not from the waiting main thread: under a storm of closing clients the event loop would
        # take seconds to get back to it.
        self.end(0)

    def _close_transports(self) -> None:
        """Close every Engine.IO connection: what is queued for it (server_shutdown last) goes out first."""
        for eio_sid in list(self._socketio.server.eio.sockets):
            close_transport(self._socketio, eio_sid)

    def _wait_for_clients(self, until: float) -> None:
        """Wait until every closed connection's output has gone out; halfway to ``until``, shut down the TCP
        sockets of clients that are not reading.

        A WebSocket counts as closed once its writer has taken the end of its queue (``still_closing``); the
        process exit ends what is left of its handler."""
        server = self._socketio.server
        eio = server.eio
        halfway = time.monotonic() + (until - time.monotonic()) / 2
        while _unclosed(eio) and time.monotonic() < halfway:
            self._socketio.sleep(POLL)
        for eio_sid, sock in _unclosed(eio):
            abort_connection(sock, server.environ.get(eio_sid) or {})
        while (left := _unclosed(eio)) and time.monotonic() < until:
            self._socketio.sleep(POLL)
        if left:
            log.warning("%d client connections still open after %.1fs; closing them with the process",
                        len(left), CLIENTS_GRACE)

    def _watchdog(self) -> None:
        if self._done.wait(self._timeout):
            return
        log.error("shutdown did not finish within SHUTDOWN_TIMEOUT=%.0fs; exiting with status 1", self._timeout)
        _flush_logs()
        self._exit_now(1)


def _unclosed(eio: Any) -> list[tuple[str, Any]]:
    """The Engine.IO connections still being closed."""
    return [(eio_sid, sock) for eio_sid, sock in list(eio.sockets.items()) if still_closing(sock)]


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
