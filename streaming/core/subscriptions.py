"""SubscriptionRegistry: which client is subscribed to which symbols. No I/O.

It reports the transitions the upstream side cares about: a symbol's first subscriber arriving and its last one
leaving.
"""
from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SubscriptionRegistry"]


class SubscriptionRegistry:
    """Client id (Socket.IO sid) <-> symbols, in both directions."""

    def __init__(self) -> None:
        self._by_client: dict[str, set[str]] = {}
        self._by_symbol: dict[str, set[str]] = {}

    def add(self, client: str, symbols: Iterable[str]) -> tuple[list[str], list[str]]:
        """Subscribe a client. Returns ``(added, first)``: symbols new for this client, and those that had
        no subscriber before."""
        mine = self._by_client.setdefault(client, set())
        added: list[str] = []
        first: list[str] = []
        for symbol in symbols:
            if symbol in mine:
                continue
            mine.add(symbol)
            added.append(symbol)
            holders = self._by_symbol.setdefault(symbol, set())
            if not holders:
                first.append(symbol)
            holders.add(client)
        return added, first

    def remove(self, client: str, symbols: Iterable[str]) -> tuple[list[str], list[str]]:
        """Unsubscribe a client. Returns ``(removed, last)``: symbols it held, and those now without subscriber."""
        mine = self._by_client.get(client)
        removed: list[str] = []
        last: list[str] = []
        if mine is None:
            return removed, last
        for symbol in symbols:
            if symbol not in mine:
                continue
            mine.discard(symbol)
            removed.append(symbol)
            holders = self._by_symbol.get(symbol)
            if holders is not None:
                holders.discard(client)
                if not holders:
                    del self._by_symbol[symbol]
                    last.append(symbol)
        return removed, last

    def drop(self, client: str) -> list[str]:
        """Forget a client entirely (disconnect). Returns the symbols left without subscriber."""
        symbols = sorted(self._by_client.get(client, ()))
        _, last = self.remove(client, symbols)
        self._by_client.pop(client, None)
        return last

    def symbols_of(self, client: str) -> frozenset[str]:
        return frozenset(self._by_client.get(client, ()))

    def subscriber_count(self, symbol: str) -> int:
        return len(self._by_symbol.get(symbol, ()))

    def counts_by_symbol(self) -> dict[str, int]:
        """Clients per symbol, sorted by symbol."""
        return {symbol: len(self._by_symbol[symbol]) for symbol in sorted(self._by_symbol)}

    def symbols(self) -> frozenset[str]:
        """Every symbol with at least one subscriber."""
        return frozenset(self._by_symbol)

    def total_subscriptions(self) -> int:
        """Sum over clients of their subscribed symbols."""
        return sum(len(symbols) for symbols in self._by_client.values())

    def client_count(self) -> int:
        return len(self._by_client)
