"""streaming.exchanges.bybit: topics, control frames, the per-connection session (ticker merge, trade ids, the
level-1 book) and the REST parsers, on Bybit's documented examples (bybit-exchange.github.io/docs/v5/...).
"""
from __future__ import annotations

import copy
import json
from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streaming.core.channels import BINANCE, Channel, Kind
from streaming.core.errors import ProtocolError
from streaming.core.models import BookTicker, Ticker, Trade
from streaming.exchanges.bybit.adapter import BYBIT_EXCHANGE
from streaming.exchanges.bybit.payloads import (
    book_ticker_from_rest,
    change_percent,
    next_page_cursor,
    price_change,
    rest_error,
    ticker_from_rest,
    tradable_usdt_perpetuals,
    trades_from_rest,
)
from streaming.exchanges.bybit.protocol import BybitSession, control_request, parse_control, ping_frame, stream_url
from streaming.exchanges.bybit.topics import (
    ARGS_CHARACTER_LIMIT,
    BYBIT,
    LINEAR,
    MAX_TOPIC_LENGTH,
    channel_of_stream,
    route_of,
    stream_of,
)
from streaming.exchanges.messages import ErrorReply, Message, Pong, Reply, StreamBatch, Unrecognised

# -- documented examples --------------------------------------------------------------------------------------
# docs/v5/websocket/public/ticker, "Response Example", LinearPerpetual
TICKER_SNAPSHOT: dict[str, Any] = {
    "topic": "tickers.BTCUSDT", "type": "snapshot",
    "data": {
        "symbol": "BTCUSDT", "tickDirection": "MinusTick", "price24hPcnt": "-0.158315", "lastPrice": "66666.60",
        "prevPrice24h": "79206.20", "highPrice24h": "79266.30", "lowPrice24h": "65076.90",
        "prevPrice1h": "66666.60", "markPrice": "66666.60", "indexPrice": "115418.19", "openInterest": "492373.72",
        "openInterestValue": "32824881841.75", "turnover24h": "4936790807.6521", "volume24h": "73191.3870",
        "fundingIntervalHour": "8", "fundingCap": "0.005", "nextFundingTime": "1760342400000",
        "fundingRate": "-0.005", "bid1Price": "66666.60", "bid1Size": "23789.165", "ask1Price": "66666.70",
        "ask1Size": "23775.469", "preOpenPrice": "", "preQty": "", "curPreListingPhase": "",
    },
    "cs": 9532239429, "ts": 1760325052630,
}
SNAPSHOT_TICKER = Ticker(
    symbol="BTCUSDT", price="66666.60", volume="73191.3870", high="79266.30", low="65076.90",
    change="-12539.60", change_percent="-15.8315", open="79206.20", quote_volume="4936790807.6521",
    event_time=1760325052630, exchange=BYBIT,
)
# docs/v5/websocket/public/trade, "Response Example"
TRADE_FRAME: dict[str, Any] = {
    "topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1672304486868,
    "data": [{"T": 1672304486865, "s": "BTCUSDT", "S": "Buy", "v": "0.001", "p": "16578.50", "L": "PlusTick",
              "i": "20f43950-d8dd-5b31-9112-a178eb6023af", "BT": False, "seq": 1783284617}],
}
# docs/v5/websocket/public/orderbook, on the level-1 topic (one level a side)
BOOK_SNAPSHOT: dict[str, Any] = {
    "topic": "orderbook.1.BTCUSDT", "ts": 1672304484978, "type": "snapshot",
    "data": {"s": "BTCUSDT", "b": [["16493.50", "0.006"]], "a": [["16611.00", "0.029"]], "u": 18521288,
             "seq": 7961638724},
    "cts": 1672304484976,
}


def frame(base: dict[str, Any], **changes: Any) -> str:
    """``base`` with top-level changes (``data_`` prefix: changes inside ``data``), as JSON."""
    copied = copy.deepcopy(base)
    for key, value in changes.items():
        if key.startswith("data_"):
            copied["data"][key[5:]] = value
        else:
            copied[key] = value
    return json.dumps(copied)


def ticker_delta(ts: int, **fields: object) -> str:
    return json.dumps({"topic": "tickers.BTCUSDT", "type": "delta", "data": {"symbol": "BTCUSDT", **fields},
                       "cs": 9532239430, "ts": ts})


def updates(message: Message) -> tuple[Any, ...]:
    assert isinstance(message, StreamBatch), message
    return message.updates


def skipped(message: Message) -> bool:
    return isinstance(message, StreamBatch) and message.updates == () and message.skipped == 1


# -- topics, URL, control frames, the adapter -----------------------------------------------------------------
@pytest.mark.parametrize("kind, topic", [(Kind.TICKER, "tickers.BTCUSDT"), (Kind.TRADE, "publicTrade.BTCUSDT"),
                                         (Kind.BOOK, "orderbook.1.BTCUSDT")])
def test_each_kind_has_its_topic_and_back(kind: Kind, topic: str) -> None:
    channel = Channel(BYBIT, kind, "BTCUSDT")
    assert stream_of(channel) == topic and channel_of_stream(topic) == channel and route_of(channel) == LINEAR


def test_a_channel_of_another_exchange_has_no_topic() -> None:
    with pytest.raises(ValueError, match="not a Bybit channel"):
        stream_of(Channel(BINANCE, Kind.TICKER, "BTCUSDT"))
    with pytest.raises(ValueError):
        route_of(Channel(BINANCE, Kind.BOOK, "BTCUSDT"))


