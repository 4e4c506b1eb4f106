"""streaming.hub.backfill: trades the stream missed are fetched and published first, in order; a hole that
cannot be filled starts the channel's history afresh instead of being hidden."""
from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from metrics.collectors import ServiceMetrics
from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.errors import UpstreamUnavailableError
from streaming.core.models import Ticker, Trade
from streaming.exchanges.binance.protocol import StreamBatch
from streaming.hub.backfill import TradeBackfill, last_trade_id

CHANNEL = Channel(BINANCE, Kind.TRADE, "BTCUSDT")


def trade(trade_id: int) -> Trade:
    return Trade("BTCUSDT", trade_id, "1", "1", False, trade_id, trade_id, 1000 + trade_id, 1000 + trade_id)


class Rest:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.asked: list[tuple[str, int, int | None]] = []

    def agg_trades(self, symbol: str, limit: int, from_id: int | None = None) -> list[Trade]:
        self.asked.append((symbol, limit, from_id))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def backfill(answer: Any, last: int | None = 10, max_gap: int = 1000) -> tuple[TradeBackfill, Rest, list]:
    rest, restarted = Rest(answer), []
    filler = TradeBackfill(rest, lambda symbol: last, restarted.append,  # type: ignore[arg-type]
                           ServiceMetrics(CollectorRegistry()), max_gap=max_gap)
    return filler, rest, restarted


def ids(batch: StreamBatch) -> list[int]:
    return [update.trade_id for update in batch.updates if isinstance(update, Trade)]


def test_missed_trades_come_first_in_order() -> None:
    filler, rest, restarted = backfill([trade(n) for n in (11, 12, 13)])
    assert ids(filler.fill(StreamBatch("btcusdt@aggTrade", (trade(14),)))) == [11, 12, 13, 14]
    assert rest.asked == [("BTCUSDT", 3, 11)] and restarted == []


def test_no_hole_no_request() -> None:
    filler, rest, _ = backfill([])
    assert ids(filler.fill(StreamBatch("btcusdt@aggTrade", (trade(11),)))) == [11]
    assert ids(backfill([], last=None)[0].fill(StreamBatch("s", (trade(99),)))) == [99], "nothing recorded yet"
    ticker = Ticker("BTCUSDT", "1", "1", "1", "1", "1", "1", "1", "1", 5)
    batch = StreamBatch("btcusdt@ticker", (ticker,))
    assert filler.fill(batch) is batch and rest.asked == []


def test_a_hole_that_cannot_be_filled_restarts_the_history() -> None:
    for answer, max_gap in ((UpstreamUnavailableError("down"), 1000), ([trade(11)], 1000), ([], 2)):
        filler, _, restarted = backfill(answer, max_gap=max_gap)
        assert ids(filler.fill(StreamBatch("s", (trade(14),)))) == [14], "the live trade still goes out"
        assert restarted == [CHANNEL], answer


def test_the_id_of_a_recorded_trade() -> None:
    assert last_trade_id('{"symbol":"BTCUSDT","id":42}') == 42
    assert last_trade_id(None) is None and last_trade_id("not json") is None and last_trade_id("[1]") is None
