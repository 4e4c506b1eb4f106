"""FreezableProxy: a TCP relay on 127.0.0.1 that can go silent without closing, like a peer that died, or cut
every connection, like a lost network.

``freeze()`` stops relaying in both directions while keeping both sockets open (no FIN, no RST): the client
sees nothing at all, which is how a dead peer or a black-holed route looks. ``thaw()`` resumes.
``cut()`` resets every relayed connection at both ends (RST) and resets each new one as it comes in, which is
how a lost route looks to a client that keeps retrying; ``restore()`` relays new connections again.
"""
from __future__ import annotations

import selectors
import socket
import struct
import threading

__all__ = ["FreezableProxy"]


class FreezableProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._frozen = threading.Event()
        self._cut = threading.Event()
        self._reset_done = threading.Event()
        self._stop = threading.Event()
        self._pairs: dict[socket.socket, socket.socket] = {}
        self._thread = threading.Thread(target=self._run, name="freezable-proxy", daemon=True)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> FreezableProxy:
        self._thread.start()
        return self

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def cut(self) -> None:
        """Reset every open connection and each new one until restore(); returns once the open ones are reset."""
        self._reset_done.clear()
        self._cut.set()
        if not self._reset_done.wait(5):
            raise AssertionError("the proxy did not reset its connections within 5 s")

    def restore(self) -> None:
        self._cut.clear()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in list(self._pairs):
            sock.close()
        self._pairs.clear()
        self._listener.close()

    def __enter__(self) -> FreezableProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if self._cut.is_set() and not self._reset_done.is_set():
                    for sock in list(self._pairs):
                        selector.unregister(sock)
                        _reset(sock)
                    self._pairs.clear()
                    self._reset_done.set()
                for key, _ in selector.select(timeout=0.05):
                    if key.fileobj is self._listener:
                        self._accept(selector)
                    elif not self._frozen.is_set():
                        self._relay(selector, key.fileobj)  # type: ignore[arg-type]

    def _accept(self, selector: selectors.BaseSelector) -> None:
        client, _ = self._listener.accept()
        if self._cut.is_set():
            _reset(client)
            return
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        for sock in (client, upstream):
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        self._pairs[client], self._pairs[upstream] = upstream, client

    def _relay(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        other = self._pairs.get(sock)
        if other is None:
            return
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            try:
                other.setblocking(True)
                other.sendall(data)
                other.setblocking(False)
                return
            except OSError:  # the other side is gone (e.g. the client gave up on the frozen connection)
                pass
        for end in (sock, other):  # one side closed: close the pair
            selector.unregister(end)
            self._pairs.pop(end, None)
            end.close()


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN: linger on, with a zero timeout."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
