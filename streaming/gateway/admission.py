"""Admission: the connected clients, per address, and whether a new one is let in. No I/O."""
from __future__ import annotations

import threading

from metrics.labels import RejectedCode

__all__ = ["Admission", "SHUTTING_DOWN", "TOO_MANY_CONNECTIONS"]

SHUTTING_DOWN = RejectedCode.SERVER_SHUTTING_DOWN
TOO_MANY_CONNECTIONS = RejectedCode.TOO_MANY_CONNECTIONS


class Admission:
    def __init__(self, max_connections: int, max_per_address: int) -> None:
        self._max = max_connections
        self._max_per_address = max_per_address
        self._lock = threading.Lock()
        self._clients: set[str] = set()
        self._address_of: dict[str, str] = {}  # sid -> client IP
        self._per_address: dict[str, int] = {}  # client IP -> connections
        self.draining = False  # set once when shutting down: no new clients

    def refusal(self, address: str) -> tuple[str, str] | None:
        """(code, reason) when a new connection from this address is refused: the service is shutting down
        (SERVER_SHUTTING_DOWN), or MAX_CONNECTIONS / MAX_CONNECTIONS_PER_IP is reached (TOO_MANY_CONNECTIONS)."""
        if self.draining:
            return SHUTTING_DOWN, "the server is shutting down; reconnect in a few seconds"
        with self._lock:
            if len(self._clients) >= self._max:
                return TOO_MANY_CONNECTIONS, "the server is full; try again later"
            if self._per_address.get(address, 0) >= self._max_per_address:
                return TOO_MANY_CONNECTIONS, (
                    f"too many connections from your address (at most {self._max_per_address})"
                )
        return None

    def connected(self, sid: str, address: str = "") -> None:
        with self._lock:
            self._clients.add(sid)
            self._address_of[sid] = address
            self._per_address[address] = self._per_address.get(address, 0) + 1

    def disconnected(self, sid: str) -> None:
        with self._lock:
            self._clients.discard(sid)
            address = self._address_of.pop(sid, None)
            if address is not None:
                left = self._per_address.pop(address, 1) - 1
                if left > 0:
                    self._per_address[address] = left

    def clients(self) -> list[str]:
        with self._lock:
            return list(self._clients)

    def count(self) -> int:
        return len(self._clients)