@pytest.mark.parametrize("topic", ["orderbook.50.BTCUSDT", "kline.1.BTCUSDT", "tickers.btcusdt", "tickers.",
                                   "tickers", "", "publicTrade.BTC USDT", "allLiquidation.BTCUSDT",
                                   "tickers." + "A" * 40, "orderbook.1.BTC-26DEC25"])
def test_other_topics_are_no_channel(topic: str) -> None:
    assert channel_of_stream(topic) is None


def test_the_url_is_host_and_route_without_topics() -> None:
    assert stream_url("wss://stream.bybit.com", LINEAR) == "wss://stream.bybit.com/v5/public/linear"
    assert stream_url("ws://127.0.0.1:9/", LINEAR, []) == "ws://127.0.0.1:9/v5/public/linear"
    with pytest.raises(ValueError, match="no topics in its URL"):
        stream_url("wss://stream.bybit.com", LINEAR, ["tickers.BTCUSDT"])


def test_control_requests_and_pings_are_documented_json() -> None:
    assert control_request("SUBSCRIBE", 7, ["tickers.BTCUSDT", "orderbook.1.BTCUSDT"]) == (
        '{"req_id":"7","op":"subscribe","args":["tickers.BTCUSDT","orderbook.1.BTCUSDT"]}')
    assert json.loads(control_request("UNSUBSCRIBE", 0, ("publicTrade.ETHUSDT",))) == {
        "req_id": "0", "op": "unsubscribe", "args": ["publicTrade.ETHUSDT"]}
    assert ping_frame(12) == '{"req_id":"12","op":"ping"}'
    with pytest.raises(ValueError, match="LIST_SUBSCRIPTIONS"):
        control_request("LIST_SUBSCRIPTIONS", 1, [])
    with pytest.raises(ValueError, match="unsigned"):
        control_request("SUBSCRIBE", -1, [])
    with pytest.raises(ValueError, match="unsigned"):
        ping_frame(-1)


def test_the_adapter_declares_bybit() -> None:
    exchange = BYBIT_EXCHANGE
    assert (exchange.name, exchange.routes, exchange.kinds) == (BYBIT, (LINEAR,), frozenset(Kind))
    assert exchange.url_stream_limit == 0 and exchange.trade_ids_consecutive is False
    assert exchange.stream_url("wss://stream.bybit.com", LINEAR, []) == "wss://stream.bybit.com/v5/public/linear"
    assert exchange.ping_frame is not None and json.loads(exchange.ping_frame(3)) == {"req_id": "3", "op": "ping"}
    assert exchange.max_batch == 10
    # the longest topic, quoted and comma-separated, times the streams fits the 21,000-character args limit
    assert exchange.max_streams_per_connection == 200
    assert exchange.max_streams_per_connection * (MAX_TOPIC_LENGTH + 3) <= ARGS_CHARACTER_LIMIT
    first, second = exchange.session(), exchange.session()
    assert isinstance(first, BybitSession) and first is not second  # one state per connection


# -- acks, refusals, pongs -------------------------------------------------------------------------------------
def ack(**fields: Any) -> dict[str, Any]:
    return {"success": True, "ret_msg": "", "conn_id": "3cd84cb1-4d06-4a05-930a-2efe5fc70f0f", "req_id": "7",
            "op": "subscribe", **fields}


@pytest.mark.parametrize("reply, expected", [
    (ack(), Reply(7, "")),
    (ack(op="unsubscribe", req_id="12"), Reply(12, "")),
    (ack(req_id=""), Reply(None, "")),  # the documented linear example carries an empty req_id
    (ack(req_id="007"), Reply(None, "")),  # not an id the service sent
    (ack(req_id="abc"), Reply(None, "")),
    (ack(req_id=7), Reply(None, "")),  # Bybit echoes strings
    (ack(success=False, ret_msg="error:handler not found,topic:tickers.FOO"),
     ErrorReply(7, None, "error:handler not found,topic:tickers.FOO", ("tickers.FOO",))),
    # Bybit refuses the whole request, also for a topic subscribed already (ccxt/ccxt#30284): that one is named
    # as subscribed, the rest of the request is asked again
    (ack(success=False, ret_msg="error:already subscribed,topic:tickers.BTCUSDT"),
     ErrorReply(7, None, "error:already subscribed,topic:tickers.BTCUSDT", (), ("tickers.BTCUSDT",))),
    (ack(success=False, ret_msg="error:already subscribed,topic:tickers.BTCUSDT;"
                                "error:handler not found,topic:orderbook.1.NOPE,tickers.NOPE"),
     ErrorReply(7, None, "error:already subscribed,topic:tickers.BTCUSDT;error:handler not found,topic:"
                         "orderbook.1.NOPE,tickers.NOPE", ("orderbook.1.NOPE", "tickers.NOPE"),
     ("tickers.BTCUSDT",))),
    (ack(success=False, ret_msg="Invalid symbol :[tickers.NOPEUSDT]"),
     ErrorReply(7, None, "Invalid symbol :[tickers.NOPEUSDT]", ("tickers.NOPEUSDT",))),
    (ack(success=False, ret_msg="args size >10"), ErrorReply(7, None, "args size >10")),
    (ack(success=False, ret_msg="error:handler not found,topic:"), ErrorReply(7, None,
                                                                              "error:handler not found,topic:")),
    (ack(success=False, ret_msg="error:handler not found,topic:has space"),
     ErrorReply(7, None, "error:handler not found,topic:has space")),
    ({"success": False, "ret_msg": "Failed to decode incoming data:readObjectStart", "conn_id": "x", "req_id": "",
      "op": ""}, ErrorReply(None, None, "Failed to decode incoming data:readObjectStart")),
    (ack(success=False, ret_msg=None, ret_code=10001), ErrorReply(7, 10001, "")),
    (ack(ret_msg="pong", op="ping", req_id=""), Pong()),  # Linear/Inverse pong
    ({"args": ["1672916271846"], "op": "pong"}, Pong()),  # Option/Spread and private pong
    (ack(op="auth"), Unrecognised("unknown_reply", "op auth")),
    ({"hello": 1}, Unrecognised("unknown_frame", "hello")),
])
def test_control_frames(reply: dict[str, Any], expected: Message) -> None:
    assert parse_control(reply) == expected
    assert BybitSession().decode(json.dumps(reply)) == expected


