"""streaming.hub.stores and streaming.hub.fanout: each kind's ordering gate keeps clients from ever seeing an
older or a repeated update (overlapping connections deliver some twice), and the fan-out sends each kind's
updates as its own event to its channel's room. No sockets."""
from __future__ import annotations

from dataclasses import replace

from metrics.collectors import ServiceMetrics
from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.models import BookTicker, Trade
from streaming.exchanges.binance.protocol import StreamBatch
from streaming.hub.fanout import Fanout
from streaming.hub.stores import LatestStore, TradeTape

NOW_MS = 1_791_283_239_234


def trade(trade_id: int, symbol: str = "BTCUSDT") -> Trade:
    return Trade(symbol, trade_id, "86026.4", "0.012", False, trade_id * 3, trade_id * 3 + 2, NOW_MS - 100, NOW_MS)


def book(update_id: int | None, transaction_time: int = NOW_MS, symbol: str = "BTCUSDT") -> BookTicker:
    return BookTicker(symbol, "86026.3", "4.2", "86026.4", "1.0", update_id, NOW_MS, transaction_time)


def test_the_tape_keeps_trades_in_id_order_once_and_the_last_ones_only() -> None:
    tape = TradeTape(kept=5)
    assert [tape.offer(trade(i)) for i in (10, 11, 11, 9, 12)] == [True, True, False, False, True]
    assert [t.trade_id for t in tape.recent("BTCUSDT", 3) or []] == [10, 11, 12]
    for i in range(13, 20):
        tape.offer(trade(i))
    assert [t.trade_id for t in tape.recent("BTCUSDT", 5) or []] == [15, 16, 17, 18, 19]
    assert tape.recent("BTCUSDT", 6) is None, "it keeps no more than asked"
    assert tape.recent("ETHUSDT", 1) is None and tape.recent("BTCUSDT", 0) == []


def test_a_gap_in_the_ids_means_the_tape_cannot_answer_across_it() -> None:
    tape = TradeTape()
    for i in (1, 2, 3, 7, 8):  # 4-6 were missed (a reconnect)
        tape.offer(trade(i))
    assert [t.trade_id for t in tape.recent("BTCUSDT", 2) or []] == [7, 8]
    assert tape.recent("BTCUSDT", 3) is None


def test_book_tickers_are_ordered_by_update_id_and_rest_ones_by_time() -> None:
    store: LatestStore[BookTicker] = LatestStore(wall_clock=lambda: NOW_MS / 1000)
    assert store.offer(book(5)) and not store.offer(book(5)) and not store.offer(book(4))
    assert store.offer(book(6))
    assert not store.offer(book(None, NOW_MS)), "a REST answer of the same instant is no newer"
    assert store.offer(book(None, NOW_MS + 1))
    assert store.peek("BTCUSDT", 10) == book(None, NOW_MS + 1)


def test_peek_returns_only_a_fresh_update() -> None:
    now = [NOW_MS / 1000]
    store: LatestStore[BookTicker] = LatestStore(wall_clock=lambda: now[0])
    store.offer(book(1))
    assert store.peek("BTCUSDT", 10) is not None
    now[0] += 10.5
    assert store.peek("BTCUSDT", 10) is None and store.peek("ETHUSDT", 10) is None


def test_the_fanout_sends_each_kind_as_its_event_to_its_room_once_and_in_order() -> None:
    sent: list[tuple[str, dict, str]] = []
    ticked: list[str] = []
    books: LatestStore[BookTicker] = LatestStore()
    fanout = Fanout(lambda event, payload, room, coalesce: sent.append((event, payload, room)), lambda channel: 1,
                    {Kind.TRADE: TradeTape(), Kind.BOOK: books}, ServiceMetrics(), ticked.append)  # type: ignore[dict-item]
    first, second = StreamBatch("btcusdt@aggTrade", (trade(1), trade(2))), StreamBatch("btcusdt@aggTrade", (trade(2),))
    assert fanout.publish(first) == 2 and fanout.publish(second) == 0, "the overlap's repeat is dropped"
    assert fanout.publish(StreamBatch("btcusdt@bookTicker", (book(9), book(8), replace(book(10), bid="1")))) == 2
    assert [(event, payload.get("id", payload.get("updateId")), room) for event, payload, room in sent] == [
        ("trade", 1, "trade:BTCUSDT"), ("trade", 2, "trade:BTCUSDT"),
        ("book_ticker", 9, "book:BTCUSDT"), ("book_ticker", 10, "book:BTCUSDT")]
    assert sent[0][1] == trade(1).to_wire()
    assert ticked == [], "only tickers tell the stream monitor a symbol is alive"
    assert Channel(BINANCE, Kind.TRADE, "BTCUSDT").room == "trade:BTCUSDT"
