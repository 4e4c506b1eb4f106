"""The fake Bybit v5 public linear exchange honours what tests/fakes/README.md ("Fake Bybit") says, checked with
real clients over 127.0.0.1: websocket-client for the stream, requests for REST.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from tests.fakes.bybit import FakeBybit
from tests.fakes.bybit_market import CORE_SYMBOLS
from tests.fakes.bybit_protocol import (
    ARGS_CHARS_LIMIT,
    CONNECTION_WINDOW,
    CONNECTIONS_PER_WINDOW,
    MAX_OPEN_CONNECTIONS_PER_IP,
    PING_TIMEOUT,
    REST_LIMIT,
    REST_WINDOW,
)
from tests.helpers import scaled, wait_for

REPO = Path(__file__).resolve().parent.parent.parent
PATH = "/v5/public/linear"
# https://bybit-exchange.github.io/docs/v5/websocket/public/ticker (LinearPerpetual example plus the table's
# singleOpenInterest / singleOpenInterestValue), in the fake's wire order.
PERPETUAL_TICKER_KEYS = [
    "symbol", "tickDirection", "price24hPcnt", "lastPrice", "prevPrice24h", "highPrice24h", "lowPrice24h",
    "prevPrice1h", "markPrice", "indexPrice", "openInterest", "openInterestValue", "singleOpenInterest",
    "singleOpenInterestValue", "turnover24h", "volume24h", "fundingIntervalHour", "fundingCap", "nextFundingTime",
    "fundingRate", "bid1Price", "bid1Size", "ask1Price", "ask1Size", "preOpenPrice", "preQty", "curPreListingPhase",
]
TRADE_KEYS = ["T", "s", "S", "v", "p", "L", "i", "BT", "RPI", "seq"]
TICK_DIRECTIONS = {"PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick"}
ENVELOPE_KEYS = ["retCode", "retMsg", "result", "retExtInfo", "time"]


# ---------------------------------------------------------------- clients

@pytest.fixture
def make_fake() -> Iterator[Callable[..., FakeBybit]]:
    """Start FakeBybit instances with custom settings; all are stopped at teardown."""
    started: list[FakeBybit] = []

    def start(**settings: Any) -> FakeBybit:
        fake = FakeBybit(**settings).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def connect() -> Iterator[Callable[[FakeBybit], websocket.WebSocket]]:
    """Open websocket-client connections to a fake's /v5/public/linear; all are closed at teardown."""
    opened: list[websocket.WebSocket] = []

    def open_(fake: FakeBybit, path: str = PATH) -> websocket.WebSocket:
        ws = websocket.create_connection(f"{fake.ws_url}{path}", timeout=scaled(5.0))
        opened.append(ws)
        return ws

    yield open_
    for ws in opened:
        with contextlib.suppress(websocket.WebSocketException, OSError):
            ws.close(timeout=0.5)
        ws.shutdown()


def is_reply(message: Any) -> bool:
    return isinstance(message, dict) and "success" in message


def send(ws: websocket.WebSocket, payload: Any) -> None:
    ws.send(payload if isinstance(payload, str) else json.dumps(payload))


def request(ws: websocket.WebSocket, payload: Any) -> dict[str, Any]:
    """Send a request and return the next ack / pong / error, skipping data messages."""
    send(ws, payload)
    return next_matching(ws, is_reply)


def subscribe(ws: websocket.WebSocket, *topics: str, req_id: str = "sub") -> dict[str, Any]:
    return request(ws, {"req_id": req_id, "op": "subscribe", "args": list(topics)})


