"""The HTTP/WebSocket server under eventlet or gevent: monkey patching, binding, serving, stopping to accept.

The same app runs under both. ``monkey_patch`` must run before anything imports socket, ssl or threading (the
entry point calls it first); ``make_server`` binds at once, so a port in use fails before anything starts.
"""
from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:  # flask must not be imported before monkey_patch runs
    from flask import Flask

__all__ = ["SERVED_MODES", "HttpServer", "make_server", "monkey_patch", "on_signals"]

log = logging.getLogger(__name__)

SERVED_MODES = ("eventlet", "gevent")
# Concurrent HTTP requests (health checks, /price, polling) allowed beyond MAX_CONNECTIONS Socket.IO clients.
HTTP_HEADROOM = 256
# Bytes of the per-connection buffers the HTTP servers read the request (and eventlet writes the response)
# through. Both servers keep them for a WebSocket's whole life although its frames bypass them: the defaults
# (8 KiB to read, 16 KiB to write under eventlet) cost about 7 KB per idle client; headers still read whole.
REQUEST_BUFFER = 1024


class HttpServer(Protocol):
    def start(self) -> None:
        """Serve in the background (the listening socket is already bound)."""

    def stop_accepting(self) -> None:
        """Close the listening socket: new connections are refused; open ones go on."""


def monkey_patch(async_mode: str) -> None:
    """Make the standard library cooperative for the async mode (eventlet or gevent)."""
    if async_mode == "eventlet":
        import warnings

        # Eventlet announces its maintenance mode on import; the README's "Async modes" section covers it.
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
        import eventlet

        eventlet.monkey_patch()
    elif async_mode == "gevent":
        from gevent import monkey

        monkey.patch_all()


class EventletServer:
    def __init__(self, app: Flask, host: str, port: int, max_connections: int) -> None:
        import eventlet

        family, _, _, _, address = eventlet.green.socket.getaddrinfo(host, port)[0]
        # eventlet.listen sets SO_REUSEPORT by default: a second instance on the port would then silently share
        # the clients instead of failing to start.
        self._listener = eventlet.listen(address, family, reuse_port=False)
        self._app = app
        # eventlet serves at most max_size connections at once (default 1024) and leaves further ones waiting
        # silently: size it for every client the service admits, plus HTTP requests.
        self._max_size = max_connections + HTTP_HEADROOM

    def start(self) -> None:
        import eventlet
        import eventlet.wsgi

        class Protocol(eventlet.wsgi.HttpProtocol):
            rbufsize = REQUEST_BUFFER
            wbufsize = REQUEST_BUFFER

        eventlet.spawn(eventlet.wsgi.server, self._listener, self._app, log_output=False, max_size=self._max_size,
                       protocol=Protocol)

    def stop_accepting(self) -> None:
        self._listener.close()


class GeventServer:
    def __init__(self, app: Flask, host: str, port: int, max_connections: int) -> None:
        from gevent import pywsgi
        from gevent.pool import Pool

        class Handler(pywsgi.WSGIHandler):
            """pywsgi's handler, for WebSocket requests served by streaming.gevent_ws (or simple-websocket): the
            HTTP connection ends with the WebSocket (what follows are frames, never a next
            request), and an error escaping python-engineio there (malformed Engine.IO input) is one log line,
            not a traceback: the connection is upgraded, no HTTP error answer is possible."""

            def __init__(self, sock, address, server):  # type: ignore[no-untyped-def]
                super().__init__(sock, address, server, rfile=sock.makefile("rb", REQUEST_BUFFER))

            def run_application(self) -> None:
                if self.environ.get("HTTP_UPGRADE", "").lower() != "websocket":
                    return super().run_application()
                self.close_connection = True
                try:
                    super().run_application()
                except Exception as exc:  # noqa: BLE001 - reported, and the connection ends
                    log.warning("closed a WebSocket connection after a protocol error: %s: %.80s",
                                type(exc).__name__, exc)
                return None

        # WebSockets: streaming.gevent_ws (streaming.broadcast installs it), or simple-websocket, which
        # python-engineio's gevent driver picks up, when per-message compression is on.
        self._server = pywsgi.WSGIServer(
            (host, port), app, log=None, error_log=logging.getLogger("gevent.pywsgi"), handler_class=Handler,
            spawn=Pool(max_connections + HTTP_HEADROOM),
        )
        self._server.init_socket()  # bind now

    def start(self) -> None:
        self._server.start()

    def stop_accepting(self) -> None:
        self._server.close()


def make_server(app: Flask, async_mode: str, host: str, port: int, max_connections: int) -> HttpServer:
    """A bound server for the async mode; raises OSError (e.g. the port is in use) or ValueError (mode)."""
    if async_mode == "eventlet":
        return EventletServer(app, host, port, max_connections)
    if async_mode == "gevent":
        return GeventServer(app, host, port, max_connections)
    raise ValueError(f"ASYNC_MODE={async_mode} cannot serve; use one of {', '.join(SERVED_MODES)}")


def on_signals(async_mode: str, handler: Callable[[str], None]) -> None:
    """Call ``handler(signal name)`` on SIGTERM and SIGINT, in a context where it may start green tasks."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        name = signal.Signals(signum).name
        if async_mode == "gevent":
            import gevent

            gevent.signal_handler(signum, handler, name)
        else:
            signal.signal(signum, lambda _signum, _frame, name=name: handler(name))
