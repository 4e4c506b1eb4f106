"""WebSockets under gevent read by the connection's own green thread, on the connection's own socket.

python-engineio's gevent driver serves WebSockets with simple-websocket, which gives every client a second
file descriptor (it duplicates the socket) and a second green thread that only reads and hands messages over:
measured, about 10 KB and one descriptor per client more than eventlet (10,000 clients came close to a 20,000
descriptor limit). GeventWebSocket keeps python-engineio's WebSocket interface (``wait``/``send``/``close``
and a ``socket`` it sets its timeout on) with wsproto (simple-websocket's own protocol engine) for the handshake
and for parsing what the client sends, but reads in the handler's green thread and writes every frame through
an Outlet, so the fan-out can write to it directly. Used only when per-message compression is off (it
negotiates no extension).
"""
from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from streaming.gateway.fastpath.outlets import Outlet, without_delay

__all__ = ["GeventWebSocket", "handshake_request"]

log = logging.getLogger(__name__)

RECEIVE_BYTES = 4096


def handshake_request(environ: dict) -> bytes:
    """The client's upgrade request rebuilt from the WSGI environ (the HTTP server has read it already)."""
    lines = [f"GET {environ.get('PATH_INFO') or '/'} HTTP/1.1"]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            lines.append(f"{'-'.join(part.capitalize() for part in key[5:].split('_'))}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def client_socket(environ: dict) -> Any:
    """gevent pywsgi's socket of this request (behind ``wsgi.input``)."""
    wsgi_input = environ["wsgi.input"]
    rfile = getattr(wsgi_input, "rfile", wsgi_input)
    return rfile.raw._sock


class GeventWebSocket:
    """python-engineio's ``_async['websocket']`` for gevent: ``GeventWebSocket(handler, server)(environ, ...)``."""

    def __init__(self, handler: Callable[[Any], Any], server: Any) -> None:
        self._handler = handler
        self._max_message = int(server.max_http_buffer_size)
        self._spawn = server.start_background_task
        self.socket: Any = None
        self.outlet: Outlet | None = None
        self._conn = WSConnection(ConnectionType.SERVER)
        self._messages: deque[str | bytes] = deque()
        self._partial: list[str | bytes] = []
        self._partial_size = 0
        self._open = False

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.socket = client_socket(environ)
        self.outlet = without_delay(Outlet(self.socket, self.socket._sock, self._spawn), self.socket._sock)
        self._conn.receive_data(handshake_request(environ))
        for event in self._conn.events():
            if isinstance(event, Request):
                self._write(self._conn.send(AcceptConnection()))
                self._open = True
            else:  # not a WebSocket upgrade wsproto accepts
                self._write(self._conn.send(RejectConnection(status_code=400)))
                raise ConnectionError(f"refused a malformed WebSocket upgrade ({type(event).__name__})")
        if not self._open:
            raise ConnectionError("refused an incomplete WebSocket upgrade request")
        return self._handler(self)

    # -- what python-engineio's handler calls ---------------------------------------------------------------
    def wait(self) -> str | bytes | None:
        """The next message from the client; None once the connection is over. Socket errors and timeouts
        propagate, as python-engineio expects."""
        while not self._messages:
            if not self._open:
                return None
            data = self.socket.recv(RECEIVE_BYTES)
            if not data:
                self._open = False
                return None
            self._conn.receive_data(data)
            self._handle_events()
        return self._messages.popleft()

    def send(self, message: str | bytes) -> None:
        if not self._open:
            raise OSError("the WebSocket is closed")
        self._write(self._conn.send(Message(data=message)))

    def close(self) -> None:
        """Send a close frame (unless the client's came first) and end our side of the TCP stream; ``wait``
        returns None once the client answers or hangs up (or its timeout passes). Not a full shutdown: what the
        client sent and we did not read would make the kernel reset the connection and the client lose our
        last messages. pywsgi closes the socket when the request ends."""
        if self._open:
            self._open = False
            try:
                self._write(self._conn.send(CloseConnection(code=CloseReason.NORMAL_CLOSURE)))
            except (OSError, LocalProtocolError):
                pass
        if self.outlet is not None:
            self.outlet.closed = True
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _write(self, data: bytes) -> None:
        if self.outlet is None:
            raise OSError("the WebSocket has not been accepted")
        self.outlet.write(data)

    def _handle_events(self) -> None:
        try:
            for event in self._conn.events():
                if isinstance(event, (TextMessage, BytesMessage)):
                    self._add(event.data, event.message_finished)
                elif isinstance(event, Ping):
                    self._write(self._conn.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if self._open:
                        self._open = False
                        self._write(self._conn.send(event.response()))
        except (RemoteProtocolError, LocalProtocolError) as exc:
            log.info("closing a WebSocket after a protocol error: %s", exc)
            self._open = False

    def _add(self, data: str | bytes, finished: bool) -> None:
        self._partial_size += len(data)
        if self._partial_size > self._max_message:
            self._open = False
            self._write(self._conn.send(CloseConnection(code=CloseReason.MESSAGE_TOO_BIG, reason="message too big")))
            return
        self._partial.append(data)
        if finished:
            parts, self._partial, self._partial_size = self._partial, [], 0
            whole = parts[0] if len(parts) == 1 else parts[0][:0].join(parts)  # type: ignore[arg-type]
            self._messages.append(whole)
