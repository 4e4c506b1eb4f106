"""WSGI middleware of the service's own: what Flask-SocketIO and python-engineio offer no switch for."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["TAKEOVER", "without_websocket_compression"]

WsgiApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


def without_websocket_compression(wsgi_app: WsgiApp) -> WsgiApp:
    """Drop the client's ``Sec-WebSocket-Extensions`` offer, so that no WebSocket negotiates permessage-deflate.

    socket.io-client offers it and eventlet's and simple-websocket's servers accept it, but tickers are a few
    hundred bytes: compressing each frame costs CPU per delivery and a zlib context per connection, for little
    saved bandwidth. Both servers read the offer from the WSGI environ, so removing it there covers both."""

    def app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        return wsgi_app(environ, start_response)

    return app


# The environ key under which the service's HTTP servers offer a request's connection to be taken over: a
# callable returning its ``release()`` (streaming.runtime.takeover).
TAKEOVER = "streaming.takeover"