def next_matching(ws: websocket.WebSocket, predicate: Callable[[Any], bool], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        message = json.loads(ws.recv())
        if predicate(message):
            return message
    raise AssertionError(f"no matching frame within {timeout} s")


def on_topic(topic: str) -> Callable[[Any], bool]:
    return lambda message: isinstance(message, dict) and message.get("topic") == topic


def drain(ws: websocket.WebSocket, quiet: float = 0.4, limit: float = 5.0) -> list[Any]:
    """Every frame until none arrived for `quiet` seconds (at most `limit` seconds: then the stream is not quiet)."""
    frames = []
    deadline = time.monotonic() + scaled(limit)
    ws.settimeout(quiet)
    try:
        while time.monotonic() < deadline:
            frames.append(json.loads(ws.recv()))
    except websocket.WebSocketTimeoutException:
        return frames
    finally:
        ws.settimeout(scaled(5.0))
    raise AssertionError(f"frames kept coming for {limit} s: {frames[-3:]}")


def collect(ws: websocket.WebSocket, seconds: float) -> list[Any]:
    """Every frame that arrives within the next `seconds`."""
    frames = []
    deadline = time.monotonic() + seconds
    try:
        while (left := deadline - time.monotonic()) > 0:
            ws.settimeout(left)
            frames.append(json.loads(ws.recv()))
    except websocket.WebSocketTimeoutException:
        pass
    finally:
        ws.settimeout(scaled(5.0))
    return frames


def read_until_closed(ws: websocket.WebSocket, timeout: float = 5.0) -> tuple[int | None, str]:
    """Read raw frames (never answering pings) until the server ends the connection: (close code, reason), code
    None when the TCP connection ended with no close frame."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        try:
            frame = ws.recv_frame()
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return None, ""
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big"), frame.data[2:].decode("utf-8")
    raise AssertionError(f"the fake did not end the connection within {timeout} s")


def refused_with(status: int, fake: FakeBybit, path: str = PATH) -> websocket.WebSocketBadStatusException:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{fake.ws_url}{path}", timeout=scaled(5.0)).close()
    assert refused.value.status_code == status, refused.value
    return refused.value


def rest(fake: FakeBybit, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{fake.rest_url}{path}", params=params, timeout=5)


def conn_id_of(fake: FakeBybit, number: int = 1) -> str:
    return wait_for(lambda: len(fake.connections()) >= number and fake.connections()[number - 1]).conn_id


def merge(state: dict[str, str], message: dict[str, Any]) -> dict[str, str]:
    """A ticker client's merge: a snapshot replaces, a delta overwrites the fields it carries."""
    if message["type"] == "snapshot":
        return dict(message["data"])
    return {**state, **message["data"]}


def apply_book(book: dict[str, dict[str, str]], message: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Orderbook docs, "Process snapshot/delta": a snapshot resets; in a delta size 0 deletes, else insert/update."""
    data = message["data"]
    if message["type"] == "snapshot":
        return {"b": dict(data["b"]), "a": dict(data["a"])}
    for side in ("b", "a"):
        for price, size in data[side]:
            if Decimal(size) == 0:
                book[side].pop(price, None)
            else:
                book[side][price] = size
    return book


def sorted_levels(levels: dict[str, str], descending: bool) -> list[list[str]]:
    return [[price, levels[price]] for price in sorted(levels, key=Decimal, reverse=descending)]


# ---------------------------------------------------------------- subscribe, acks, refusals

def test_subscribe_is_acknowledged_in_the_documented_linear_shape(fake_bybit, connect) -> None:
    ws = connect(fake_bybit)
    ack = subscribe(ws, "tickers.BTCUSDT", req_id="s-1")
    assert list(ack) == ["success", "ret_msg", "conn_id", "req_id", "op"]
    assert ack == {"success": True, "ret_msg": "", "conn_id": conn_id_of(fake_bybit), "req_id": "s-1",
                   "op": "subscribe"}
    uuid.UUID(ack["conn_id"])
    assert request(ws, {"op": "subscribe", "args": ["tickers.ETHUSDT"]})["req_id"] == "", "no req_id: \"\""
    assert request(ws, {"req_id": 7, "op": "subscribe", "args": ["tickers.SOLUSDT"]})["req_id"] == "7"
    assert fake_bybit.subscribed_topics() == {"tickers.BTCUSDT", "tickers.ETHUSDT", "tickers.SOLUSDT"}
    assert fake_bybit.connections()[0].topics == ("tickers.BTCUSDT", "tickers.ETHUSDT", "tickers.SOLUSDT")
    assert [message for _, message in fake_bybit.control_messages()][0] == {
        "req_id": "s-1", "op": "subscribe", "args": ["tickers.BTCUSDT"]}


def test_unknown_topics_refuse_the_whole_request_and_name_every_one(fake_bybit, connect) -> None:
    ws = connect(fake_bybit)
    bad = ["tickers.FOOUSDT", "orderbook.30.BTCUSDT", "publicTrade.btcusdt", "tickers.GONEUSDT", "kline.1.BTCUSDT"]
    ack = subscribe(ws, "tickers.BTCUSDT", *bad, req_id="mixed")
    assert ack["success"] is False and ack["op"] == "subscribe" and ack["req_id"] == "mixed"
    assert ack["ret_msg"] == "error:handler not found,topic:" + ",".join(bad)
    assert fake_bybit.subscribed_topics() == set(), "the valid topic of a refused request is not subscribed"
    assert drain(ws, 0.5) == [], "so no data flows"
    assert subscribe(ws, "tickers.BTCUSDT")["success"] is True, "alone it is accepted"


def test_a_pre_launch_contract_is_subscribable_but_has_no_feed(fake_bybit, connect) -> None:
    ws = connect(fake_bybit)
    assert subscribe(ws, "tickers.NEWCOINUSDT", "publicTrade.NEWCOINUSDT", "orderbook.1.NEWCOINUSDT")["success"]
    assert drain(ws, 0.5) == []


def test_already_subscribed_refuses_the_whole_request(fake_bybit, connect) -> None:
    ws = connect(fake_bybit)
    subscribe(ws, "publicTrade.BTCUSDT")
    again = subscribe(ws, "publicTrade.BTCUSDT", "publicTrade.ETHUSDT", req_id="2")
    assert again == {"success": False, "ret_msg": "error:already subscribed,topic:publicTrade.BTCUSDT",
                     "conn_id": again["conn_id"], "req_id": "2", "op": "subscribe"}
    twice = subscribe(ws, "tickers.ETHUSDT", "tickers.ETHUSDT")
    assert twice["ret_msg"] == "error:already subscribed,topic:tickers.ETHUSDT", "a repeat within one request too"
    assert fake_bybit.subscribed_topics() == {"publicTrade.BTCUSDT"}
    assert next_matching(ws, on_topic("publicTrade.BTCUSDT"))["type"] == "snapshot", "the first keeps delivering"


def test_unsubscribe_stops_the_topic_after_its_ack(make_fake, connect) -> None:
    fake = make_fake(tick_interval=0.05)
    ws = connect(fake)
    subscribe(ws, "tickers.BTCUSDT", "tickers.ETHUSDT")
    next_matching(ws, on_topic("tickers.BTCUSDT"))
    ack = request(ws, {"req_id": "u", "op": "unsubscribe", "args": ["tickers.BTCUSDT"]})
    assert ack == {"success": True, "ret_msg": "", "conn_id": ack["conn_id"], "req_id": "u", "op": "unsubscribe"}
    later = collect(ws, 0.5)
    assert later and {message["topic"] for message in later} == {"tickers.ETHUSDT"}
    refused = request(ws, {"op": "unsubscribe", "args": ["tickers.NOPEUSDT"]})
    assert (refused["success"], refused["ret_msg"]) == (False, "error:handler not found,topic:tickers.NOPEUSDT")
    assert request(ws, {"op": "unsubscribe", "args": ["tickers.SOLUSDT"]})["success"] is True, "not held: acked"
    assert fake.subscribed_topics() == {"tickers.ETHUSDT"}


@pytest.mark.parametrize(("frame", "ret_msg", "op"), [
    ("hello", "Failed to decode incoming data:Expecting value at line 1 column 1", ""),
    ("[1, 2]", "Failed to decode incoming data:expected a JSON object, got list", ""),
    ('{"op": "subscribe", "args": "tickers.BTCUSDT"}',
     "Failed to decode incoming data:args must be a list of topic strings like 'tickers.BTCUSDT'", ""),
    ('{"req_id": "x", "op": "nope"}', "error:invalid op", "nope"),
    ('{"req_id": "x"}', "error:invalid op", ""),
])
def test_malformed_requests_get_an_error_frame_and_the_socket_stays_open(fake_bybit, connect, frame, ret_msg,
                                                                          op) -> None:
    ws = connect(fake_bybit)
    answer = request(ws, frame)
    assert (answer["success"], answer["ret_msg"], answer["op"]) == (False, ret_msg, op)
    assert answer["conn_id"] == conn_id_of(fake_bybit)
    assert request(ws, {"op": "ping"})["ret_msg"] == "pong"
    assert fake_bybit.connections()[0].open


# ---------------------------------------------------------------- heartbeat

def test_ping_is_answered_with_the_linear_pong_and_recorded(fake_bybit, connect) -> None:
    ws = connect(fake_bybit)
    conn_id = conn_id_of(fake_bybit)
    assert request(ws, {"req_id": "hb-1", "op": "ping"}) == {
        "success": True, "ret_msg": "pong", "conn_id": conn_id, "req_id": "hb-1", "op": "ping"}
    assert request(ws, {"op": "ping"}) == {"success": True, "ret_msg": "pong", "conn_id": conn_id, "req_id": "",
                                           "op": "ping"}
    pings = fake_bybit.pings(conn_id)
    assert [(p.req_id, p.answered) for p in pings] == [("hb-1", True), ("", True)] and pings == fake_bybit.pings()
    assert pings[0].at <= pings[1].at and fake_bybit.pings("someone-else") == []


def test_a_connection_that_does_not_ping_is_cut_off_after_ping_timeout(make_fake, connect) -> None:
    fake = make_fake(ping_timeout=1.0)
    silent, pinging = connect(fake), connect(fake)
    subscribe(silent, "tickers.BTCUSDT")  # data flowing is no heartbeat for the fake
    started = time.monotonic()
    deadline = started + 1.6
    while time.monotonic() < deadline:
        assert request(pinging, {"op": "ping"})["ret_msg"] == "pong"
        time.sleep(0.3)
    assert read_until_closed(silent) == (None, ""), "cut off without a close frame"
    assert time.monotonic() - started >= 1.0
    infos = {info.number: info for info in fake.connections()}
    assert (infos[1].open, infos[1].close_code, infos[1].close_reason) == (False, 1006, "ping timeout")
    assert infos[2].open, "the pinging connection stays"
    assert PING_TIMEOUT == 600.0, "production default: the documented 10 minutes"


# ---------------------------------------------------------------- tickers

def test_ticker_snapshot_then_deltas_that_merge_to_the_fake_ticker(make_fake, connect) -> None:
    fake = make_fake(tick_interval=0.05)
    ws = connect(fake)
    subscribe(ws, "tickers.ETHUSDT")
    snapshot = next_matching(ws, on_topic("tickers.ETHUSDT"))
    assert list(snapshot) == ["topic", "type", "data", "cs", "ts"] and snapshot["type"] == "snapshot"
    assert list(snapshot["data"]) == PERPETUAL_TICKER_KEYS
    assert all(isinstance(value, str) for value in snapshot["data"].values())
    assert len(snapshot["data"]["lastPrice"].split(".")[1]) == 2, "ETHUSDT priceScale 2"
    held, deltas = dict(snapshot["data"]), []
    while len(deltas) < 30 or all("lastPrice" in d["data"] for d in deltas):
        message = next_matching(ws, on_topic("tickers.ETHUSDT"))
        assert message["type"] == "delta" and message["data"]["symbol"] == "ETHUSDT"
        assert set(message["data"]) <= set(PERPETUAL_TICKER_KEYS) and len(message["data"]) > 1
        held = merge(held, message)
        assert Decimal(held["lowPrice24h"]) <= Decimal(held["lastPrice"]) <= Decimal(held["highPrice24h"])
        expected = ((Decimal(held["lastPrice"]) - Decimal(held["prevPrice24h"])) / Decimal(held["prevPrice24h"]))
        assert Decimal(held["price24hPcnt"]) == expected.quantize(Decimal("0.000001"), rounding=ROUND_DOWN)
        assert held["tickDirection"] in TICK_DIRECTIONS
        deltas.append(message)
    assert any("lastPrice" not in d["data"] and "markPrice" in d["data"] for d in deltas), "a client must merge"
    css = [d["cs"] for d in deltas]
    assert css == sorted(css) and snapshot["cs"] <= css[0]
    fake.set_frozen(True, symbols=["ETHUSDT"])
    for message in drain(ws):
        held = merge(held, message)
    assert held == fake.ticker("ETHUSDT"), "merging every message received gives the fake's ticker"
    conn_id = conn_id_of(fake)
    sent = [message for who, message in fake.sent("tickers.ETHUSDT") if who == conn_id]
    assert sent[0] == snapshot and sent[1:len(deltas) + 1] == deltas


def test_futures_trap_ticker_has_the_futures_fields(fake_bybit, connect) -> None:
    ws = connect(fake_bybit)
    subscribe(ws, "tickers.BTCUSDT-25DEC26")
    data = next_matching(ws, on_topic("tickers.BTCUSDT-25DEC26"))["data"]
    assert data["deliveryTime"] == "2026-12-25T08:00:00Z" and data["fundingRate"] == "" and "basisRate" in data
    assert "fundingIntervalHour" not in data


# ---------------------------------------------------------------- trades

def test_public_trades_shape_seq_and_the_last_price(make_fake, connect) -> None:
    fake = make_fake(tick_interval=0.05)
    ws = connect(fake)
    subscribe(ws, "publicTrade.SOLUSDT", "tickers.SOLUSDT")
    received: list[dict[str, Any]] = []
    several = False
    while len(received) < 60 or not several:
        message = next_matching(ws, on_topic("publicTrade.SOLUSDT"))
        assert list(message) == ["topic", "type", "ts", "data"] and message["type"] == "snapshot"
        several = several or len(message["data"]) > 1
        for trade in message["data"]:
            assert list(trade) == TRADE_KEYS and trade["s"] == "SOLUSDT" and trade["S"] in ("Buy", "Sell")
            assert trade["BT"] is False and trade["RPI"] is False and trade["L"] in TICK_DIRECTIONS
            assert isinstance(trade["T"], int) and isinstance(trade["seq"], int) and trade["T"] <= message["ts"]
            assert len(trade["p"].split(".")[1]) == 3 and len(trade["v"].split(".")[1]) == 1, "SOLUSDT scales"
            uuid.UUID(trade["i"])
        received.extend(message["data"])
    seqs = [trade["seq"] for trade in received]
    assert seqs == sorted(seqs), "seq only grows"
    assert len(set(seqs)) < len(seqs), "the fills of one taker order share a seq"
    assert len({trade["i"] for trade in received}) == len(received)
    fake.set_frozen(True, symbols=["SOLUSDT"])
    for message in drain(ws):
        if message["topic"] == "publicTrade.SOLUSDT":
            received.extend(message["data"])
    assert fake.ticker("SOLUSDT")["lastPrice"] == received[-1]["p"], "the ticker follows the last trade"
    recorded = fake.trades("SOLUSDT")
    start = recorded.index(received[0])
    assert recorded[start:start + len(received)] == received, "trades() is every trade sent, in order, once"


# ---------------------------------------------------------------- order book

def test_level_1_is_snapshots_only_and_is_resent_with_the_same_u(make_fake, connect) -> None:
    fake = make_fake(tick_interval=0.05, book_resend_interval=0.5)
    ws = connect(fake)
    subscribe(ws, "orderbook.1.BTCUSDT")
    messages = [next_matching(ws, on_topic("orderbook.1.BTCUSDT")) for _ in range(12)]
    for message in messages:
        assert list(message) == ["topic", "ts", "type", "data", "cts"], "level 1: ts before type"
        assert message["type"] == "snapshot" and list(message["data"]) == ["s", "b", "a", "u", "seq"]
        assert len(message["data"]["b"]) == len(message["data"]["a"]) == 1 and message["cts"] <= message["ts"]
        bid, ask = Decimal(message["data"]["b"][0][0]), Decimal(message["data"]["a"][0][0])
        assert bid < ask
    us = [message["data"]["u"] for message in messages]
    assert all(later - earlier in (0, 1) for earlier, later in zip(us, us[1:])) and us[-1] > us[0]
    fake.set_frozen(True, symbols=["BTCUSDT"])
    drain(ws, 0.1)
    resent = [next_matching(ws, on_topic("orderbook.1.BTCUSDT")) for _ in range(2)]
    arrived = time.monotonic()
    assert resent[0]["data"] == resent[1]["data"], "same levels, same u, same seq"
    assert resent[1]["ts"] - resent[0]["ts"] >= 450, "re-sent after the resend interval without a change"
    book = fake.book("BTCUSDT", 1)
    assert book == resent[1]["data"] and time.monotonic() - arrived < 0.5


def test_book_deltas_merge_to_the_fake_book_and_u_is_a_chain(make_fake, connect) -> None:
    fake = make_fake(tick_interval=0.03, book_deltas=True)
    ws = connect(fake)
    subscribe(ws, "orderbook.50.ETHUSDT", "orderbook.1.ETHUSDT")
    books: dict[str, dict[str, dict[str, str]]] = {}
    last_u: dict[str, int] = {}
    kinds: dict[str, set[str]] = {"orderbook.50.ETHUSDT": set(), "orderbook.1.ETHUSDT": set()}
    zero_seen = False
    for _ in range(100):
        message = next_matching(ws, lambda m: str(m.get("topic", "")).startswith("orderbook."))
        topic, data = message["topic"], message["data"]
        if topic == "orderbook.50.ETHUSDT":
            assert list(message) == ["topic", "type", "ts", "data", "cts"], "other levels: ts after type"
        kinds[topic].add(message["type"])
        if message["type"] == "delta":
            assert data["u"] == last_u[topic] + 1, "apply a delta only on u = last + 1"
            zero_seen = zero_seen or any(size == "0" for side in ("b", "a") for _, size in data[side])
        books[topic] = apply_book(books.get(topic, {"b": {}, "a": {}}), message)
        last_u[topic] = data["u"]
    assert kinds == {"orderbook.50.ETHUSDT": {"snapshot", "delta"}, "orderbook.1.ETHUSDT": {"snapshot", "delta"}}
    assert zero_seen, 'a level that leaves arrives with size "0"'
    fake.set_frozen(True, symbols=["ETHUSDT"])
    for message in drain(ws):
        if message["type"] == "snapshot" or message["data"]["u"] == last_u[message["topic"]] + 1:
            books[message["topic"]] = apply_book(books[message["topic"]], message)
            last_u[message["topic"]] = message["data"]["u"]
    for depth in (50, 1):
        topic, book = f"orderbook.{depth}.ETHUSDT", fake.book("ETHUSDT", depth)
        held = books[topic]
        assert sorted_levels(held["b"], True) == book["b"] and sorted_levels(held["a"], False) == book["a"]
        assert last_u[topic] == book["u"] and len(book["b"]) <= depth


def test_restart_orderbook_sends_a_u_1_snapshot(make_fake, connect) -> None:
    fake = make_fake(tick_interval=0.05)
    ws = connect(fake)
    subscribe(ws, "orderbook.50.BTCUSDT")
    before = next_matching(ws, on_topic("orderbook.50.BTCUSDT"))
    assert before["type"] == "snapshot" and before["data"]["u"] > 1
    assert fake.restart_orderbook(["BTCUSDT"]) == 4, "one snapshot per depth"
    restart = next_matching(ws, lambda m: m.get("topic") == "orderbook.50.BTCUSDT" and m["data"]["u"] == 1)
    assert restart["type"] == "snapshot"
    after = next_matching(ws, on_topic("orderbook.50.BTCUSDT"))
    assert (after["type"], after["data"]["u"]) == ("delta", 2)
    with pytest.raises(ValueError, match="unknown symbol"):
        fake.restart_orderbook(["NOPEUSDT"])


# ---------------------------------------------------------------- limits

def test_args_length_is_limited_per_connection(make_fake, connect) -> None:
    fake = make_fake(args_limit=40)
    ws = connect(fake)
    assert subscribe(ws, "tickers.BTCUSDT", "tickers.ETHUSDT")["success"]  # 15 + 15 characters
    refused = subscribe(ws, "tickers.SOLUSDT", req_id="over")
    assert refused["success"] is False and refused["req_id"] == "over"
    assert refused["ret_msg"] == ("error:args length 45 over the limit of 40 characters per connection,"
                                  "topic:tickers.SOLUSDT")
    assert fake.connections()[0].topics == ("tickers.BTCUSDT", "tickers.ETHUSDT")
    request(ws, {"op": "unsubscribe", "args": ["tickers.ETHUSDT"]})
    assert subscribe(ws, "tickers.SOLUSDT")["success"], "unsubscribing frees the characters"
    assert ARGS_CHARS_LIMIT == 21_000


def test_connection_attempts_over_the_window_get_429(make_fake, connect) -> None:
    fake = make_fake(max_connections_per_window=3, connection_window=1.5)
    first = connect(fake)
    started = time.monotonic()
    connect(fake), connect(fake)
    refused = refused_with(429, fake)
    assert "more than 3 in 1.5 s" in refused.resp_body.decode() and 1 <= int(refused.resp_headers["retry-after"]) <= 2
    refused_with(429, fake)  # a refused attempt counts too
    assert fake.rate_limited_attempts() == fake.connection_attempts()[3:] and fake.refused_attempts() == []
    assert request(first, {"op": "ping"})["ret_msg"] == "pong", "open connections are untouched"
    assert rest(fake, "/v5/market/tickers", category="linear", symbol="BTCUSDT").status_code == 200
    time.sleep(1.55)  # every attempt counts, the refused ones too: only a pause lets the window slide
    connect(fake)
    assert time.monotonic() - started >= 1.5
    assert (CONNECTIONS_PER_WINDOW, CONNECTION_WINDOW, MAX_OPEN_CONNECTIONS_PER_IP) == (500, 300.0, 1000)


def test_open_connections_per_ip_are_limited(make_fake, connect) -> None:
    fake = make_fake(max_open_connections=2)
    first = connect(fake)
    connect(fake)
    assert "2 WebSocket connections" in refused_with(429, fake).resp_body.decode()
    first.close()
    wait_for(lambda: len(fake.open_connections()) == 1)
    connect(fake)


def test_only_the_linear_path_is_served(fake_bybit) -> None:
    assert "the spot stream" in refused_with(404, fake_bybit, "/v5/public/spot").resp_body.decode()
    refused_with(404, fake_bybit, "/ws")
    assert requests.get(f"{fake_bybit.rest_url}{PATH}", timeout=5).status_code == 400


# ---------------------------------------------------------------- REST

def test_rest_tickers_envelope_and_row(fake_bybit) -> None:
    answer = rest(fake_bybit, "/v5/market/tickers", category="linear", symbol="BTCUSDT")
    assert answer.status_code == 200
    body = answer.json()
    assert list(body) == ENVELOPE_KEYS and (body["retCode"], body["retMsg"], body["retExtInfo"]) == (0, "OK", {})
    assert abs(body["time"] - time.time() * 1000) < 5000
    (row,) = body["result"]["list"]
    assert body["result"]["category"] == "linear" and list(row)[:3] == ["symbol", "lastPrice", "indexPrice"]
    assert all(isinstance(value, str) for value in row.values()) and row["deliveryTime"] == "0"
    assert row["fundingIntervalHour"] == "8" and row["basisRateYear"] == ""
    everything = rest(fake_bybit, "/v5/market/tickers", category="linear").json()["result"]["list"]
    listed = {r["symbol"] for r in everything}
    assert set(CORE_SYMBOLS) <= listed and "GONEUSDT" not in listed and "NEWCOINUSDT" in listed


def test_rest_orderbook_and_recent_trades(make_fake) -> None:
    fake = make_fake(tick_interval=0.05)
    wait_for(lambda: fake.tick_count() > 10)
    fake.set_frozen(True)
    time.sleep(0.1)
    book = rest(fake, "/v5/market/orderbook", category="linear", symbol="ETHUSDT", limit=1).json()["result"]
    assert list(book) == ["s", "a", "b", "ts", "u", "seq", "cts"] and len(book["a"]) == len(book["b"]) == 1
    assert book["u"] == fake.book("ETHUSDT")["u"], "REST u is the 1000-level stream's u"
    assert [book["b"], book["a"]] == [fake.book("ETHUSDT", 1)["b"], fake.book("ETHUSDT", 1)["a"]]
    deep = rest(fake, "/v5/market/orderbook", category="linear", symbol="ETHUSDT").json()["result"]
    assert len(deep["b"]) == 25 == len(deep["a"]), "linear default limit 25"
    trades = rest(fake, "/v5/market/recent-trade", category="linear", symbol="ETHUSDT", limit=5).json()["result"]
    rows = trades["list"]
    assert len(rows) == 5 and list(rows[0]) == ["execId", "symbol", "price", "size", "side", "time", "isBlockTrade",
                                                 "isRPITrade", "seq"]
    assert [int(r["time"]) for r in rows] == sorted((int(r["time"]) for r in rows), reverse=True), "newest first"
    assert rows[0]["price"] == fake.ticker("ETHUSDT")["lastPrice"]
    assert len(rest(fake, "/v5/market/recent-trade", category="linear", symbol="ETHUSDT").json()["result"]["list"]) \
        == min(500, len(rest(fake, "/v5/market/recent-trade", category="linear", symbol="ETHUSDT",
                             limit=1000).json()["result"]["list"]))


@pytest.mark.parametrize(("path", "params", "ret_msg"), [
    ("/v5/market/tickers", {"category": "linear", "symbol": "NOPEUSDT"}, "params error: symbol invalid"),
    ("/v5/market/tickers", {"category": "linear", "symbol": "btcusdt"}, "params error: symbol invalid"),
    ("/v5/market/tickers", {"category": "linear", "symbol": "GONEUSDT"}, "params error: symbol invalid"),
    ("/v5/market/orderbook", {"category": "linear"}, "params error: symbol invalid"),
    ("/v5/market/tickers", {"symbol": "BTCUSDT"}, "Illegal category"),
    ("/v5/market/tickers", {"category": "linears"}, "Illegal category"),
    ("/v5/market/tickers", {"category": "spot"}, "params error: FakeBybit serves category=linear only, not spot"),
    ("/v5/market/recent-trade", {"category": "linear", "symbol": "BTCUSDT", "limit": 1001},
     "params error: limit must be an integer from 1 to 1000, got '1001'"),
    ("/v5/market/instruments-info", {"category": "linear", "status": "Settling"},
     "params error: status must be one of PreLaunch, Trading, Delivering, Closed, got 'Settling'"),
    ("/v5/market/instruments-info", {"category": "linear", "cursor": "garbage"},
     "params error: cursor 'garbage' is no nextPageCursor of this endpoint"),
])
def test_rest_parameter_errors_are_http_200_with_retcode_10001(fake_bybit, path, params, ret_msg) -> None:
    answer = rest(fake_bybit, path, **params)
    assert answer.status_code == 200
    body = answer.json()
    assert list(body) == ENVELOPE_KEYS and (body["retCode"], body["retMsg"]) == (10001, ret_msg)


def test_rest_unknown_path_is_404(fake_bybit) -> None:
    answer = rest(fake_bybit, "/v5/market/kline", category="linear")
    assert answer.status_code == 404 and answer.text.startswith("404 page not found")
    assert fake_bybit.rest_requests()[-1] == ("/v5/market/kline", {"category": "linear"})


def all_instruments(fake: FakeBybit, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every page of instruments-info (cursor passed back as received); (rows, number of pages)."""
    rows, cursor, pages = [], "", 0
    while True:
        query = {"category": "linear", **params, **({"cursor": cursor} if cursor else {})}
        result = rest(fake, "/v5/market/instruments-info", **query).json()["result"]
        pages += 1
        rows.extend(result["list"])
        cursor = result["nextPageCursor"]
        if not cursor:
            return rows, pages


def test_instruments_pagination_and_the_traps_a_client_must_filter(fake_bybit) -> None:
    rows, pages = all_instruments(fake_bybit, limit=4)
    symbols = [row["symbol"] for row in rows]
    assert pages == 4 and symbols == sorted(symbols) and len(set(symbols)) == len(symbols)
    assert {row["status"] for row in rows} == {"Trading"}, "linear lists only Trading by default"
    by_symbol = {row["symbol"]: row for row in rows}
    assert by_symbol["BTCUSDT-25DEC26"]["contractType"] == "LinearFutures"
    assert by_symbol["BTCPERP"]["quoteCoin"] == "USDC" and by_symbol["ETH-25DEC26"]["settleCoin"] == "USDC"
    kept = {row["symbol"] for row in rows if row["contractType"] == "LinearPerpetual" and row["quoteCoin"] == "USDT"
            and row["status"] == "Trading"}
    assert kept == set(CORE_SYMBOLS) == fake_bybit.usdt_perpetuals()
    assert rows == all_instruments(fake_bybit)[0], "the default page (500) holds them all"
    btc = by_symbol["BTCUSDT"]
    assert btc["priceFilter"]["tickSize"] == "0.10" and btc["lotSizeFilter"]["qtyStep"] == "0.001"
    first = rest(fake_bybit, "/v5/market/instruments-info", category="linear", limit=4).json()["result"]
    assert first["nextPageCursor"] == "first%3DADAUSDT%26last%3DBTCPERP", "shaped like the documented cursor"
    raw = requests.get(f"{fake_bybit.rest_url}/v5/market/instruments-info?category=linear&limit=4"
                       f"&cursor={first['nextPageCursor']}", timeout=5).json()["result"]
    assert raw["list"][0]["symbol"] == symbols[4], "the cursor works pasted into the URL as well"
    for status, symbol in (("PreLaunch", "NEWCOINUSDT"), ("Delivering", "OLDCOINUSDT"), ("Closed", "GONEUSDT")):
        (row,) = all_instruments(fake_bybit, status=status)[0]
        assert (row["symbol"], row["status"]) == (symbol, status)
    prelaunch = all_instruments(fake_bybit, status="PreLaunch")[0][0]
    assert prelaunch["isPreListing"] is True and prelaunch["preListingInfo"]["curAuctionPhase"] == "CallAuction"
    unknown = rest(fake_bybit, "/v5/market/instruments-info", category="linear", symbol="NOPEUSDT").json()
    assert (unknown["retCode"], unknown["result"]) == (10001, {"category": "", "list": [], "nextPageCursor": ""})


def test_rest_ip_limit_answers_403_and_bans(make_fake) -> None:
    fake = make_fake(rest_limit=5, rest_window=1.0, rest_ban_seconds=0.6)
    params = {"category": "linear", "symbol": "BTCUSDT"}
    assert [rest(fake, "/v5/market/tickers", **params).status_code for _ in range(5)] == [200] * 5
    over = rest(fake, "/v5/market/tickers", **params)
    assert (over.status_code, over.text) == (403, "access too frequent")
    assert rest(fake, "/v5/market/tickers", **params).status_code == 403
    assert [call.cause for call in fake.rest_calls()][5:] == ["limit", "banned"]
    time.sleep(1.05)  # the ban and the window are over
    assert rest(fake, "/v5/market/tickers", **params).status_code == 200
    assert (REST_LIMIT, REST_WINDOW) == (600, 5.0)


def test_set_rest_failure(fake_bybit) -> None:
    params = {"category": "linear", "symbol": "BTCUSDT"}
    fake_bybit.set_rest_failure(403)
    assert (rest(fake_bybit, "/v5/market/tickers", **params).text) == "access too frequent"
    fake_bybit.set_rest_failure(503, retry_after=7)
    failed = rest(fake_bybit, "/v5/market/orderbook", **params)
    assert (failed.status_code, failed.headers["Retry-After"]) == (503, "7")
    fake_bybit.set_rest_failure(200)
    body = rest(fake_bybit, "/v5/market/tickers", **params).json()
    assert (body["retCode"], body["retMsg"]) == (10006, "Too many visits!")
    fake_bybit.set_rest_failure(None)
    assert rest(fake_bybit, "/v5/market/tickers", **params).json()["retCode"] == 0
    assert [call.cause for call in fake_bybit.rest_calls()] == ["forced", "forced", "forced", "answer"]
    with pytest.raises(ValueError, match="HTTP error status"):
        fake_bybit.set_rest_failure(302)


# ---------------------------------------------------------------- fault hooks

def test_drop_all_aborts_without_a_close_frame(fake_bybit, connect) -> None:
    ws = connect(fake_bybit)
    wait_for(fake_bybit.open_connections)
    assert fake_bybit.drop_all() == 1
    assert read_until_closed(ws) == (None, "")
    info = fake_bybit.connections()[0]
    assert (info.open, info.close_code, info.close_reason) == (False, 1006, "dropped by fake")


def test_close_all_sends_the_close_frame(fake_bybit, connect) -> None:
    ws = connect(fake_bybit)
    wait_for(fake_bybit.open_connections)
    assert fake_bybit.close_all(1001, "going away") == 1
    assert read_until_closed(ws) == (1001, "going away")
    with pytest.raises(ValueError, match="cannot be sent"):
        fake_bybit.close_all(1006, "x")


def test_refuse_connections(fake_bybit, connect) -> None:
    ws = connect(fake_bybit)
    subscribe(ws, "tickers.BTCUSDT")
    fake_bybit.refuse_connections(30)
    assert "refused for another" in refused_with(503, fake_bybit).resp_body.decode()
    assert rest(fake_bybit, "/v5/market/tickers", category="linear").status_code == 200
    assert next_matching(ws, on_topic("tickers.BTCUSDT")), "the open connection still gets data"
    assert len(fake_bybit.refused_attempts()) == 1
    fake_bybit.refuse_connections(0)
    connect(fake_bybit)


def test_set_silent_withholds_data_but_not_acks(fake_bybit, connect) -> None:
    ws = connect(fake_bybit)
    subscribe(ws, "tickers.BTCUSDT", "tickers.ETHUSDT")
    fake_bybit.set_silent(True, symbols=["BTCUSDT"])
    collect(ws, 0.3)
    assert {m["topic"] for m in collect(ws, 0.6)} == {"tickers.ETHUSDT"}
    fake_bybit.set_silent(True)
    drain(ws, 0.1)
    assert request(ws, {"op": "ping"})["ret_msg"] == "pong" and drain(ws, 0.5) == []
    assert fake_bybit.state()["silent"] and fake_bybit.state()["silent_symbols"] == ["BTCUSDT"]
    fake_bybit.set_silent(False)
    assert next_matching(ws, on_topic("tickers.BTCUSDT"))["type"] == "delta"


def test_withheld_replies_are_recorded_but_never_applied(fake_bybit, connect) -> None:
    ws = connect(fake_bybit)
    fake_bybit.withhold_replies(True)
    lost = [{"req_id": "1", "op": "subscribe", "args": ["tickers.BTCUSDT"]}, {"req_id": "2", "op": "ping"}]
    for message in lost:
        send(ws, message)
    wait_for(lambda: len(fake_bybit.control_messages()) == 2)
    assert [m for _, m in fake_bybit.control_messages()] == lost and drain(ws, 0.5) == []
    assert [(p.req_id, p.answered) for p in fake_bybit.pings()] == [("2", False)]
    fake_bybit.withhold_replies(False)
    assert request(ws, {"req_id": "3", "op": "ping"})["req_id"] == "3", "1 and 2 stay unanswered"
    assert fake_bybit.subscribed_topics() == set()


@pytest.mark.parametrize(("frame", "binary", "opcode"), [
    ('{"topic":"tickers.ZZZUSDT","type":"delta","data":{"symbol":"ZZZUSDT"},"cs":1,"ts":1}', False,
     websocket.ABNF.OPCODE_TEXT),
    ("not json {", False, websocket.ABNF.OPCODE_TEXT),
    (b"\x00\xffraw", False, websocket.ABNF.OPCODE_BINARY),
])
def test_inject_sends_a_raw_frame_to_every_connection(fake_bybit, connect, frame, binary, opcode) -> None:
    sockets = [connect(fake_bybit), connect(fake_bybit)]
    wait_for(lambda: len(fake_bybit.open_connections()) == 2)
    assert fake_bybit.inject(frame, binary=binary) == 2
    raw = frame.encode() if isinstance(frame, str) else frame
    for ws in sockets:
        assert ws.recv_data() == (opcode, raw)
        assert request(ws, {"op": "ping"})["ret_msg"] == "pong", "the connection stays usable"
    assert fake_bybit.sent("tickers.ZZZUSDT") == []


def test_delivery_delay_makes_data_late_but_not_acks(fake_bybit, connect) -> None:
    ws = connect(fake_bybit)
    fake_bybit.set_delivery_delay(0.5)
    sent = time.monotonic()
    subscribe(ws, "tickers.BTCUSDT")
    assert time.monotonic() - sent < 0.4, "the ack is not delayed"
    snapshot = next_matching(ws, on_topic("tickers.BTCUSDT"))
    assert snapshot["type"] == "snapshot" and time.time() * 1000 - snapshot["ts"] >= 480
    delta = next_matching(ws, on_topic("tickers.BTCUSDT"))
    assert delta["type"] == "delta" and time.time() * 1000 - delta["ts"] >= 480
    with pytest.raises(ValueError, match="delivery delay"):
        fake_bybit.set_delivery_delay(-1)


def test_set_tick_interval(fake_bybit) -> None:
    fake_bybit.set_tick_interval(0.02)
    before = fake_bybit.tick_count()
    time.sleep(0.5)
    assert fake_bybit.tick_count() - before >= 10
    with pytest.raises(ValueError, match="tick interval"):
        fake_bybit.set_tick_interval(0)


def test_list_and_delist(fake_bybit, connect) -> None:
    fake_bybit.list_symbol("NEWLYUSDT")
    assert "NEWLYUSDT" in fake_bybit.usdt_perpetuals()
    assert "NEWLYUSDT" in {row["symbol"] for row in all_instruments(fake_bybit)[0]}
    ws = connect(fake_bybit)
    subscribe(ws, "tickers.NEWLYUSDT", "tickers.XRPUSDT")
    assert next_matching(ws, on_topic("tickers.NEWLYUSDT"))["type"] == "snapshot"
    fake_bybit.delist("XRPUSDT")
    collect(ws, 0.3)
    assert {m["topic"] for m in collect(ws, 0.5)} <= {"tickers.NEWLYUSDT"}, "a Closed contract's data stops"
    assert subscribe(ws, "publicTrade.XRPUSDT")["ret_msg"] == "error:handler not found,topic:publicTrade.XRPUSDT"
    body = rest(fake_bybit, "/v5/market/tickers", category="linear", symbol="XRPUSDT").json()
    assert (body["retCode"], body["retMsg"]) == (10001, "params error: symbol invalid")
    assert "XRPUSDT" not in {row["symbol"] for row in all_instruments(fake_bybit)[0]}
    assert "XRPUSDT" in {row["symbol"] for row in all_instruments(fake_bybit, status="Closed")[0]}
    fake_bybit.list_symbol("XRPUSDT")
    assert "XRPUSDT" in fake_bybit.usdt_perpetuals()
    with pytest.raises(ValueError, match="no such instrument"):
        fake_bybit.delist("NOPEUSDT")
    with pytest.raises(ValueError, match="NEWLYUSDT"):
        fake_bybit.list_symbol("newly")


def test_http_control_endpoints(fake_bybit, connect) -> None:
    base = f"{fake_bybit.rest_url}/_fake"
    ws = connect(fake_bybit)
    subscribe(ws, "orderbook.1.BTCUSDT")
    state = requests.get(f"{base}/state", timeout=5).json()
    assert state["subscribed_topics"] == ["orderbook.1.BTCUSDT"] and state["open_total"] == 1
    assert requests.post(f"{base}/frozen", params={"on": "true", "symbols": "BTCUSDT"}, timeout=5).json() == {
        "frozen_symbols": ["BTCUSDT"]}
    assert requests.post(f"{base}/restart-orderbook", params={"symbols": "BTCUSDT"}, timeout=5).json() == {
        "snapshots": 4}
    assert next_matching(ws, lambda m: m.get("topic") == "orderbook.1.BTCUSDT" and m["data"]["u"] == 1)
    assert requests.post(f"{base}/silent", params={"symbols": "btc"}, timeout=5).status_code == 400
    assert requests.post(f"{base}/rest-failure", params={"status": "403"}, timeout=5).json() == {"rest_failure": 403}
    assert rest(fake_bybit, "/v5/market/tickers", category="linear").status_code == 403
    requests.post(f"{base}/rest-failure", timeout=5)
    assert requests.post(f"{base}/delist", params={"symbol": "LTCUSDT", "status": "Delivering"}, timeout=5).ok
    assert fake_bybit.instruments()["LTCUSDT"].status == "Delivering"
    assert requests.post(f"{base}/inject", data="hello", timeout=5).json() == {"sent": 1}
    assert requests.post(f"{base}/withhold-replies", params={"on": "false"}, timeout=5).ok
    assert requests.post(f"{base}/close", params={"code": "1001", "reason": "going away"}, timeout=5).json() == {
        "closed": 1}
    assert requests.post(f"{base}/nope", timeout=5).status_code == 404
    assert fake_bybit.rest_requests() == [("/v5/market/tickers", {"category": "linear"})]


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="ping_timeout"):
        FakeBybit(ping_timeout=0)
    with pytest.raises(ValueError, match="args_limit"):
        FakeBybit(args_limit=0)
    with pytest.raises(ValueError, match="port"):
        FakeBybit(port=70000)


def test_command_line_runs_until_sigterm() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.bybit", "--port", "0", "--tick-interval", "0.1"],
                               cwd=REPO, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("fake bybit listening ws=ws://127.0.0.1:")
        fields = dict(part.split("=", 1) for part in line.split()[3:])
        assert fields["rest"].startswith("http://127.0.0.1:") and fields["ws"].endswith(fields["rest"].rsplit(":")[-1])
        body = requests.get(f"{fields['rest']}/v5/market/tickers", params={"category": "linear", "symbol": "BTCUSDT"},
                            timeout=5).json()
        assert body["retCode"] == 0
        ws = websocket.create_connection(f"{fields['ws']}{PATH}", timeout=scaled(5.0))
        try:
            assert subscribe(ws, "tickers.BTCUSDT")["success"]
        finally:
            ws.shutdown()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=scaled(10.0)) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
