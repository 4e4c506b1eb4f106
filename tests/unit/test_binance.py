"""streaming.binance: URLs, control requests, and parsing of real Binance frames (tests/data samples)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from streaming.binance import (
    ErrorReply,
    Reply,
    TickerBatch,
    Unrecognised,
    control_request,
    market_stream_url,
    parse_message,
    rest_error,
    stream_name,
    stream_type,
    symbol_of_stream,
    ticker_from_rest,
    tradable_usdt_perpetuals,
)
from streaming.errors import ProtocolError

DATA = Path(__file__).resolve().parent.parent / "data"


def lines(name: str) -> list[str]:
    return [line for line in (DATA / name).read_text().splitlines() if line.strip()]


def test_stream_names_lower_case_the_symbol() -> None:
    assert stream_name("BTCUSDT") == "btcusdt@ticker"
    assert symbol_of_stream("btcusdt@ticker") == "BTCUSDT"
    assert symbol_of_stream("btcusdt@bookTicker") is None
    assert symbol_of_stream("!ticker@arr") is None


def test_market_route_combined_stream_url() -> None:
    assert market_stream_url("wss://fstream.binance.com") == "wss://fstream.binance.com/market/stream"
    assert (
        market_stream_url("ws://127.0.0.1:9/", ["btcusdt@ticker", "ethusdt@ticker"])
        == "ws://127.0.0.1:9/market/stream?streams=btcusdt@ticker/ethusdt@ticker"
    )


def test_control_requests_are_documented_json() -> None:
    assert json.loads(control_request("SUBSCRIBE", 1, ["btcusdt@ticker"])) == {
        "method": "SUBSCRIBE", "params": ["btcusdt@ticker"], "id": 1}
    assert json.loads(control_request("LIST_SUBSCRIPTIONS", 3)) == {"method": "LIST_SUBSCRIPTIONS", "id": 3}
    with pytest.raises(ValueError):
        control_request("SUBSCRIBE", -1, [])


def test_real_ticker_frame_parses_exactly() -> None:
    message = parse_message(lines("futures_ws_ticker.gocryptotrader-2026.jsonl")[0])
    assert isinstance(message, TickerBatch)
    assert message.stream == "btcusdt@ticker"
    (ticker,) = message.tickers
    assert ticker.symbol == "BTCUSDT" and ticker.price == "86026.40" and ticker.volume == "119489.809"
    assert ticker.high == "86683.90" and ticker.low == "84910.00"
    assert ticker.change == "9.90" and ticker.change_percent == "0.012"
    assert ticker.event_time == 1791283239234


def test_array_stream_drops_coin_m_rows() -> None:
    message = parse_message(lines("futures_ws_ticker.gocryptotrader-2026.jsonl")[1])
    assert isinstance(message, TickerBatch)
    assert [t.symbol for t in message.tickers] == ["BTCUSDT"]
    assert message.skipped == 1


def test_empty_array_frame_is_an_empty_batch() -> None:
    message = parse_message(lines("futures_ws_ticker.gocryptotrader-2026.jsonl")[2])
    assert message == TickerBatch("!ticker@arr", (), 0)


def test_unknown_fields_are_ignored() -> None:
    frame = json.loads(lines("futures_ws_ticker.gocryptotrader-2026.jsonl")[0])
    frame["data"]["zz"] = {"nested": [1, 2]}
    frame["extra"] = True
    message = parse_message(json.dumps(frame))
    assert isinstance(message, TickerBatch) and len(message.tickers) == 1


def test_control_frames() -> None:
    ack, listing, error, invalid = (parse_message(line) for line in lines("ws_control_frames.jsonl"))
    assert ack == Reply(1, None)
    assert listing == Reply(3, ["btcusdt@aggTrade"])
    assert error == ErrorReply(2, 2, "Invalid request: invalid stream")
    assert isinstance(invalid, ErrorReply) and invalid.id is None and invalid.code == 3


@pytest.mark.parametrize("frame, kind", [
    ("not json", "invalid_json"), (b"\xff\xfe", "invalid_json"), ("[1,2]", "not_an_object"), ("null", "not_an_object"),
    ('{"hello":1}', "unknown_frame"), ('{"stream":5,"data":{}}', "bad_stream_name"),
])
def test_garbage_is_classified_not_raised(frame: str | bytes, kind: str) -> None:
    message = parse_message(frame)
    assert isinstance(message, Unrecognised) and message.kind == kind


def test_other_event_types_are_unrecognised() -> None:
    miniticker = lines("futures_ws_miniTicker.gocryptotrader-2026.jsonl")[0]
    message = parse_message(miniticker)
    assert isinstance(message, Unrecognised) and message.kind == "unknown_event"


@pytest.mark.parametrize("field, value", [("c", 86026.4), ("c", "abc"), ("c", "NaN"), ("E", "1791283239234"),
                                          ("E", None), ("s", None), ("v", None)])
def test_malformed_ticker_fields_are_skipped(field: str, value: object) -> None:
    frame = json.loads(lines("futures_ws_ticker.gocryptotrader-2026.jsonl")[0])
    frame["data"][field] = value
    message = parse_message(json.dumps(frame))
    assert isinstance(message, Unrecognised) and message.kind == "unknown_event"


def test_rest_ticker_and_error() -> None:
    recorded = json.loads((DATA / "futures_rest_ticker_24hr.gocryptotrader.json").read_text())
    bodies = [entry["response"] for entry in recorded] if isinstance(recorded, list) else None
    assert bodies, "sample file holds request/response pairs"
    single = next(b for b in bodies if isinstance(b, dict) and "lastPrice" in b)
    ticker = ticker_from_rest(single)
    assert ticker.price == single["lastPrice"] and ticker.event_time == single["closeTime"]
    invalid = next(b for b in bodies if isinstance(b, dict) and b.get("code") == -1121)
    assert rest_error(invalid) == (-1121, "Invalid symbol.")
    with pytest.raises(ProtocolError):
        ticker_from_rest({"symbol": "BTCUSDT"})


def test_tradable_symbols_exclude_the_traps() -> None:
    info = json.loads((DATA / "futures_rest_exchangeInfo.cryptofeed-binance_futures.json").read_text())
    info["symbols"] += [
        {"symbol": "BTCUSDT_260327", "contractType": "CURRENT_QUARTER", "quoteAsset": "USDT", "status": "TRADING"},
        {"symbol": "XAUUSDT", "contractType": "TRADIFI_PERPETUAL", "quoteAsset": "USDT", "status": "TRADING"},
        {"symbol": "NEWCOINUSDT", "contractType": "PERPETUAL", "quoteAsset": "USDT", "status": "PENDING_TRADING"},
        {"symbol": "BTCBUSD", "contractType": "PERPETUAL", "quoteAsset": "BUSD", "status": "TRADING"},
    ]
    symbols = tradable_usdt_perpetuals(info)
    assert {"BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT"} <= symbols
    assert not symbols & {"BTCUSDT_260327", "XAUUSDT", "NEWCOINUSDT", "BTCBUSD"}
    assert len(symbols) == 117
    with pytest.raises(ProtocolError):
        tradable_usdt_perpetuals({"symbols": None})


@pytest.mark.parametrize("stream, kind", [
    ("btcusdt@ticker", "ticker"), ("!ticker@arr", "ticker_array"), ("btcusdt@aggTrade", "other"), ("", "other"),
])
def test_stream_type_is_a_bounded_label(stream: str, kind: str) -> None:
    assert stream_type(stream) == kind
