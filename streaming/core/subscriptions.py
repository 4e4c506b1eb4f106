"""SubscriptionRegistry: which client holds which channels. No I/O.

It reports the transitions the upstream side cares about: a channel's first subscriber arriving and its last one
leaving. Generic in what it holds (the service holds ``Channel``s; the tests also use plain strings).
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["SubscriptionRegistry"]

K = TypeVar("K", bound=Hashable)


class SubscriptionRegistry(Generic[K]):
    """Client id (Socket.IO sid) <-> subscribed keys, in both directions."""

    def __init__(self) -> None:
        self._by_client: dict[str, set[K]] = {}
        self._by_key: dict[K, set[str]] = {}

    def add(self, client: str, keys: Iterable[K]) -> tuple[list[K], list[K]]:
        """Subscribe a client. Returns ``(added, first)``: keys new for this client, and those that had no
        subscriber before."""
        mine = self._by_client.setdefault(client, set())
        added: list[K] = []
        first: list[K] = []
        for key in keys:
            if key in mine:
                continue
            mine.add(key)
            added.append(key)
            holders = self._by_key.setdefault(key, set())
            if not holders:
                first.append(key)
            holders.add(client)
        return added, first

    def remove(self, client: str, keys: Iterable[K]) -> tuple[list[K], list[K]]:
        """Unsubscribe a client. Returns ``(removed, last)``: keys it held, and those now without subscriber."""
        mine = self._by_client.get(client)
        removed: list[K] = []
        last: list[K] = []
        if mine is None:
            return removed, last
        for key in keys:
            if key not in mine:
                continue
            mine.discard(key)
            removed.append(key)
            holders = self._by_key.get(key)
            if holders is not None:
                holders.discard(client)
                if not holders:
                    del self._by_key[key]
                    last.append(key)
        return removed, last

    def drop(self, client: str) -> list[K]:
        """Forget a client entirely (disconnect). Returns the keys left without subscriber."""
        _, last = self.remove(client, list(self._by_client.get(client, ())))
        self._by_client.pop(client, None)
        return last

    def of(self, client: str) -> frozenset[K]:
        """What a client holds."""
        return frozenset(self._by_client.get(client, ()))

    def subscriber_count(self, key: K) -> int:
        return len(self._by_key.get(key, ()))

    def counts(self) -> dict[K, int]:
        """Clients per key."""
        return {key: len(holders) for key, holders in self._by_key.items()}

    def keys(self) -> frozenset[K]:
        """Every key with at least one subscriber."""
        return frozenset(self._by_key)

    def total_subscriptions(self) -> int:
        """Sum over clients of what they hold."""
        return sum(len(keys) for keys in self._by_client.values())

    def client_count(self) -> int:
        return len(self._by_client)
