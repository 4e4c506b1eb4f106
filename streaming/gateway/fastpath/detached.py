"""A WebSocket served without a green thread of its own: read when the event loop says its socket is readable.

python-engineio serves a WebSocket by keeping the HTTP request's green thread in a loop around ``ws.wait()``
for the connection's whole life: per idle client a parked green thread and its saved stack, and the HTTP
server's request objects (its handler, buffers, environ) that the thread's frames hold. DetachedWebSocket does
what that loop does, without the thread:

1. it answers the upgrade (streaming.gateway.fastpath.wsproto_socket), then takes the connection over from the
   HTTP server (``take_over()``, offered by streaming.runtime.server in the environ): the request returns at
   once and the server forgets the connection, which is released (closed) when the WebSocket ends;
2. it marks the Engine.IO socket connected and upgraded, as python-engineio's handler does for a client that
   connected with the WebSocket transport directly, registers the client's Outlet and an on-demand writer;
3. it asks the event loop to call it when the socket is readable (streaming.gateway.fastpath.watchers); each
   time, a short-lived green thread reads what is there without blocking and hands every complete message to
   ``Socket.receive``, in order (the service runs its handlers inline, ``async_handlers=False``);
4. when the client closes, hangs up, breaks the protocol, or python-engineio closes the socket (our close frame
   sent, then CLOSE_TIMEOUT for the answer), it ends the connection as python-engineio's handler does.

Only for clients that connected with the WebSocket transport directly (an upgrade from long-polling has its
probe exchange, served by python-engineio's own handler).
"""
from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from wsproto.connection import ConnectionState

from streaming.gateway.fastpath.outlets import Outlet
from streaming.gateway.fastpath.transport import forget_request
from streaming.gateway.fastpath.watchers import ReadWatch, ReadWatcher
from streaming.gateway.fastpath.writers import OnDemandWriter
from streaming.gateway.fastpath.wsproto_socket import RECEIVE_BYTES, WsprotoSocket

__all__ = ["CLOSE_TIMEOUT", "READS_PER_TURN", "DetachedWebSocket"]

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0  # seconds a client has to answer our close frame before the connection is dropped
READS_PER_TURN = 16  # reads of one wake-up before the reader yields to other clients (the loop calls again)
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)

Spawn = Callable[[Callable[[], Any]], object]
SpawnLater = Callable[[float, Callable[[Any], None], Any], object]


