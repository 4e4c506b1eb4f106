"""A connection hog for end-to-end tests: idle TCP connections from one local address that never finish their
request headers (a slow-header attack), reopened when the server closes them. Bounded in count and time."""
from __future__ import annotations

import selectors
import socket
import threading
import time

__all__ = ["Hog", "PARTIAL_REQUEST"]

# A request line and one header, but never the blank line that ends the headers.
PARTIAL_REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
CONNECT_TIMEOUT = 0.5


class Hog:
    """Holds up to ``count`` connections from ``source`` (e.g. "127.0.0.2") to ``port`` on 127.0.0.1."""

    def __init__(self, source: str, port: int, count: int) -> None:
        self.source, self.port, self.count = source, port, count
        self._selector = selectors.DefaultSelector()
        self._open: set[socket.socket] = set()
        self.opened = 0  # connections that got through the TCP handshake
        self.closed_by_server = 0  # of those, closed by the server (refused at once, or timed out)
        self.failed = 0  # connect attempts that failed or timed out
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._open)

    def fill(self, deadline: float) -> None:
        """Open connections until ``count`` are open or ``deadline`` (monotonic) passes; reap closed ones."""
        while len(self._open) < self.count and time.monotonic() < deadline and not self._stop.is_set():
            self.reap()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_TIMEOUT)
            try:
                sock.bind((self.source, 0))
                sock.connect(("127.0.0.1", self.port))
                sock.sendall(PARTIAL_REQUEST)
            except OSError:
                sock.close()
                self.failed += 1
                continue
            self.opened += 1
            sock.setblocking(False)
            self._open.add(sock)
            self._selector.register(sock, selectors.EVENT_READ)
        self.reap()

    def reap(self) -> None:
        """Forget the connections the server has closed (readable: EOF or a reset)."""
        for key, _ in self._selector.select(timeout=0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            self._selector.unregister(sock)
            self._open.discard(sock)
            sock.close()
            self.closed_by_server += 1

    def run_for(self, seconds: float) -> Hog:
        """Keep ``count`` connections open for ``seconds`` in a background thread (``stop`` ends it early)."""
        until = time.monotonic() + seconds

        def run() -> None:
            while not self._stop.is_set() and time.monotonic() < until:
                self.fill(until)
                self._stop.wait(0.05)

        self._thread = threading.Thread(target=run, name=f"hog-{self.source}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the background thread and close every connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for sock in list(self._open):
            self._selector.unregister(sock)
            sock.close()
        self._open.clear()
        self._selector.close()
