"""The server side of one WebSocket, written with wsproto on the connection's own socket (eventlet or gevent).

wsproto (simple-websocket's protocol engine) answers the upgrade, parses what the client sends and frames the
control frames; the service's messages are framed by streaming.core.frames, as the fan-out frames its own, several
in one write where several are waiting. Every frame goes through an Outlet, so the fan-out can write to the
socket directly. Per-message
compression is never negotiated (no extension is offered back): the fast path runs only with it off.

Both of the fast path's WebSockets build on WsprotoSocket: streaming.gateway.fastpath.gevent_ws, read by the
request's green thread, and streaming.gateway.fastpath.detached, read only when the socket is readable.
"""
from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from streaming.core.frames import BINARY, TEXT, frame
from streaming.gateway.fastpath.outlets import Outlet, without_delay
from streaming.gateway.fastpath.transport import raw_socket

__all__ = ["RECEIVE_BYTES", "WsprotoSocket", "connection_sockets", "handshake_request"]

log = logging.getLogger(__name__)

RECEIVE_BYTES = 4096


def handshake_request(environ: dict) -> bytes:
    """The client's upgrade request rebuilt from the WSGI environ (the HTTP server has read it already)."""
    lines = [f"GET {environ.get('PATH_INFO') or '/'} HTTP/1.1"]
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            lines.append(f"{'-'.join(part.capitalize() for part in key[5:].split('_'))}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connection_sockets(environ: dict) -> tuple[Any, Any]:
    """(green socket, OS-level socket) of the request's connection: eventlet's server (its green socket's ``fd``)
    or gevent's pywsgi (its ``_sock``). Raises LookupError for any other server."""
    green = raw_socket(environ)
    raw = getattr(green, "fd", None) or getattr(green, "_sock", None)
    if raw is None:
        raise LookupError("the WSGI server exposes no socket of its connection (eventlet or gevent's pywsgi only)")
    return green, raw


class WsprotoSocket:
    """python-engineio's WebSocket interface (``send``/``close``, a ``socket`` it sets its timeout on), for
    subclasses that add how messages are read."""

    def __init__(self, max_message: int, spawn: Callable[[Callable[[], None]], object]) -> None:
        self._max_message = max_message
        self._spawn = spawn
        self.socket: Any = None
        self.outlet: Outlet | None = None
        self._conn: Any = WSConnection(ConnectionType.SERVER)  # then only its frame Connection
        self._messages: list[str | bytes] = []  # complete messages parsed and not yet taken, oldest first
        self._partial: list[str | bytes] = []
        self._partial_size = 0
        self._open = False

    def accept(self, environ: dict) -> Any:
        """Answer the upgrade request of ``environ``; returns the OS-level socket. Raises ConnectionError (after
        a 400 answer) for a request wsproto refuses."""
        green, raw = connection_sockets(environ)
        self.socket = green
        self.outlet = without_delay(Outlet(green, raw, self._spawn), raw)
        handshake = self._conn
        try:
            handshake.receive_data(handshake_request(environ))
        except RemoteProtocolError as exc:  # a header missing or wrong: answered as wsproto advises (400, 426)
            hint = exc.event_hint if isinstance(exc.event_hint, RejectConnection) else RejectConnection()
            try:
                self._write(handshake.send(hint))
            except LocalProtocolError:
                self._write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            raise ConnectionError(f"refused a WebSocket upgrade: {exc}") from None
        for event in handshake.events():
            if isinstance(event, Request):
                self._write(handshake.send(AcceptConnection()))
                self._open = True
            else:  # not a WebSocket upgrade wsproto accepts
                self._write(handshake.send(RejectConnection(status_code=400)))
                raise ConnectionError(f"refused a malformed WebSocket upgrade ({type(event).__name__})")
        if not self._open:
            raise ConnectionError("refused an incomplete WebSocket upgrade request")
        frames = getattr(handshake, "connection", None)
        if isinstance(frames, Connection):  # the HTTP handshake's state is not needed any more
            self._conn = frames
        return raw

    def send(self, message: str | bytes) -> None:
        self.send_many((message,))

    def send_many(self, messages: Sequence[str | bytes]) -> None:
        """Send each message as one WebSocket message (text for ``str``, binary for ``bytes``), in order, in one
        socket write. Raises OSError once the WebSocket is closed."""
        if not self._open:
            raise OSError("the WebSocket is closed")
        self._write(_frames(messages))

    def offer(self, messages: Sequence[str | bytes]) -> bool:
        """Send the messages as ``send_many`` does, but only if they can go now without waiting: nothing else on
        its way to the client and room in its socket (the Outlet's rule). False: nothing was sent."""
        if not self._open or self.outlet is None:
            return False
        return self.outlet.offer(_frames(messages))

    def close(self) -> None:
        """Send a close frame (unless the client's came first) and end our side of the TCP stream; the client
        answers or hangs up. Not a full shutdown: what the client sent and we did not read would make the kernel
        reset the connection and the client lose our last messages."""
        self._end_stream(self._close_frame())

    def offer_close(self) -> bool:
        """``close`` without waiting, if nothing else is on its way to the client (the Outlet's rule): the close
        frame goes into the socket now and our side of the stream ends once it is out. False: nothing was done
        (``close`` it, from a green thread that may wait). A deploy closes thousands of idle clients this way,
        without a green thread each."""
        outlet = self.outlet
        if outlet is None or not outlet.idle():
            return False
        data = self._close_frame()
        if data and not outlet.offer(data):  # no room in the socket after all: the frame waits for it
            self._spawn(lambda: self._end_stream(data))
        elif outlet.pending:  # partly taken: the stream ends after the rest
            self._spawn(lambda: self._end_stream(b""))
        else:
            self._end_stream(b"")
        return True

    def _close_frame(self) -> bytes:
        """The close frame to send, once (nothing when the WebSocket is closed already or the client's came
        first and was answered)."""
        if not self._open:
            return b""
        self._open = False
        try:
            return self._conn.send(CloseConnection(code=CloseReason.NORMAL_CLOSURE))
        except LocalProtocolError:
            return b""

    def _end_stream(self, data: bytes) -> None:
        """Write ``data`` (after anything pending), then end our side of the TCP stream."""
        if data:
            try:
                self._write(data)
            except OSError:
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

    def _received(self, data: bytes) -> None:
        """Parse bytes from the client: complete messages go to ``_messages``; pings are answered; a close frame
        is answered and ends the WebSocket (``_open`` False), as a protocol error or an oversized message does."""
        try:
            self._conn.receive_data(data)
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
        if not self._open:
            return
        self._partial_size += len(data)
        if self._partial_size > self._max_message:
            self._open = False
            self._partial, self._partial_size = [], 0
            self._write(self._conn.send(CloseConnection(code=CloseReason.MESSAGE_TOO_BIG, reason="message too big")))
            return
        self._partial.append(data)
        if finished:
            parts, self._partial, self._partial_size = self._partial, [], 0
            whole = parts[0] if len(parts) == 1 else parts[0][:0].join(parts)  # type: ignore[arg-type]
            self._messages.append(whole)


def _frames(messages: Sequence[str | bytes]) -> bytes:
    return b"".join(frame(message.encode("utf-8"), TEXT) if isinstance(message, str) else frame(message, BINARY)
                    for message in messages)
