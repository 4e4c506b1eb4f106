"""The bench's Bybit side (target ``bybit`` of bench/perf.py): the fake Bybit the service reads, and which of the
fake's ``tickers`` messages are updates a client must get.

Bybit's ``tickers.{S}`` topic is a snapshot followed by deltas that carry only the fields that changed (README,
"Exchanges"); the service keeps each connection's merged ticker and sends a ``price_update`` (eventTime = the
message's ``ts``) for a snapshot and for a delta that changed a field it shows. A delta that changes only
markPrice, indexPrice, openInterest, funding or the book's top is no update, so it cannot be lost. The fake's own
record of what it sent (``FakeBybit.sent``, per connection of the service) gives the updates of the window.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tests.fakes.bybit import FakeBybit

__all__ = ["SHOWN_FIELDS", "BybitTickObserver", "fake_bybit", "ticker_update_times"]

# The Bybit fields a price_update shows (README, "Exchanges", "Bybit's fields"): price, volume, high, low, open
# (and change), change %, quote volume.
SHOWN_FIELDS = ("lastPrice", "volume24h", "highPrice24h", "lowPrice24h", "prevPrice24h", "price24hPcnt",
                "turnover24h")
SNAPSHOT = "snapshot"


def ticker_update_times(sent: Iterable[tuple[str, Mapping[str, Any]]]) -> set[int]:
    """Of one symbol's ``tickers`` messages as (conn_id, message) in sending order, the ``ts`` of those that make
    a price_update: a snapshot, or a delta that changed a shown field of its connection's merged ticker (a delta
    before its connection's snapshot merges into nothing, as in the service)."""
    held: dict[str, dict[str, Any]] = {}
    times: set[int] = set()
    for conn_id, message in sent:
        data = message.get("data")
        if not isinstance(data, Mapping):
            continue
        shown = {key: data[key] for key in SHOWN_FIELDS if key in data}
        if message.get("type") == SNAPSHOT:
            held[conn_id] = shown
            changed = True
        elif conn_id in held:
            state = held[conn_id]
            changed = any(state.get(key) != value for key, value in shown.items())
            state.update(shown)
        else:
            continue
        if changed:
            times.add(int(message["ts"]))
    return times


class BybitTickObserver:
    """The updates the fake Bybit sent the service, per symbol, read from the fake's record (no connection of its
    own: one would get snapshots of its own, which the service never saw)."""

    def __init__(self, fake: FakeBybit, symbols: list[str]) -> None:
        self._fake = fake
        self._symbols = list(symbols)
        self._messages = 0
        self._updates = 0

    def between(self, start_ms: int, end_ms: int) -> dict[str, set[int]]:
        """Per symbol, the eventTimes of the price_updates whose ``ts`` is in [start_ms, end_ms)."""
        observed: dict[str, set[int]] = {}
        self._messages = self._updates = 0
        for symbol in self._symbols:
            sent = self._fake.sent(f"tickers.{symbol}")
            observed[symbol] = {t for t in ticker_update_times(sent) if start_ms <= t < end_ms}
            self._messages += sum(1 for _, message in sent if start_ms <= int(message.get("ts", 0)) < end_ms)
            self._updates += len(observed[symbol])
        return observed

    def remarks(self) -> list[str]:
        """What the last ``between`` found: how many of the fake's tickers messages were updates."""
        if not self._messages:
            return []
        return [f"the fake Bybit sent {self._messages:,} tickers messages in the window, {self._updates:,} of which "
                f"changed a shown field (a price_update each; the others change only mark/index/OI/funding/book)"]


@contextlib.contextmanager
def fake_bybit(tick_interval: float, symbols: Iterable[str]) -> Iterator[FakeBybit]:
    """A started FakeBybit (its production ping timeout) ticking every ``tick_interval``, with every symbol of
    ``symbols`` a Trading USDT perpetual (those it does not list by default are listed)."""
    with FakeBybit(tick_interval=tick_interval) as fake:
        listed = fake.usdt_perpetuals()
        for symbol in symbols:
            if symbol not in listed:
                fake.list_symbol(symbol)
        yield fake
