"""streaming.exchanges.binance.streams: each kind's upstream stream, route, event type and parser."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.models import BookTicker, Ticker, Trade
from streaming.exchanges.binance.streams import MARKET, PUBLIC, STREAMS, channel_of_stream, stream_of

DATA = Path(__file__).resolve().parent.parent / "data"
CAPTURES = {Kind.TICKER: "futures_ws_ticker.gocryptotrader-2026.jsonl",
            Kind.TRADE: "futures_ws_aggTrade.gocryptotrader-2026.jsonl",
            Kind.BOOK: "futures_ws_bookTicker.gocryptotrader-2026.jsonl"}


def test_every_kind_has_its_stream_and_route() -> None:
    assert set(STREAMS) == set(Kind)
    assert {kind: (spec.suffix, spec.route) for kind, spec in STREAMS.items()} == {
        Kind.TICKER: ("@ticker", MARKET), Kind.TRADE: ("@aggTrade", MARKET), Kind.BOOK: ("@bookTicker", PUBLIC)}


@pytest.mark.parametrize("kind, model", [(Kind.TICKER, Ticker), (Kind.TRADE, Trade), (Kind.BOOK, BookTicker)])
def test_each_parser_reads_a_real_capture_of_its_stream(kind: Kind, model: type) -> None:
    frame = json.loads((DATA / CAPTURES[kind]).read_text().splitlines()[0])
    spec = STREAMS[kind]
    assert frame["data"]["e"] == spec.event
    parsed = spec.parse(frame["data"])
    assert isinstance(parsed, model) and parsed.symbol == "BTCUSDT"
    assert channel_of_stream(frame["stream"]) == Channel(BINANCE, kind, "BTCUSDT")


@pytest.mark.parametrize("kind, stream", [(Kind.TICKER, "btcusdt@ticker"), (Kind.TRADE, "btcusdt@aggTrade"),
                                          (Kind.BOOK, "btcusdt@bookTicker")])
def test_stream_names_and_channels_map_both_ways(kind: Kind, stream: str) -> None:
    channel = Channel(BINANCE, kind, "BTCUSDT")
    assert stream_of(channel) == stream and channel_of_stream(stream) == channel


@pytest.mark.parametrize("stream", ["!ticker@arr", "!bookTicker", "btcusdt@depth5", "btcusdt@trade", "BTCUSDT@ticker",
                                    "btcusdt@ticker@arr", "@ticker", "btcusdt", ""])
def test_streams_that_are_no_channel(stream: str) -> None:
    assert channel_of_stream(stream) is None


def test_only_binance_channels_have_binance_streams() -> None:
    with pytest.raises(ValueError, match="not a Binance channel"):
        stream_of(Channel("bybit", Kind.TICKER, "BTCUSDT"))