def test_a_refusal_message_is_bounded() -> None:
    message = BybitSession().decode(json.dumps(ack(success=False, ret_msg="x" * 5000)))
    assert isinstance(message, ErrorReply) and len(message.message) == 300 and message.streams is None


# -- tickers: snapshot, deltas, exact arithmetic ---------------------------------------------------------------
def test_a_snapshot_gives_the_exact_ticker() -> None:
    message = BybitSession().decode(json.dumps(TICKER_SNAPSHOT))
    assert message == StreamBatch("tickers.BTCUSDT", (SNAPSHOT_TICKER,), 0)


def test_a_delta_without_last_price_merges_onto_the_snapshot() -> None:
    session = BybitSession()
    session.decode(json.dumps(TICKER_SNAPSHOT))
    (ticker,) = updates(session.decode(ticker_delta(1760325052730, volume24h="73191.3880",
                                                    turnover24h="4936790874.1187", markPrice="66666.70")))
    assert ticker == Ticker(
        symbol="BTCUSDT", price="66666.60", volume="73191.3880", high="79266.30", low="65076.90",
        change="-12539.60", change_percent="-15.8315", open="79206.20", quote_volume="4936790874.1187",
        event_time=1760325052730, exchange=BYBIT)
    (ticker,) = updates(session.decode(ticker_delta(1760325052830, lastPrice="66700.00",
                                                    price24hPcnt="-0.157894")))
    assert (ticker.price, ticker.change, ticker.change_percent, ticker.volume) == (
        "66700.00", "-12506.20", "-15.7894", "73191.3880")


def test_a_delta_that_changes_nothing_shown_is_skipped() -> None:
    session = BybitSession()
    session.decode(json.dumps(TICKER_SNAPSHOT))
    assert skipped(session.decode(ticker_delta(1760325052730, markPrice="66670.00", openInterest="492373.80")))
    assert skipped(session.decode(ticker_delta(1760325052830, lastPrice="66666.60")))  # the same value again
    assert updates(session.decode(ticker_delta(1760325052930, lastPrice="66666.70")))[0].price == "66666.70"


def test_a_delta_before_the_snapshot_is_unrecognised_and_changes_nothing() -> None:
    session = BybitSession()
    assert session.decode(ticker_delta(1760325052530, lastPrice="1.0")) == Unrecognised(
        "delta_before_snapshot", "tickers.BTCUSDT")
    assert updates(session.decode(json.dumps(TICKER_SNAPSHOT))) == (SNAPSHOT_TICKER,)


def test_a_new_snapshot_replaces_the_state() -> None:
    session = BybitSession()
    session.decode(json.dumps(TICKER_SNAPSHOT))
    partial = copy.deepcopy(TICKER_SNAPSHOT)
    del partial["data"]["turnover24h"]
    partial["ts"] += 100
    assert skipped(session.decode(json.dumps(partial)))  # the old turnover is not kept: the state is incomplete
    (ticker,) = updates(session.decode(ticker_delta(partial["ts"] + 100, turnover24h="1.5")))
    assert ticker.quote_volume == "1.5" and ticker.price == "66666.60"


def test_a_ticker_never_goes_back_in_time() -> None:
    session = BybitSession()
    session.decode(json.dumps(TICKER_SNAPSHOT))
    assert skipped(session.decode(frame(TICKER_SNAPSHOT, ts=1760325052000)))  # an earlier snapshot
    assert skipped(session.decode(ticker_delta(1760325052630, lastPrice="66666.70")))  # the same instant
    assert skipped(session.decode(ticker_delta(1760325052000, lastPrice="66666.80")))  # earlier
    (ticker,) = updates(session.decode(ticker_delta(1760325052631, volume24h="1")))
    assert ticker.price == "66666.80"  # the skipped deltas were merged all the same


@pytest.mark.parametrize("field, value", [("lastPrice", 66666.6), ("lastPrice", ""), ("volume24h", "NaN"),
                                          ("highPrice24h", "1e5"), ("lowPrice24h", "9" * 65), ("symbol", "ETHUSDT"),
                                          ("price24hPcnt", None), ("prevPrice24h", "+1")])
def test_a_malformed_delta_is_refused_whole(field: str, value: object) -> None:
    session = BybitSession()
    session.decode(json.dumps(TICKER_SNAPSHOT))
    message = session.decode(ticker_delta(1760325052730, turnover24h="2", **{field: value}))
    assert isinstance(message, Unrecognised) and message.kind == "bad_payload" and repr(field) in message.detail
    (ticker,) = updates(session.decode(ticker_delta(1760325052830, volume24h="3")))
    assert ticker.quote_volume == "4936790807.6521"  # the refused delta's turnover was not merged


