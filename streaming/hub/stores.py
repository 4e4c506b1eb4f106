"""In-memory state per channel kind, beside the ticker cache (cache/writer.py): the latest book ticker of each
market (an exchange's symbol, ``channels.market_of``), and the last trades of each market. Both are the fan-out's
ordering gate for their kind: ``offer`` accepts only an update newer than the newest one held, so clients never
see an older or a repeated update (overlapping connections during a rotation deliver some twice). No I/O.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from streaming.core.models import BookTicker, Ticker, Trade

__all__ = ["LatestStore", "TradeTape", "TRADES_KEPT"]

# Trades kept per symbol: Binance's own maximum for GET /fapi/v1/aggTrades (limit 1000).
TRADES_KEPT = 1000

M = TypeVar("M", Ticker, BookTicker, Trade)


class LatestStore(Generic[M]):
    """The newest update of each symbol (book tickers; the ticker cache keeps its tickers in one too)."""

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, M] = {}
        self._wall_clock = wall_clock

    def offer(self, update: M) -> bool:
        """Keep an update if it is newer than the one held; returns whether it was."""
        with self._lock:
            held = self._latest.get(update.market)
            if held is not None and not update.newer_than(held):
                return False
            self._latest[update.market] = update
        return True

    def peek(self, market: str, max_age: float | None = None) -> M | None:
        """The update held for a market (``channels.market_of``), if any; with ``max_age``, only if its event is
        at most that many seconds old."""
        with self._lock:
            update = self._latest.get(market)
        if update is None or max_age is not None and self.age(update) > max_age:
            return None
        return update

    def age(self, update: M) -> float:
        """Seconds since the update's event time (by this machine's clock)."""
        return self._wall_clock() - update.event_time / 1000.0

    def values(self) -> list[M]:
        with self._lock:
            return list(self._latest.values())


class TradeTape:
    """The last TRADES_KEPT aggregated trades of each symbol, oldest first."""

    def __init__(self, kept: int = TRADES_KEPT) -> None:
        self._lock = threading.Lock()
        self._kept = kept
        self._tapes: dict[str, deque[Trade]] = {}

    def offer(self, trade: Trade) -> bool:
        """Append a trade that follows the newest one held; returns whether it did (else it is old or a repeat)."""
        with self._lock:
            tape = self._tapes.get(trade.market)
            if tape is None:
                tape = self._tapes[trade.market] = deque(maxlen=self._kept)
            elif tape and not trade.newer_than(tape[-1]):
                return False
            tape.append(trade)
        return True

    def last_id(self, market: str) -> int | None:
        """The ``trade_id`` of the newest trade held for a market."""
        with self._lock:
            tape = self._tapes.get(market)
            return tape[-1].trade_id if tape else None

    def recent(self, market: str, limit: int, consecutive: bool = True) -> list[Trade] | None:
        """The last ``limit`` trades of a market, oldest first, if the tape holds that many without a gap; else
        None.

        Binance numbers a symbol's aggregated trades consecutively (``consecutive``), so a gap (trades missed
        while a connection was down, or before the stream was subscribed again) shows as a skipped id. Where
        ids are not consecutive (Bybit) no gap can be seen, and the tape is trusted while its stream is live."""
        with self._lock:
            tape = self._tapes.get(market)
            if tape is None or len(tape) < limit:
                return None
            trades = list(tape)[-limit:] if limit else []
        if not consecutive:
            return trades
        for before, after in zip(trades, trades[1:]):
            if after.trade_id != before.trade_id + 1:
                return None
        return trades
