"""What a gateway reads from Redis that one process holds itself: the latest best bid/ask of a symbol
(SharedBooks: ``/book`` and look-ups), and pages of the channels' histories (SharedHistory: ``/history`` and
replays). The leader writes both, as the channels' histories."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from cache.history_store import HistoryUnavailable, RedisHistory
from streaming.core.channels import Channel, Kind, split_market
from streaming.core.history import Page, new_epoch
from streaming.core.models import BookTicker

__all__ = ["SharedBooks", "SharedHistory"]

log = logging.getLogger(__name__)


class SharedBooks:
    def __init__(self, history: RedisHistory, wall_clock: Callable[[], float] = time.time) -> None:
        self._history = history
        self._wall_clock = wall_clock

    def peek(self, market: str, max_age: float | None = None) -> BookTicker | None:
        """The newest stored book ticker of a market (``channels.market_of``), if any (and, with ``max_age``, if
        that fresh)."""
        exchange, symbol = split_market(market)
        try:
            entries = self._history.tail(Channel(exchange, Kind.BOOK, symbol).key, 1)
        except HistoryUnavailable as exc:
            log.debug("book of %s from Redis: %s", market, exc)
            return None
        if not entries:
            return None
        try:
            book = BookTicker.from_wire(json.loads(entries[-1].item))
        except (KeyError, TypeError, ValueError):
            return None
        if max_age is not None and self._wall_clock() - book.event_time / 1000.0 > max_age:
            return None
        return book


class SharedHistory:
    """A gateway's reads of the channels' histories (``/history``, replays) from Redis, where the leader writes
    them: the same pages as one process's recorder gives (streaming/hub/recorder.py ``read``)."""

    def __init__(self, history: RedisHistory) -> None:
        self._history = history

    def read(self, channel: Channel, after: int, start: float, end: float, limit: int) -> Page[str]:
        """Up to ``limit`` updates after offset ``after`` with event times from ``start`` to ``end`` (seconds),
        oldest first, in the channel's current epoch (nothing, under a new epoch, when Redis holds none)."""
        try:
            stored = self._history.position(channel.key)
            if stored is None:
                return Page(new_epoch(), (), None)
            entries, more = self._history.read(channel.key, after, start, end, limit)
        except HistoryUnavailable as exc:
            log.warning("history: %s", exc)
            return Page(stored[0] if stored else new_epoch(), (), None)
        return Page(stored[0], tuple(entries), entries[-1].offset if more and entries else None)