def test_a_snapshot_without_its_symbol_or_with_another_is_refused() -> None:
    for data in ({k: v for k, v in TICKER_SNAPSHOT["data"].items() if k != "symbol"},
                 {**TICKER_SNAPSHOT["data"], "symbol": "ETHUSDT"}, ["not", "an", "object"]):
        message = BybitSession().decode(frame(TICKER_SNAPSHOT, data=data))
        assert isinstance(message, Unrecognised) and message.kind == "bad_payload"


def test_symbols_are_merged_apart() -> None:
    session = BybitSession()
    session.decode(json.dumps(TICKER_SNAPSHOT))
    eth = json.dumps({"topic": "tickers.ETHUSDT", "type": "delta", "data": {"symbol": "ETHUSDT", "lastPrice": "1"},
                      "ts": 1760325052730})
    assert session.decode(eth) == Unrecognised("delta_before_snapshot", "tickers.ETHUSDT")


@pytest.mark.parametrize("last, previous, change", [
    ("66666.60", "79206.20", "-12539.60"), ("100", "99.5", "0.5"), ("1.10", "1.1", "0.00"),
    ("0.00000001", "0.00000002", "-0.00000001"), ("0", "0", "0"), ("0.5", "0.50", "0.00"),
    ("9" * 32 + ".5", "0." + "0" * 30 + "1", "9" * 32 + ".4" + "9" * 30),  # beyond a float, beyond 28 digits
])
def test_the_change_is_exact_plain_and_keeps_the_scale(last: str, previous: str, change: str) -> None:
    assert price_change(last, previous) == change
    with localcontext(prec=200):
        assert Decimal(change) == Decimal(last) - Decimal(previous)


@pytest.mark.parametrize("ratio, percent", [("0.0123", "1.23"), ("-0.158315", "-15.8315"), ("0", "0"),
                                            ("0.5", "50"), ("0.00001", "0.001"), ("-0.000000", "0.0000"),
                                            ("1.234567890123456789012345678901", "123.4567890123456789012345678901")])
def test_the_change_percent_is_the_ratio_times_100_exactly(ratio: str, percent: str) -> None:
    assert change_percent(ratio) == percent


# -- trades ------------------------------------------------------------------------------------------------------
def trade_frame(rows: list[Any], ts: int = 1672304486868, symbol: str = "BTCUSDT") -> str:
    return json.dumps({"topic": f"publicTrade.{symbol}", "type": "snapshot", "ts": ts, "data": rows})


