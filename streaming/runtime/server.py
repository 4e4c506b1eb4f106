"""The HTTP/WebSocket server under eventlet or gevent: monkey patching, binding, serving, stopping to accept.

The same app runs under both. ``monkey_patch`` must run before anything imports socket, ssl or threading (the
entry point calls it first). The entry point then binds the port with ``listen``, before it imports the app:
a restarted process's reconnecting clients queue in the kernel's backlog from then on instead of being refused
(and backing off) for as long as the imports take. ``make_server`` serves on that socket, or binds at once, so a
port in use fails before anything starts.
"""
from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from streaming.runtime.takeover import Takeovers
from streaming.runtime.wsgi import TAKEOVER

if TYPE_CHECKING:  # flask must not be imported before monkey_patch runs
    from flask import Flask

    from streaming.runtime.guard import ConnectionGuard

__all__ = ["SERVED_MODES", "HttpServer", "listen", "make_server", "monkey_patch", "on_signals"]

log = logging.getLogger(__name__)

SERVED_MODES = ("eventlet", "gevent")
# Concurrent HTTP requests (health checks, /price, polling) allowed beyond MAX_CONNECTIONS Socket.IO clients.
HTTP_HEADROOM = 256
# Bytes of the per-connection buffers the HTTP servers read the request (and eventlet writes the response)
# through. Both servers keep them for a WebSocket's whole life although its frames bypass them: the defaults
# (8 KiB to read, 16 KiB to write under eventlet) cost about 7 KB per idle client; headers still read whole.
REQUEST_BUFFER = 1024
# Connections the kernel completes and queues before the accept loop takes them. The servers' defaults (eventlet
# 50, gevent 128) overflow when every client of a restarted process reconnects within a second or two (a deploy's
# reconnect storm, `make bench SCENARIO=storm`): the kernel then drops their handshakes and each client waits for
# a TCP retransmission (1 s, 3 s, ...) or its own reconnection delay. The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 4096  # socket.SOMAXCONN on Linux; not imported here, before the monkey patching
# Connections eventlet's accept loop takes in a row before it lets the others run (gevent's server takes as many
# per loop turn: its max_accept). Eventlet's loop yields only once the backlog is empty: after a restart it
# accepted a reconnect storm's whole backlog, thousands, before the handler of the first one ran, and every
# client's upgrade waited for all of them.
ACCEPTS_PER_TURN = 100


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


def listen(host: str, port: int) -> Any:
    """A TCP socket bound to ``host:port`` and listening (backlog LISTEN_BACKLOG); green once monkey patched.
    Raises OSError (e.g. the port is in use). Without SO_REUSEPORT: a second instance on the port would then
    silently share the clients instead of failing to start."""
    import socket

    family, kind, proto, _, address = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may bind while TIME_WAITs linger
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class GuardedListener:
    """The listening socket as eventlet's accept loop sees it: ``accept()`` survives running out of descriptors
    (eventlet's loop dies on EMFILE and never accepts again) by pausing, closes at once the connections of an
    address over its cap, and lets the accepted connections' handlers run after every ACCEPTS_PER_TURN. Everything
    else is the real socket's."""

    def __init__(self, listener: Any, guard: ConnectionGuard, sleep: Callable[[float], None] | None = None,
                 accepts_per_turn: int = ACCEPTS_PER_TURN) -> None:
        self._listener = listener
        self._guard = guard
        # time.sleep looked up when called: the monkey patched, green one (only the accept loop waits); this
        # module is imported before the patching
        self._sleep = sleep or (lambda seconds: time.sleep(seconds))
        self._accepts_per_turn = accepts_per_turn
        self._taken = 0  # since the loop last let the others run

    def accept(self) -> tuple[Any, Any]:
        while True:
            if self._taken >= self._accepts_per_turn:  # refused ones count: a flood of them yields too
                self._taken = 0
                self._sleep(0)  # the handlers spawned for the ones taken so far, and reads, run first
            try:
                sock, address = self._listener.accept()
            except OSError as exc:
                pause = self._guard.accept_failed(exc)
                if pause is None:
                    raise
                self._sleep(pause)
                continue
            self._taken += 1
            if self._guard.accepted(sock, _host(address)):
                return sock, address

    def __getattr__(self, name: str) -> Any:
        return getattr(self._listener, name)


def cancelled(timer: Any) -> None:
    """Cancel a request's header deadline (eventlet's or gevent's Timeout), if any; None, to forget it: a
    WebSocket's request lasts its whole life, and the timer and its exception would last as long."""
    if timer is not None:
        timer.cancel()


def _host(address: Any) -> str:
    return str(address[0]) if isinstance(address, tuple) and address else str(address)


