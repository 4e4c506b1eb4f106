"""TradeBackfill: a symbol's aggregated trades without holes, in the history and for subscribers.

Binance numbers a symbol's aggregated trades consecutively, so a trade whose id is more than one above the last
one recorded shows that trades were missed: while the service restarted, while a connection was being replaced
or reconnected, while nobody subscribed. Before such a trade is published, the missed ones are fetched from
Binance REST (``GET /fapi/v1/aggTrades?fromId=``, at most MAX_GAP of them) and published first, so the history
holds every trade and a client that recovers across the hole gets them all. A hole that cannot be filled (too
wide, or Binance REST unavailable) starts the channel's history afresh with a new epoch: a client's position
from before it is then refused (``recovered: false``) instead of silently missing trades.

Runs in the upstream reader that delivered the trade, before the fan-out's lock: only that connection waits
for the REST answer.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from metrics.collectors import ServiceMetrics
from metrics.labels import HistoryOperation
from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.errors import ProtocolError, StreamingError
from streaming.core.models import Model, Trade
from streaming.exchanges.messages import StreamBatch

__all__ = ["MAX_GAP", "TradeBackfill", "last_trade_id"]

log = logging.getLogger(__name__)

MAX_GAP = 1000  # Binance's most aggregated trades per request


class AggTrades(Protocol):
    """Binance's aggregated trades from an id on (BinanceRest, or a recording's stand-in)."""

    def agg_trades(self, symbol: str, limit: int, from_id: int | None = None) -> list[Trade]: ...


class TradeBackfill:
    def __init__(self, rest: AggTrades, last_id: Callable[[str], int | None],
                 restart: Callable[[Channel], object], metrics: ServiceMetrics, max_gap: int = MAX_GAP) -> None:
        self._rest = rest
        self._last_id = last_id  # the newest aggregate id recorded for a symbol (None: none yet)
        self._restart = restart  # the channel's history has a hole: a new epoch
        self._metrics = metrics
        self._max_gap = max_gap

    def fill(self, batch: StreamBatch) -> StreamBatch:
        """The batch with the trades missed before each of its trades put in front of it."""
        if not any(isinstance(update, Trade) and update.exchange == BINANCE for update in batch.updates):
            return batch  # only Binance numbers every trade (aggregate ids), so only its gaps can be seen
        updates: list[Model] = []
        for update in batch.updates:
            if isinstance(update, Trade) and update.exchange == BINANCE:
                updates += self._missed_before(update)
            updates.append(update)
        return replace(batch, updates=tuple(updates))

    def _missed_before(self, trade: Trade) -> list[Trade]:
        last = self._last_id(trade.symbol)
        if last is None or trade.trade_id <= last + 1:
            return []
        missing = trade.trade_id - last - 1
        channel = Channel(BINANCE, Kind.TRADE, trade.symbol)
        if missing > self._max_gap:
            self._lost(channel, f"{missing} aggregated trades missed, more than one request fetches "
                       f"({self._max_gap})")
            return []
        try:
            fetched = self._rest.agg_trades(trade.symbol, missing, from_id=last + 1)
        except (StreamingError, ProtocolError) as exc:
            self._lost(channel, f"{missing} aggregated trades missed and Binance REST could not give them: {exc}")
            return []
        filled = [row for row in fetched if last < row.trade_id < trade.trade_id]
        if [row.trade_id for row in filled] != list(range(last + 1, trade.trade_id)):
            self._lost(channel, f"Binance REST returned {len(filled)} of the {missing} aggregated trades missed")
            return []
        self._metrics.backfilled_trades.inc(len(filled))
        log.info("%s: %d aggregated trades missed (ids %d-%d) fetched from Binance REST", channel.key, missing,
                 last + 1, trade.trade_id - 1)
        return filled

    def _lost(self, channel: Channel, why: str) -> None:
        self._metrics.history_errors.labels(HistoryOperation.GAP).inc()
        log.warning("%s: %s; its history starts again with a new epoch", channel.key, why)
        self._restart(channel)


def last_trade_id(item: str | None) -> int | None:
    """The aggregate id of a recorded trade's wire JSON."""
    if item is None:
        return None
    try:
        value = json.loads(item).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None