def row(seq: int | None, i: str, time: int = 1672304486865, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {**TRADE_FRAME["data"][0], "T": time, "i": i, **changes}
    if seq is None:
        del base["seq"]
    else:
        base["seq"] = seq
    return base


def test_the_documented_trade_parses_exactly() -> None:
    (trade,) = updates(BybitSession().decode(json.dumps(TRADE_FRAME)))
    assert trade == Trade(symbol="BTCUSDT", trade_id=1783284617 * 1024, price="16578.50", quantity="0.001",
                          buyer_is_maker=False, first_trade_id=None, last_trade_id=None,
                          trade_time=1672304486865, event_time=1672304486868, exchange=BYBIT,
                          public_id="20f43950-d8dd-5b31-9112-a178eb6023af")
    assert trade.side == "buy" and trade.to_wire()["id"] == "20f43950-d8dd-5b31-9112-a178eb6023af"
    (sold,) = updates(BybitSession().decode(trade_frame([row(5, "a", S="Sell")])))
    assert sold.buyer_is_maker is True and sold.side == "sell"


def test_trade_ids_number_each_seq_across_messages_and_agree_between_connections() -> None:
    messages = [trade_frame([row(100, "a"), row(100, "b"), row(101, "c")]),
                trade_frame([row(101, "d")], ts=1672304486900),  # more trades of seq 101, in the next message
                trade_frame([row(205, "e"), row(205, "f")], ts=1672304486950)]
    first, second = BybitSession(), BybitSession()
    ids = [(t.public_id, t.trade_id) for message in messages for t in updates(first.decode(message))]
    assert ids == [("a", 102400), ("b", 102401), ("c", 103424), ("d", 103425), ("e", 209920), ("f", 209921)]
    assert [(t.public_id, t.trade_id) for message in messages for t in updates(second.decode(message))] == ids


def test_trade_ids_grow_even_past_1024_trades_of_one_seq() -> None:
    session = BybitSession()
    many = updates(session.decode(trade_frame([row(100, str(n)) for n in range(1025)])))
    (after,) = updates(session.decode(trade_frame([row(101, "next")])))
    ids = [t.trade_id for t in many] + [after.trade_id]
    assert ids == sorted(set(ids)) and ids[0] == 102400 and after.trade_id == 102400 + 1025


def test_without_seq_trade_ids_come_from_the_trade_time() -> None:
    messages = [trade_frame([row(None, "a", 1000), row(None, "b", 1000), row(None, "c", 1001)]),
                trade_frame([row(None, "d", 1001)])]
    expected = [1000 * 1024, 1000 * 1024 + 1, 1001 * 1024, 1001 * 1024 + 1]
    for session in (BybitSession(), BybitSession()):
        assert [t.trade_id for message in messages for t in updates(session.decode(message))] == expected


def test_a_trade_older_than_one_numbered_is_skipped() -> None:
    session = BybitSession()
    session.decode(trade_frame([row(100, "a")]))
    message = session.decode(trade_frame([row(99, "old"), row(100, "b")]))
    assert isinstance(message, StreamBatch) and message.skipped == 1
    assert [(t.public_id, t.trade_id) for t in updates(message)] == [("b", 102401)]


def test_block_trades_are_kept() -> None:
    (trade,) = updates(BybitSession().decode(trade_frame([row(7, "block", BT=True, RPI=True)])))
    assert trade.public_id == "block"


@pytest.mark.parametrize("change", [
    {"S": "buy"}, {"S": None}, {"v": 0.001}, {"p": "1e3"}, {"p": "NaN"}, {"i": ""}, {"i": 5}, {"i": "x" * 65},
    {"BT": "false"}, {"BT": None}, {"RPI": 1}, {"L": 3}, {"T": "1672304486865"}, {"T": -1}, {"T": 2**70},
    {"seq": -1}, {"seq": True}, {"seq": "100"}, {"seq": 2**60}, {"s": "ETHUSDT"}, {"s": ""},
])
def test_malformed_trade_rows_are_skipped_and_counted(change: dict[str, Any]) -> None:
    message = BybitSession().decode(trade_frame([row(1, "good"), {**row(2, "bad"), **change}, row(3, "good2")]))
    assert isinstance(message, StreamBatch) and message.skipped == 1
    assert [t.public_id for t in updates(message)] == ["good", "good2"]


def test_rows_missing_a_field_or_not_objects_are_skipped() -> None:
    rows: list[Any] = [{k: v for k, v in row(1, "x").items() if k != key} for key in ("T", "s", "S", "v", "p", "i",
                                                                                       "BT")]
    message = BybitSession().decode(trade_frame([*rows, "row", None, [1], row(2, "ok")]))
    assert isinstance(message, StreamBatch) and message.skipped == 10 and len(message.updates) == 1


def test_an_empty_trade_list_is_an_empty_batch_and_a_non_list_is_refused() -> None:
    assert BybitSession().decode(trade_frame([])) == StreamBatch("publicTrade.BTCUSDT", (), 0)
    message = BybitSession().decode(frame(TRADE_FRAME, data={"T": 1}))
    assert isinstance(message, Unrecognised) and message.kind == "bad_payload"


# -- the level-1 book --------------------------------------------------------------------------------------------
def book(u: int, bids: list[list[str]], asks: list[list[str]], kind: str = "snapshot", ts: int = 1672304485000,
         seq: int | None = None, **top: Any) -> str:
    data: dict[str, Any] = {"s": "BTCUSDT", "b": bids, "a": asks, "u": u}
    if seq is not None:
        data["seq"] = seq
    return json.dumps({"topic": "orderbook.1.BTCUSDT", "ts": ts, "type": kind, "data": data, **top})


def test_a_book_snapshot_gives_the_best_bid_and_ask() -> None:
    (ticker,) = updates(BybitSession().decode(json.dumps(BOOK_SNAPSHOT)))
    assert ticker == BookTicker(symbol="BTCUSDT", bid="16493.50", bid_qty="0.006", ask="16611.00", ask_qty="0.029",
                                update_id=7961638724, event_time=1672304484978, transaction_time=1672304484976,
                                exchange=BYBIT)
    (without_cts,) = updates(BybitSession().decode(book(5, [["1", "2"]], [["3", "4"]])))
    assert without_cts.transaction_time == without_cts.event_time == 1672304485000


def test_a_snapshot_resent_with_the_same_u_is_skipped() -> None:
    session = BybitSession()
    session.decode(json.dumps(BOOK_SNAPSHOT))
    assert skipped(session.decode(frame(BOOK_SNAPSHOT, ts=1672304487978)))  # 3 s later, unchanged
    (ticker,) = updates(session.decode(book(18521289, [["16493.00", "1.5"]], [["16611.00", "0.029"]])))
    assert (ticker.bid, ticker.update_id) == ("16493.00", 18521289)


def test_with_seq_the_update_id_is_seq_so_two_connections_agree_across_a_book_service_restart() -> None:
    old, new = BybitSession(), BybitSession()
    before = [updates(old.decode(book(u, [["10", str(u)]], [["11", "1"]], seq=9000 + u)))[0].update_id
              for u in (500, 501)]
    # the book service restarts (u back to 1; seq, the matching engine's, goes on); a new connection opens
    after = [updates(session.decode(book(u, [["10", str(u)]], [["11", "1"]], seq=9600 + u)))[0].update_id
             for u in (1, 2) for session in (old, new)]
    assert before == [9500, 9501] and after == [9601, 9601, 9602, 9602]
    assert skipped(old.decode(book(2, [["10", "2"]], [["11", "1"]], seq=9602)))  # the 3 s re-send


def test_without_seq_update_ids_keep_growing_after_a_book_service_restart() -> None:
    session = BybitSession()
    ids = [updates(session.decode(book(u, [["10", "1"]], [["11", "1"]])))[0].update_id for u in (500, 501)]
    ids += [updates(session.decode(book(u, [["10", "2"]], [["11", "1"]])))[0].update_id for u in (1, 2, 3)]
    assert ids == [500, 501, 502, 503, 504]
    assert skipped(session.decode(book(3, [["10", "2"]], [["11", "1"]])))  # a re-send in the new epoch
    assert updates(session.decode(book(1, [["10", "3"]], [["11", "1"]])))[0].update_id == 505  # a second restart


def test_deltas_update_remove_and_replace_levels() -> None:
    session = BybitSession()
    session.decode(book(10, [["100.0", "1"]], [["101.0", "2"]]))
    (ticker,) = updates(session.decode(book(11, [["100.0", "3"]], [], kind="delta")))
    assert (ticker.bid, ticker.bid_qty, ticker.ask, ticker.ask_qty, ticker.update_id) == (
        "100.0", "3", "101.0", "2", 11)
    (ticker,) = updates(session.decode(book(12, [["100.0", "0"], ["99.5", "4"]], [], kind="delta")))
    assert (ticker.bid, ticker.bid_qty) == ("99.5", "4")
    assert skipped(session.decode(book(13, [["99.5", "0"]], [], kind="delta")))  # no bid left
    (ticker,) = updates(session.decode(book(14, [["99.0", "1"]], [["100.5", "1"], ["101.0", "0"]], kind="delta")))
    assert (ticker.bid, ticker.ask, ticker.ask_qty, ticker.update_id) == ("99.0", "100.5", "1", 14)
    (ticker,) = updates(session.decode(book(15, [], [["100.6", "9"]], kind="delta")))
    assert (ticker.ask, ticker.ask_qty) == ("100.5", "1")  # a worse ask does not replace the best
    assert skipped(session.decode(book(15, [["99.9", "1"]], [], kind="delta")))  # not newer than the state
    assert skipped(session.decode(book(9, [["99.9", "1"]], [], kind="delta")))


def test_a_book_delta_before_the_snapshot_is_unrecognised() -> None:
    assert BybitSession().decode(book(3, [["1", "1"]], [], kind="delta")) == Unrecognised(
        "delta_before_snapshot", "orderbook.1.BTCUSDT")


def test_a_book_with_an_empty_side_is_skipped() -> None:
    session = BybitSession()
    assert skipped(session.decode(book(5, [], [["11", "1"]])))
    assert skipped(session.decode(book(6, [["10", "0"]], [["11", "1"]])))
    assert updates(session.decode(book(7, [["10", "1"]], [], kind="delta")))[0].update_id == 7


def test_of_several_levels_the_best_is_taken() -> None:
    (ticker,) = updates(BybitSession().decode(book(5, [["9", "1"], ["10", "2"], ["8", "3"]],
                                                   [["12", "1"], ["11.5", "2"]])))
    assert (ticker.bid, ticker.bid_qty, ticker.ask, ticker.ask_qty) == ("10", "2", "11.5", "2")


@pytest.mark.parametrize("data", [
    {"b": [["0", "1"]]}, {"b": [["-1", "1"]]}, {"a": [["11", "-1"]]}, {"b": [["10", "1", "x"]]}, {"b": [[10, "1"]]},
    {"b": [["10"]]}, {"b": "10"}, {"b": None}, {"a": [["1e400", "1"]]}, {"u": -1}, {"u": "5"}, {"u": 2**53},
    {"u": None}, {"seq": -1}, {"s": "ETHUSDT"}, {"s": None},
])
def test_malformed_books_are_refused(data: dict[str, Any]) -> None:
    message = BybitSession().decode(frame(BOOK_SNAPSHOT, **{f"data_{key}": value for key, value in data.items()}))
    assert isinstance(message, Unrecognised) and message.kind == "bad_payload"


def test_a_refused_book_changes_nothing() -> None:
    session = BybitSession()
    session.decode(json.dumps(BOOK_SNAPSHOT))
    assert isinstance(session.decode(frame(BOOK_SNAPSHOT, data_u=1, data_b=[["x", "1"]])), Unrecognised)
    assert skipped(session.decode(json.dumps(BOOK_SNAPSHOT)))  # still at the first u: no reset happened


def test_book_times_are_checked() -> None:
    for top in ({"cts": "1672304484976"}, {"cts": -1}, {"ts": None}):
        message = BybitSession().decode(frame(BOOK_SNAPSHOT, **top))
        assert isinstance(message, Unrecognised) and message.kind == "bad_payload"


# -- frames of every sort ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, kind", [
    ("not json", "invalid_json"), (b"\xff\xfe", "invalid_json"), ("", "invalid_json"), ("[" * 100_000, "invalid_json"),
    ('{"topic":"tickers.BTCUSDT","ts":' + "1" * 5000 + "}", "invalid_json"),
    ("[1,2]", "not_an_object"), ("null", "not_an_object"), ("42", "not_an_object"), ('"text"', "not_an_object"),
    ('{"topic":5,"data":{}}', "bad_topic"), ('{"topic":null}', "bad_topic"),
    ('{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1,"data":{}}', "unknown_topic"),
    ('{"topic":"kline.1.BTCUSDT","type":"snapshot","ts":1,"data":[]}', "unknown_topic"),
    ('{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1}', "bad_payload"),
    ('{"topic":"tickers.BTCUSDT","ts":1,"data":{}}', "bad_payload"),
    ('{"topic":"tickers.BTCUSDT","type":"full","ts":1,"data":{}}', "bad_payload"),
    ('{"topic":"tickers.BTCUSDT","type":"snapshot","ts":"1","data":{"symbol":"BTCUSDT"}}', "bad_payload"),
    ('{"topic":"tickers.BTCUSDT","type":"snapshot","ts":-1,"data":{"symbol":"BTCUSDT"}}', "bad_payload"),
    ('{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1e20,"data":{"symbol":"BTCUSDT"}}', "bad_payload"),
    ('{"topic":"tickers.BTCUSDT","type":"snapshot","ts":true,"data":{"symbol":"BTCUSDT"}}', "bad_payload"),
    ('{"topic":"tickers.BTCUSDT","type":"snapshot","ts":' + str(10**20) + ',"data":{"symbol":"BTCUSDT"}}',
     "bad_payload"),
    ('{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":null}', "bad_payload"),
    ('{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1,"data":[]}', "bad_payload"),
])
def test_garbage_is_classified_not_raised(raw: str | bytes, kind: str) -> None:
    message = BybitSession().decode(raw)
    assert isinstance(message, Unrecognised) and message.kind == kind, message
    assert len(message.detail) <= 200


