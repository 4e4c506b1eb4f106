"""streaming.backlog: conflation keeps the newest price per symbol and everything else, in order."""
from __future__ import annotations

from dataclasses import dataclass

from streaming.backlog import conflate, price_symbol


@dataclass
class Pkt:
    data: object


def update(symbol: str, n: int) -> Pkt:
    return Pkt(f'2["price_update",{{"symbol":"{symbol}","price":{n}}}]')


def test_price_symbol_reads_only_price_updates() -> None:
    assert price_symbol(update("BTCUSDT", 1)) == "BTCUSDT"
    assert price_symbol(Pkt('2["stream_status",{"symbol":"BTCUSDT"}]')) is None
    assert price_symbol(Pkt(b"binary")) is None and price_symbol(None) is None


def test_conflation_keeps_the_newest_per_symbol_and_all_else_in_order() -> None:
    status = Pkt('2["stream_status",{"symbol":"BTCUSDT","state":"live"}]')
    items = [update("BTCUSDT", 1), update("ETHUSDT", 1), status, update("BTCUSDT", 2), None, update("BTCUSDT", 3)]
    kept = conflate(items)
    assert kept == [update("ETHUSDT", 1), status, None, update("BTCUSDT", 3)]


def test_nothing_to_conflate() -> None:
    items = [update("A", 1), update("B", 1)]
    assert conflate(items) == items and conflate([]) == []
