"""Closing a client's Engine.IO connection from the server side, whatever server runs it.

python-engineio's ``close`` is enough for a client that reads; one whose writer is blocked on a full TCP buffer
(it stopped reading) is only freed by shutting the TCP socket itself, which the WSGI environ exposes.
"""
from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

__all__ = ["CONNECTION", "abort_connection", "close_transport", "forget_request", "raw_socket", "still_closing"]

# The environ key of a connection taken over from the HTTP server (streaming.gateway.fastpath.detached): its
# green socket, once the server's own request objects are forgotten.
CONNECTION = "streaming.connection"


def close_transport(socketio: Any, eio_sid: str | None) -> None:
    """Close a client's Engine.IO connection without waiting for its queue to drain (it may not be reading):
    what is queued still goes out first, then the connection closes. The client sees a transport close, so
    its automatic reconnection (socket.io-client, python-socketio) stays on."""
    sock = socketio.server.eio.sockets.get(eio_sid) if eio_sid else None
    if sock is not None:
        sock.close(wait=False, abort=True)


def still_closing(eio_socket: Any) -> bool:
    """Whether a client's Engine.IO connection, closed by ``close_transport``, still has output to send: a
    long-polling one until python-engineio forgets it (its client may be between two polls, with packets
    waiting), any other until its writer has taken all that was queued (it closes the WebSocket right after;
    its handler's unwinding, which takes seconds of the event loop with thousands of clients, is not waited
    for)."""
    return not (eio_socket.closed and eio_socket.upgraded and eio_socket.queue.empty())


def abort_connection(eio_socket: Any, environ: dict) -> None:
    """Shut the client's TCP socket down, then close its Engine.IO connection: for clients that do not read."""
    raw = raw_socket(environ)
    if raw is not None:
        try:
            raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    eio_socket.close(wait=False, abort=True)


def raw_socket(environ: dict) -> Any:
    """The client's TCP socket from the WSGI environ (eventlet, gevent's pywsgi, Werkzeug, Gunicorn)."""
    taken = environ.get(CONNECTION)
    if taken is not None:
        return taken
    request_input = environ.get("eventlet.input")
    if request_input is not None and hasattr(request_input, "get_socket"):
        return request_input.get_socket()
    if environ.get("SERVER_SOFTWARE", "").startswith("gevent"):  # pywsgi: the socket behind wsgi.input
        wsgi_input = environ.get("wsgi.input")
        raw = getattr(getattr(wsgi_input, "rfile", wsgi_input), "raw", None)
        return getattr(raw, "_sock", None)
    return environ.get("werkzeug.socket") or environ.get("gunicorn.socket")


class _NoBody:
    """``wsgi.input`` of a request whose connection the WebSocket took over: there is no body to read."""

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())


NO_BODY = _NoBody()
_POSTHOOKS = "eventlet.posthooks"  # eventlet reads it when the request returns; an empty list, holding nothing


def forget_request(environ: dict, connection: Any) -> None:
    """Let go of the HTTP server's objects in an environ that outlives its request (python-socketio keeps each
    client's environ for its whole connection, Flask-SocketIO builds every event's request context from it):
    the server's own keys (its input stream, buffers and handler) go, the connection's green socket stays under
    CONNECTION, for ``raw_socket``."""
    for key in [key for key in environ if key.startswith(("eventlet.", "gevent.")) and key != _POSTHOOKS]:
        del environ[key]
    environ.pop("headers_raw", None)  # eventlet's copy of the headers, which are in the HTTP_ keys as well
    environ["wsgi.input"] = NO_BODY
    environ[CONNECTION] = connection