@pytest.mark.parametrize("literal", ['"1e400"', '"1E5"', '"Infinity"', '"NaN"', '"-inf"', '"' + "9" * 65 + '"',
                                     '" 1"', '"1_000"', '"0x10"', '"1."', '".5"', '"--1"', '"+1"', "1e400",
                                     "1" + "0" * 400, "66666.6", "[]", "{}", "true", "null"])
def test_huge_or_odd_numbers_are_refused(literal: str) -> None:
    text = json.dumps(TICKER_SNAPSHOT).replace('"lastPrice": "66666.60"', '"lastPrice": ' + literal)
    assert literal in text
    message = BybitSession().decode(text)
    assert isinstance(message, Unrecognised) and message.kind == "bad_payload" and "'lastPrice'" in message.detail


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=4),
                     max_leaves=12)
_FRAMES = [TICKER_SNAPSHOT, TRADE_FRAME, BOOK_SNAPSHOT, ack(), ack(success=False, ret_msg="error:x,topic:y")]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(_FRAMES), path=st.lists(st.text(max_size=12) | st.integers(0, 3), min_size=1,
                                                    max_size=3), value=_JSON, repeat=st.booleans())
def test_a_mutated_frame_never_raises(base: dict[str, Any], path: list[Any], value: object, repeat: bool) -> None:
    mutated: Any = copy.deepcopy(base)
    node = mutated
    for step in path[:-1]:
        if isinstance(node, dict) and isinstance(step, str) and isinstance(node.get(step), dict | list):
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int) and step < len(node):
            node = node[step]
    if isinstance(node, dict):
        node[str(path[-1])] = value
    elif isinstance(node, list) and node:
        node[int(path[-1]) % len(node) if isinstance(path[-1], int) else 0] = value
    session = BybitSession()
    if repeat:
        session.decode(json.dumps(base))  # with state: the mutation lands as a later frame
    message = session.decode(json.dumps(mutated))
    assert isinstance(message, StreamBatch | Reply | ErrorReply | Pong | Unrecognised)


