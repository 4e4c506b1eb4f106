"""streaming.exchanges.binance protocol and payloads: URLs, control requests, and parsing of real Binance frames
(tests/data samples).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.errors import ProtocolError
from streaming.exchanges.binance.payloads import (
    book_ticker_from_payload,
    book_ticker_from_rest,
    ticker_from_rest,
    trade_from_payload,
    trade_from_rest,
)
from streaming.exchanges.binance.protocol import (
    ErrorReply,
    Reply,
    StreamBatch,
    Unrecognised,
    control_request,
    parse_message,
    rest_error,
    stream_type,
    stream_url,
    tradable_usdt_perpetuals,
)
from streaming.exchanges.binance.streams import MARKET, PUBLIC, channel_of_stream, stream_of

DATA = Path(__file__).resolve().parent.parent / "data"


def lines(name: str) -> list[str]:
    return [line for line in (DATA / name).read_text().splitlines() if line.strip()]


def test_stream_names_lower_case_the_symbol() -> None:
    ticker = Channel(BINANCE, Kind.TICKER, "BTCUSDT")
    assert stream_of(ticker) == "btcusdt@ticker" and channel_of_stream("btcusdt@ticker") == ticker
    assert channel_of_stream("btcusdt@bookTicker") == Channel(BINANCE, Kind.BOOK, "BTCUSDT")
    assert channel_of_stream("!ticker@arr") is None


def test_combined_stream_url_of_each_route() -> None:
    assert stream_url("wss://fstream.binance.com", MARKET) == "wss://fstream.binance.com/market/stream"
    assert stream_url("wss://fstream.binance.com", PUBLIC) == "wss://fstream.binance.com/public/stream"
    assert (
        stream_url("ws://127.0.0.1:9/", MARKET, ["btcusdt@ticker", "ethusdt@ticker"])
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
    assert isinstance(message, StreamBatch)
    assert message.stream == "btcusdt@ticker"
    (ticker,) = message.updates
    assert ticker.symbol == "BTCUSDT" and ticker.price == "86026.40" and ticker.volume == "119489.809"
    assert ticker.high == "86683.90" and ticker.low == "84910.00"
    assert ticker.change == "9.90" and ticker.change_percent == "0.012"
    assert ticker.event_time == 1791283239234


def test_array_stream_drops_coin_m_rows() -> None:
    message = parse_message(lines("futures_ws_ticker.gocryptotrader-2026.jsonl")[1])
    assert isinstance(message, StreamBatch)
    assert [t.symbol for t in message.updates] == ["BTCUSDT"]
    assert message.skipped == 1


def test_empty_array_frame_is_an_empty_batch() -> None:
    message = parse_message(lines("futures_ws_ticker.gocryptotrader-2026.jsonl")[2])
    assert message == StreamBatch("!ticker@arr", (), 0)


def test_unknown_fields_are_ignored() -> None:
    frame = json.loads(lines("futures_ws_ticker.gocryptotrader-2026.jsonl")[0])
    frame["data"]["zz"] = {"nested": [1, 2]}
    frame["extra"] = True
    message = parse_message(json.dumps(frame))
    assert isinstance(message, StreamBatch) and len(message.updates) == 1


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
    ("btcusdt@ticker", "ticker"), ("!ticker@arr", "ticker_array"), ("btcusdt@aggTrade", "trade"),
    ("btcusdt@bookTicker", "book"), ("btcusdt@depth", "other"), ("", "other"),
])
def test_stream_type_is_a_bounded_label(stream: str, kind: str) -> None:
    assert stream_type(stream) == kind


def payloads(name: str) -> list[dict]:
    return [json.loads(line)["data"] for line in lines(name)]


def test_real_agg_trades_parse_exactly() -> None:
    (recent,) = payloads("futures_ws_aggTrade.gocryptotrader-2026.jsonl")
    trade = trade_from_payload(recent)  # the 2026 wire: with nq and st, which are ignored
    assert (trade.symbol, trade.trade_id, trade.price, trade.quantity) == ("BTCUSDT", 3476465318, "86000.00", "4.577")
    assert (trade.first_trade_id, trade.last_trade_id) == (8149533714, 8149533773)
    assert (trade.trade_time, trade.event_time, trade.buyer_is_maker, trade.side) == (
        1791283227688, 1791283227690, True, "sell")
    older = [trade_from_payload(row) for row in payloads("futures_ws_aggTrade.cryptofeed-binance_futures.jsonl")]
    assert [(t.symbol, t.price, t.side) for t in older[:2]] == [("CTKUSDT", "1.01100", "buy"),
                                                               ("AKROUSDT", "0.01731", "sell")]


def test_real_book_tickers_parse_exactly() -> None:
    recent = payloads("futures_ws_bookTicker.gocryptotrader-2026.jsonl")[0]
    book = book_ticker_from_payload(recent)
    assert (book.symbol, book.bid, book.bid_qty, book.ask, book.ask_qty) == (
        "BTCUSDT", "85999.90", "15.739", "86000.00", "4.613")
    assert (book.update_id, book.transaction_time, book.event_time) == (11747004261523, 1791283218109, 1791283218110)
    older_rows = payloads("futures_ws_bookTicker.cryptofeed-binance_futures.jsonl")
    older = [book_ticker_from_payload(row) for row in older_rows]
    assert older[0].symbol == "SUSHIUSDT" and older[0].update_id == 600859600576


@pytest.mark.parametrize("field, value", [
    ("a", -1), ("a", "3476465318"), ("a", True), ("p", 86000.0), ("p", "NaN"), ("q", None), ("m", 1), ("m", "true"),
    ("T", -5), ("E", "1791283227690"), ("f", 2**63), ("s", ""),
])
def test_malformed_agg_trade_fields_are_refused(field: str, value: object) -> None:
    (row,) = payloads("futures_ws_aggTrade.gocryptotrader-2026.jsonl")
    with pytest.raises(ProtocolError, match=repr(field)):
        trade_from_payload({**row, field: value})


def test_an_agg_trade_whose_ids_run_backwards_is_refused() -> None:
    (row,) = payloads("futures_ws_aggTrade.gocryptotrader-2026.jsonl")
    with pytest.raises(ProtocolError, match="first trade id"):
        trade_from_payload({**row, "f": row["l"] + 1})


@pytest.mark.parametrize("field, value", [("b", 1.5), ("B", "x"), ("u", -1), ("u", None), ("E", None), ("T", 1.5)])
def test_malformed_book_ticker_fields_are_refused(field: str, value: object) -> None:
    row = payloads("futures_ws_bookTicker.gocryptotrader-2026.jsonl")[0]
    with pytest.raises(ProtocolError, match=repr(field)):
        book_ticker_from_payload({**row, field: value})


def test_rest_agg_trades_and_book_ticker_as_documented() -> None:
    # the documented examples of GET /fapi/v1/aggTrades and GET /fapi/v1/ticker/bookTicker (USD-M)
    row = {"a": 26129, "p": "0.01633102", "q": "4.70443515", "f": 27781, "l": 27781, "T": 1498793709153, "m": True}
    trade = trade_from_rest(row, "btcusdt")
    assert (trade.symbol, trade.trade_id, trade.side, trade.event_time) == ("BTCUSDT", 26129, "sell", 1498793709153)
    body = {"symbol": "BTCUSDT", "bidPrice": "4.00000000", "bidQty": "431.00000000", "askPrice": "4.00000200",
            "askQty": "9.00000000", "time": 1589437530011}
    book = book_ticker_from_rest(body)
    assert (book.bid, book.ask, book.update_id, book.event_time, book.transaction_time) == (
        "4.00000000", "4.00000200", None, 1589437530011, 1589437530011)
    assert book_ticker_from_rest({**body, "lastUpdateId": 1027024}).update_id == 1027024
    for bad in ([row], {**body, "time": None}, {**body, "askQty": 9}):
        with pytest.raises(ProtocolError):
            book_ticker_from_rest(bad)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        trade_from_rest("not a row", "BTCUSDT")  # type: ignore[arg-type]