class EventletServer:
    def __init__(self, app: Flask, listener: Any, max_connections: int, guard: ConnectionGuard) -> None:
        self._listener = listener
        self._app = app
        self._guard = guard
        # eventlet serves at most max_size connections at once (default 1024) and leaves further ones waiting
        # silently: size it for every client the service admits, plus HTTP requests.
        self._max_size = max_connections + HTTP_HEADROOM

    def start(self) -> None:
        import eventlet
        import eventlet.wsgi

        from streaming.runtime.guard import HeaderTimeout

        guard = self._guard
        takeovers = Takeovers(guard)

        class Protocol(eventlet.wsgi.HttpProtocol):
            """eventlet's protocol with small buffers, and a deadline for each request's line and headers (also
            the longest a kept-alive connection may stay idle between requests)."""

            rbufsize = REQUEST_BUFFER
            wbufsize = REQUEST_BUFFER
            _deadline: Any = None
            _taken = False

            def handle_one_request(self) -> None:
                self._deadline = eventlet.Timeout(guard.header_timeout, guard.header_deadline())
                try:
                    super().handle_one_request()
                except HeaderTimeout:
                    guard.timed_out()
                    raise  # a socket.timeout: eventlet closes the connection quietly
                finally:
                    self._deadline = cancelled(self._deadline)
                    guard.handshakes.done(self.connection)  # answered (a WebSocket's is done by its connect)
                    environ = getattr(self, "environ", None)
                    if environ is not None:  # a kept environ must not keep this protocol (and its buffers)
                        environ.pop(TAKEOVER, None)

            def get_environ(self) -> dict:
                environ = super().get_environ()
                if takeovers.of(self.connection) is not None:
                    environ[TAKEOVER] = self._take_over
                return environ

            def _take_over(self) -> Callable[[], None]:
                """The application keeps the connection: no response is written, and neither eventlet's protocol
                nor its server closes the socket (``conn_state[1]``, which its server shuts down and closes once
                the request is over, is replaced)."""
                record = takeovers.of(self.connection)
                if record is None:
                    raise RuntimeError("this connection is not served by the service's server; it cannot be taken")
                release = record.take()
                self._taken = True
                self.close_connection = 1
                eventlet.wsgi.WSGI_LOCAL.already_handled = True
                self.conn_state[1] = _Detached()
                return release

            def parse_request(self) -> bool:
                try:
                    parsed = super().parse_request()
                finally:  # the headers are in; the request may take as long as it needs
                    self._deadline = cancelled(self._deadline)
                if parsed:
                    guard.handshakes.enter(self.connection)  # green: waits while HANDSHAKES_IN_FLIGHT are served
                return parsed

            def finish(self) -> None:
                """Close the connection's descriptor whatever happened to the response. A client that left
                while its response was being written (its headers ended at its EOF) makes the response file's
                close() raise BrokenPipe in socketserver's finish, which then never closes the request file,
                whose reference keeps the socket's descriptor open after eventlet shut it down: enough of those
                (a slow-header attack's connections going away) exhaust the descriptors for good. A connection
                taken over keeps its socket: only the buffered files go (they would keep it from closing)."""
                if self._taken:
                    for stream in (self.wfile, self.rfile):
                        try:
                            stream.close()
                        except OSError:
                            pass
                    return
                try:
                    super().finish()
                finally:
                    for stream in (self.wfile, self.rfile):
                        try:
                            stream.close()
                        except OSError:
                            pass
                    self.connection.close()

        class Pool(eventlet.GreenPool):
            """Counts each connection's address until its handler has finished."""

            def spawn(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
                conn_state = args[0]  # eventlet.wsgi passes [address, socket, state]
                return super().spawn(takeovers.served, conn_state[1], _host(conn_state[0]), function, *args,
                                     **kwargs)

        eventlet.spawn(eventlet.wsgi.server, GuardedListener(self._listener, guard), self._app, log_output=False,
                       custom_pool=Pool(self._max_size), protocol=Protocol)

    def stop_accepting(self) -> None:
        self._listener.close()


class _Detached:
    """What eventlet's server sees as the socket of a connection taken over: its shutdown and close do nothing
    (the connection's new owner closes the real socket)."""

    def shutdown(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        pass


class GeventServer:
    def __init__(self, app: Flask, listener: Any, max_connections: int, guard: ConnectionGuard) -> None:
        import gevent
        from gevent import pywsgi
        from gevent.pool import Pool

        from streaming.runtime.guard import HeaderTimeout

        takeovers = Takeovers(guard)

        class Handler(pywsgi.WSGIHandler):
            """pywsgi's handler, for WebSocket requests served by streaming.gateway.fastpath.gevent_ws (or
            simple-websocket): the
            HTTP connection ends with the WebSocket (what follows are frames, never a next
            request), and an error escaping python-engineio there (malformed Engine.IO input) is one log line,
            not a traceback: the connection is upgraded, no HTTP error answer is possible."""

            def __init__(self, sock, address, server):  # type: ignore[no-untyped-def]
                super().__init__(sock, address, server, rfile=sock.makefile("rb", REQUEST_BUFFER))

            _taken = False

            def handle_one_request(self):  # type: ignore[no-untyped-def]
                # a deadline for the request line and headers (and for idling between kept-alive requests)
                self._deadline = gevent.Timeout.start_new(guard.header_timeout, guard.header_deadline())
                try:
                    return super().handle_one_request()
                finally:
                    self._deadline = cancelled(self._deadline)
                    guard.handshakes.done(self.socket)  # answered (a WebSocket's is done by its connect)
                    environ = getattr(self, "environ", None)
                    if environ is not None:  # a kept environ must not keep this handler (and its buffers)
                        environ.pop(TAKEOVER, None)
                    if self._taken:  # pywsgi's handle() would read from and close the socket
                        self.rfile.close()
                        self.socket = None

            def get_environ(self):  # type: ignore[no-untyped-def]
                environ = super().get_environ()
                if takeovers.of(self.socket) is not None:
                    environ[TAKEOVER] = self._take_over
                return environ

            def _take_over(self) -> Callable[[], None]:
                """The application keeps the connection: pywsgi neither reads another request from it nor
                closes it."""
                record = takeovers.of(self.socket)
                if record is None:
                    raise RuntimeError("this connection is not served by the service's server; it cannot be taken")
                release = record.take()
                self._taken = True
                self.close_connection = True
                return release

            def read_requestline(self):  # type: ignore[no-untyped-def]
                try:
                    return super().read_requestline()
                except HeaderTimeout:
                    guard.timed_out()
                    raise  # a socket error: pywsgi closes the connection quietly

            def read_request(self, raw_requestline):  # type: ignore[no-untyped-def]
                try:
                    parsed = super().read_request(raw_requestline)
                except HeaderTimeout:
                    guard.timed_out()
                    self.close_connection = True
                    return False  # pywsgi answers 400 and closes, without the traceback an exception would print
                finally:
                    self._deadline = cancelled(self._deadline)
                if parsed:
                    guard.handshakes.enter(self.socket)  # green: waits while HANDSHAKES_IN_FLIGHT are served
                return parsed

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

        class Server(pywsgi.WSGIServer):
            """pywsgi's server, whose accept survives running out of descriptors quietly (one log line per
            episode instead of a traceback per attempt) and closes at once the connections of an address over
            its cap."""

            def do_read(self):  # type: ignore[no-untyped-def]
                try:
                    accepted = super().do_read()
                except OSError as exc:
                    pause = guard.accept_failed(exc)
                    if pause is None:
                        raise
                    self.stop_accepting()
                    gevent.spawn_later(pause, self._resume)
                    return None
                if accepted is None:
                    return None
                sock, address = accepted
                return accepted if guard.accepted(sock, _host(address)) else None

            def _resume(self) -> None:
                if self.started:
                    self.start_accepting()

            def handle(self, sock, address):  # type: ignore[no-untyped-def]
                takeovers.served(sock, _host(address), super().handle, sock, address)

            def do_close(self, sock, *args):  # type: ignore[no-untyped-def]
                if not takeovers.kept(sock):  # a connection taken over is closed by its release
                    super().do_close(sock, *args)

        # WebSockets: streaming.gateway.fastpath.gevent_ws (streaming.gateway.fastpath.broadcast installs it), or
        # simple-websocket, which
        # python-engineio's gevent driver picks up, when per-message compression is on.
        self._server = Server(
            listener, app, log=None, error_log=logging.getLogger("gevent.pywsgi"), handler_class=Handler,
            spawn=Pool(max_connections + HTTP_HEADROOM),
        )
        self._server.init_socket()

    def start(self) -> None:
        self._server.start()

    def stop_accepting(self) -> None:
        self._server.close()


def make_server(
    app: Flask, async_mode: str, host: str, port: int, max_connections: int, guard: ConnectionGuard,
    listener: Any = None,
) -> HttpServer:
    """A server for the async mode on ``listener`` (from ``listen``), or on a socket bound now to host:port;
    raises OSError (e.g. the port is in use) or ValueError (mode)."""
    if async_mode not in SERVED_MODES:
        raise ValueError(f"ASYNC_MODE={async_mode} cannot serve; use one of {', '.join(SERVED_MODES)}")
    if listener is None:
        listener = listen(host, port)
    server = EventletServer if async_mode == "eventlet" else GeventServer
    return server(app, listener, max_connections, guard)


def on_signals(async_mode: str, handler: Callable[[str], None]) -> None:
    """Call ``handler(signal name)`` on SIGTERM and SIGINT, in a context where it may start green tasks."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        name = signal.Signals(signum).name
        if async_mode == "gevent":
            import gevent

            gevent.signal_handler(signum, handler, name)
        else:
            signal.signal(signum, lambda _signum, _frame, name=name: handler(name))