# -- REST ------------------------------------------------------------------------------------------------------------
def envelope(result: Any, time: object = 1760352369814, **fields: Any) -> dict[str, Any]:
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": time, **fields}


TICKER_ROW = {key: value for key, value in TICKER_SNAPSHOT["data"].items()}


def test_the_rest_ticker_is_the_streams_ticker_at_the_answers_time() -> None:
    ticker = ticker_from_rest(envelope({"category": "linear", "list": [TICKER_ROW]}, time=1760325052630))
    assert ticker == SNAPSHOT_TICKER


@pytest.mark.parametrize("body", [
    {"retCode": 10001, "retMsg": "params error", "result": {}, "time": 1},
    envelope({"category": "linear", "list": []}), envelope({"category": "linear", "list": [TICKER_ROW] * 2}),
    envelope({"category": "inverse", "list": [TICKER_ROW]}), envelope({"category": "linear"}),
    envelope({"category": "linear", "list": [{**TICKER_ROW, "lastPrice": ""}]}),
    envelope({"category": "linear", "list": [{**TICKER_ROW, "symbol": None}]}),
    envelope({"category": "linear", "list": [TICKER_ROW]}, time="1760352369814"), envelope(None), [TICKER_ROW],
])
def test_bad_rest_tickers_are_refused(body: Any) -> None:
    with pytest.raises(ProtocolError):
        ticker_from_rest(body)


def test_rest_errors_are_read() -> None:
    assert rest_error({"retCode": 10001, "retMsg": "params error", "result": {}}) == (10001, "params error")
    assert rest_error({"retCode": True, "retMsg": 5}) == (None, "5")
    assert rest_error("<html>") == (None, "")


def rest_trade(exec_id: str, time: str, seq: str | None = None, **changes: Any) -> dict[str, Any]:
    entry = {"execId": exec_id, "symbol": "BTCUSDT", "price": "16618.49", "size": "0.00012", "side": "Buy",
             "time": time, "isBlockTrade": False, "isRPITrade": True, **changes}
    if seq is not None:
        entry["seq"] = seq
    return entry


