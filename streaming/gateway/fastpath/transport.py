"""Closing a client's Engine.IO connection from the server side, whatever server runs it.

python-engineio's ``close`` is enough for a client that reads; one whose writer is blocked on a full TCP buffer
(it stopped reading) is only freed by shutting the TCP socket itself, which the WSGI environ exposes.
"""
from __future__ import annotations

import socket
from typing import Any

__all__ = ["abort_connection", "close_transport", "raw_socket", "still_closing"]


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
    request_input = environ.get("eventlet.input")
    if request_input is not None and hasattr(request_input, "get_socket"):
        return request_input.get_socket()
    if environ.get("SERVER_SOFTWARE", "").startswith("gevent"):  # pywsgi: the socket behind wsgi.input
        wsgi_input = environ.get("wsgi.input")
        raw = getattr(getattr(wsgi_input, "rfile", wsgi_input), "raw", None)
        return getattr(raw, "_sock", None)
    return environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
