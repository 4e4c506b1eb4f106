"""streaming.core.positions: what a client sends back as `since` is checked whole; a bad one says what to send."""
from __future__ import annotations

import pytest

from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.errors import InvalidRequestError
from streaming.core.history import Position
from streaming.core.positions import MAX_OFFSET, parse_channel_key, parse_since


def test_positions_by_channel() -> None:
    since = parse_since({"trade:BTCUSDT": {"offset": 42, "epoch": "9f3a61c2"},
                         "ticker:ethusdt": {"offset": 0, "epoch": "a-b_C"}}, max_entries=10)
    assert since == {Channel(BINANCE, Kind.TRADE, "BTCUSDT"): Position(42, "9f3a61c2"),
                     Channel(BINANCE, Kind.TICKER, "ETHUSDT"): Position(0, "a-b_C")}
    assert parse_since(None, 10) == {}


@pytest.mark.parametrize("since, message", [
    ("trade:BTCUSDT", "must be an object"),
    ([{"offset": 1}], "must be an object"),
    ({"candles:BTCUSDT": {"offset": 1, "epoch": "e"}}, "keys are"),
    ({"trade": {"offset": 1, "epoch": "e"}}, "keys are"),
    ({"trade:BTC-USDT": {"offset": 1, "epoch": "e"}}, "keys are"),
    ({"trade:BTCUSDT": 42}, "must be an object like"),
    ({"trade:BTCUSDT": {"epoch": "e"}}, "'offset' must be a whole number"),
    ({"trade:BTCUSDT": {"offset": -1, "epoch": "e"}}, "'offset'"),
    ({"trade:BTCUSDT": {"offset": 1.5, "epoch": "e"}}, "'offset'"),
    ({"trade:BTCUSDT": {"offset": True, "epoch": "e"}}, "'offset'"),
    ({"trade:BTCUSDT": {"offset": MAX_OFFSET + 1, "epoch": "e"}}, "'offset'"),
    ({"trade:BTCUSDT": {"offset": 1}}, "'epoch'"),
    ({"trade:BTCUSDT": {"offset": 1, "epoch": ""}}, "'epoch'"),
    ({"trade:BTCUSDT": {"offset": 1, "epoch": "x" * 65}}, "'epoch'"),
    ({"trade:BTCUSDT": {"offset": 1, "epoch": "<script>"}}, "'epoch'"),
])
def test_a_bad_since_refuses_the_request_saying_why(since: object, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        parse_since(since, max_entries=10)


def test_since_is_bounded() -> None:
    many = {f"trade:S{n}USDT": {"offset": 1, "epoch": "e"} for n in range(11)}
    with pytest.raises(InvalidRequestError, match="at most 10"):
        parse_since(many, max_entries=10)


def test_channel_keys() -> None:
    assert parse_channel_key("book:SOLUSDT") == Channel(BINANCE, Kind.BOOK, "SOLUSDT")
    assert parse_channel_key("book:") is None and parse_channel_key("nope:SOLUSDT") is None


def test_channel_keys_of_other_exchanges_name_the_exchange_and_parse_back() -> None:
    bybit = Channel("bybit", Kind.TRADE, "BTCUSDT")
    assert bybit.key == bybit.room == "bybit:trade:BTCUSDT" and bybit.market == "bybit:BTCUSDT"
    assert Channel(BINANCE, Kind.TRADE, "BTCUSDT").key == "trade:BTCUSDT"  # Binance keeps its names
    assert parse_channel_key("bybit:trade:BTCUSDT") == bybit
    assert parse_channel_key("bybit:book:btcusdt") == Channel("bybit", Kind.BOOK, "BTCUSDT")
    for bad in ("binance:trade:BTCUSDT", "bybit:trades:BTCUSDT", "By-bit:trade:BTCUSDT", "a:b:c:d", "bybit:trade:"):
        assert parse_channel_key(bad) is None, bad
    assert parse_since({"bybit:ticker:ETHUSDT": {"offset": 3, "epoch": "e1"}}, 10) == {
        Channel("bybit", Kind.TICKER, "ETHUSDT"): Position(3, "e1")}
