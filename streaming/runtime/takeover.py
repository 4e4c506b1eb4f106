"""A connection handed over by its HTTP request to whoever serves it next (a detached WebSocket).

The HTTP servers end a connection when its request handler returns: they close the socket and the service's
ConnectionGuard forgets the address. A WebSocket served from the event loop (streaming.gateway.fastpath.detached)
returns from its request at once and keeps the connection. The servers put ``environ[TAKEOVER]``
(streaming.runtime.wsgi) in every request's environ: calling it detaches the connection from the server and
returns ``release()``, which closes it when its new owner is done. The address counts until both the request
has returned and the connection has been released, in whichever order they come.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streaming.runtime.guard import ConnectionGuard

__all__ = ["Takeover", "Takeovers"]


class Takeover:
    __slots__ = ("_address", "_connection", "_forget", "_guard", "_left", "taken")

    def __init__(self, guard: ConnectionGuard, connection: Any, address: str, forget: Callable[[], None]) -> None:
        self._guard = guard
        self._connection = connection
        self._address = address
        self._forget = forget  # drops this record from its server's Takeovers
        self._left = 2  # the request's end and the release
        self.taken = False

    def take(self) -> Callable[[], None]:
        """Detach the connection; returns its ``release``. Raises RuntimeError when taken already."""
        if self.taken:
            raise RuntimeError("this connection was taken over already; it has one owner")
        self.taken = True
        return self._release

    def request_over(self) -> None:
        """The request that handed the connection over has returned (the server is done with it)."""
        self._settle()

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return  # released already
        try:
            connection.close()
        except OSError:
            pass
        self._guard.handshakes.done(connection)
        self._settle()

    def _settle(self) -> None:
        self._left -= 1
        if self._left == 0:
            self._forget()
            self._guard.closed(self._address)


class Takeovers:
    """The Takeover of each connection one server is serving, by connection."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._by_connection: dict[int, Takeover] = {}

    def served(self, connection: Any, address: str, function: Callable[..., Any], *args: Any,
               **kwargs: Any) -> Any:
        """Serve one connection with ``function(*args, **kwargs)``, counting its address until the connection
        ends: when the function returns, unless it was taken over (then when it is released as well)."""
        key = id(connection)
        record = Takeover(self._guard, connection, address, lambda: self._by_connection.pop(key, None))
        self._by_connection[key] = record
        try:
            return function(*args, **kwargs)
        finally:
            if record.taken:
                record.request_over()
            else:
                del self._by_connection[key]
                self._guard.handshakes.done(connection)
                self._guard.closed(address)

    def of(self, connection: Any) -> Takeover | None:
        """The Takeover of a connection being served, or taken over and not released yet (None for any other)."""
        return self._by_connection.get(id(connection))

    def kept(self, connection: Any) -> bool:
        """Whether the connection was taken over and is not released yet: the server must not close it."""
        record = self.of(connection)
        return record is not None and record.taken