def test_rest_trades_come_oldest_first_with_the_streams_ids() -> None:
    newest_first = [rest_trade("c", "1672304486866", "1783284618"), rest_trade("b", "1672304486865", "1783284617"),
                    rest_trade("a", "1672304486865", "1783284617", side="Sell")]
    trades = trades_from_rest(envelope({"category": "linear", "list": newest_first}), "btcusdt")
    assert [(t.public_id, t.trade_id) for t in trades] == [
        ("a", 1783284617 * 1024), ("b", 1783284617 * 1024 + 1), ("c", 1783284618 * 1024)]
    assert trades[0].buyer_is_maker and trades[0].event_time == trades[0].trade_time == 1672304486865
    stream = updates(BybitSession().decode(trade_frame([row(1783284617, "a"), row(1783284617, "b"),
                                                        row(1783284618, "c")])))
    assert [t.trade_id for t in stream] == [t.trade_id for t in trades]  # the same trade, the same id


def test_rest_trades_in_no_order_are_sorted_by_seq() -> None:
    shuffled = [rest_trade("b", "1001", "5"), rest_trade("a", "1000", "4"), rest_trade("c", "1002", "6")]
    trades = trades_from_rest(envelope({"category": "linear", "list": shuffled}), "BTCUSDT")
    assert [(t.public_id, t.trade_id) for t in trades] == [("a", 4096), ("b", 5120), ("c", 6144)]


def test_rest_trades_without_seq_are_numbered_by_time() -> None:
    oldest_first = [rest_trade("a", "1000"), rest_trade("b", "1000"), rest_trade("c", "1002")]
    trades = trades_from_rest(envelope({"category": "linear", "list": oldest_first}), "BTCUSDT")
    assert [t.trade_id for t in trades] == [1000 * 1024, 1000 * 1024 + 1, 1002 * 1024]
    assert trades_from_rest(envelope({"category": "linear", "list": []}), "BTCUSDT") == []


@pytest.mark.parametrize("change", [{"time": 1672052955758}, {"time": "-1"}, {"time": "x"}, {"seq": 5},
                                    {"seq": "1e3"}, {"symbol": "ETHUSDT"}, {"side": "b"}, {"isBlockTrade": None},
                                    {"isRPITrade": "true"}, {"price": 1.5}, {"execId": ""}])
def test_bad_rest_trade_rows_are_refused(change: dict[str, Any]) -> None:
    body = envelope({"category": "linear", "list": [rest_trade("a", "1000", "5"),
                                                    {**rest_trade("b", "1001", "6"), **change}]})
    with pytest.raises(ProtocolError, match="row 1"):
        trades_from_rest(body, "BTCUSDT")


# docs/v5/market/orderbook, "Response Example"
REST_BOOK: dict[str, Any] = {"retCode": 0, "retMsg": "OK", "result": {
    "s": "BTCUSDT", "a": [["65557.7", "16.606555"]], "b": [["65485.47", "47.081829"]], "ts": 1716863719031,
    "u": 230704, "seq": 1432604333, "cts": 1716863718905}, "retExtInfo": {}, "time": 1716863719382}


def test_the_rest_book_has_no_update_id_and_is_ordered_by_its_time() -> None:
    ticker = book_ticker_from_rest(REST_BOOK)
    assert ticker == BookTicker(symbol="BTCUSDT", bid="65485.47", bid_qty="47.081829", ask="65557.7",
                                ask_qty="16.606555", update_id=None, event_time=1716863719031,
                                transaction_time=1716863718905, exchange=BYBIT)
    result = {k: v for k, v in REST_BOOK["result"].items() if k != "cts"}
    deep = {**result, "b": [["65485.00", "1"], ["65485.47", "2"]], "a": [["65560", "1"], ["65557.7", "3"]]}
    ticker = book_ticker_from_rest({**REST_BOOK, "result": deep})
    assert (ticker.bid, ticker.ask, ticker.transaction_time) == ("65485.47", "65557.7", 1716863719031)


@pytest.mark.parametrize("change", [{"b": []}, {"a": [["1", "0"]]}, {"ts": None}, {"u": None}, {"s": 5},
                                    {"b": [["x", "1"]]}, {"cts": "1"}])
def test_bad_rest_books_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        book_ticker_from_rest({**REST_BOOK, "result": {**REST_BOOK["result"], **change}})


def instrument(symbol: Any, contract: str = "LinearPerpetual", quote: str = "USDT", status: str = "Trading") -> Any:
    return {"symbol": symbol, "contractType": contract, "status": status, "baseCoin": "X", "quoteCoin": quote,
            "settleCoin": quote}


def test_tradable_symbols_exclude_the_traps() -> None:
    page = envelope({"category": "linear", "nextPageCursor": "", "list": [
        instrument("BTCUSDT"), instrument("1000PEPEUSDT"),
        instrument("BTCUSDTH26", contract="LinearFutures"),  # a dated future
        instrument("BTCPERP", quote="USDC"),  # a USDC perpetual
        instrument("BIOUSDT", status="PreLaunch"), instrument("OLDUSDT", status="Closed"),
        instrument("GONEUSDT", status="Delivering"), instrument(None), instrument("bad symbol"), "not an object",
    ]})
    assert tradable_usdt_perpetuals(page) == frozenset({"BTCUSDT", "1000PEPEUSDT"})
    assert next_page_cursor(page) is None
    assert next_page_cursor(envelope({"category": "linear", "list": [], "nextPageCursor": "first%3D5"})) == (
        "first%3D5")
    for bad in (envelope({"category": "linear"}), envelope({"category": "spot", "list": []}),
                {"retCode": 10006, "retMsg": "Too many visits!"}):
        with pytest.raises(ProtocolError):
            tradable_usdt_perpetuals(bad)
    with pytest.raises(ProtocolError):
        next_page_cursor(envelope({"category": "linear", "list": [], "nextPageCursor": 5}))