class DetachedWebSocket(WsprotoSocket):
    def __init__(self, eio_socket: Any, outlets: dict[str, Outlet], spawn: Spawn, spawn_later: SpawnLater,
                 watch: ReadWatcher, on_open: Callable[[Any], None]) -> None:
        """``eio_socket``: python-engineio's Socket of the client; ``outlets``: the fan-out's Outlet per
        Engine.IO sid, where this client's is kept while it is open; ``spawn``/``spawn_later``: bare green threads
        (now, after a delay); ``watch``: the loop's read watcher; ``on_open(green socket)``: told once the
        upgrade is answered."""
        server = eio_socket.server
        super().__init__(int(server.max_http_buffer_size), spawn)
        self._eio = eio_socket
        self._outlets = outlets
        self._spawn_later = spawn_later
        self._watch = watch
        self._on_open = on_open
        self._raw: Any = None
        self._watching: ReadWatch | None = None
        self._release: Callable[[], None] | None = None
        self._writer: OnDemandWriter | None = None
        self._reading = False
        self._over = False  # the client closed, hung up or broke the protocol: nothing more to read
        self._ended = False

    def serve(self, environ: dict, take_over: Callable[[], Callable[[], None]]) -> list[bytes]:
        """Answer the upgrade and serve the WebSocket from the event loop; returns the (empty) WSGI response at
        once. ``take_over()`` detaches the connection from the HTTP server and returns its ``release()``."""
        sock = self._eio
        try:
            self._raw = self.accept(environ)
        except ConnectionError as exc:
            log.info("%s: %s", sock.sid, exc)
            take_over()()  # answered already (400): the connection just closes
            sock.close(wait=False, abort=True, reason=sock.server.reason.TRANSPORT_ERROR)
            return []
        self._release = take_over()
        self._on_open(self.socket)
        self.socket.settimeout(sock.server.ping_interval + sock.server.ping_timeout)  # for blocked writes
        sock.connected = True
        sock.upgraded = True
        if self.outlet is not None:
            self._outlets[sock.sid] = self.outlet
        self._writer = OnDemandWriter(sock, self, self._spawn)
        self._writer.start()
        forget_request(environ, self.socket)
        self._watching = self._watch(self._raw.fileno(), self._readable)
        return []

    def close(self) -> None:
        """python-engineio's writer ends the connection: our close frame, then CLOSE_TIMEOUT for the answer."""
        super().close()
        self._closing()

    def offer_close(self) -> bool:
        """The writer's end marker, past the queue (WsprotoSocket.offer_close); then as ``close``."""
        if not super().offer_close():
            return False
        self._closing()
        return True

    def _closing(self) -> None:
        if not self._ended:
            self._spawn_later(CLOSE_TIMEOUT, DetachedWebSocket._end, self)

    # -- called by the event loop ---------------------------------------------------------------------------
    def _readable(self) -> None:
        if not self._reading and not self._ended:
            self._reading = True
            if self._watching is not None:  # level-triggered: it would fire every turn until the reader has run
                self._watching.pause()
            self._spawn(self._read)

    def _read(self) -> None:
        try:
            for _ in range(READS_PER_TURN):
                try:
                    data = self._raw.recv(RECEIVE_BYTES, _DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    data = b""
                if not data:  # the client hung up (or the connection was shut down)
                    self._open = False
                    self._over = True
                    break
                self._received(data)
                if self._messages and not self._deliver():
                    self._over = True
                if self._over:
                    break
        except Exception:  # a bug here must not leave the connection half served
            log.exception("%s: reading a WebSocket failed; closing it", self._eio.sid)
            self._over = True
        finally:
            self._reading = False
        if self._over:
            self._end()
        elif self._watching is not None:
            self._watching.resume()

    def _received(self, data: bytes) -> None:
        was_open = self._open
        try:
            super()._received(data)
        except OSError:  # answering a ping or a close: the client is gone
            self._open = False
            self._over = True
            return
        if not self._open and (was_open or self._conn.state is ConnectionState.CLOSED):
            self._over = True  # the client's close (answered), its answer to ours, or a protocol error

    def _deliver(self) -> bool:
        """Hand the complete messages to python-engineio in order; False once the connection must end."""
        messages, self._messages = self._messages, []
        sock = self._eio
        for message in messages:
            if sock.closed:
                return True  # closing already: the rest is not for anybody
            try:
                sock.receive(eio_packet.Packet(encoded_packet=message))
            except eio_exceptions.UnknownPacketError:
                pass
            except eio_exceptions.SocketIsClosedError:
                return False
            except Exception as exc:  # noqa: BLE001 - malformed Engine.IO input: as python-engineio, end it
                log.info("%s: closing a WebSocket after unusable input: %s: %.80s", sock.sid, type(exc).__name__,
                         exc)
                return False
        return True

    def _end(self) -> None:
        """What python-engineio's handler does when its read loop ends, then the connection's release."""
        if self._ended:
            return
        self._ended = True
        self._open = False
        if self._watching is not None:
            self._watching.close()
        sock = self._eio
        sock.queue.put(None)  # the writer sends what is queued, then closes the WebSocket
        if self._writer is not None:
            self._writer.join()
        sock.close(wait=False, abort=True, reason=sock.server.reason.TRANSPORT_CLOSE)
        sockets = sock.server.sockets
        if sock.closed and sockets.get(sock.sid) is sock:
            del sockets[sock.sid]  # python-engineio's connect request would have, had it lasted this long
        if self.outlet is not None:
            self.outlet.closed = True
            if self._outlets.get(sock.sid) is self.outlet:
                del self._outlets[sock.sid]
        if self._release is not None:
            release, self._release = self._release, None
            release()
