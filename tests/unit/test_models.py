"""streaming.core.models: the price_update, trade and book_ticker wire forms."""
from __future__ import annotations

import json

from streaming.core.models import BookTicker, Ticker, Trade, iso_timestamp


def make_ticker(**changes: object) -> Ticker:
    fields = dict(symbol="BTCUSDT", price="86026.40", volume="119489.809", high="86683.90", low="84910.00",
                  change="9.90", change_percent="0.012", open="86016.50", quote_volume="10238568766.13",
                  event_time=1791283239234)
    fields.update(changes)
    return Ticker(**fields)  # type: ignore[arg-type]


def test_iso_timestamp_is_utc_with_milliseconds_and_z() -> None:
    assert iso_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert iso_timestamp(1791283239234) == "2026-10-06T10:40:39.234Z"
    assert iso_timestamp(1791283239001) == "2026-10-06T10:40:39.001Z"


def test_wire_form_has_documented_fields_as_numbers() -> None:
    wire = make_ticker().to_wire()
    assert wire["symbol"] == "BTCUSDT"
    assert wire["price"] == 86026.4 and isinstance(wire["price"], float)
    assert wire["volume"] == 119489.809
    assert wire["high"] == 86683.9 and wire["low"] == 84910.0
    assert wire["change"] == 9.9 and wire["changePercent"] == 0.012
    assert wire["eventTime"] == 1791283239234 and isinstance(wire["eventTime"], int)
    assert wire["timestamp"] == "2026-10-06T10:40:39.234Z"
    json.dumps(wire, allow_nan=False)  # strictly valid JSON


def test_negative_change_and_tiny_prices_survive() -> None:
    wire = make_ticker(change="-0.00000123", change_percent="-1.500", price="0.00001234").to_wire()
    assert wire["change"] == -1.23e-06 and wire["changePercent"] == -1.5 and wire["price"] == 1.234e-05


def test_trade_wire_form_is_the_documented_contract() -> None:
    trade = Trade(symbol="BTCUSDT", trade_id=3476465318, price="86000.00", quantity="4.577", buyer_is_maker=True,
                  first_trade_id=8149533714, last_trade_id=8149533773, trade_time=1791283227688,
                  event_time=1791283227690)
    wire = trade.to_wire()
    assert wire == {
        "symbol": "BTCUSDT", "exchange": "binance", "id": 3476465318, "price": 86000.0, "quantity": 4.577,
        "side": "sell", "firstTradeId": 8149533714, "lastTradeId": 8149533773, "tradeTime": 1791283227688,
        "eventTime": 1791283227690, "timestamp": "2026-10-06T10:40:27.688Z",
    }
    assert isinstance(wire["price"], float) and isinstance(wire["id"], int)
    # the taker's side: the buyer was not the maker, so the taker bought
    assert Trade(**{**{f: getattr(trade, f) for f in trade.__slots__}, "buyer_is_maker": False}).side == "buy"
    assert json.loads(json.dumps(wire)) == wire


def test_book_ticker_wire_form_is_the_documented_contract() -> None:
    book = BookTicker(symbol="BTCUSDT", bid="85999.90", bid_qty="15.739", ask="86000.00", ask_qty="4.613",
                      update_id=11747004261523, event_time=1791283218110, transaction_time=1791283218109)
    assert book.to_wire() == {
        "symbol": "BTCUSDT", "exchange": "binance", "bid": 85999.9, "bidQty": 15.739, "ask": 86000.0,
        "askQty": 4.613, "updateId": 11747004261523, "eventTime": 1791283218110,
        "transactionTime": 1791283218109, "timestamp": "2026-10-06T10:40:18.110Z",
    }
