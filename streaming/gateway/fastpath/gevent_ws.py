"""WebSockets under gevent read by the connection's own green thread, on the connection's own socket.

python-engineio's gevent driver serves WebSockets with simple-websocket, which gives every client a second
file descriptor (it duplicates the socket) and a second green thread that only reads and hands messages over:
measured, about 10 KB and one descriptor per client more than eventlet (10,000 clients came close to a 20,000
descriptor limit). GeventWebSocket keeps python-engineio's WebSocket interface (``wait``/``send``/``close``)
on streaming.gateway.fastpath.wsproto_socket, reading in the handler's green thread. The service's own server
hands the connection over to streaming.gateway.fastpath.detached instead, which needs no green thread at all;
this one serves where that hand-over is not offered.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from streaming.gateway.fastpath.wsproto_socket import RECEIVE_BYTES, WsprotoSocket

__all__ = ["GeventWebSocket"]


class GeventWebSocket(WsprotoSocket):
    """python-engineio's ``_async['websocket']`` for gevent: ``GeventWebSocket(handler, server)(environ, ...)``."""

    def __init__(self, handler: Callable[[Any], Any], server: Any) -> None:
        super().__init__(int(server.max_http_buffer_size), server.start_background_task)
        self._handler = handler

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.accept(environ)
        return self._handler(self)

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
            self._received(data)
        return self._messages.pop(0)
